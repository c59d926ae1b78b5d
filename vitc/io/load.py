"""One entry for any model path: a ``.vitc`` file, or a Hugging Face folder (or a weights file in one).

path -> a .vitc file (by its name or magic)? vitc_file.read : hf.load_hf_folder -> (config,
preprocessor dict or None, vitc tensors, the precision they are stored in). ``ViT.from_pretrained``
loads through here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vitc.config import ViTConfig
from vitc.io.hf import load_hf_folder
from vitc.io.vitc_file import is_vitc_path, read

__all__ = ["load_any", "load_stored"]


def load_stored(
    path: str | os.PathLike[str],
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray], str]:
    """:func:`load_any` and the precision of the weights it returns ("float32" for HF checkpoints)."""
    p = Path(path)
    if is_vitc_path(p):
        return read(p)  # a damaged .vitc file is reported as one (bad magic, truncated)
    return (*load_hf_folder(p), "float32")


def load_any(
    path: str | os.PathLike[str],
) -> tuple[ViTConfig, dict[str, Any] | None, dict[str, np.ndarray]]:
    """Load a ``.vitc`` file, or an HF folder/weights file converted in memory.

    Parameters
    ----------
    path : str or PathLike
        A ``.vitc`` file, an HF model folder, or a weights file inside one.

    Returns
    -------
    (ViTConfig, preprocessor dict or None, dict of vitc tensors)
    """
    return load_stored(path)[:3]
