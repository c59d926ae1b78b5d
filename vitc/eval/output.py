"""The evaluation output file: the record of a run, JSON lines, resumable and mergeable.

Output format (JSON lines)
--------------------------
The first line is a header, every other line is one image::

    {"vitc_eval": 1, "num_labels": 10, "labels": [...], "top_k": [1, 5], "dataset": "/abs/val",
     "dataset_size": 1000, "shard": [0, 1], "shard_size": 1000, "class_mapping": "sorted", "model": "...",
     "samples_digest": "9f2c...", "model_fingerprint": [1.23456, -0.5, ...]}
    {"index": 0, "path": "cat/001.png", "label": 3, "topk": [3, 1, 0, 7, 2], "probs": [0.61, ...]}
    {"index": 1, "path": "cat/002.png", "label": 3, "error": "cannot read image ...: ..."}

``path`` is relative to the dataset root (the ImageFolder folder or the list file's folder), so
outputs from different machines merge; ``index`` is the image's position in the whole dataset.
``samples_digest`` (see :func:`vitc.eval.dataset.samples_digest`) identifies the whole dataset before
sharding and ``model_fingerprint`` (see :func:`model_fingerprint`) the model with its preprocessing:
resume and merge refuse files whose dataset or model differ. Files written before these two fields
existed are accepted with a warning that the check could not be made.

Records are appended and flushed per batch (:func:`write_records`), so a killed run loses at most a
batch; a complete file (a merge) is written atomically through vitc/io/atomic.py.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from vitc.eval.dataset import EvalDataset, Sample, samples_digest
from vitc.io.atomic import atomic_write

FORMAT_VERSION = 1
# Digits kept for probabilities in the output (float32 softmax is good to ~7).
PROB_DECIMALS = 7
# The model fingerprint: logits of the first FINGERPRINT_CLASSES classes on a fixed synthetic
# probe image, kept to FINGERPRINT_DECIMALS digits and compared with a tolerance (thread counts and
# CPU kernels change the last bits, a different model or preprocessing changes far more).
FINGERPRINT_CLASSES = 16
FINGERPRINT_DECIMALS = 5
FINGERPRINT_ATOL = 1e-3
FINGERPRINT_RTOL = 1e-3
PROBE_SIDE = 32


# ---------------------------------------------------------------------------------------------
# Identifying a run: which dataset, which model


def _probe_image() -> np.ndarray:
    """A fixed (PROBE_SIDE, PROBE_SIDE, 3) uint8 pattern: gradients and stripes, no RNG."""
    y, x = np.mgrid[0:PROBE_SIDE, 0:PROBE_SIDE]
    channels = [(x * 8) % 256, (y * 8) % 256, ((x + y) * 37 + (x * y) % 7 * 29) % 256]
    return np.stack(channels, axis=-1).astype(np.uint8)


def model_fingerprint(model: Any) -> list[float]:
    """What a model (with its preprocessing) predicts for a fixed probe image: a cheap identity check.

    One forward pass of one small synthetic image through ``model.image_processor`` and ``model``
    (a :class:`~vitc.model.ViT` or any object with that call and attribute). Returns the logits of
    the first ``FINGERPRINT_CLASSES`` classes, rounded to ``FINGERPRINT_DECIMALS`` digits; compare two
    with :func:`fingerprint_difference`, which allows for float noise (other thread counts, CPUs).
    A hash of rounded values would not: a value next to a rounding boundary flips between machines.
    """
    pixels = model.image_processor.preprocess_one(_probe_image())[None]
    logits = model(pixels).logits
    if logits is None:
        raise ValueError(
            "model: expected a classifier (num_labels >= 1), found a model without a classifier head"
        )
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    return [round(float(v), FINGERPRINT_DECIMALS) for v in logits[:FINGERPRINT_CLASSES]]


def fingerprint_difference(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Largest |a - b| of two fingerprints; None if they match within the tolerance (inf: other sizes)."""
    if len(a) != len(b):
        return float("inf")
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.allclose(x, y, atol=FINGERPRINT_ATOL, rtol=FINGERPRINT_RTOL):
        return None
    return float(np.max(np.abs(x - y)))


def identity_problem(theirs: dict[str, Any], ours: dict[str, Any]) -> tuple[str, str] | None:
    """Why two headers were not written for the same dataset and model: (field, explanation), or None.

    A header without the field (an older vitc) cannot be checked; the caller warns about it.
    """
    a, b = theirs.get("samples_digest"), ours.get("samples_digest")
    if a is not None and b is not None and a != b:
        return "dataset", (
            f"another dataset (samples digest {a[:12]}... vs {b[:12]}...: the image paths, their order or "
            "their labels differ)"
        )
    fa, fb = theirs.get("model_fingerprint"), ours.get("model_fingerprint")
    if fa is not None and fb is not None:
        diff = fingerprint_difference(fa, fb)
        if diff is not None:
            return "model", (
                f"another model (model {theirs.get('model')!r} vs {ours.get('model')!r}: their logits on "
                f"vitc's probe image differ by up to {diff:.3g})"
            )
    return None


def unchecked_fields(*headers: dict[str, Any]) -> list[str]:
    return [
        name
        for name, key in (("dataset", "samples_digest"), ("model", "model_fingerprint"))
        if any(h.get(key) is None for h in headers)
    ]


# ---------------------------------------------------------------------------------------------
# The output file: header, resume, append


def make_header(
    id2label: dict[int, str],
    num_labels: int,
    top_k: tuple[int, ...],
    data: EvalDataset,
    shard: tuple[int, int],
    shard_size: int,
    model: str | None,
    fingerprint: list[float] | None = None,
) -> dict[str, Any]:
    """The first line of an output file (see the module docstring)."""
    return {
        "vitc_eval": FORMAT_VERSION,
        "num_labels": num_labels,
        "labels": [str(id2label.get(i, f"LABEL_{i}")) for i in range(num_labels)],
        "top_k": list(top_k),
        "dataset": str(data.root),
        "dataset_size": len(data.samples),
        "shard": list(shard),
        "shard_size": shard_size,
        "class_mapping": data.class_mapping,
        "model": model,
        "samples_digest": samples_digest(data.samples),
        "model_fingerprint": fingerprint,
    }


def read_output(path: str | os.PathLike) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
    """Read an evaluation output file.

    A last line without its newline is the trace of an interrupted write and is ignored.

    Returns
    -------
    header : the header dict, or None for an empty file.
    records : the image records, in file order.
    good_bytes : length of the file up to the end of the last complete line.

    Raises
    ------
    ValueError
        If a complete line is not JSON, or the first line is not a vitc eval header.
    """
    data = Path(path).read_bytes()
    end = data.rfind(b"\n") + 1  # 0 when there is no complete line
    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    for lineno, raw in enumerate(data[:end].splitlines(), 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: expected a JSON line, found unparsable text ({e})") from None
        if header is None:
            if not isinstance(obj, dict) or "vitc_eval" not in obj:
                raise ValueError(
                    f'{path}:{lineno}: expected a vitc eval header line ({{"vitc_eval": ...}}), found {raw[:80]!r}'
                )
            if obj["vitc_eval"] != FORMAT_VERSION:
                raise ValueError(f"{path}: expected output format {FORMAT_VERSION}, found {obj['vitc_eval']}")
            header = obj
            continue
        if not isinstance(obj, dict) or "index" not in obj or "label" not in obj:
            raise ValueError(
                f"{path}:{lineno}: expected an image record with 'index' and 'label', found {raw[:80]!r}"
            )
        records.append(obj)
    return header, records, end


_HEADER_KEYS_TO_MATCH = ("num_labels", "labels", "dataset_size", "shard", "class_mapping")


def resume(
    path: Path, header: dict[str, Any], selection: Sequence[Sample]
) -> tuple[dict[int, dict[str, Any]], IO[str]]:
    """Open ``path`` for appending; return the records it already holds for ``selection``."""
    done: dict[int, dict[str, Any]] = {}
    if path.exists() and path.stat().st_size > 0:
        old, records, good = read_output(path)
        if old is not None:
            for key in _HEADER_KEYS_TO_MATCH:
                if old.get(key) != header[key]:
                    raise ValueError(
                        f"{path}: cannot resume: this run has {key}={header[key]!r}, the output was written with "
                        f"{key}={old.get(key)!r} (use another output file, or delete this one)"
                    )
            if max(old["top_k"]) < max(header["top_k"]):
                raise ValueError(
                    f"{path}: cannot resume: the output holds top-{max(old['top_k'])} predictions, this run needs "
                    f"top-{max(header['top_k'])} (use another output file)"
                )
            problem = identity_problem(old, header)
            if problem is not None:
                raise ValueError(
                    f"{path}: cannot resume: the output was written for {problem[1]}; use another output "
                    "file (-o / output=) for this run, or delete this one"
                )
            unchecked = unchecked_fields(old)
            if unchecked:
                warnings.warn(
                    f"{path}: resuming an output written by an older vitc, without a record of its "
                    f"{' and '.join(unchecked)}: cannot check that it is this run's "
                    f"{' and '.join(unchecked)}",
                    stacklevel=4,  # resume <- plan_evaluation <- evaluate <- the caller
                )
        by_index = {s.index: s for s in selection}
        for r in records:
            s = by_index.get(r["index"])
            if s is None or s.key != r["path"] or s.label != r["label"]:
                raise ValueError(
                    f"{path}: cannot resume: its record {r['path']!r} (index {r['index']}, label {r['label']}) is not "
                    "an image of this dataset shard with that label; is it the output of another dataset?"
                )
            done[r["index"]] = r
        with open(path, "r+b") as f:  # drop an interrupted last line before appending
            f.truncate(good)
        out = open(path, "a", encoding="utf-8")  # noqa: SIM115 (returned open; EvalPlan.close closes it)
        if old is None:
            out.write(json.dumps(header) + "\n")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = open(path, "w", encoding="utf-8")  # noqa: SIM115 (as above)
        out.write(json.dumps(header) + "\n")
    out.flush()
    return done, out


def write_records(out: IO[str] | None, records: Iterable[dict[str, Any]]) -> None:
    """Append records as JSON lines and flush, so a kill loses at most the batch being written."""
    if out is None:
        return
    out.write("".join(json.dumps(r) + "\n" for r in records))
    out.flush()


def write_output_atomic(
    path: str | os.PathLike, header: dict[str, Any], records: Iterable[dict[str, Any]]
) -> Path:
    """Write a complete output file, so that ``path`` is either its old self or the whole new file.

    The lines go to a temporary file of a unique name in the same folder, which is flushed to disk
    (fsync) and renamed over ``path`` (``os.replace``); if anything fails, the temporary file is
    removed and ``path`` is left as it was (see :func:`vitc.io.atomic.atomic_write`).
    """
    path = Path(path)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        f.writelines(json.dumps(r) + "\n" for r in records)
    return path


