"""Evaluating a classifier on a labelled image set (``vitc.evaluate``, ``vitc eval``).

- dataset.py: the labelled images at a path (ImageFolder tree or list file), shards, samples digest.
- output.py: the output file (JSON lines): header, records, resume checks, atomic writes.
- run.py: ``evaluate``, ``merge``, ``EvalResult``: batches through the model, the summary.
- ray.py: the same evaluation spread over a Ray cluster (optional dependency).

The command line (``vitc eval``) is in vitc/cli.py.
"""

from vitc.eval.run import EvalResult, evaluate, merge

__all__ = ["EvalResult", "evaluate", "merge"]
