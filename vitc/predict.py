"""From images to labels: top-k predictions, and attention maps that show what the model looks at.

``ViT.predict``, ``ViT.attention_map`` and ``ViT.explain`` are thin wrappers over the functions here;
results are plain lists with a readable text repr and a notebook-friendly HTML repr.
"""

from __future__ import annotations

import html
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from vitc.model import ViT
    from vitc.preprocess import ImageProcessor


class Prediction(list):
    """Top-k ``(label, probability)`` pairs for one image, most probable first.

    A plain list of tuples (indexing, ``==``, ``json.dumps`` work as on a list); only the repr is
    a table: ``digit 3  92.54%`` per line, and an HTML table in a notebook.
    """

    def __init__(self, pairs: Sequence[tuple[str, float]], source: str | None = None):
        super().__init__(pairs)
        self.source = source

    @property
    def label(self) -> str:
        """The most probable label."""
        return self[0][0]

    def _lines(self) -> list[str]:
        width = max((len(str(label)) for label, _ in self), default=0)
        return [f"{str(label):<{width}}  {p:7.2%}" for label, p in self]

    def __repr__(self) -> str:
        head = f"Prediction({self.source!r})" if self.source else "Prediction"
        if not self:
            return f"{head}: []"
        return "\n".join([f"{head}:", *("  " + line for line in self._lines())])

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(str(label))}</td><td style='text-align:right'>{p:.2%}</td>"
            f"<td><div style='background:#4c78a8;height:0.8em;width:{100 * p:.0f}px'></div></td></tr>"
            for label, p in self
        )
        title = f"<caption>{html.escape(self.source)}</caption>" if self.source else ""
        return f"<table>{title}<tr><th>label</th><th>probability</th><th></th></tr>{rows}</table>"


class Predictions(list):
    """One :class:`Prediction` per image, in input order (a plain list with a readable repr)."""

    def __repr__(self) -> str:
        if not self:
            return "Predictions: []"
        blocks = [f"Predictions ({len(self)} image{'s' if len(self) != 1 else ''}):"]
        blocks += ["\n".join("  " + line for line in repr(p).splitlines()) for p in self]
        return "\n".join(blocks)

    def _repr_html_(self) -> str:
        return "<div style='display:flex;flex-wrap:wrap;gap:1em'>" + "".join(p._repr_html_() for p in self) + "</div>"


def progress_bar(total: int, desc: str, show: bool):
    """A tqdm.auto bar (the widget in Jupyter with ipywidgets, text on stderr elsewhere), or None.

    tqdm is imported only when a bar is shown: in a notebook without ipywidgets the import warns.
    """
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def is_single_image(images: Any) -> bool:
    """A path, a PIL image or one HWC / HW array, as opposed to a list (or any iterable) of them."""
    if isinstance(images, (str, os.PathLike)):
        return True
    if isinstance(images, np.ndarray):
        return images.ndim in (2, 3)
    # Anything else iterable (list, tuple, generator, Path.glob) is many images; PIL images are
    # not iterable, and whatever is left gets the image type error from the image processor.
    return not isinstance(images, Iterable)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def _source_name(image: Any) -> str | None:
    return str(image) if isinstance(image, (str, os.PathLike)) else None


def predict(
    model: ViT,
    images: Any,
    processor: ImageProcessor,
    top_k: int = 5,
    batch_size: int = 8,
    progress: bool | None = None,
) -> Prediction | Predictions:
    """Classify images; see :meth:`vitc.ViT.predict`."""
    if model.num_labels == 0:
        raise ValueError(
            "predict: this checkpoint has no classes (a bare ViTModel, or num_labels=0); use model(...) instead"
        )
    top_k = _positive_int("top_k", top_k)
    batch_size = _positive_int("batch_size", batch_size)
    single = is_single_image(images)
    items = [images] if single else list(images)
    k = min(top_k, model.num_labels)
    results = Predictions()
    show = progress if progress is not None else len(items) > 4 * batch_size
    bar = progress_bar(len(items), "predict", show)
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            probs = softmax(model(processor(chunk)).logits)
            for image, p in zip(chunk, probs, strict=True):
                results.append(_top_k(model, p, k, _source_name(image)))
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return results[0] if single else results


# ---------------------------------------------------------------------------------------------
# Attention rollout


def attention_rollout(attentions: Sequence[np.ndarray]) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020, used in the ViT paper's Figure 6).

    Each layer's attention is averaged over heads, the residual connection is accounted for as
    ``0.5 * A + 0.5 * I``, and the layers are multiplied from the first to the last.

    Parameters
    ----------
    attentions : sequence of L arrays (B, heads, T, T), as ``model(..., output_attentions=True)``.

    Returns
    -------
    (B, T - 1) array: how much the CLS token draws from each patch, rows summing to <= 1.
    """
    if len(attentions) == 0:
        raise ValueError("attention_rollout: expected at least one layer of attentions, got none")
    return _cls_rollout([a.astype(np.float64).mean(axis=1) for a in attentions])


def _cls_rollout(means: Sequence[np.ndarray]) -> np.ndarray:
    """Row 0 (CLS) of the rollout from head-averaged attentions: L arrays (B, T, T) -> (B, T - 1).

    The rollout is R = M_L ... M_2 M_1 with M_l = 0.5 A_l + 0.5 I; its CLS row e_0^T R is a row
    vector carried from the last layer down, r <- r M_l = 0.5 r A_l + 0.5 r: L vector-matrix
    products in float64 (O(L T^2)) instead of L T x T matrix products (O(L T^3)).
    """
    if len(means) == 0:
        raise ValueError("attention_rollout: expected at least one layer of attentions, got none")
    b, t, _ = means[0].shape
    row = np.zeros((b, 1, t))
    row[:, 0, 0] = 1.0
    for a in reversed(means):
        row = 0.5 * (row @ np.asarray(a, np.float64)) + 0.5 * row
    return row[:, 0, 1:]


def _top_k(model: ViT, probs: np.ndarray, k: int, source: str | None) -> Prediction:
    order = np.argsort(-probs, kind="stable")[:k]
    labels = model.id2label
    return Prediction([(labels.get(int(i), f"LABEL_{int(i)}"), float(probs[i])) for i in order], source=source)


def _rollout_heatmap(model: ViT, rgb: Any, processor: ImageProcessor, means: Sequence[np.ndarray]) -> np.ndarray:
    """The first image's rollout as an (H, W) map in [0, 1] at the size of the PIL image ``rgb``, from
    head-averaged attentions (``output_attention_means``)."""
    from PIL import Image

    pixel_h, pixel_w = processor.output_size(rgb.height, rgb.width)
    gh, gw = pixel_h // model.patch_size, pixel_w // model.patch_size
    grid = _cls_rollout(means)[0].reshape(gh, gw)
    grid = (grid - grid.min()) / max(float(grid.max() - grid.min()), 1e-12)
    heat = Image.fromarray(grid.astype(np.float32), mode="F").resize((rgb.width, rgb.height), Image.BILINEAR)
    return np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)


def attention_map(model: ViT, image: Any, processor: ImageProcessor) -> np.ndarray:
    """(H, W) heat-map in [0, 1] of the CLS token's attention rollout, at the image's own size."""
    from vitc.preprocess import to_rgb_pil

    rgb = to_rgb_pil(image)
    out = model(processor([rgb]), output_attention_means=True)
    return _rollout_heatmap(model, rgb, processor, out.attention_means)


def explain(model: ViT, image: Any, processor: ImageProcessor | None = None) -> PILImage:
    """The image with its attention map overlaid and the top label as title, as a PIL image.

    What ``vitc predict --explain`` writes as PNG; in Jupyter a PIL image displays inline. One
    forward pass gives both the label and the attention rollout.

    Parameters
    ----------
    model : ViT with a classifier head.
    image : a path, PIL image or HWC uint8 array (one image).
    processor : ImageProcessor, optional
        Default: ``model.image_processor``.

    Returns
    -------
    PIL.Image.Image
        RGB, the image enlarged to ~256 px if smaller, with a 24 px title band above it.
    """
    from vitc.preprocess import to_rgb_pil

    if model.num_labels == 0:
        raise ValueError(
            "explain: this checkpoint has no classes (a bare ViTModel, or num_labels=0); use attention_map"
        )
    if not is_single_image(image):
        raise ValueError(f"explain: expected one image (a path, PIL image or HWC array), got {type(image).__name__}")
    processor = model.image_processor if processor is None else processor
    rgb = to_rgb_pil(image)
    out = model(processor([rgb]), output_attention_means=True)
    pred = _top_k(model, softmax(out.logits)[0], 1, _source_name(image))
    heat = _rollout_heatmap(model, rgb, processor, out.attention_means)
    return render_explanation(rgb, heat, f"{pred[0][0]} ({pred[0][1]:.1%})")


def _colormap(x: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8, dark blue -> red -> yellow (perceptually ordered)."""
    stops = np.array([[0.05, 0.03, 0.35], [0.45, 0.05, 0.55], [0.85, 0.25, 0.3], [0.99, 0.65, 0.1], [0.99, 0.99, 0.6]])
    pos = np.linspace(0, 1, len(stops))
    rgb = np.stack([np.interp(x, pos, stops[:, c]) for c in range(3)], axis=-1)
    return (rgb * 255).round().astype(np.uint8)


def render_explanation(image: Any, heatmap: np.ndarray, title: str) -> PILImage:
    """``image`` with ``heatmap`` overlaid and ``title`` above it, as an RGB PIL image."""
    from PIL import Image, ImageDraw

    from vitc.preprocess import to_rgb_pil

    rgb = to_rgb_pil(image)
    scale = max(1, 256 // max(rgb.width, rgb.height))  # tiny images (digits) are enlarged to be seen
    size = (rgb.width * scale, rgb.height * scale)
    base = rgb.resize(size, Image.NEAREST)
    heat = Image.fromarray(_colormap(heatmap)).resize(size, Image.BILINEAR)
    blended = Image.blend(base, heat, 0.5)
    canvas = Image.new("RGB", (size[0], size[1] + 24), "white")
    canvas.paste(blended, (0, 24))
    ImageDraw.Draw(canvas).text((4, 4), title, fill="black")
    return canvas


def save_png(image: PILImage, path: str | os.PathLike) -> Path:
    """Write a PIL image as PNG atomically (a temporary file beside ``path``, then a rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path

