"""Evaluation spread over a Ray cluster: the same result and output file as :func:`vitc.eval.run.evaluate`.

dataset -> samples (on the driver) -> Ray Data ``from_items`` -> ``map_batches`` with one
:class:`_Predictor` actor per worker (each loads the model once) -> JSON records streamed back to
the driver, which writes the output file (resumable, as the single-process run) and summarizes.

Ray is an optional dependency (``pip install 'vitc[ray]'``), imported only here. Every worker must
be able to import vitc and to read the model and the images at the paths the driver sees (a
shared file system on a multi-node cluster). This module is not a general Ray integration.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vitc.eval.dataset import Sample
from vitc.eval.output import model_fingerprint, write_records
from vitc.eval.run import DEFAULT_TOP_K, EvalResult, load_batch, plan_evaluation, predict_records
from vitc.predict import model_pixel_shape

# Passes over the images Ray returned no record for. Ray Data restarts a dead actor and retries its
# tasks (max_restarts / max_task_retries -1 in Ray >= 2.51), so a second pass is a safety net.
MAX_PASSES = 3

RAY_INSTALL_HINT = "pip install 'vitc[ray]' (from a checkout: pip install '.[ray]')"


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ImportError(
            f"evaluating on Ray needs the 'ray[data]' package, which is not installed ({e}): {RAY_INSTALL_HINT}"
        ) from None
    return ray


# Seconds to wait for a TCP connection to a cluster's address before saying it does not answer.
CONNECT_TIMEOUT = 10


def check_reachable(address: str) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) address where nothing answers.

    ``ray.init`` itself retries a wrong address for minutes with a log line every few seconds;
    "auto" and "local" are left to Ray (they fail fast or start a cluster).
    """
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as e:
        raise ConnectionError(
            f"--ray {address}: no Ray cluster answers at {host}:{port} ({e.strerror or e}); start one with "
            "'ray start --head --port=PORT' (and give its address), or use --ray local"
        ) from None


class _Predictor:
    """A Ray Data callable class: one model per actor, one record (a JSON string) per input row."""

    def __init__(self, model_path: str, kmax: int, threads: int):
        from vitc.model import ViT
        from vitc.runtime import set_num_threads

        set_num_threads(threads)
        self.model = ViT.from_pretrained(model_path)
        self.processor = self.model.image_processor
        self.pixel_shape = model_pixel_shape(self.model)
        self.kmax = kmax

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        samples = [
            Sample(int(i), str(k), str(p), int(lb))
            for i, k, p, lb in zip(batch["index"], batch["key"], batch["path"], batch["label"])
        ]
        pixels, good, errors = load_batch(self.processor, samples, self.pixel_shape)
        records = predict_records(self.model, pixels, good, self.kmax) + errors
        records.sort(key=lambda r: r["index"])
        return {"record": np.array([json.dumps(r) for r in records], dtype=object)}


def _ray_records(
    ray: Any,
    samples: list[Sample],
    model_path: Path,
    plan: Any,
    batch_size: int,
    num_workers: int,
    threads_per_worker: int,
) -> Iterable[list[dict[str, Any]]]:
    """One Ray Data pass over ``samples``: the records of each batch, as Ray delivers them."""
    # Sample paths are absolute (load_dataset), so workers in other working directories read
    # the same files and report errors with the same text as the single-process run.
    items = [{"index": s.index, "key": s.key, "path": s.path, "label": s.label} for s in samples]
    ds = ray.data.from_items(items).map_batches(
        _Predictor,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=num_workers),
        num_cpus=threads_per_worker,
        fn_constructor_kwargs={
            "model_path": str(model_path),
            "kmax": max(plan.top_k),
            "threads": threads_per_worker,
        },
    )
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        yield [json.loads(r) for r in batch["record"]]


def evaluate_ray(
    model_path: str | os.PathLike | None,
    dataset: str | os.PathLike,
    address: str = "local",
    num_workers: int = 2,
    batch_size: int = 8,
    top_k: int | Iterable[int] = DEFAULT_TOP_K,
    output: str | os.PathLike | None = None,
    class_mapping: str = "auto",
    progress: bool | None = None,
    threads_per_worker: int = 1,
) -> EvalResult:
    """Evaluate a classifier with Ray Data, one model per worker actor.

    Parameters
    ----------
    model_path : a .vitc file or Hugging Face folder every worker can read (None: the embedded model).
    dataset : ImageFolder tree or list file, as for :func:`vitc.eval.run.evaluate`.
    address : ``"local"`` starts a Ray instance on this machine (and stops it afterwards); anything
        else is passed to ``ray.init(address=...)`` (``"auto"``, ``"host:6379"``,
        ``"ray://host:10001"``; a ``host:port`` where nothing answers is refused at once). If Ray is
        already initialized in this process, that instance is used as it is.
    num_workers : actors, each with its own model.
    batch_size : images per forward pass (per Ray batch).
    top_k, output, class_mapping, progress : as for :func:`vitc.eval.run.evaluate`; the output file
        is written by this process and resumes the same way.
    threads_per_worker : CPUs Ray reserves per actor, and vitc threads each actor uses.

    Returns
    -------
    EvalResult
        Equal to the single-process result on the same images (timing aside).

    Raises
    ------
    ImportError
        If ray[data] is not installed.
    ConnectionError
        If nothing answers at a ``host:port`` address.
    FileNotFoundError, ValueError
        As :func:`vitc.eval.run.evaluate`.
    """
    for name, value in (
        ("num_workers", num_workers),
        ("batch_size", batch_size),
        ("threads_per_worker", threads_per_worker),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive int, found {value!r}")
    ray = _import_ray()
    from vitc.default_model import DEFAULT_MODEL_PATH
    from vitc.model import ViT

    model_path = Path(DEFAULT_MODEL_PATH if model_path is None else model_path).resolve()
    if not model_path.exists():
        raise FileNotFoundError(f"model not found: '{model_path}'")
    # The driver reads the labels and, for an output file, runs the fingerprint's one small probe
    # image; .vitc files are memory-mapped, so this is cheap.
    labels_model = ViT.from_pretrained(model_path)
    plan = plan_evaluation(
        labels_model.id2label,
        labels_model.num_labels,
        dataset,
        top_k,
        output,
        None,
        class_mapping,
        model_name=str(model_path),
        fingerprint=None if output is None else model_fingerprint(labels_model),
    )
    del labels_model
    new: list[dict[str, Any]] = []
    started_ray = False
    start = time.perf_counter()
    ctx, bars = None, None
    try:
        if plan.pending:
            if not ray.is_initialized():
                if address == "local":
                    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
                else:
                    check_reachable(address)
                    ray.init(address=address, log_to_driver=False, configure_logging=False)
                started_ray = True
            start = time.perf_counter()  # throughput of the evaluation, not of starting Ray
            ctx = ray.data.DataContext.get_current()
            bars, ctx.enable_progress_bars = ctx.enable_progress_bars, False  # ours shows rate and ETA
            # Each image is written once: a record Ray delivers twice (a task retried after a worker
            # died) is dropped, an image it never delivers is run again, up to MAX_PASSES times.
            wanted = {s.index for s in plan.pending}
            todo = plan.pending
            with plan.progress_bar("eval (ray)", progress) as bar:
                for _ in range(MAX_PASSES):
                    batches = _ray_records(ray, todo, model_path, plan, batch_size, num_workers, threads_per_worker)
                    for records in batches:
                        fresh = [r for r in records if r["index"] in wanted]
                        wanted.difference_update(r["index"] for r in fresh)
                        write_records(plan.out, fresh)
                        new += fresh
                        bar.update(len(fresh))
                    todo = [s for s in todo if s.index in wanted]
                    if not todo:
                        break
            if wanted:
                raise RuntimeError(
                    f"evaluate_ray: the Ray cluster returned no result for {len(wanted)} images after {MAX_PASSES} "
                    "passes; run the same command again to resume them"
                )
    finally:
        plan.close()
        if ctx is not None:
            ctx.enable_progress_bars = bars
        if started_ray:
            ray.shutdown()
    seconds = time.perf_counter() - start
    evaluated_now = sum(1 for r in new if "error" not in r)
    return plan.result(new, seconds, evaluated_now)
