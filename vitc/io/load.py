"""One entry for any model path: a ``.vitc`` file, or a Hugging Face folder (or a weights file in one).

path -> a .vitc file (by its name or magic)? vitc_file.read : hf.load_hf_folder -> (config,
preprocessor dict or None, vitc tensors, the precision they are stored in). ``ViT.from_pretrained``
loads through here.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vitc.config import ViTConfig
from vitc.io.hf import load_hf_folder
from vitc.io.hub import resolve_model
from vitc.io.vitc_file import is_vitc_path, read

__all__ = ["load_any", "load_stored"]


def load_stored(
    path: str | os.PathLike[str], revision: str | None = None
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray], str]:
    """:func:`load_any` and the precision of the weights it returns ("float32" for HF checkpoints)."""
    p = resolve_model(path, revision=revision)
    if is_vitc_path(p):
        return read(p)  # a damaged .vitc file is reported as one (bad magic, truncated)
    return (*load_hf_folder(p), "float32")


def load_any(
    path: str | os.PathLike[str], revision: str | None = None
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    """Load a ``.vitc`` file, or an HF folder/weights file converted in memory.

    Parameters
    ----------
    path : str or PathLike
        A ``.vitc`` file, an HF model folder, a weights file inside one, or a hub ID (``"owner/name"``,
        from the Hugging Face cache or downloaded; see :func:`vitc.io.hub.resolve_model`).
    revision : str, optional
        For a hub ID: branch, tag, ``refs/pr/N`` or commit hash (default "main").

    Returns
    -------
    (ViTConfig, preprocessor dict or None, dict of vitc tensors)
    """
    return load_stored(path, revision)[:3]
