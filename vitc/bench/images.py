"""Real images for the accuracy columns and for calibration, from files that ship with installed packages.

A faster engine must not win by being less accurate, so every engine's logits are compared with fp32
transformers (eager) on real photos, preprocessed by the checkpoint's image processor: random pixels
are easy for a quantizer (no outliers, no structure). No download: the photos come from packages the
test extra installs (scikit-image's data module, scikit-learn's sample images, matplotlib's sample
data) and vitc's own sample digits. Two disjoint sets: ``EVALUATION`` for the accuracy columns,
``CALIBRATION`` for static int8 (NNCF), so a calibrated engine is never scored on its own
calibration images. Missing files (a package not installed) are skipped and the report lists what ran.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# (package, path inside the package). Photos first: a capped run (``first N``) scores real scenes.
EVALUATION: tuple[tuple[str, str], ...] = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/hubble_deep_field.jpg"),
    ("skimage", "data/retina.jpg"),
    ("skimage", "data/ihc.png"),
    ("skimage", "data/camera.png"),
    ("skimage", "data/moon.png"),
    ("skimage", "data/coins.png"),
    ("skimage", "data/clock_motion.png"),
    ("skimage", "data/cell.png"),
    *(("vitc", f"data/samples/digit_{d}_{d * 500:04d}.png") for d in range(10)),
)
CALIBRATION: tuple[tuple[str, str], ...] = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("skimage", "data/motorcycle_right.png"),
    ("skimage", "data/brick.png"),
    ("skimage", "data/grass.png"),
    ("skimage", "data/gravel.png"),
    ("skimage", "data/page.png"),
    ("skimage", "data/text.png"),
)


def package_dir(package: str) -> Path | None:
    """Where ``package`` is installed, without importing it (None if it is not)."""
    if package == "vitc":
        return Path(__file__).resolve().parents[1]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def image_files(which: tuple[tuple[str, str], ...], limit: int | None = None) -> list[tuple[str, Path]]:
    """(name, path) of the images of ``which`` (EVALUATION or CALIBRATION) that exist here, at most
    ``limit``, in the listed order; the name is ``package:file``."""
    found: list[tuple[str, Path]] = []
    for package, rel in which:
        root = package_dir(package)
        if root is not None and (root / rel).is_file():
            found.append((f"{package}:{Path(rel).name}", root / rel))
        if limit is not None and len(found) >= limit:
            break
    return found
