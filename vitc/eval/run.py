"""Evaluate a classifier on a labelled image set: accuracy, per-class accuracy, confusions, speed.

dataset (vitc/eval/dataset.py) -> samples -> shard selection -> skip what the output file already holds
(vitc/eval/output.py) -> batches: decode + preprocess (one batch ahead, in a thread) -> forward ->
top-k -> one JSON line per image, flushed per batch -> :class:`EvalResult`.

The output file is the record of the run: an interrupted run started again with the same output
resumes where it stopped, shards written by ``shard=(i, n)`` combine with :func:`merge`, and
vitc/eval/ray.py writes the same lines from Ray workers. This module is not a data loader for
training and does no augmentation.
"""

from __future__ import annotations

import html
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from vitc.eval.dataset import Sample, load_dataset, parse_shard, shard_samples
from vitc.eval.output import (
    PROB_DECIMALS,
    OutputLock,
    identity_problem,
    make_header,
    model_fingerprint,
    note_partial_line,
    parse_output,
    resume,
    unchecked_fields,
    write_output_atomic,
    write_records,
)
from vitc.predict import batch_memory_error, count_error_kinds, model_pixel_shape, preprocess_or_error, softmax

if TYPE_CHECKING:
    from vitc.model import ViT
    from vitc.preprocess import ImageProcessor

# Most confused (true, predicted) pairs kept in a result, and per-class rows printed in full.
NUM_CONFUSED = 10
MAX_CLASSES_PRINTED = 20
DEFAULT_TOP_K = (1, 5)


def _check_top_k(top_k: int | Iterable[int]) -> tuple[int, ...]:
    ks = (top_k,) if isinstance(top_k, int) else tuple(top_k)
    if not ks or any(not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"top_k: expected positive ints such as (1, 5), found {top_k!r}")
    return tuple(sorted({int(k) for k in ks}))



# ---------------------------------------------------------------------------------------------
# Running the model on batches (also used by the Ray workers in vitc/eval/ray.py)


def load_batch(
    processor: ImageProcessor, samples: Sequence[Sample], pixel_shape: tuple[int, int, int] | None = None
) -> tuple[np.ndarray | None, list[Sample], list[dict[str, Any]]]:
    """Decode and preprocess a batch; images that cannot be used become error records.

    Parameters
    ----------
    processor : the model's image processor.
    samples : the batch.
    pixel_shape : (C, H, W) the model runs (:func:`vitc.predict.model_pixel_shape`); an image
        preprocessed to another shape is an error record of kind "unsupported". None: the shape
        of the batch's first readable image.

    Returns
    -------
    pixel_values : (B, C, H, W) float32 of the readable images, or None if there are none.
    good : the samples behind ``pixel_values``, in order.
    errors : one record ``{"index", "path", "label", "error", "kind"}`` per image that cannot be
        used (``kind`` one of ``vitc.preprocess.IMAGE_ERROR_KINDS``).
    """
    arrays, good, errors = [], [], []
    for s in samples:
        x, error = preprocess_or_error(processor, s.path, pixel_shape)
        if error is not None:
            errors.append({"index": s.index, "path": s.key, "label": s.label, "error": str(error), "kind": error.kind})
            continue
        pixel_shape = x.shape if pixel_shape is None else pixel_shape
        arrays.append(x)
        good.append(s)
    if not arrays:
        return None, good, errors
    try:
        return np.stack(arrays), good, errors
    except MemoryError as e:
        raise batch_memory_error(e, len(arrays), arrays[0].shape, "evaluate") from None


def predict_records(
    model: ViT, pixel_values: np.ndarray | None, samples: Sequence[Sample], k: int
) -> list[dict[str, Any]]:
    """Forward a preprocessed batch; one record per sample with the top-``k`` classes and probabilities."""
    if pixel_values is None or not samples:
        return []
    try:
        probs = softmax(model(pixel_values, return_dict=True).logits)
    except MemoryError as e:
        raise batch_memory_error(e, len(pixel_values), pixel_values.shape[1:], "evaluate") from None
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # ties: the lower index first, as predict()
    top = np.take_along_axis(probs, order, axis=1)
    return [
        {
            "index": s.index,
            "path": s.key,
            "label": s.label,
            "topk": [int(i) for i in o],
            "probs": [round(float(p), PROB_DECIMALS) for p in t],
        }
        for s, o, t in zip(samples, order, top)
    ]


def _batches(items: Sequence[Sample], size: int) -> Iterator[Sequence[Sample]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ClassAccuracy:
    """Top-1 accuracy of one class: ``correct`` of its ``total`` evaluated images."""

    index: int
    label: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


@dataclass(frozen=True)
class ConfusedPair:
    """``count`` images of class ``true`` predicted (top-1) as class ``predicted``."""

    true: int
    predicted: int
    count: int
    true_label: str
    predicted_label: str


@dataclass
class EvalResult:
    """What an evaluation found.

    Attributes
    ----------
    total : images selected (the dataset, or the shard), including corrupt and not yet evaluated ones.
    evaluated : images with a prediction.
    corrupt : images that could not be used, whatever the reason (see ``errors_by_kind`` and
        ``corrupt_files``).
    accuracy : {k: top-k accuracy over the evaluated images}, None for k when nothing was evaluated.
    per_class : top-1 accuracy of every class with at least one evaluated image, by class index.
    confused : the most frequent top-1 confusions (true != predicted), most frequent first.
    confusion_matrix : (K, K) int64, rows the true class, columns the top-1 prediction.
    seconds : wall time of the forward passes and decoding in this run (None for merged results).
    images_per_second : images evaluated in this run per second (None if none or merged).
    corrupt_files : paths (relative to the dataset root) of the corrupt images, with their errors.
    labels : class names by index.
    class_mapping : how labels were assigned: "names", "sorted" (ImageFolder) or "list".
    errors_by_kind : {kind: images} of the images that could not be used, by
        ``vitc.preprocess.IMAGE_ERROR_KINDS`` ("missing", "unreadable", "not_an_image", "corrupt",
        "too_large", "unsupported"; "unknown" for records of an older vitc, which had no kind).
    """

    total: int
    evaluated: int
    corrupt: int
    accuracy: dict[int, float | None]
    per_class: list[ClassAccuracy]
    confused: list[ConfusedPair]
    confusion_matrix: np.ndarray
    seconds: float | None
    images_per_second: float | None
    corrupt_files: dict[str, str]
    labels: list[str]
    class_mapping: str
    errors_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def top1(self) -> float | None:
        return self.accuracy.get(1)

    @property
    def top5(self) -> float | None:
        return self.accuracy.get(5)

    @property
    def missing(self) -> int:
        """Selected images with neither a prediction nor an error (an incomplete merge)."""
        return self.total - self.evaluated - self.corrupt

    def to_dict(self, confusion_matrix: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; the (K, K) matrix only if ``confusion_matrix``."""
        d: dict[str, Any] = {
            "total": self.total,
            "evaluated": self.evaluated,
            "corrupt": self.corrupt,
            "missing": self.missing,
            "accuracy": {f"top{k}": v for k, v in self.accuracy.items()},
            "per_class": [
                {
                    "index": c.index,
                    "label": c.label,
                    "correct": c.correct,
                    "total": c.total,
                    "accuracy": c.accuracy,
                }
                for c in self.per_class
            ],
            "confused": [
                {
                    "true": p.true,
                    "predicted": p.predicted,
                    "count": p.count,
                    "true_label": p.true_label,
                    "predicted_label": p.predicted_label,
                }
                for p in self.confused
            ],
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
            "corrupt_files": dict(self.corrupt_files),
            "errors_by_kind": dict(self.errors_by_kind),
            "class_mapping": self.class_mapping,
        }
        if confusion_matrix:
            d["confusion_matrix"] = self.confusion_matrix.tolist()
        return d

    def summary(self) -> str:
        """A few lines for a terminal: counts, accuracies, weakest classes, top confusions."""
        counts = f"{self.total:,} images: {self.evaluated:,} evaluated, {self.corrupt:,} corrupt"
        if self.errors_by_kind:
            counts += " (by kind: " + ", ".join(f"{kind} {n:,}" for kind, n in self.errors_by_kind.items()) + ")"
        if self.missing:
            counts += f", {self.missing:,} missing"
        if self.images_per_second is not None:
            counts += f"; {self.seconds:.1f} s, {self.images_per_second:.1f} images/s"
        lines = [counts]
        for k, acc in self.accuracy.items():
            text = "n/a" if acc is None else f"{acc:7.2%}"
            lines.append(f"  top-{k} accuracy  {text}")
        lines.append(f"  class -> label mapping: {self.class_mapping}")
        if self.per_class:
            rows = sorted(self.per_class, key=lambda c: (c.accuracy, c.index))
            shown = rows if len(rows) <= MAX_CLASSES_PRINTED else rows[:10]
            title = "per-class top-1 accuracy" + (
                "" if shown is rows else f" (10 lowest of {len(rows)} classes)"
            )
            lines.append(f"  {title}:")
            lines += [f"    {c.accuracy:7.2%}  ({c.correct}/{c.total})  {c.label}" for c in shown]
        if self.confused:
            lines.append("  most confused (true -> predicted):")
            lines += [f"    {p.count:5d}  {p.true_label} -> {p.predicted_label}" for p in self.confused]
        if self.corrupt_files:
            lines.append("  corrupt images:")
            items = list(self.corrupt_files.items())
            lines += [f"    {path}: {err}" for path, err in items[:10]]
            if len(items) > 10:
                lines.append(f"    ... and {len(items) - 10} more")
        return "\n".join(lines)

    __str__ = summary

    def _repr_html_(self) -> str:
        acc = "".join(
            f"<tr><td>top-{k}</td><td style='text-align:right'>{'n/a' if v is None else f'{v:.2%}'}</td></tr>"
            for k, v in self.accuracy.items()
        )
        conf = "".join(
            f"<tr><td>{html.escape(p.true_label)}</td><td>{html.escape(p.predicted_label)}</td>"
            f"<td style='text-align:right'>{p.count}</td></tr>"
            for p in self.confused
        )
        return (
            f"<div><b>{self.evaluated:,}</b> of {self.total:,} images evaluated, {self.corrupt:,} corrupt"
            f"<table>{acc}</table>"
            + (f"<table><tr><th>true</th><th>predicted</th><th>count</th></tr>{conf}</table>" if conf else "")
            + "</div>"
        )


def summarize(
    records: Iterable[dict[str, Any]],
    total: int,
    labels: Sequence[str],
    top_k: tuple[int, ...],
    class_mapping: str,
    seconds: float | None = None,
    new_images: int = 0,
) -> EvalResult:
    """Compute an :class:`EvalResult` from output records (predictions and errors)."""
    num_labels = len(labels)
    true, preds, corrupt, kinds = [], [], {}, []
    for r in records:
        if "error" in r:
            corrupt[r["path"]] = r["error"]
            kinds.append(r.get("kind", "unknown"))
        else:
            true.append(r["label"])
            preds.append(r["topk"])
    n = len(true)
    kmax = max(top_k)
    if n:
        y = np.asarray(true, dtype=np.int64)
        width = min(len(p) for p in preds)
        if width < min(kmax, num_labels):
            raise ValueError(f"records: expected top-{min(kmax, num_labels)} predictions, found top-{width}")
        top = np.asarray([p[:width] for p in preds], dtype=np.int64)
        hits = top == y[:, None]
        accuracy: dict[int, float | None] = {k: float(hits[:, :k].any(axis=1).mean()) for k in top_k}
    else:
        y = top = np.zeros((0, 1), dtype=np.int64)
        accuracy = {k: None for k in top_k}
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    if n:
        np.add.at(cm, (y, top[:, 0]), 1)
    support = cm.sum(axis=1)
    per_class = [
        ClassAccuracy(c, labels[c], int(cm[c, c]), int(support[c])) for c in range(num_labels) if support[c]
    ]
    off = cm.copy()
    np.fill_diagonal(off, 0)
    pairs = np.argwhere(off > 0)
    pairs = sorted(pairs.tolist(), key=lambda tp: (-off[tp[0], tp[1]], tp[0], tp[1]))[:NUM_CONFUSED]
    confused = [ConfusedPair(t, p, int(off[t, p]), labels[t], labels[p]) for t, p in pairs]
    rate = new_images / seconds if seconds and new_images else None
    return EvalResult(
        total=total,
        evaluated=n,
        corrupt=len(corrupt),
        accuracy=accuracy,
        per_class=per_class,
        confused=confused,
        confusion_matrix=cm,
        seconds=seconds,
        images_per_second=rate,
        corrupt_files=corrupt,
        labels=list(labels),
        class_mapping=class_mapping,
        errors_by_kind=count_error_kinds(kinds),
    )


@dataclass
class EvalPlan:
    """Everything decided before the first forward pass (shared with vitc/eval/ray.py)."""

    header: dict[str, Any]
    selection: list[Sample]  # the shard's samples, dataset order
    done: dict[int, dict[str, Any]]  # records already in the output, by index
    pending: list[Sample]  # what is left to run
    out: IO[str] | None
    top_k: tuple[int, ...]
    lock: OutputLock | None = None  # held from planning to close(): one writer per output

    def result(
        self, new_records: Iterable[dict[str, Any]], seconds: float | None, new_images: int
    ) -> EvalResult:
        records = dict(self.done)
        records.update((r["index"], r) for r in new_records)
        ordered = [records[s.index] for s in self.selection if s.index in records]
        h = self.header
        return summarize(
            ordered, len(self.selection), h["labels"], self.top_k, h["class_mapping"], seconds, new_images
        )

    def progress_bar(self, desc: str, progress: bool | None) -> Any:
        """A tqdm.auto bar over the selection that starts at the images the output already holds
        (``progress=None``: shown when stderr is a terminal)."""
        from tqdm.auto import tqdm

        return tqdm(
            total=len(self.selection),
            initial=len(self.done),
            desc=desc,
            unit="img",
            disable=(None if progress is None else not progress),
            file=sys.stderr,
        )

    def close(self) -> None:
        try:
            if self.out is not None:
                self.out.close()
        finally:
            if self.lock is not None:
                self.lock.release()


def plan_evaluation(
    id2label: dict[int, str],
    num_labels: int,
    dataset: str | os.PathLike,
    top_k: int | Iterable[int] = DEFAULT_TOP_K,
    output: str | os.PathLike | None = None,
    shard: tuple[int, int] | str | None = None,
    class_mapping: str = "auto",
    model_name: str | None = None,
    fingerprint: list[float] | None = None,
) -> EvalPlan:
    """Find the samples, select the shard, read what ``output`` already holds and open it.

    ``fingerprint`` is the model's :func:`model_fingerprint`, written to and checked against the
    output's header (needed when ``output`` is given). The output is locked for this process
    (:class:`~vitc.eval.output.OutputLock`) until :meth:`EvalPlan.close`.
    """
    ks = _check_top_k(top_k)
    shard = parse_shard(shard)
    data = load_dataset(dataset, id2label, num_labels, class_mapping)
    selection = shard_samples(data.samples, shard)
    header = make_header(id2label, num_labels, ks, data, shard, len(selection), model_name, fingerprint)
    done: dict[int, dict[str, Any]] = {}
    out, lock = None, None
    if output is not None:
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(output).acquire()  # refuses a second writer before anything is read
        try:
            done, out = resume(output, header, selection)
        except BaseException:
            lock.release()
            raise
    pending = [s for s in selection if s.index not in done]
    return EvalPlan(header, selection, done, pending, out, ks, lock)


def _load_model(model: ViT | str | os.PathLike | None) -> tuple[ViT, str | None]:
    if not (model is None or isinstance(model, (str, os.PathLike))) and not (
        callable(model) and hasattr(model, "image_processor") and hasattr(model, "id2label")
    ):
        raise TypeError(
            "model: expected a vitc.ViT, a path to a .vitc file or Hugging Face model folder, a hub ID, or None "
            f"(the embedded model), found {type(model).__name__}"
        )
    if model is None:
        from vitc.default_model import DEFAULT_MODEL_PATH, load_default_model

        return load_default_model(), str(DEFAULT_MODEL_PATH)
    if isinstance(model, (str, os.PathLike)):
        from vitc.io.hub import resolve_model
        from vitc.model import ViT

        path = resolve_model(model)  # a hub ID: from the Hugging Face cache or downloaded
        if not path.exists():
            raise FileNotFoundError(f"model not found: '{model}'")
        return ViT.from_pretrained(path), str(model)
    return model, None


def evaluate(
    model: ViT | str | os.PathLike | None,
    dataset: str | os.PathLike,
    batch_size: int = 8,
    top_k: int | Iterable[int] = DEFAULT_TOP_K,
    output: str | os.PathLike | None = None,
    shard: tuple[int, int] | str | None = None,
    progress: bool | None = None,
    class_mapping: str = "auto",
) -> EvalResult:
    """Evaluate a classifier on a labelled image set.

    Parameters
    ----------
    model : ViT, or a path to a .vitc file / Hugging Face folder; None for the embedded model.
    dataset : an ImageFolder tree or a ``path<TAB>label_index`` list file; see :func:`load_dataset`
        for how class folders map to the model's labels (``class_mapping``).
    batch_size : images per forward pass.
    top_k : the k of the top-k accuracies reported (k larger than the number of classes counts
        every image as correct).
    output : JSON-lines file of per-image predictions, flushed after every batch. If it exists, the
        images it holds are skipped (a truncated last line is dropped), so an interrupted run resumes
        with nothing recomputed; the result covers old and new lines. A file written for another
        dataset or by another model (see :func:`model_fingerprint`, one extra forward pass of a
        small probe image) is refused.
    shard : ``(i, n)`` or ``"i/n"``: evaluate only the images whose dataset index % n == i; combine
        the shards' outputs with :func:`merge`.
    progress : show a progress bar with rate and ETA (default: when stderr is a terminal).
    class_mapping : "auto", "names" or "sorted"; see :func:`load_dataset`.

    Returns
    -------
    EvalResult
        Accuracies over the images that could be read; corrupt images are counted and listed, not fatal.

    Raises
    ------
    FileNotFoundError
        If the model or dataset does not exist.
    ValueError
        For a malformed dataset, bad arguments, or an output file that belongs to another run.

    Warns
    -----
    UserWarning
        When class folders are numbered in sorted order for a model with another number of labels,
        and when resuming an output of an older vitc whose dataset and model cannot be checked.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, found {batch_size!r}")
    vit, name = _load_model(model)
    plan = plan_evaluation(
        vit.id2label,
        vit.num_labels,
        dataset,
        top_k,
        output,
        shard,
        class_mapping,
        model_name=name,
        fingerprint=None if output is None else model_fingerprint(vit),
    )
    processor = vit.image_processor
    shape = model_pixel_shape(vit)
    kmax = max(plan.top_k)
    new: list[dict[str, Any]] = []
    evaluated_now = 0
    start = time.perf_counter()
    try:
        with plan.progress_bar("eval", progress) as bar, ThreadPoolExecutor(max_workers=1) as pool:
            batches = list(_batches(plan.pending, batch_size))
            # Decode one batch ahead: Pillow and the C forward both release the GIL.
            ahead: Future | None = pool.submit(load_batch, processor, batches[0], shape) if batches else None
            for b in range(len(batches)):
                pixels, good, errors = ahead.result()
                ahead = pool.submit(load_batch, processor, batches[b + 1], shape) if b + 1 < len(batches) else None
                records = predict_records(vit, pixels, good, kmax) + errors
                records.sort(key=lambda r: r["index"])
                write_records(plan.out, records)
                new += records
                evaluated_now += len(good)
                bar.update(len(records))
    finally:
        plan.close()
    seconds = time.perf_counter() - start
    return plan.result(new, seconds, evaluated_now)


def merge(
    files: Sequence[str | os.PathLike],
    output: str | os.PathLike | None = None,
    top_k: int | Iterable[int] | None = None,
) -> EvalResult:
    """Combine the outputs of shards (``evaluate(..., shard=(i, n), output=...)``) into one result.

    Parameters
    ----------
    files : output files of shards of the same dataset and model (any subset of the shards; the
        result counts the images of the shards given, and images a shard has not finished as missing).
    output : write the combined predictions here (atomically), as a single-shard output file.
    top_k : k values to report (default: those of the runs).

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        If the files are not eval outputs, disagree on labels, were written for different datasets
        (``samples_digest``) or by different models (``model_fingerprint``), or repeat a shard.

    Warns
    -----
    UserWarning
        If shards or images are missing from the result, or a file (of an older vitc) has no
        dataset digest or model fingerprint to check.
    """
    if isinstance(files, (str, os.PathLike)):
        files = [files]  # one file, not the characters of its name
    if not files:
        raise ValueError("merge: expected at least one output file, found none")
    headers: list[dict[str, Any]] = []
    records: dict[int, dict[str, Any]] = {}
    seen_shards: dict[tuple[int, int], str] = {}
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"eval output not found: '{f}'")
        contents = parse_output(f)
        note_partial_line(f, contents, "its image counts as not evaluated")
        header, recs = contents.header, contents.records
        if header is None:
            raise ValueError(f"{f}: expected a vitc eval output, found an empty file")
        if headers:
            first = headers[0]
            for key in ("num_labels", "labels", "dataset_size", "class_mapping"):
                if header.get(key) != first.get(key):
                    raise ValueError(
                        f"{f}: cannot merge with {files[0]}: {key} is {header.get(key)!r} here "
                        f"and {first.get(key)!r} there"
                    )
            if header["shard"][1] != first["shard"][1]:
                raise ValueError(
                    f"{f}: cannot merge with {files[0]}: shards of {header['shard'][1]} and of {first['shard'][1]}"
                )
            problem = identity_problem(header, first)
            if problem is not None:
                raise ValueError(
                    f"{f}: cannot merge with {files[0]}: it was written for {problem[1]}; merge only "
                    "the shards of one evaluation (one dataset, one model), and give each evaluation "
                    "its own output files (-o)"
                )
        sh = tuple(header["shard"])
        if sh in seen_shards:
            raise ValueError(f"{f}: shard {sh[0]}/{sh[1]} is also in {seen_shards[sh]}")
        seen_shards[sh] = str(f)
        headers.append(header)
        for r in recs:  # parse_output checked that each belongs to the file's shard, once
            records[r["index"]] = r
    first = headers[0]
    unchecked = unchecked_fields(*headers)
    if unchecked:
        warnings.warn(
            f"merge: a file written by an older vitc has no record of its {' and '.join(unchecked)}: "
            f"cannot check that all files are of one {' and '.join(unchecked)}",
            stacklevel=2,
        )
    ks = _check_top_k(top_k) if top_k is not None else tuple(first["top_k"])
    stored = min(max(h["top_k"]) for h in headers)
    if max(ks) > stored:
        raise ValueError(
            f"top_k: the outputs hold top-{stored} predictions, found a request for top-{max(ks)}"
        )
    n = first["shard"][1]
    absent = sorted(set(range(n)) - {s[0] for s in seen_shards})
    total = sum(h["shard_size"] for h in headers)
    ordered = [records[i] for i in sorted(records)]
    result = summarize(ordered, total, first["labels"], ks, first["class_mapping"])
    if absent or result.missing:
        warnings.warn(
            f"merge: incomplete evaluation: {len(absent)} of {n} shards absent {absent[:10]}, "
            f"{result.missing} images of the given shards not evaluated",
            stacklevel=2,
        )
    if output is not None:
        header = {**first, "top_k": list(ks), "shard": [0, 1], "shard_size": total}
        with OutputLock(output):  # not while an evaluation appends to it
            write_output_atomic(output, header, ordered)
    return result
