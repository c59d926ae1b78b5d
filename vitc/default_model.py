"""The model that ships inside the package, so vitc classifies images with no download.

It is a small ViT (``model_type: vit``) that the project trained itself with
``tools/train_default_model.py`` (torch + transformers' ViTForImageClassification), converted with
``vitc convert``; a few held-out images ship beside it as samples.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_MODEL_PATH = DATA_DIR / "default.vitc"
SAMPLES_DIR = DATA_DIR / "samples"


def sample_images() -> list[Path]:
    """The sample images that ship with the default model, sorted by name."""
    return sorted(p for p in SAMPLES_DIR.glob("*.png"))


def load_default_model():
    """The embedded default model as a :class:`vitc.ViT`."""
    from vitc.model import ViT

    if not DEFAULT_MODEL_PATH.is_file():
        raise FileNotFoundError(f"the embedded default model is missing from the installation: {DEFAULT_MODEL_PATH}")
    return ViT.from_pretrained(DEFAULT_MODEL_PATH)
