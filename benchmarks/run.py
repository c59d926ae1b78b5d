"""vitc against its peers on this machine: ``vitc bench`` from a checkout, writing to benchmarks/results/.

    python benchmarks/run.py --models vit-l16-512 vit-b16-224 --threads 2
    python benchmarks/run.py --quick          # tiny model, seconds: a smoke test of the pipeline

The runner is vitc/bench/run.py (installed with vitc, so ``vitc bench`` works from a wheel too); this
script only makes this folder's results/ the default output. See benchmarks/README.md.
"""

from pathlib import Path

from vitc.bench.run import main

if __name__ == "__main__":
    raise SystemExit(main(default_out=Path(__file__).resolve().parent / "results"))
