"""The embedded default default_model: same predictions as transformers on the held-out digits, and accurate."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from mnist_data import LABEL_NAMES, load_default_heldout
from PIL import Image

from vitc.default_model import DEFAULT_MODEL_PATH, sample_images

# |logit difference| allowed against transformers, scaled by max(1, max|logit|): the parity bar.
LOGITS_ATOL = 1e-4
# Measured held-out accuracy: 0.963 (963 / 1000) with both vitc and transformers (tools/train_default_model.py).
MIN_ACCURACY = 0.95
SAMPLE_NAME = re.compile(r"digit_(\d)_\d+\.png")


@pytest.fixture(scope="module")
def heldout() -> tuple[np.ndarray, np.ndarray]:
    return load_default_heldout()


@pytest.fixture(scope="module")
def hf_logits(default_hf, heldout) -> np.ndarray:
    """transformers end to end (its image processor and its default_model) on the 1000 held-out images."""
    hf_model, hf_processor = default_hf
    pixel_values = hf_processor(list(heldout[0]), return_tensors="np")["pixel_values"]
    with torch.no_grad():
        return hf_model(torch.from_numpy(pixel_values)).logits.numpy()


def test_embedded_files_ship() -> None:
    assert DEFAULT_MODEL_PATH.is_file()
    samples = sample_images()
    assert len(samples) == 10
    assert sorted(int(SAMPLE_NAME.fullmatch(p.name).group(1)) for p in samples) == list(range(10))


def test_logits_match_transformers_on_heldout(default_model, heldout, hf_logits) -> None:
    images, _ = heldout
    logits = default_model(default_model.image_processor(list(images))).logits
    assert logits.shape == hf_logits.shape == (1000, 10)
    err = np.max(np.abs(logits - hf_logits)) / max(1.0, np.max(np.abs(hf_logits)))
    assert err < LOGITS_ATOL, f"max scaled logit error {err:.3g}"
    np.testing.assert_array_equal(logits.argmax(-1), hf_logits.argmax(-1))


def test_predict_matches_transformers_and_is_accurate(default_model, heldout, hf_logits) -> None:
    images, labels = heldout
    preds = default_model.predict(list(images), top_k=1, batch_size=100, progress=False)
    assert len(preds) == len(images)
    ours = np.array([LABEL_NAMES.index(p.label) for p in preds])
    np.testing.assert_array_equal(ours, hf_logits.argmax(-1))  # all 1000 identical
    accuracy = float(np.mean(ours == labels))
    assert accuracy >= MIN_ACCURACY, f"held-out accuracy {accuracy:.3f}"
    assert accuracy == float(np.mean(hf_logits.argmax(-1) == labels))


def test_label_names_match_dataset(default_model) -> None:
    assert default_model.num_labels == len(LABEL_NAMES)
    assert [default_model.id2label[i] for i in range(default_model.num_labels)] == list(LABEL_NAMES)


@pytest.mark.parametrize("path", sample_images(), ids=lambda p: p.name)
def test_sample_image_is_classified_correctly(default_model, path) -> None:
    digit = int(SAMPLE_NAME.fullmatch(path.name).group(1))
    with Image.open(path) as img:
        assert img.size == (28, 28)
    pred = default_model.predict(path, top_k=3)
    assert pred.label == f"digit {digit}", pred
    assert pred.source == str(path)
