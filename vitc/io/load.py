"""One entry for any model path: a ``.vitc`` file, or a Hugging Face folder (or a weights file in one).

path -> a .vitc file (by its name or magic)? vitc_file.read : hf.load_hf_folder -> (config,
preprocessor dict or None, vitc tensors, the precision they are stored in). ``ViT.from_pretrained``
loads through here.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from vitc.config import ViTConfig
from vitc.files import aligned_empty, mapped_file
from vitc.io.hf import load_hf_folder
from vitc.io.hub import resolve_model
from vitc.io.vitc_file import ALIGNMENT, NoChecksumsWarning, is_vitc_path, read

__all__ = ["load_any", "load_stored"]


def _private_copy(a: np.ndarray) -> np.ndarray:
    """``a`` in process memory (64-byte aligned, read-only) if it views a memory-mapped file."""
    if mapped_file(a) is None:
        return a
    out = aligned_empty(a.shape, a.dtype, ALIGNMENT)
    out[...] = a
    out.flags.writeable = False
    return out


def load_stored(
    path: str | os.PathLike[str],
    revision: str | None = None,
    *,
    mmap: bool = True,
    verify: bool = False,
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray], str]:
    """:func:`load_any` and the precision of the weights it returns ("float32" for HF checkpoints)."""
    p = resolve_model(path, revision=revision)
    if is_vitc_path(p):
        return read(p, mmap=mmap, verify=verify)  # a damaged .vitc file is reported as one (bad magic, truncated)
    if verify:
        warnings.warn(
            NoChecksumsWarning(
                f"{p}: a Hugging Face checkpoint carries no checksums vitc checks (verify=True checks .vitc files "
                "of format 2)"
            ),
            stacklevel=3,
        )
    config, preprocessor, tensors = load_hf_folder(p)
    if not mmap:  # safetensors and .bin tensors that need no conversion are views of the file's map
        tensors = {k: _private_copy(v) for k, v in tensors.items()}
    return config, preprocessor, tensors, "float32"


def load_any(
    path: str | os.PathLike[str],
    revision: str | None = None,
    *,
    mmap: bool = True,
    verify: bool = False,
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    """Load a ``.vitc`` file, or an HF folder/weights file converted in memory.

    Parameters
    ----------
    path : str or PathLike
        A ``.vitc`` file, an HF model folder, a weights file inside one, or a hub ID (``"owner/name"``,
        from the Hugging Face cache or downloaded; see :func:`vitc.io.hub.resolve_model`).
    revision : str, optional
        For a hub ID: branch, tag, ``refs/pr/N`` or commit hash (default "main").
    mmap : bool, optional
        True (default): tensors that need no conversion are views of a read-only memory map of the
        file (a ``.vitc`` file: all of them), which must not be modified in place while they live
        (see :mod:`vitc.io.vitc_file`). False: every tensor is in process memory, independent of the
        file.
    verify : bool, optional
        Check every tensor's checksum (``.vitc`` files of format 2;
        :func:`vitc.io.vitc_file.load_converted`). Files without checksums (format 1, HF
        checkpoints) load with a :class:`vitc.io.vitc_file.NoChecksumsWarning`.

    Returns
    -------
    (ViTConfig, preprocessor dict or None, dict of vitc tensors)
    """
    return load_stored(path, revision, mmap=mmap, verify=verify)[:3]
