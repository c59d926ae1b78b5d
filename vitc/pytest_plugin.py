"""A pytest plugin for testing your own vitc models: command-line options and fixtures.

Installed with vitc (entry point ``pytest11: vitc``); load it explicitly with ``-p vitc.pytest_plugin``
when plugin autoloading is off. Options::

    pytest --vitc-model model.vitc --hf-model ./hf-folder --eval-images ./images

Fixtures (session-scoped; each skips the test, with the option to pass, when its option is not given):

- ``vitc_model``: ``vitc.ViT`` of ``--vitc-model`` (a .vitc file or Hugging Face folder).
- ``hf_model``: transformers' ViT of ``--hf-model`` (eager attention, eval mode).
- ``image_processor``: the vitc ImageProcessor of ``--vitc-model`` (or else of ``--hf-model``).
- ``eval_images``: sorted image paths under ``--eval-images`` (recursively).
- ``eval_dataset``: the ``--eval-images`` folder itself, as a ``Path``, for ``vitc.evaluate`` (an
  ImageFolder tree: one sub-folder of images per class), so an accuracy test reads::

      def test_accuracy(vitc_model, eval_dataset):
          r = vitc.evaluate(vitc_model, eval_dataset)
          assert r.top1 >= 0.9

The marker ``@pytest.mark.vitc_parity`` documents a test comparing vitc with transformers. A path
that does not exist is a usage error (pytest stops at start-up), not a skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

OPTIONS = {
    "vitc_model": ("--vitc-model", "a .vitc file or Hugging Face folder for the 'vitc_model' fixture"),
    "hf_model": ("--hf-model", "a Hugging Face ViT folder for the 'hf_model' fixture (transformers, eager)"),
    "eval_images": (
        "--eval-images",
        "a folder of images for the 'eval_images' fixture (searched recursively) and the "
        "'eval_dataset' fixture (an ImageFolder tree: a sub-folder per class)",
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vitc", "vitc model testing")
    for dest, (flag, help_text) in OPTIONS.items():
        group.addoption(flag, dest=dest, default=None, metavar="PATH", help=help_text)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vitc_parity: the test compares vitc with transformers")
    for dest, (flag, _) in OPTIONS.items():
        value = config.getoption(dest)
        if value is not None and not Path(value).exists():
            raise pytest.UsageError(f"{flag}: path not found: '{value}'")
    hf = config.getoption("hf_model")
    if hf is not None and not (Path(hf) / "config.json").is_file():
        raise pytest.UsageError(
            f"--hf-model: expected a Hugging Face model folder with config.json, found '{hf}'"
        )
    images = config.getoption("eval_images")
    if images is not None and not Path(images).is_dir():
        raise pytest.UsageError(f"--eval-images: expected a folder of images, found '{images}'")


def pytest_report_header(config: pytest.Config) -> list[str]:
    given = [
        f"{flag}={config.getoption(dest)}" for dest, (flag, _) in OPTIONS.items() if config.getoption(dest)
    ]
    return [f"vitc: {', '.join(given)}"] if given else []


def _option(request: pytest.FixtureRequest, dest: str, what: str) -> str:
    value = request.config.getoption(dest)
    if value is None:
        flag = OPTIONS[dest][0]
        pytest.skip(f"{what}: pass {flag} PATH to run this test")
    return value


@pytest.fixture(scope="session")
def vitc_model(request: pytest.FixtureRequest) -> Any:
    """The ``vitc.ViT`` of ``--vitc-model``."""
    import vitc

    return vitc.ViT.from_pretrained(_option(request, "vitc_model", "needs a vitc model"))


@pytest.fixture(scope="session")
def hf_model(request: pytest.FixtureRequest) -> Any:
    """transformers' ViTForImageClassification / ViTModel of ``--hf-model`` (eager attention, eval mode)."""
    path = _option(request, "hf_model", "needs a Hugging Face model")
    from vitc.testing import load_transformers_model

    return load_transformers_model(path)


@pytest.fixture(scope="session")
def image_processor(request: pytest.FixtureRequest) -> Any:
    """The vitc ImageProcessor of ``--vitc-model``, or of ``--hf-model`` if only that is given."""
    from vitc.preprocess import ImageProcessor

    path = request.config.getoption("vitc_model") or request.config.getoption("hf_model")
    if path is None:
        pytest.skip(
            "needs a model's preprocessing: pass --vitc-model PATH or --hf-model PATH to run this test"
        )
    return ImageProcessor.from_pretrained(path)


@pytest.fixture(scope="session")
def eval_images(request: pytest.FixtureRequest) -> list[Path]:
    """Image files under ``--eval-images``, sorted (the extensions torchvision's ImageFolder reads)."""
    from vitc.eval.dataset import IMAGE_EXTENSIONS

    root = Path(_option(request, "eval_images", "needs evaluation images"))
    images = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        pytest.fail(f"--eval-images: found no image files ({', '.join(IMAGE_EXTENSIONS)}) under '{root}'")
    return images


@pytest.fixture(scope="session")
def eval_dataset(request: pytest.FixtureRequest) -> Path:
    """The ``--eval-images`` folder, for ``vitc.evaluate(vitc_model, eval_dataset)`` (an ImageFolder tree)."""
    return Path(_option(request, "eval_images", "needs an evaluation dataset"))
