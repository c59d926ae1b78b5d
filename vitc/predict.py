"""From images to labels: top-k predictions, and attention maps that show what the model looks at.

``ViT.predict``, ``ViT.attention_map`` and ``ViT.explain`` are thin wrappers over the functions here;
results are plain lists with a readable text repr and a notebook-friendly HTML repr.
"""

from __future__ import annotations

import html
import numbers
import os
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from vitc.preprocess import ImageLoadError, ImageProcessor

# What predict takes as a model: a vitc.ViT. Not imported, even for typing: model.py imports this
# module (ViT.predict delegates here), so naming it would make an import circle.
ViT = Any


class Prediction(list):
    """Top-k ``(label, probability)`` pairs for one image, most probable first.

    A plain list of tuples (indexing, ``==``, ``json.dumps`` work as on a list); only the repr is
    a table: ``digit 3  92.54%`` per line, and an HTML table in a notebook.

    An image that could not be read (in a run over many images) is an empty Prediction whose
    ``error`` is the :class:`~vitc.preprocess.ImageLoadError` (``error.kind`` says why).
    """

    def __init__(
        self, pairs: Sequence[tuple[str, float]], source: str | None = None, error: ImageLoadError | None = None
    ):
        super().__init__(pairs)
        self.source = source
        self.error = error

    @property
    def ok(self) -> bool:
        """True if the image was read and classified (``error`` is None)."""
        return self.error is None

    @property
    def label(self) -> str | None:
        """The most probable label (None for an image that could not be read: see ``error``)."""
        return self[0][0] if self else None

    def _lines(self) -> list[str]:
        width = max((len(str(label)) for label, _ in self), default=0)
        return [f"{str(label):<{width}}  {p:7.2%}" for label, p in self]

    def __repr__(self) -> str:
        head = f"Prediction({self.source!r})" if self.source else "Prediction"
        if self.error is not None:
            return f"{head}: not read ({self.error.kind}): {self.error}"
        if not self:
            return f"{head}: []"
        return "\n".join([f"{head}:", *("  " + line for line in self._lines())])

    def _repr_html_(self) -> str:
        title = f"<caption>{html.escape(self.source)}</caption>" if self.source else ""
        if self.error is not None:
            why = f"not read ({html.escape(self.error.kind)}): {html.escape(str(self.error))}"
            return f"<table>{title}<tr><td>{why}</td></tr></table>"
        rows = "".join(
            f"<tr><td>{html.escape(str(label))}</td><td style='text-align:right'>{p:.2%}</td>"
            f"<td><div style='background:#4c78a8;height:0.8em;width:{100 * p:.0f}px'></div></td></tr>"
            for label, p in self
        )
        return f"<table>{title}<tr><th>label</th><th>probability</th><th></th></tr>{rows}</table>"


class Predictions(list):
    """One :class:`Prediction` per image, in input order (a plain list with a readable repr).

    Images that could not be read keep their place as empty Predictions with an ``error``;
    ``errors`` lists them and ``error_counts`` counts them by kind.
    """

    @property
    def errors(self) -> list[ImageLoadError]:
        """The errors of the images that could not be read, in input order."""
        return [p.error for p in self if p.error is not None]

    @property
    def error_counts(self) -> dict[str, int]:
        """{kind: images} for the images that could not be read (kinds of ``IMAGE_ERROR_KINDS``)."""
        return count_error_kinds(e.kind for e in self.errors)

    def __repr__(self) -> str:
        if not self:
            return "Predictions: []"
        blocks = [f"Predictions ({len(self)} image{'s' if len(self) != 1 else ''}):"]
        blocks += ["\n".join("  " + line for line in repr(p).splitlines()) for p in self]
        if self.errors:
            blocks.append(f"  {describe_failures(self.error_counts, len(self))}")
        return "\n".join(blocks)

    def _repr_html_(self) -> str:
        return "<div style='display:flex;flex-wrap:wrap;gap:1em'>" + "".join(p._repr_html_() for p in self) + "</div>"


def count_error_kinds(kinds: Iterable[str]) -> dict[str, int]:
    """{kind: count}, in the order of ``IMAGE_ERROR_KINDS`` (unknown kinds last, sorted)."""
    from vitc.preprocess import IMAGE_ERROR_KINDS

    counts: dict[str, int] = {}
    for k in kinds:
        counts[k] = counts.get(k, 0) + 1
    order = {k: i for i, k in enumerate(IMAGE_ERROR_KINDS)}
    return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def describe_failures(counts: dict[str, int], total: int) -> str:
    """``"2 of 5 images could not be read (1 missing, 1 corrupt)"``."""
    failed = sum(counts.values())
    kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return f"{failed} of {total} image{'s' if total != 1 else ''} could not be read ({kinds})"


def progress_bar(total: int | None, desc: str, show: bool):
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


# pipeline("image-classification")'s function_to_apply values (transformers' ClassificationFunction).
FUNCTIONS_TO_APPLY = ("softmax", "sigmoid", "none")
DEFAULT_TOP_K = 5  # the pipeline's default, also what top_k=None means there


def choose_function(config: Any, requested: str | None = None) -> str:
    """The function predict applies to the logits: ``requested`` ("softmax", "sigmoid", "none", any
    case; None or "default": by the config), as the image-classification pipeline picks it.

    ref: transformers pipelines/image_classification.py ImageClassificationPipeline.postprocess:
    "regression" -> none; "multi_label_classification" or one label -> sigmoid; otherwise softmax.
    """
    if requested is not None and not (isinstance(requested, str) and requested.lower() == "default"):
        name = requested.lower() if isinstance(requested, str) else requested
        if name not in FUNCTIONS_TO_APPLY:
            raise ValueError(
                f"function_to_apply: expected one of {', '.join(FUNCTIONS_TO_APPLY)}, 'default' or None, "
                f"got {requested!r}"
            )
        return name
    problem, n = getattr(config, "problem_type", None), config.num_labels
    if problem == "regression":
        return "none"
    if problem == "multi_label_classification" or n == 1:
        return "sigmoid"
    return "softmax" if n > 1 or problem == "single_label_classification" else "none"


def scores(logits: np.ndarray, function: str) -> np.ndarray:
    """(B, K) float32 scores of (B, K) logits, each row computed exactly as the pipeline does it
    (NumPy, float32, row by row), so equal logits give equal scores and ties stay ties."""
    out = np.empty(logits.shape, np.float32)
    for i, row in enumerate(np.asarray(logits, np.float32)):
        if function == "sigmoid":
            out[i] = 1.0 / (1.0 + np.exp(-row))
        elif function == "softmax":
            e = np.exp(row - np.max(row, axis=-1, keepdims=True))
            out[i] = e / e.sum(axis=-1, keepdims=True)
        else:
            out[i] = row
    return out


def is_single_image(images: Any) -> bool:
    """A path, a PIL image or one HWC / CHW / HW array or tensor, as opposed to a list (or any iterable,
    a 4-d batch array or tensor included) of them."""
    if isinstance(images, (str, os.PathLike)):
        return True
    if isinstance(images, np.ndarray):
        return images.ndim in (2, 3)
    # a torch tensor (told by its type's module: torch is not imported for it) is one image as an array is
    if type(images).__module__.split(".")[0] == "torch" and hasattr(images, "ndim"):
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


# ---------------------------------------------------------------------------------------------
# Runs over many images: per-image errors, memory, interrupts (shared with vitc/eval/)


def preprocess_or_error(
    processor: ImageProcessor, image: Any, expected_shape: tuple[int, ...] | None, pipeline: bool = False
) -> tuple[np.ndarray | None, ImageLoadError | None]:
    """``(pixels, None)`` for an image a model of ``expected_shape`` (C, H, W) pixels can run, else
    ``(None, error)``: the one place a run over many images turns a bad image into a record.

    A file gives pixels or an :class:`~vitc.preprocess.ImageLoadError`; an exception nothing
    classified (a decoder bug on a strange file) is recorded as ``"corrupt"`` with its type, so one
    file never ends a run. An input that is not an image at all (a wrong type) still raises.
    """
    from vitc.preprocess import ImageLoadError

    try:
        x, error = processor.try_preprocess_one(image, pipeline=pipeline)
    except (TypeError, KeyboardInterrupt):
        raise
    except Exception as e:
        if not isinstance(image, (str, os.PathLike)):
            raise
        name = type(e).__qualname__
        name = name if type(e).__module__ == "builtins" else f"{type(e).__module__}.{name}"
        detail = f"unexpected error while decoding ({name}: {e})"
        return None, ImageLoadError(image, "corrupt", detail)
    if error is not None:
        return None, error
    if expected_shape is not None and tuple(x.shape) != tuple(expected_shape):
        c, h, w = expected_shape
        return None, ImageLoadError(
            _source_name(image),
            "unsupported",
            f"preprocessed to {'x'.join(map(str, x.shape))} pixel values, the model takes {c}x{h}x{w} "
            "(its preprocessor config does not bring every image to the model's size)",
        )
    return x, None


def model_pixel_shape(model: Any) -> tuple[int, int, int] | None:
    """(C, H, W) of the pixel values ``model`` runs without interpolation, or None if it does not say."""
    config = getattr(model, "config", None)
    try:
        h, w = config.image_hw
        return (int(config.num_channels), int(h), int(w))
    except (AttributeError, TypeError, ValueError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def batch_memory_error(exc: MemoryError, images: int, pixel_shape: tuple[int, ...] | None, what: str) -> MemoryError:
    """A MemoryError that says how much a batch of ``images`` needed and what to do about it.

    NumPy's MemoryError carries the shape and dtype of the array it could not allocate (the pixel
    values, the model's outputs or its working memory); without them only the pixels are known.
    """
    shape, dtype = getattr(exc, "shape", None), getattr(exc, "dtype", None)
    pixels = 4 * images * int(np.prod(pixel_shape)) if pixel_shape else 0
    if shape is not None and dtype is not None:
        asked = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
        need = f"{_gib(asked)} more (an array of shape {tuple(shape)} {np.dtype(dtype)})"
        if pixels:
            need += f" besides the {_gib(pixels)} of pixel values"
    else:
        need = f"more than is free (pixel values alone: {_gib(pixels)})" if pixels else "more than is free"
    return MemoryError(
        f"{what}: out of memory for a batch of {images} image{'s' if images != 1 else ''}: it needs {need}; "
        "lower the batch size (batch_size=, --batch-size on the command line)"
    )


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT (Ctrl-C) until the block ends, then raise it: lines written inside are whole.

    Without it, a KeyboardInterrupt raised inside ``flush()`` after a partial write leaves half a
    line behind. In threads other than the main one (where signals cannot be handled) a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    except (ValueError, OSError):  # an interpreter that does not let us handle signals
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held and callable(previous):
            previous(signal.SIGINT, None)  # default_int_handler raises KeyboardInterrupt
        elif held and previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)


# ---------------------------------------------------------------------------------------------
# predict


def predict(
    model: ViT,
    images: Any,
    processor: ImageProcessor,
    top_k: int | None = DEFAULT_TOP_K,
    batch_size: int = 8,
    progress: bool | None = None,
    function_to_apply: str | None = None,
) -> Prediction | Predictions:
    """Classify images; see :meth:`vitc.ViT.predict`.

    One image: its Prediction, or its :class:`~vitc.preprocess.ImageLoadError` raised. Many
    images: Predictions in input order, where an image that cannot be read is an empty Prediction
    with an ``error`` and the others are classified (see :func:`iter_predictions`).
    """
    if is_single_image(images):
        (pred,) = iter_predictions(
            model, [images], processor, top_k, batch_size, progress=False, function_to_apply=function_to_apply
        )
        if pred.error is not None:
            raise pred.error
        return pred
    return Predictions(
        iter_predictions(model, images, processor, top_k, batch_size, progress, function_to_apply=function_to_apply)
    )


def iter_predictions(
    model: ViT,
    images: Iterable[Any],
    processor: ImageProcessor | None = None,
    top_k: int | None = DEFAULT_TOP_K,
    batch_size: int = 8,
    progress: bool | None = None,
    function_to_apply: str | None = None,
) -> Iterator[Prediction]:
    """Classify images lazily: one :class:`Prediction` per image, in input order, batch by batch.

    Images are decoded at most one batch ahead of the forward pass (in a thread), so memory does
    not grow with the number of images and ``images`` may be any iterable (a generator, a glob).
    Each Prediction is yielded as soon as its batch finishes. An image that cannot be read
    (``pipeline("image-classification")``'s route: paths and PIL images through ``load_image``)
    gives an empty Prediction whose ``error`` is an :class:`~vitc.preprocess.ImageLoadError`; the
    run goes on. Arguments are checked when this is called, before the first image.

    Parameters
    ----------
    model : ViT with a classifier head.
    images : iterable of paths, PIL images or HWC / HW arrays (a single image is one item).
    processor : default ``model.image_processor``.
    top_k, batch_size, function_to_apply : as :meth:`vitc.ViT.predict`.
    progress : show a progress bar (default: when ``images`` has a length above 4 batches).

    Raises
    ------
    ValueError
        A model without classes, a bad ``top_k`` or ``batch_size``.
    TypeError
        (While iterating) an item that is not an image at all.
    MemoryError
        (While iterating) a batch that does not fit, saying how much it needs.
    """
    if model.num_labels == 0:
        raise ValueError(
            "predict: this checkpoint has no classes (a bare ViTModel, or num_labels=0); use model(...) instead"
        )
    top_k = DEFAULT_TOP_K if top_k is None else _positive_int("top_k", top_k)  # None: the pipeline's default
    batch_size = _positive_int("batch_size", batch_size)
    function = choose_function(model.config, function_to_apply)
    processor = model.image_processor if processor is None else processor
    if is_single_image(images):
        images = [images]
    total = len(images) if isinstance(images, Sized) else None
    show = progress if progress is not None else (total is not None and total > 4 * batch_size)
    return _predictions(model, iter(images), processor, min(top_k, model.num_labels), batch_size, total, show, function)


def _decode_batch(
    processor: ImageProcessor, chunk: list[Any], expected: tuple[int, int, int] | None
) -> tuple[np.ndarray | None, list[ImageLoadError | None]]:
    """Pixel values (B_good, C, H, W) of the readable images of ``chunk`` and one error (or None) per image."""
    arrays, errors = [], []
    for image in chunk:
        x, error = preprocess_or_error(processor, image, expected, pipeline=True)
        errors.append(error)
        if x is not None:
            arrays.append(x)
    if not arrays:
        return None, errors
    try:
        return np.stack(arrays), errors
    except MemoryError as e:
        raise batch_memory_error(e, len(arrays), arrays[0].shape, "predict") from None


def _take(it: Iterator[Any], n: int) -> list[Any]:
    chunk = []
    for item in it:
        chunk.append(item)
        if len(chunk) == n:
            break
    return chunk


def _predictions(
    model: ViT,
    it: Iterator[Any],
    processor: ImageProcessor,
    k: int,
    batch_size: int,
    total: int | None,
    show: bool,
    function: str = "softmax",
) -> Iterator[Prediction]:
    from concurrent.futures import ThreadPoolExecutor

    expected = model_pixel_shape(model)
    bar = progress_bar(total, "predict", show)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        chunk = _take(it, batch_size)
        # Decode one batch ahead: Pillow and the C forward both release the GIL.
        ahead = pool.submit(_decode_batch, processor, chunk, expected) if chunk else None
        while ahead is not None:
            pixels, errors = ahead.result()
            current = chunk
            chunk = _take(it, batch_size)
            ahead = pool.submit(_decode_batch, processor, chunk, expected) if chunk else None
            probs = iter(())
            if pixels is not None:
                try:
                    probs = iter(scores(model(pixels, return_dict=True).logits, function))
                except MemoryError as e:
                    raise batch_memory_error(e, len(pixels), pixels.shape[1:], "predict") from None
            results = [
                Prediction([], _source_name(image), error)
                if error is not None
                else _top_k(model, next(probs), k, _source_name(image))
                for image, error in zip(current, errors, strict=True)
            ]
            if bar is not None:
                bar.update(len(current))
            yield from results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()


# ---------------------------------------------------------------------------------------------
# Attention rollout


def attention_rollout(attentions: Sequence[np.ndarray], prefix: int = 1) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020, used in the ViT paper's Figure 6).

    Each layer's attention is averaged over heads, the residual connection is accounted for as
    ``0.5 * A + 0.5 * I``, and the layers are multiplied from the first to the last.

    Parameters
    ----------
    attentions : sequence of L arrays (B, heads, T, T), as ``model(..., output_attentions=True)``.

    Returns
    -------
    (B, T - prefix) array: how much the CLS token draws from each patch, rows summing to <= 1
    (``prefix``: the tokens before the patches, CLS and DeiT's distillation token).
    """
    if len(attentions) == 0:
        raise ValueError("attention_rollout: expected at least one layer of attentions, got none")
    return _cls_rollout([a.astype(np.float64).mean(axis=1) for a in attentions], prefix)


def _cls_rollout(means: Sequence[np.ndarray], prefix: int = 1) -> np.ndarray:
    """Row 0 (CLS) of the rollout from head-averaged attentions: L arrays (B, T, T) -> (B, T - prefix).

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
    return row[:, 0, prefix:]


def _top_k(model: ViT, probs: np.ndarray, k: int, source: str | None) -> Prediction:
    # The pipeline sorts (label, score) pairs by score with Python's stable sort, reverse=True: equal
    # scores keep label-index order, as a stable argsort of the negated scores does (NaN scores, whose
    # place in the pipeline's sort is arbitrary, go last).
    order = np.argsort(-probs, kind="stable")[:k]
    labels = model.id2label
    return Prediction([(labels.get(int(i), f"LABEL_{int(i)}"), float(probs[i])) for i in order], source=source)


def _rollout_heatmap(model: ViT, rgb: Any, processor: ImageProcessor, means: Sequence[np.ndarray]) -> np.ndarray:
    """The first image's rollout as an (H, W) map in [0, 1] at the size of the PIL image ``rgb``, from
    head-averaged attentions (``output_attention_means``)."""
    from PIL import Image

    pixel_h, pixel_w = processor.output_size(rgb.height, rgb.width)
    patch = model.patch_size
    ph, pw = patch if isinstance(patch, tuple) else (patch, patch)
    gh, gw = pixel_h // ph, pixel_w // pw
    grid = _cls_rollout(means, model.num_prefix_tokens)[0].reshape(gh, gw)
    grid = (grid - grid.min()) / max(float(grid.max() - grid.min()), 1e-12)
    heat = Image.fromarray(grid.astype(np.float32), mode="F").resize((rgb.width, rgb.height), Image.BILINEAR)
    return np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)


def attention_map(model: ViT, image: Any, processor: ImageProcessor) -> np.ndarray:
    """(H, W) heat-map in [0, 1] of the CLS token's attention rollout, at the image's own size."""
    from vitc.preprocess import to_rgb_pil

    rgb = to_rgb_pil(image)
    out = model(processor([rgb]), output_attention_means=True, return_dict=True)
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
    out = model(processor([rgb]), output_attention_means=True, return_dict=True)
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
    """Write a PIL image as PNG atomically (vitc/io/atomic.py: a temporary file of a unique name
    beside ``path``, fsynced, then renamed over it), so two runs writing one folder never mix."""
    from vitc.io.atomic import atomic_write

    path = Path(path)
    with atomic_write(path, "wb") as f:
        image.save(f, format="PNG")
    return path
