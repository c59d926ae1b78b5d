"""The evaluation output file: the record of a run, JSON lines, resumable and mergeable.

Output format (JSON lines)
--------------------------
The first line is a header, every other line is one image::

    {"vitc_eval": 1, "num_labels": 10, "labels": [...], "top_k": [1, 5], "dataset": "/abs/val",
     "dataset_size": 1000, "shard": [0, 1], "shard_size": 1000, "class_mapping": "sorted", "model": "...",
     "samples_digest": "9f2c...", "model_fingerprint": [1.23456, -0.5, ...]}
    {"index": 0, "path": "cat/001.png", "label": 3, "topk": [3, 1, 0, 7, 2], "probs": [0.61, ...]}
    {"index": 1, "path": "cat/002.png", "label": 3, "error": "cannot read image ...: ...", "kind": "corrupt"}

``path`` is relative to the dataset root (the ImageFolder folder or the list file's folder), so
outputs from different machines merge; ``index`` is the image's position in the whole dataset.
``samples_digest`` (see :func:`vitc.eval.dataset.samples_digest`) identifies the whole dataset before
sharding and ``model_fingerprint`` (see :func:`model_fingerprint`) the model with its preprocessing:
resume and merge refuse files whose dataset or model differ. Files written before these two fields
existed are accepted with a warning that the check could not be made.

``kind`` (one of ``vitc.preprocess.IMAGE_ERROR_KINDS``) says why an image could not be used; records of
an older vitc have none.

Records are appended and flushed per batch (:func:`write_records`), so a killed run loses at most a
batch, and at most its last line is incomplete; a complete file (a merge) is written atomically
through vitc/io/atomic.py. One process writes an output at a time (:class:`OutputLock`). Every line
is checked when a file is read back (:func:`parse_output`): what vitc did not write is refused with
its file and line, an incomplete last line is dropped.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from vitc.eval.dataset import EvalDataset, Sample, samples_digest
from vitc.io.atomic import atomic_write
from vitc.predict import interrupts_deferred
from vitc.preprocess import IMAGE_ERROR_KINDS

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
    logits = getattr(model(pixels, return_dict=True), "logits", None)
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


class OutputFileError(ValueError):
    """An evaluation output that is not as vitc writes it (damaged or edited): names file and line."""


class OutputInUseError(ValueError):
    """Another process is writing this evaluation output."""


# What a line can be damaged into is open-ended; what vitc writes is not. Every line is checked
# against what vitc writes, so a damaged file is refused with its line, never half-used.
_DAMAGED = "not what vitc writes: the file was damaged or edited; repair or delete it, or use another output"


@dataclass
class OutputContents:
    """An evaluation output file, checked line by line (see :func:`parse_output`)."""

    header: dict[str, Any] | None
    records: list[dict[str, Any]]
    good_bytes: int  # length up to the end of the last complete line
    partial_line: int | None  # number of an incomplete last line that was dropped, if any


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_header(where: str, h: dict[str, Any]) -> None:
    """Refuse a header line whose fields are missing or of the wrong type."""

    def bad(key: str, expected: str) -> OutputFileError:
        found = "nothing (the key is missing)" if key not in h else repr(h[key])[:80]
        return OutputFileError(f"{where}: header field {key!r}: expected {expected}, found {found} ({_DAMAGED})")

    if h["vitc_eval"] != FORMAT_VERSION:
        raise OutputFileError(
            f"{where}: expected output format {FORMAT_VERSION}, found {h['vitc_eval']!r:.80} (a file of another "
            "vitc version, or a damaged one)"
        )
    n = h.get("num_labels")
    if not _is_int(n) or n < 1:
        raise bad("num_labels", "a positive int")
    labels = h.get("labels")
    if not isinstance(labels, list) or len(labels) != n or not all(isinstance(x, str) for x in labels):
        raise bad("labels", f"a list of {n} label strings (num_labels)")
    ks = h.get("top_k")
    if not isinstance(ks, list) or not ks or not all(_is_int(k) and k >= 1 for k in ks):
        raise bad("top_k", "a non-empty list of positive ints")
    size = h.get("dataset_size")
    if not _is_int(size) or size < 0:
        raise bad("dataset_size", "an int >= 0")
    shard = h.get("shard")
    if not (isinstance(shard, list) and len(shard) == 2 and all(map(_is_int, shard)) and 0 <= shard[0] < shard[1]):
        raise bad("shard", "[i, n] with 0 <= i < n")
    shard_size = h.get("shard_size")
    if not _is_int(shard_size) or not 0 <= shard_size <= size:
        raise bad("shard_size", f"an int in [0, dataset_size = {size}]")
    if not isinstance(h.get("class_mapping"), str):
        raise bad("class_mapping", "a string")
    for key in ("dataset", "model", "samples_digest"):
        if h.get(key) is not None and not isinstance(h[key], str):
            raise bad(key, "a string or null")
    fp = h.get("model_fingerprint")
    if fp is not None and not (isinstance(fp, list) and all(map(_is_number, fp))):
        raise bad("model_fingerprint", "a list of numbers or null")


def _check_record(r: Any, h: dict[str, Any]) -> str | None:
    """What is wrong with an image record under header ``h``, or None."""
    if not isinstance(r, dict):
        return f"expected an image record (a JSON object), found {type(r).__name__}"
    for key, test, expected in (
        ("index", _is_int, "an int"),
        ("path", lambda x: isinstance(x, str), "a string"),
        ("label", _is_int, "an int"),
    ):
        if key not in r:
            return f"an image record without {key!r}"
        if not test(r[key]):
            return f"{key!r}: expected {expected}, found {r[key]!r:.80}"
    n, size, (i, shards) = h["num_labels"], h["dataset_size"], h["shard"]
    if not 0 <= r["index"] < size:
        return f"index {r['index']} out of range [0, {size}) (the header's dataset_size)"
    if r["index"] % shards != i:
        return f"index {r['index']} does not belong to shard {i}/{shards} (index % {shards} == {i})"
    if not 0 <= r["label"] < n:
        return f"label {r['label']} out of range [0, {n}) (the header's num_labels)"
    if "error" in r:
        if not isinstance(r["error"], str) or "topk" in r or "probs" in r:
            return "an error record has a string 'error' and no 'topk' or 'probs'"
        if "kind" in r and r["kind"] not in IMAGE_ERROR_KINDS:
            return f"'kind': expected one of {IMAGE_ERROR_KINDS}, found {r['kind']!r:.80}"
        return None
    topk, probs = r.get("topk"), r.get("probs")
    if topk is None or probs is None:
        return "an image record has either an 'error' or both 'topk' and 'probs'"
    width = min(max(h["top_k"]), n)
    if not isinstance(topk, list) or len(topk) < width or not all(_is_int(c) and 0 <= c < n for c in topk):
        return f"'topk': expected at least {width} class indices in [0, {n}), found {topk!r:.80}"
    if len(set(topk)) != len(topk):
        return f"'topk' repeats a class: {topk!r:.80}"
    if not isinstance(probs, list) or len(probs) != len(topk) or not all(_is_number(p) and 0 <= p <= 1 for p in probs):
        return f"'probs': expected {len(topk)} probabilities in [0, 1], found {probs!r:.80}"
    return None


def parse_output(path: str | os.PathLike) -> OutputContents:
    """Read and check an evaluation output file, line by line.

    A last line without its newline is the trace of an interrupted write: it is dropped (its
    number is returned as ``partial_line``, for the caller to say so). Every other line must be
    what vitc writes: a header with its fields, then image records whose index belongs to the
    header's dataset and shard, with a label and top-k classes in ``[0, num_labels)``, each image
    once.

    Raises
    ------
    OutputFileError
        Naming the file, the line and what is wrong with it.
    """
    data = Path(path).read_bytes()
    end = data.rfind(b"\n") + 1  # 0 when there is no complete line
    complete = data[:end].split(b"\n")[:-1]
    partial_line = len(complete) + 1 if data[end:].strip() else None
    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    first_line: dict[int, int] = {}
    for lineno, raw in enumerate(complete, 1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(raw)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise OutputFileError(f"{where}: expected a JSON line, found unparsable text ({e}; {_DAMAGED})") from None
        if header is None:
            if not isinstance(obj, dict) or "vitc_eval" not in obj:
                raise OutputFileError(
                    f'{where}: expected a vitc eval header line ({{"vitc_eval": ...}}), found {raw[:80]!r}'
                )
            _check_header(where, obj)
            header = obj
            continue
        problem = _check_record(obj, header)
        if problem is not None:
            raise OutputFileError(f"{where}: {problem} ({_DAMAGED})")
        seen = first_line.setdefault(obj["index"], lineno)
        if seen != lineno:
            raise OutputFileError(
                f"{where}: image {obj['path']!r} (index {obj['index']}) is recorded twice, first on line {seen} "
                f"({_DAMAGED})"
            )
        records.append(obj)
    return OutputContents(header, records, end, partial_line)


def read_output(path: str | os.PathLike) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
    """Read an evaluation output file: ``(header, records, good_bytes)`` (see :func:`parse_output`).

    Returns
    -------
    header : the header dict, or None for an empty file.
    records : the image records, in file order.
    good_bytes : length of the file up to the end of the last complete line.

    Raises
    ------
    ValueError
        If a complete line is not JSON or not what vitc writes (:class:`OutputFileError`).
    """
    c = parse_output(path)
    return c.header, c.records, c.good_bytes


# ---------------------------------------------------------------------------------------------
# One writer per output


class OutputLock:
    """The right to write one output file, for one process: ``flock`` on ``<output>.lock`` beside it.

    A second run on the same output is refused at once (:class:`OutputInUseError`, naming the pid
    of the holder). The kernel releases the lock when its process ends however it ends (SIGKILL,
    a crash), so a dead run never leaves it stuck; the lock file is removed on release, and one
    left by a killed run is taken over by the next run. On a platform without ``fcntl`` (Windows)
    there is no lock. As any ``flock``, it holds between processes that see one file system (on
    NFS, where the server supports locks).
    """

    def __init__(self, output: str | os.PathLike):
        self.output = Path(output)
        self.path = self.output.with_name(self.output.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; one writer per output is then the user's to ensure
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                who = f"pid {holder}" if holder.isdigit() else "another process"
                raise OutputInUseError(
                    f"{self.output}: another evaluation ({who}) is writing this output; wait for it to finish, "
                    "or give this run another output file (-o / output=)"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # The holder before us may have removed the file while we opened it: our lock would then
            # be on a file no one else sees. Hold the lock of the file that is at the path.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding the lock: see acquire
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def note_partial_line(path: str | os.PathLike, contents: OutputContents, consequence: str) -> None:
    """Warn that an incomplete last line was dropped (see :func:`parse_output`)."""
    if contents.partial_line is not None:
        warnings.warn(
            f"{path}:{contents.partial_line}: dropped an incomplete last line (a write cut short when a run "
            f"was killed); {consequence}",
            stacklevel=4,
        )


_HEADER_KEYS_TO_MATCH = ("num_labels", "labels", "dataset_size", "shard", "class_mapping")


def resume(
    path: Path, header: dict[str, Any], selection: Sequence[Sample]
) -> tuple[dict[int, dict[str, Any]], IO[str]]:
    """Open ``path`` for appending; return the records it already holds for ``selection``.

    The caller holds the output's :class:`OutputLock`.
    """
    done: dict[int, dict[str, Any]] = {}
    if path.exists() and path.stat().st_size > 0:
        contents = parse_output(path)
        old, records, good = contents.header, contents.records, contents.good_bytes
        note_partial_line(path, contents, "its image is evaluated again")
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
    """Append records as JSON lines and flush, so a kill loses at most the batch being written.

    Ctrl-C is held while the lines are written (:func:`vitc.predict.interrupts_deferred`): an
    interrupt leaves whole lines; only a kill can leave an incomplete last line, which the next
    run drops (:func:`parse_output`).
    """
    if out is None:
        return
    text = "".join(json.dumps(r) + "\n" for r in records)
    with interrupts_deferred():
        out.write(text)
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


