"""tools/mnist_data.py: the bundled MNIST subset behind the default model."""

from __future__ import annotations

import numpy as np
from mnist_data import (
    HELDOUT_EVERY,
    LABEL_NAMES,
    NUM_CLASSES,
    default_split,
    load_default_dataset,
    load_default_heldout,
)


def test_dataset_shapes_and_values() -> None:
    images, labels = load_default_dataset()
    assert images.shape == (5000, 28, 28, 3) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels), [500] * NUM_CLASSES)
    # grayscale digits stored as RGB: all channels equal, white strokes on black
    assert np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 0], images[..., 2])
    assert images.max() == 255 and np.median(images) == 0
    assert len(LABEL_NAMES) == NUM_CLASSES


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    _, labels = load_default_dataset()
    train, held = default_split(labels)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == len(labels)
    assert np.array_equal(np.bincount(labels[held]), [500 // HELDOUT_EVERY] * NUM_CLASSES)
    train2, held2 = default_split(labels)
    assert np.array_equal(train, train2) and np.array_equal(held, held2)


def test_heldout_matches_split() -> None:
    images, labels = load_default_dataset()
    _, held = default_split(labels)
    h_images, h_labels = load_default_heldout()
    assert np.array_equal(h_images, images[held]) and np.array_equal(h_labels, labels[held])
