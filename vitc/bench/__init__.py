"""``vitc bench``: vitc in every precision against the fastest CPU peers (OpenVINO, ONNX Runtime,
transformers) on this machine, in one run, with accuracy on real photos beside speed.

- run.py: the runner (``main(argv)``): one subprocess per engine, rounds, the sweep, the report.
- models.py: the benchmarked model shapes and per-model call counts.
- prepare.py: one random-weight checkpoint per model and every engine's file made from it (subprocess).
- engines.py: one engine on one model in its own process: load, check against transformers, time,
  score on real photos; also the sweep points and ``--profile``.
- images.py: the real photos (accuracy set, disjoint calibration set) shipped by installed packages.
- cpu.py: CPU model, kind (results folder name), flags, load average.
- peak.py + fma_peak.c: every kernel instruction's peak (fp32 FMA, vdpbf16ps, vpdpbusd, AMX tiles, the
  AVX2 int8 sequence), measured in the same run with pinned threads.
- profile.py: the per-stage profile contract (``_core.Model.forward(..., profile=True)``) and its table.
- report.py: results.json, results.md, latency.png, scaling.png; the README table of a results file.

The peers are the ``bench`` extra (pip install 'vitc[bench]'); benchmarks/README.md explains the output.
"""
