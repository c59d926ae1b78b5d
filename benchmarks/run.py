"""vitc against its peers on this machine: ``vitc bench`` from a checkout.

    python benchmarks/run.py --quick                    # tiny model, a minute: a smoke test (scratch output)
    python benchmarks/run.py --models vit-b16-224       # results in a scratch folder (printed)
    python benchmarks/run.py --update-results           # this folder's results/<cpu-kind>/ (committed)

The runner is vitc/bench/run.py (installed with vitc, so ``vitc bench`` works from a wheel too); this
script only names this folder's results/ as the committed results that --update-results writes and
--quick never touches. See benchmarks/README.md.
"""

from pathlib import Path

from vitc.bench.run import main

if __name__ == "__main__":
    raise SystemExit(main(checkout_results=Path(__file__).resolve().parent / "results"))
