"""Evaluation datasets: the labelled images at a path, their shards, and a digest that identifies them.

dataset path -> ImageFolder tree (one sub-folder per class) or list file (``path<TAB>label_index``) ->
samples (index, key, path, label) in dataset order -> the shard ``index % n == i``. This module reads
no image (vitc/eval/run.py decodes them) and is not a data loader for training.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# torchvision.datasets.folder.IMG_EXTENSIONS: the files an ImageFolder tree is made of.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
CLASS_MAPPINGS = ("auto", "names", "sorted")


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


def _walk(
    top: Path, visited: set[tuple[int, int]], unreadable: list[str], skipped: list[str]
) -> list[tuple[str, list[str]]]:
    """``(folder, file names)`` of every folder under ``top``, following symlinks, each folder once.

    ``os.walk(followlinks=True)`` (torchvision's make_dataset) walks a symlink loop forever and a
    folder linked twice twice; here a folder already in ``visited`` (by ``(st_dev, st_ino)``,
    shared with the caller across class folders, and holding the dataset root and every class
    folder from the start) is not entered again, so loops end and a link to another class folder
    is not walked as this class. Folders that cannot be listed are reported in ``unreadable``,
    the paths not entered again in ``skipped``.
    """
    out: list[tuple[str, list[str]]] = []
    stack = [str(top)]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as e:
            unreadable.append(f"{folder} ({e.strerror or e})")
            continue
        if folder != str(top) and (st.st_dev, st.st_ino) in visited:
            skipped.append(folder)
            continue
        visited.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            unreadable.append(f"{folder} ({e.strerror or e})")
            continue
        files, subdirs = [], []
        for e in entries:
            try:
                is_dir = e.is_dir()  # follows symlinks, as os.walk(followlinks=True)
            except OSError:
                is_dir = False
            (subdirs if is_dir else files).append(e.name)
        out.append((folder, files))
        stack.extend(os.path.join(folder, d) for d in sorted(subdirs, reverse=True))
    return out


def _folder_id(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _file_id(path: str) -> tuple[int, int] | str:
    """What makes two paths one file: (st_dev, st_ino) of the file they lead to; the path itself for
    one that cannot be followed (a broken symlink is then an image that cannot be read)."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.abspath(path)
    return (st.st_dev, st.st_ino)


def _load_image_folder(
    root: Path, id2label: dict[int, str], num_labels: int, class_mapping: str
) -> EvalDataset:
    names = sorted(e.name for e in os.scandir(root) if _is_dir(e) and not e.name.startswith("."))
    if not names:
        raise ValueError(
            f"{root}: expected an ImageFolder tree (one sub-folder of images per class) or a list file, "
            "found no sub-folders"
        )
    mapping, rule = _folder_classes(names, id2label, num_labels, class_mapping, root)
    samples: list[Sample] = []
    visited = {_folder_id(root / n) for n in [".", *names]}
    seen: dict[tuple[int, int] | str, str] = {}
    duplicates: list[tuple[str, str]] = []
    unreadable: list[str] = []
    skipped: list[str] = []
    for name in names:
        # ref: torchvision.datasets.folder.make_dataset: sorted os.walk, sorted file names; each
        # folder and each file once (see _walk), a file at its first path in that order.
        for folder, files in sorted(_walk(root / name, visited, unreadable, skipped)):
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    path = Path(folder) / f
                    key = path.relative_to(root).as_posix()
                    first = seen.setdefault(_file_id(str(path)), key)
                    if first != key:
                        duplicates.append((key, first))
                        continue
                    samples.append(Sample(len(samples), key, str(path), mapping[name]))
    if unreadable:
        warnings.warn(
            f"{root}: {len(unreadable)} folder{'s' if len(unreadable) != 1 else ''} could not be listed, their "
            f"images are not counted: {'; '.join(unreadable[:3])}{' ...' if len(unreadable) > 3 else ''}",
            stacklevel=3,
        )
    if skipped:
        where = Path(sorted(skipped)[0]).relative_to(root).as_posix()
        warnings.warn(
            f"{root}: {len(skipped)} linked folder{'s lead' if len(skipped) != 1 else ' leads'} to a folder already "
            f"walked (a symlink loop, or a second path to one folder), not walked again: {where!r}"
            + (" ..." if len(skipped) > 1 else ""),
            stacklevel=3,
        )
    if duplicates:
        key, first = duplicates[0]
        warnings.warn(
            f"{root}: {len(duplicates)} image file{'s are' if len(duplicates) != 1 else ' is'} reached by more than "
            f"one path (symlinks or hard links) and counted once, at its first path in sorted order: "
            f"{key!r} is {first!r}" + (" ..." if len(duplicates) > 1 else ""),
            stacklevel=3,
        )
    if not samples:
        raise ValueError(f"{root}: found no image files ({', '.join(IMAGE_EXTENSIONS)}) in the class folders")
    return EvalDataset(root, samples, rule, names)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _load_pairs(pairs: Sequence[Any], id2label: dict[int, str], num_labels: int) -> EvalDataset:
    """``[(image path, label), ...]``: label an index or a label name of the model."""
    root = Path(os.getcwd())
    by_name = _label2id(id2label)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    files: dict[tuple[int, int] | str, str] = {}
    duplicates: list[tuple[int, str, str]] = []
    for i, item in enumerate(pairs):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], (str, os.PathLike))):
            raise TypeError(
                f"dataset[{i}]: expected an (image path, label) pair, found {item!r:.80}; a dataset is a folder "
                "(ImageFolder tree), a list file, or a list of (path, label) pairs"
            )
        image, label = item
        if isinstance(label, str):
            ids = by_name.get(label)
            if ids is None or len(ids) != 1:
                why = "not a label of the model" if ids is None else f"the labels {ids} of the model share that name"
                raise ValueError(f"dataset[{i}]: label {label!r} is {why}; give the label index instead")
            label = ids[0]
        if isinstance(label, bool) or not isinstance(label, numbers.Integral):
            raise TypeError(f"dataset[{i}]: expected a label index (int) or label name, found {label!r:.80}")
        if not 0 <= label < num_labels:
            raise ValueError(
                f"dataset[{i}]: expected a label index in [0, {num_labels}) (the model's labels), found {label}"
            )
        key = Path(image).as_posix()
        norm = os.path.normpath(os.path.abspath(image))
        if norm in seen:
            raise ValueError(f"dataset[{i}]: image {key!r} is listed twice (first at dataset[{seen[norm]}])")
        seen[norm] = i
        first = files.setdefault(_file_id(norm), key)
        if first != key:  # another name of a file given before (a symlink, a hard link)
            duplicates.append((i, key, first))
            continue
        samples.append(Sample(len(samples), key, str(Path(os.path.abspath(image))), int(label)))
    if duplicates:
        i, key, first = duplicates[0]
        warnings.warn(
            f"dataset: {len(duplicates)} image{'s are' if len(duplicates) != 1 else ' is'} another path to a file "
            f"given before (a symlink or hard link), counted once, at its first pair: dataset[{i}] {key!r} is "
            f"{first!r}" + (" ..." if len(duplicates) > 1 else ""),
            stacklevel=3,
        )
    if not samples:
        raise ValueError("dataset: expected at least one (image path, label) pair, found an empty list")
    return EvalDataset(root, samples, "list")


def _load_list_file(path: Path, num_labels: int) -> EvalDataset:
    root = path.parent
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    files: dict[tuple[int, int] | str, str] = {}
    duplicates: list[tuple[int, str, str]] = []
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
        norm = os.path.normpath(key)  # 'a.png' and './a.png' are one image
        if norm in seen:
            raise ValueError(f"{path}:{lineno}: image {key!r} is listed twice (first on line {seen[norm]})")
        seen[norm] = lineno
        first = files.setdefault(_file_id(str(root / key)), key)
        if first != key:  # another name of a file already listed (a symlink, a hard link)
            duplicates.append((lineno, key, first))
            continue
        samples.append(Sample(len(samples), key, str(root / key), label))
    if duplicates:
        lineno, key, first = duplicates[0]
        warnings.warn(
            f"{path}: {len(duplicates)} listed image{'s are' if len(duplicates) != 1 else ' is'} another path to a "
            f"file listed before (a symlink or hard link), counted once, at its first line: line {lineno} "
            f"{key!r} is {first!r}" + (" ..." if len(duplicates) > 1 else ""),
            stacklevel=3,
        )
    if not samples:
        raise ValueError(f"{path}: expected lines 'path<TAB>label_index', found none")
    return EvalDataset(root, samples, "list")


def load_dataset(
    dataset: str | os.PathLike | Sequence[tuple[str | os.PathLike, int | str]] | Mapping[Any, int | str],
    id2label: dict[int, str],
    num_labels: int | None = None,
    class_mapping: str = "auto",
) -> EvalDataset:
    """Find the labelled images of a dataset.

    Parameters
    ----------
    dataset : str or PathLike, or a list of (path, label) pairs
        An ImageFolder tree (a folder with one sub-folder of images per class; images are found
        recursively, files with other extensions are ignored), a list file of
        ``path<TAB>label_index`` lines (paths relative to the list file's folder; blank lines and
        lines starting with ``#`` are skipped; without a tab the line is split at its last
        whitespace), or a list (or dict) of ``(image path, label)`` pairs in Python, the label an
        index or a label name of the model (paths relative to the working directory).
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
    What an ImageFolder tree counts: every file with an image extension under a class folder,
    following symlinked folders and files, each file once. A file reached by several paths (a
    symlink to it, a hard link, a folder linked twice) counts once, at its first path in sorted
    order (with a warning); a symlink loop is entered once and ends; a broken symlink counts as
    an image that cannot be read (kind "missing"); a folder that cannot be listed is skipped
    with a warning.

    Hidden class folders (names starting with ``.``, such as ``.ipynb_checkpoints`` or ``.cache``)
    are skipped and do not count as classes. torchvision's ImageFolder does not skip them, so for
    a tree with a hidden folder its class indices differ from vitc's "sorted" ones: remove such
    folders, or use a list file, when indices must match torchvision's.

    Raises
    ------
    FileNotFoundError
        If ``dataset`` does not exist.
    TypeError
        If ``dataset`` is neither a path nor a list of (path, label) pairs.
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
    if isinstance(dataset, Mapping):
        return _load_pairs(list(dataset.items()), id2label, num_labels)
    if isinstance(dataset, (list, tuple)):
        return _load_pairs(dataset, id2label, num_labels)
    if not isinstance(dataset, (str, os.PathLike)):
        raise TypeError(
            "dataset: expected a folder (an ImageFolder tree: a sub-folder of images per class), a list file of "
            f"'path<TAB>label_index' lines, or a list of (image path, label) pairs, found {type(dataset).__name__}"
        )
    path = Path(dataset)
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: '{path}'")
    path = Path(os.path.abspath(path))
    if path.is_dir():
        return _load_image_folder(path, id2label, num_labels, class_mapping)
    if not path.is_file():  # a FIFO would block the read, a device never end it
        raise ValueError(
            f"{path}: expected an ImageFolder tree or a list file of 'path<TAB>label_index' lines, found a "
            "special file (a FIFO, device or socket)"
        )
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




def samples_digest(samples: Iterable[Sample]) -> str:
    """sha256 (hex) of the ``index<TAB>key<TAB>label`` lines of a whole dataset, before sharding.

    Two datasets with the same images (as relative paths), order and labels have the same digest,
    wherever their root is; a renamed, added or relabelled image changes it.
    """
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.index}\t{s.key}\t{s.label}\n".encode())
    return h.hexdigest()
