"""Evaluate a classifier on a labelled image set: accuracy, per-class accuracy, confusions, speed.

dataset (ImageFolder tree or list file) -> samples (index, key, path, label) -> shard selection ->
skip what the output file already holds -> batches: decode + preprocess (one batch ahead, in a
thread) -> forward -> top-k -> one JSON line per image, flushed per batch -> :class:`EvalResult`.

The output file is the record of the run: an interrupted run started again with the same output
resumes where it stopped, shards written by ``shard=(i, n)`` combine with :func:`merge`, and
:mod:`vitc.distributed` writes the same lines from Ray workers. This module is not a data loader
for training and does no augmentation.

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
``samples_digest`` (see :func:`samples_digest`) identifies the whole dataset before sharding and
``model_fingerprint`` (see :func:`model_fingerprint`) the model with its preprocessing: resume and
merge refuse files whose dataset or model differ. Files written before these two fields existed are
accepted with a warning that the check could not be made.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import secrets
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from vitc.convert import fsync_dir

if TYPE_CHECKING:
    import argparse

    from vitc.image_processor import ImageProcessor
    from vitc.model import ViT

# torchvision.datasets.folder.IMG_EXTENSIONS: the files an ImageFolder tree is made of.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
FORMAT_VERSION = 1
# Digits kept for probabilities in the output (float32 softmax is good to ~7).
PROB_DECIMALS = 7
# Most confused (true, predicted) pairs kept in a result, and per-class rows printed in full.
NUM_CONFUSED = 10
MAX_CLASSES_PRINTED = 20
CLASS_MAPPINGS = ("auto", "names", "sorted")
DEFAULT_TOP_K = (1, 5)
# The model fingerprint: logits of the first FINGERPRINT_CLASSES classes on a fixed synthetic
# probe image, kept to FINGERPRINT_DECIMALS digits and compared with a tolerance (thread counts and
# CPU kernels change the last bits, a different model or preprocessing changes far more).
FINGERPRINT_CLASSES = 16
FINGERPRINT_DECIMALS = 5
FINGERPRINT_ATOL = 1e-3
FINGERPRINT_RTOL = 1e-3
PROBE_SIDE = 32


# ---------------------------------------------------------------------------------------------
# Datasets


@dataclass(frozen=True)
class Sample:
    """One labelled image of a dataset.

    Attributes
    ----------
    index : position in the whole dataset (ImageFolder order or list-file order); shards and
        merged outputs are defined on it.
    key : the path as written to the output: relative to the dataset root, '/'-separated.
    path : the file to read.
    label : class index in the model's label space (0 <= label < num_labels).
    """

    index: int
    key: str
    path: str
    label: int


@dataclass
class EvalDataset:
    """Labelled images found at a dataset path (see :func:`load_dataset`)."""

    root: Path
    samples: list[Sample]
    class_mapping: str  # "names", "sorted" or "list"
    classes: list[str] = field(default_factory=list)  # ImageFolder class folders, sorted


def _label2id(id2label: dict[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i in sorted(id2label):
        out.setdefault(str(id2label[i]), []).append(int(i))
    return out


def _folder_classes(
    names: list[str], id2label: dict[int, str], num_labels: int, class_mapping: str, root: Path
) -> tuple[dict[str, int], str]:
    """Map class-folder names to label indices; returns (mapping, rule used)."""
    by_name = _label2id(id2label)
    if class_mapping == "auto":
        class_mapping = "names" if names and all(n in by_name for n in names) else "sorted"
    if class_mapping == "names":
        unknown = [n for n in names if n not in by_name]
        if unknown:
            preview = ", ".join(repr(n) for n in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            some = ", ".join(repr(by_name_key) for by_name_key in list(by_name)[:3])
            raise ValueError(
                f"{root}: class_mapping='names': expected every class folder to be named after a label of "
                f"the model (such as {some}), found {len(unknown)} that are not: {preview}"
            )
        ambiguous = {n: by_name[n] for n in names if len(by_name[n]) > 1}
        if ambiguous:
            n, ids = next(iter(ambiguous.items()))
            raise ValueError(
                f"{root}: class folder {n!r} names the labels {ids} of the model (its id2label repeats that "
                "name); use a list file of 'path<TAB>label_index' lines or class_mapping='sorted'"
            )
        return {n: by_name[n][0] for n in names}, "names"
    if len(names) > num_labels:
        raise ValueError(
            f"{root}: expected at most {num_labels} class folders (the model's labels), found {len(names)}; "
            "folder i in sorted order is class i"
        )
    if len(names) != num_labels:
        warnings.warn(
            f"{root}: {len(names)} class folder{'s' if len(names) != 1 else ''} for a model with {num_labels} "
            "labels, and their names are not the model's labels: folder i in sorted order is taken as class i",
            stacklevel=2,
        )
    return {n: i for i, n in enumerate(names)}, "sorted"


def _load_image_folder(
    root: Path, id2label: dict[int, str], num_labels: int, class_mapping: str
) -> EvalDataset:
    names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise ValueError(
            f"{root}: expected an ImageFolder tree (one sub-folder of images per class) or a list file, "
            "found no sub-folders"
        )
    mapping, rule = _folder_classes(names, id2label, num_labels, class_mapping, root)
    samples: list[Sample] = []
    for name in names:
        # ref: torchvision.datasets.folder.make_dataset: sorted os.walk, sorted file names
        for folder, _, files in sorted(os.walk(root / name, followlinks=True)):
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    path = Path(folder) / f
                    key = path.relative_to(root).as_posix()
                    samples.append(Sample(len(samples), key, str(path), mapping[name]))
    if not samples:
        raise ValueError(f"{root}: found no image files ({', '.join(IMAGE_EXTENSIONS)}) in the class folders")
    return EvalDataset(root, samples, rule, names)


def _load_list_file(path: Path, num_labels: int) -> EvalDataset:
    root = path.parent
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(
            f"{path}: expected an ImageFolder tree or a text list file of 'path<TAB>label_index' lines, "
            "found a binary file"
        ) from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit("\t", 1) if "\t" in line else line.rsplit(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{path}:{lineno}: expected 'path<TAB>label_index', found {line!r}")
        key, label_text = parts[0].strip(), parts[1].strip()
        try:
            label = int(label_text)
        except ValueError:
            raise ValueError(
                f"{path}:{lineno}: expected an integer label index, found {label_text!r}"
            ) from None
        if not 0 <= label < num_labels:
            raise ValueError(
                f"{path}:{lineno}: expected a label index in [0, {num_labels}) (the model's labels), found {label}"
            )
        if key in seen:
            raise ValueError(f"{path}:{lineno}: image {key!r} is listed twice (first on line {seen[key]})")
        seen[key] = lineno
        samples.append(Sample(len(samples), key, str(root / key), label))
    if not samples:
        raise ValueError(f"{path}: expected lines 'path<TAB>label_index', found none")
    return EvalDataset(root, samples, "list")


def load_dataset(
    dataset: str | os.PathLike,
    id2label: dict[int, str],
    num_labels: int | None = None,
    class_mapping: str = "auto",
) -> EvalDataset:
    """Find the labelled images of a dataset.

    Parameters
    ----------
    dataset : str or PathLike
        An ImageFolder tree (a folder with one sub-folder of images per class; images are found
        recursively, files with other extensions are ignored) or a list file of
        ``path<TAB>label_index`` lines (paths relative to the list file's folder; blank lines and
        lines starting with ``#`` are skipped; without a tab the line is split at its last
        whitespace).
    id2label : dict
        The model's labels.
    num_labels : int, optional
        Classes of the model (default ``len(id2label)``).
    class_mapping : {"auto", "names", "sorted"}
        How class folders map to label indices (list files carry indices and ignore this):

        - ``"names"``: a folder named after a label of the model is that label's class (folders
          ``tabby, tiger cat`` for an ImageNet model). Every folder must be a label, and one that
          the model's id2label repeats (ImageNet's ``crane``) is an error.
        - ``"sorted"``: folder *i* in sorted order is class *i*, as torchvision's ImageFolder
          numbers them (ImageNet's ``n01440764 ...`` synset folders).
        - ``"auto"`` (default): ``"names"`` if every folder name is a label, else ``"sorted"``.

    Returns
    -------
    EvalDataset
        Samples in dataset order, with the rule used (``class_mapping``: "names", "sorted" or "list").
        ``root`` and every sample's ``path`` are absolute (so error messages name the same files
        whatever the working directory of the process reading them); ``key`` stays relative.

    Notes
    -----
    Hidden class folders (names starting with ``.``, such as ``.ipynb_checkpoints`` or ``.cache``)
    are skipped and do not count as classes. torchvision's ImageFolder does not skip them, so for
    a tree with a hidden folder its class indices differ from vitc's "sorted" ones: remove such
    folders, or use a list file, when indices must match torchvision's.

    Raises
    ------
    FileNotFoundError
        If ``dataset`` does not exist.
    ValueError
        If the folder has no class folders or images, a list line is malformed or its label is
        out of range, or class folders cannot be mapped to the model's labels.
    """
    if class_mapping not in CLASS_MAPPINGS:
        raise ValueError(f"class_mapping: expected one of {CLASS_MAPPINGS}, found {class_mapping!r}")
    num_labels = len(id2label) if num_labels is None else num_labels
    if num_labels < 1:
        raise ValueError(
            "model: expected a classifier (num_labels >= 1), found a model without a classifier head"
        )
    path = Path(dataset)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: '{path}'")
    path = Path(os.path.abspath(path))
    if path.is_dir():
        return _load_image_folder(path, id2label, num_labels, class_mapping)
    return _load_list_file(path, num_labels)


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"1/4"`` or ``(1, 4)`` -> ``(1, 4)``; None -> ``(0, 1)`` (everything)."""
    if text is None:
        return (0, 1)
    if isinstance(text, str):
        parts = text.split("/")
        try:
            i, n = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"shard: expected 'i/n' such as '0/4', found {text!r}") from None
    else:
        try:
            i, n = (int(v) for v in text)
        except (TypeError, ValueError):
            raise ValueError(f"shard: expected a pair (i, n) such as (0, 4), found {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard: expected 0 <= i < n, found i={i}, n={n}")
    return (i, n)


def shard_samples(samples: Sequence[Sample], shard: tuple[int, int]) -> list[Sample]:
    """The samples whose dataset index % n == i."""
    i, n = shard
    return [s for s in samples if s.index % n == i]


def _check_top_k(top_k: int | Iterable[int]) -> tuple[int, ...]:
    ks = (top_k,) if isinstance(top_k, int) else tuple(top_k)
    if not ks or any(not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"top_k: expected positive ints such as (1, 5), found {top_k!r}")
    return tuple(sorted({int(k) for k in ks}))


# ---------------------------------------------------------------------------------------------
# Running the model on batches (also used by the Ray workers in vitc.distributed)


def load_batch(
    processor: ImageProcessor, samples: Sequence[Sample]
) -> tuple[np.ndarray | None, list[Sample], list[dict[str, Any]]]:
    """Decode and preprocess a batch; images that cannot be read become error records.

    Returns
    -------
    pixel_values : (B, 3, H, W) float32 of the readable images, or None if there are none.
    good : the samples behind ``pixel_values``, in order.
    errors : one record ``{"index", "path", "label", "error"}`` per unreadable image.
    """
    arrays, good, errors = [], [], []
    for s in samples:
        try:
            arrays.append(processor.preprocess_one(s.path))
            good.append(s)
        except (ValueError, OSError, SyntaxError) as e:  # missing, truncated, not an image
            errors.append({"index": s.index, "path": s.key, "label": s.label, "error": str(e)})
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"images resized to different shapes {sorted(shapes)} cannot form one batch: evaluation needs "
            "a fixed {'height', 'width'} size in the preprocessor config"
        )
    return (np.stack(arrays) if arrays else None), good, errors


def predict_records(
    model: ViT, pixel_values: np.ndarray | None, samples: Sequence[Sample], k: int
) -> list[dict[str, Any]]:
    """Forward a preprocessed batch; one record per sample with the top-``k`` classes and probabilities."""
    if pixel_values is None or not samples:
        return []
    from vitc.predict import softmax

    probs = softmax(model(pixel_values).logits)
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
# Identifying a run: which dataset, which model


def samples_digest(samples: Iterable[Sample]) -> str:
    """sha256 (hex) of the ``index<TAB>key<TAB>label`` lines of a whole dataset, before sharding.

    Two datasets with the same images (as relative paths), order and labels have the same digest,
    wherever their root is; a renamed, added or relabelled image changes it.
    """
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.index}\t{s.key}\t{s.label}\n".encode())
    return h.hexdigest()


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


def _identity_problem(theirs: dict[str, Any], ours: dict[str, Any]) -> tuple[str, str] | None:
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


def _unchecked_fields(*headers: dict[str, Any]) -> list[str]:
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


def _resume(
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
            problem = _identity_problem(old, header)
            if problem is not None:
                raise ValueError(
                    f"{path}: cannot resume: the output was written for {problem[1]}; use another output "
                    "file (-o / output=) for this run, or delete this one"
                )
            unchecked = _unchecked_fields(old)
            if unchecked:
                warnings.warn(
                    f"{path}: resuming an output written by an older vitc, without a record of its "
                    f"{' and '.join(unchecked)}: cannot check that it is this run's "
                    f"{' and '.join(unchecked)}",
                    stacklevel=4,  # _resume <- plan_evaluation <- evaluate <- the caller
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
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    # O_EXCL on a random name: unique, and created with the umask's permissions (mkstemp's are 0600).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(header) + "\n")
            f.writelines(json.dumps(r) + "\n" for r in records)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
    return path


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
    corrupt : images that could not be read (see ``corrupt_files``).
    accuracy : {k: top-k accuracy over the evaluated images}, None for k when nothing was evaluated.
    per_class : top-1 accuracy of every class with at least one evaluated image, by class index.
    confused : the most frequent top-1 confusions (true != predicted), most frequent first.
    confusion_matrix : (K, K) int64, rows the true class, columns the top-1 prediction.
    seconds : wall time of the forward passes and decoding in this run (None for merged results).
    images_per_second : images evaluated in this run per second (None if none or merged).
    corrupt_files : paths (relative to the dataset root) of the corrupt images, with their errors.
    labels : class names by index.
    class_mapping : how labels were assigned: "names", "sorted" (ImageFolder) or "list".
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
            "class_mapping": self.class_mapping,
        }
        if confusion_matrix:
            d["confusion_matrix"] = self.confusion_matrix.tolist()
        return d

    def summary(self) -> str:
        """A few lines for a terminal: counts, accuracies, weakest classes, top confusions."""
        counts = f"{self.total:,} images: {self.evaluated:,} evaluated, {self.corrupt:,} corrupt"
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
    true, preds, corrupt = [], [], {}
    for r in records:
        if "error" in r:
            corrupt[r["path"]] = r["error"]
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
    )


# ---------------------------------------------------------------------------------------------
# evaluate / merge


@dataclass
class EvalPlan:
    """Everything decided before the first forward pass (shared with vitc.distributed)."""

    header: dict[str, Any]
    selection: list[Sample]  # the shard's samples, dataset order
    done: dict[int, dict[str, Any]]  # records already in the output, by index
    pending: list[Sample]  # what is left to run
    out: IO[str] | None
    top_k: tuple[int, ...]

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

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


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
    output's header (needed when ``output`` is given).
    """
    ks = _check_top_k(top_k)
    shard = parse_shard(shard)
    data = load_dataset(dataset, id2label, num_labels, class_mapping)
    selection = shard_samples(data.samples, shard)
    header = make_header(id2label, num_labels, ks, data, shard, len(selection), model_name, fingerprint)
    done: dict[int, dict[str, Any]] = {}
    out = None
    if output is not None:
        done, out = _resume(Path(output), header, selection)
    pending = [s for s in selection if s.index not in done]
    return EvalPlan(header, selection, done, pending, out, ks)


def _load_model(model: ViT | str | os.PathLike | None) -> tuple[ViT, str | None]:
    if model is None:
        from vitc.default_model import DEFAULT_MODEL_PATH, load_default_model

        return load_default_model(), str(DEFAULT_MODEL_PATH)
    if isinstance(model, (str, os.PathLike)):
        from vitc.hub import resolve_model
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
    kmax = max(plan.top_k)
    new: list[dict[str, Any]] = []
    evaluated_now = 0
    from tqdm.auto import tqdm

    start = time.perf_counter()
    try:
        with (
            tqdm(
                total=len(plan.selection),
                initial=len(plan.done),
                desc="eval",
                unit="img",
                disable=(None if progress is None else not progress),
                file=sys.stderr,
            ) as bar,
            ThreadPoolExecutor(max_workers=1) as pool,
        ):
            batches = list(_batches(plan.pending, batch_size))
            # Decode one batch ahead: Pillow and the C forward both release the GIL.
            ahead: Future | None = pool.submit(load_batch, processor, batches[0]) if batches else None
            for b in range(len(batches)):
                pixels, good, errors = ahead.result()
                ahead = pool.submit(load_batch, processor, batches[b + 1]) if b + 1 < len(batches) else None
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
    if not files:
        raise ValueError("merge: expected at least one output file, found none")
    headers: list[dict[str, Any]] = []
    records: dict[int, dict[str, Any]] = {}
    seen_shards: dict[tuple[int, int], str] = {}
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"eval output not found: '{f}'")
        header, recs, _ = read_output(f)
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
            problem = _identity_problem(header, first)
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
        for r in recs:
            if r["index"] % sh[1] != sh[0]:
                raise ValueError(
                    f"{f}: record {r['path']!r} (index {r['index']}) does not belong to shard {sh[0]}/{sh[1]}"
                )
            records[r["index"]] = r
    first = headers[0]
    unchecked = _unchecked_fields(*headers)
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
        write_output_atomic(output, header, ordered)
    return result


# ---------------------------------------------------------------------------------------------
# Command line: ``vitc eval`` (registered by vitc/cli.py)

EVAL_EXAMPLES = """examples:
  vitc eval --model vit.vitc imagenet-val/             # ImageFolder tree: one folder per class
  vitc eval --model ./hf-folder val_list.txt           # lines 'path<TAB>label_index'
  vitc eval --model vit.vitc val/ --output preds.jsonl # run again after an interrupt: it resumes
  vitc eval --model vit.vitc val/ --shard 0/4 --output s0.jsonl   # ... one per machine, then:
  vitc eval --merge s0.jsonl s1.jsonl s2.jsonl s3.jsonl --output all.jsonl --json
  vitc eval --model vit.vitc val/ --ray local --workers 2          # Ray Data (pip install '.[ray]')

class folders map to labels by name if every folder is a label of the model, else folder i
(sorted) is class i, as torchvision's ImageFolder; force either with --class-mapping. Hidden
folders (.name) are skipped, unlike torchvision. An output file records its dataset and model:
resuming or merging files of another dataset or model is refused."""


def add_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command to the ``vitc`` parser (its handler is :func:`cmd_eval`)."""
    import argparse

    help_text = (
        "Evaluate a classifier on a labelled image set: top-k accuracy, per-class accuracy, confusions."
    )
    p = subparsers.add_parser(
        "eval",
        help=help_text,
        description=help_text,
        epilog=EVAL_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "dataset",
        metavar="DATASET",
        nargs="?",
        default=None,
        help="ImageFolder tree (a sub-folder per class) or a list file of 'path<TAB>label_index' lines",
    )
    p.add_argument(
        "--model",
        "-m",
        default=None,
        help="a .vitc file, Hugging Face model folder or hub ID (default: the embedded model)",
    )
    p.add_argument("--revision", default=None, help="for a hub ID: branch, tag, refs/pr/N or commit (default: main)")
    p.add_argument("--batch-size", "-b", type=int, default=8, help="images per forward pass (default: 8)")
    p.add_argument(
        "--top-k",
        "-k",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help="top-k accuracies to report (default: 1 5; with --merge: those of the runs)",
    )
    p.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="FILE",
        help="per-image predictions as JSON lines; an existing file is resumed "
        "(with --merge: where to write the combined predictions)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="evaluate only images whose index %% N == I (combine the outputs with --merge)",
    )
    p.add_argument(
        "--class-mapping",
        default="auto",
        choices=CLASS_MAPPINGS,
        help="class folders -> labels: by label name, by sorted position, or auto (default)",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="OUTPUT",
        help="combine shard output files into one result instead of evaluating",
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster ('local' starts one on this machine; 'auto' joins a running one)",
    )
    p.add_argument("--workers", type=int, default=2, help="Ray workers, one model each (default: 2)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress bar even when stderr is not a terminal (default: only on a terminal)",
    )
    bar.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None, help="no progress bar"
    )
    p.set_defaults(func=cmd_eval)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
    """``warnings.showwarning`` for the command line: the message alone, no source line."""
    print(f"vitc eval: warning: {message}", file=sys.stderr if file is None else file)


def cmd_eval(args: argparse.Namespace) -> int:
    """Handler of ``vitc eval``: user errors raise ValueError / FileNotFoundError.

    Warnings (sorted class folders, an incomplete merge, ...) are printed as one
    ``vitc eval: warning: ...`` line each.
    """
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _run_eval(args)


def _run_eval(args: argparse.Namespace) -> int:
    if args.merge is not None:
        if (
            args.dataset is not None
            or args.model is not None
            or args.shard is not None
            or args.ray is not None
        ):
            raise ValueError("--merge combines output files: it takes no DATASET, --model, --shard or --ray")
        result = merge(args.merge, output=args.output, top_k=args.top_k)
    else:
        if args.dataset is None:
            raise ValueError("expected a DATASET (an ImageFolder tree or a list file), or --merge FILES")
        progress = args.progress
        top_k = DEFAULT_TOP_K if args.top_k is None else args.top_k
        if args.revision is not None or (args.ray is not None and args.model is not None):
            from vitc.hub import resolve_model

            if args.model is None:
                raise ValueError("--revision is the revision of a hub model: give --model too")
            # a local folder every Ray worker can read; a revision evaluate() does not take
            args.model = str(resolve_model(args.model, revision=args.revision))
        if args.ray is not None:
            if args.shard is not None:
                raise ValueError(
                    "--shard and --ray do not go together: Ray spreads the images over its workers"
                )
            from vitc.distributed import evaluate_ray

            result = evaluate_ray(
                args.model,
                args.dataset,
                address=args.ray,
                num_workers=args.workers,
                batch_size=args.batch_size,
                top_k=top_k,
                output=args.output,
                class_mapping=args.class_mapping,
                progress=progress,
            )
        else:
            result = evaluate(
                args.model,
                args.dataset,
                batch_size=args.batch_size,
                top_k=top_k,
                output=args.output,
                shard=args.shard,
                progress=progress,
                class_mapping=args.class_mapping,
            )
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(result.summary())
    return 0
