"""``vitc bench``: vitc against its peers (transformers, ONNX Runtime) on this machine, in one run.

- run.py: the runner (``main(argv)``): one subprocess per engine, the report.
- models.py: the benchmarked model shapes and per-model call counts.
- prepare.py: one random-weight checkpoint per model and every engine's file made from it (subprocess).
- engines.py: one engine on one model in its own process: load, check against transformers, time.
- peak.py + fma_peak.c: the machine's fp32 FMA peak, measured in the same run.
- report.py: results.json, results.md, latency.png.

The peers are the ``bench`` extra (pip install 'vitc[bench]'); benchmarks/README.md explains the output.
"""
