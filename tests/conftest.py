"""Fixtures shared by several test files: tiny transformers models and the embedded default model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tools/mnist_data.py (the default model's MNIST digits) is a loader for tools and tests, not vitc API.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from factories import load_default_hf, make_model
from tiers import TIERS, at_tier
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

import vitc


@pytest.fixture(params=TIERS)
def tier(request):
    """Each supported kernel tier in turn (cpu.h): the test runs once per tier."""
    with at_tier(request.param):
        yield request.param


@pytest.fixture(scope="module")
def cls_model():
    """A tiny ViTForImageClassification (transformers' test config)."""
    return make_model("cls")


@pytest.fixture(scope="module")
def bare_model():
    """A tiny bare ViTModel with a pooler."""
    return make_model("bare", seed=1)


@pytest.fixture(scope="module")
def default_model() -> vitc.ViT:
    """The embedded default model."""
    return vitc.load_default_model()


@pytest.fixture(scope="module")
def default_hf(tmp_path_factory):
    """(transformers model, transformers image processor) of the embedded default checkpoint."""
    folder = tmp_path_factory.mktemp("default_hf")
    hf_model = load_default_hf(folder)
    return hf_model, ViTImageProcessorPil.from_pretrained(folder)
