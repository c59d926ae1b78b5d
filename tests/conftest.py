"""Fixtures shared by several test files: tiny transformers models and the embedded default model."""

from __future__ import annotations

import pytest
from default_model_hf import load_default_hf
from hf_fixtures import make_model
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
