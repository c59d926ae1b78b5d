"""Small labelled image sets for the evaluation tests, and the reference computation they are checked against.

Images are random PNGs of varied sizes (so the resize runs); labels need not be learnable: an
evaluation is correct when it equals what is computed here directly from the model's logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vitc.predict import softmax


def write_image(path: Path, rng: np.random.Generator) -> Path:
    h, w = (int(v) for v in rng.integers(12, 48, size=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def write_image_folder(root: Path, classes: dict[str, int], seed: int = 0) -> Path:
    """``root/<class>/<i>.png`` with ``classes[name]`` images per class."""
    rng = np.random.default_rng(seed)
    for name, n in classes.items():
        for i in range(n):
            write_image(root / name / f"{i:03d}.png", rng)
    return root


def write_corrupt(path: Path) -> Path:
    """A file with an image extension that no decoder can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return path


def direct(model, paths: list[Path]) -> np.ndarray:
    """Softmax probabilities (N, K) of the model on the images, one forward pass per image."""
    return np.concatenate([softmax(model(model.image_processor([str(p)])).logits) for p in paths])


def topk(probs: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def write_digit_folder(root: Path, shift: int = 0) -> Path:
    """An ImageFolder of the embedded model's sample digits: ``root/digit <d>/<sample>.png``.

    With ``shift`` the images of digit d go to the folder of digit (d + shift) % 10: a mislabelled
    set on which the model scores 0.
    """
    import shutil

    from vitc.default_model import sample_images

    for path in sample_images():
        digit = int(path.name.split("_")[1])
        folder = root / f"digit {(digit + shift) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)
    return root
