"""Hugging Face ViT checkpoint -> one ``.vitc`` file: :func:`convert`, on top of vitc/io/ and vitc/weights.py.

HF folder -> io.hf.load_hf_folder (config, preprocessor, vitc tensors, checked) -> the blocks' GEMM
weights packed one at a time (weights.pack_weight) -> io.vitc_file.write into io.atomic.atomic_write.
The name map lives in vitc/io/hf.py, the file format in vitc/io/vitc_file.py. Nothing here runs a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vitc.io.atomic import atomic_write, output_path, refuse_overwriting_inputs
from vitc.io.hf import input_files, load_hf_folder
from vitc.io.hub import resolve_model
from vitc.io.vitc_file import is_vitc_path, write
from vitc.weights import (
    GEMM_WEIGHTS,
    INT8_PARTS,
    PRECISIONS,
    expected_tensors,
    pack_weight,
    present_groups,
    require_build_layout,
)

__all__ = ["convert"]


def _check_dtype(dtype: Any) -> str:
    try:
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name not in PRECISIONS:
        raise ValueError(f"dtype: expected one of {', '.join(PRECISIONS)}, got {name!r}")
    return name


def _progress(items: Any, enabled: bool, desc: str, total: int) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety; tqdm is not a dependency
        return items
    return tqdm(items, desc=desc, unit="tensor", total=total)


def _stored_arrays(tensors: dict[str, np.ndarray], precision: str) -> Any:
    """(name, array) in file order: the blocks' GEMM weights packed one at a time as they are written,
    so converting holds at most one packed matrix besides the float32 checkpoint."""
    for name, arr in tensors.items():
        if precision == "float32" or not name.startswith("blocks.") or not name.endswith(GEMM_WEIGHTS):
            yield name, arr
            continue
        packed = pack_weight(arr, precision)
        parts = packed if isinstance(packed, tuple) else (packed,)
        yield from ((name + suffix, part) for suffix, part in zip(INT8_PARTS, parts, strict=False))


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    progress: bool = True,
    revision: str | None = None,
) -> Path:
    """Convert an HF ViT checkpoint folder (or a weights file inside one, or a hub ID) to one ``.vitc`` file.

    The file is written to a temporary file in the destination folder (``.NAME.<pid>.<random>.tmp``),
    fsynced, then renamed over ``dst``, so ``dst`` is either absent/old or complete, and a model that
    memory-maps the old ``dst`` keeps its weights (the old inode is never written). A conversion that
    was killed leaves its temporary file behind; the next conversion to the same ``dst`` deletes those
    whose process no longer runs (POSIX only; on a folder shared between machines or pid namespaces a
    conversion running elsewhere can look dead, so do not convert to one ``dst`` from two of them).

    The source is never overwritten: a ``dst`` that is (or links to) one of the files the conversion
    reads (the weights, every shard and the index, config.json, preprocessor_config.json, the
    folder; through symlinks, hard links, relative paths and Hugging Face cache snapshots) is refused
    before anything is read. The same checkpoint converts to the same bytes every time.

    Parameters
    ----------
    src : str or PathLike
        HF model folder with config.json (+ optional preprocessor_config.json) and weights, or a hub ID
        (``"owner/name"``) found in the Hugging Face cache or downloaded (see :func:`vitc.io.hub.resolve_model`).
    dst : str or PathLike
        Output file; if an existing folder, ``<dst>/model.vitc``.
    dtype : {"float32", "bfloat16", "int8"}, optional
        Precision of the blocks' four weight matrices (QKV, attention output, fc1, fc2), stored
        packed for vitc's bf16 / int8 kernels (about half / a quarter of the float32 file for
        ViT-sized models); layernorms, biases, embeddings and the head stay float32. Loading such a
        file gives the model ``ViT.from_pretrained(float32_file, dtype=dtype)`` gives, bit for bit.
    progress : bool, optional
        Show a tqdm bar if tqdm is installed.
    revision : str, optional
        For a hub ID: branch, tag, ``refs/pr/N`` or commit hash (default "main").

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        For a dtype other than the three above, an invalid source, a source that already is a
        ``.vitc`` file, or a ``dst`` that is one of the source's files.
    FileNotFoundError
        If the source is missing.
    IsADirectoryError, PermissionError, vitc.files.UnreadableFileError
        If a file to read is a folder, may not be read, or is a FIFO, device or pseudo-file; or
        ``dst`` is a folder inside the given folder (``dst/model.vitc`` is a folder).
    """
    precision = _check_dtype(dtype)
    dst_path = output_path(dst, "model.vitc")
    if precision != "float32":
        require_build_layout(precision)  # a build that packs otherwise refuses before reading anything
    src_path = resolve_model(src, revision=revision)
    if is_vitc_path(src_path):
        raise ValueError(
            f"{src_path}: already a vitc file: convert reads Hugging Face checkpoints. Load this file with "
            "vitc.ViT.from_pretrained, or convert the Hugging Face checkpoint it came from for another dtype"
        )
    refuse_overwriting_inputs(dst_path, input_files(src_path), "convert: the output")
    if os.path.isdir(dst_path):
        raise IsADirectoryError(f"convert: the output {dst_path} is a folder inside {dst}: expected a file name")
    config, preprocessor, tensors = load_hf_folder(src_path)
    layout = expected_tensors(
        config,
        head="head.weight" in tensors,
        pooler="pooler.weight" in tensors,
        dtype=precision,
        groups=present_groups(tensors),
    )
    try:
        dst_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder is needed, a read-only place
        raise type(exc)(f"convert: cannot create the folder of {dst_path} ({exc.strerror or exc})") from None
    with atomic_write(dst_path) as f:
        arrays = _progress(_stored_arrays(tensors, precision), progress, f"writing {dst_path.name}", len(layout))
        write(f, config, preprocessor, precision, layout, arrays)
    return dst_path
