"""Image preprocessing that reproduces transformers' ViT image processor (the PIL backend), bit for bit.

image (file, PIL image, array or torch tensor) -> decode -> channels first -> Pillow resize on uint8 ->
center crop -> float64 rescale -> float32 -> normalize -> pad -> (B, C, H, W) float32. Each step follows
transformers >= 5 (``ViTImageProcessorPil``, ``image_transforms``, ``image_utils.load_image``) in the
same order and dtypes, so pixel values are identical, including its quirks. It is not a
data-augmentation library.

Two routes, as in transformers:

- ``ImageProcessor(images)`` is ``ViTImageProcessorPil(**config)(images)``: a path is opened with
  ``load_image`` (EXIF orientation, ``convert("RGB")``), PIL images, arrays and tensors are used as given
  and converted to RGB only when ``do_convert_rgb`` is true.
- ``ImageProcessor(pipeline_image(image))`` is what ``pipeline("image-classification")`` feeds the
  processor: paths *and PIL images* go through ``load_image`` first, arrays and tensors do not.

Decoding a file never lets a Pillow exception escape: every file gives pixels or one
:class:`ImageLoadError` with a ``kind``. The settings (``preprocessor_config.json``'s keys and their
checks) are :class:`vitc.config.PreprocessorConfig`, which the readers in vitc/io/ use without Pillow.
"""

from __future__ import annotations

import errno
import io
import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vitc.config import CHANNELS_FIRST, CHANNELS_LAST, MAX_IMAGE_SIDE, PreprocessorConfig
from vitc.files import file_kind, read_json_file

ImageLike = Any  # str | os.PathLike | PIL.Image.Image | np.ndarray | torch.Tensor

# ref: transformers' PilBackend.process_image infers the channel axis among these channel counts
_INFER_CHANNELS = (1, 3, 4)

# ---------------------------------------------------------------------------------------------
# Errors

IMAGE_ERROR_KINDS = ("missing", "unreadable", "not_an_image", "corrupt", "too_large", "unsupported")


class ImageLoadError(ValueError):
    """An image that cannot be used: one line naming the file and what is wrong.

    Attributes
    ----------
    path : str or None
        The file, or None for an in-memory image.
    kind : str
        One of ``IMAGE_ERROR_KINDS``:

        - ``"missing"``: no such file (the error is then also a ``FileNotFoundError``);
        - ``"unreadable"``: permission denied, a directory, a FIFO, device or other special file;
        - ``"not_an_image"``: a file Pillow does not recognise as an image;
        - ``"corrupt"``: an image file that is truncated or damaged (also an empty file);
        - ``"too_large"``: over Pillow's decompression-bomb limit (refused from the header, before
          decoding), out of memory while decoding, or resized beyond ``MAX_IMAGE_SIDE``;
        - ``"unsupported"``: a readable image whose mode, dtype or shape cannot be processed.
    detail : str
        What is wrong, without the file name.
    """

    def __init__(self, path: str | os.PathLike | None, kind: str, detail: str):
        if kind not in IMAGE_ERROR_KINDS:
            raise ValueError(f"kind: expected one of {IMAGE_ERROR_KINDS}, found {kind!r}")
        self.path = None if path is None else str(path)
        self.kind = kind
        self.detail = " ".join(str(detail).split())  # one line
        where = "image" if self.path is None else f"cannot read image '{self.path}'"
        message = f"{where}: {self.detail}"
        super().__init__(message)
        if isinstance(self, OSError):
            # OSError.__new__ read (path, kind, detail) as (errno, strerror, filename): set them right
            self.errno, self.strerror, self.filename = errno.ENOENT, message, None

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):  # picklable (Ray workers send errors back)
        return (_make_image_error, (self.path, self.kind, self.detail))


class ImageMissingError(ImageLoadError, FileNotFoundError):
    """An ``ImageLoadError`` of kind ``"missing"``, also a ``FileNotFoundError``."""


def _make_image_error(path: str | os.PathLike | None, kind: str, detail: str) -> ImageLoadError:
    return (ImageMissingError if kind == "missing" else ImageLoadError)(path, kind, detail)


def try_load_image(path: str | os.PathLike) -> tuple[Image.Image | None, ImageLoadError | None]:
    """``(load_image(path), None)``, or ``(None, error)`` if the file cannot be used.

    For a run over many files: record ``error.kind`` and ``str(error)`` and go on.
    """
    try:
        return load_image(path), None
    except ImageLoadError as e:
        return None, e


def _describe(image: Any) -> str:
    if isinstance(image, np.ndarray):
        return f"a {image.dtype} array of shape {image.shape}"
    if isinstance(image, Image.Image):
        return f"a PIL image of mode {image.mode!r} and size {image.width}x{image.height}"
    return type(image).__name__


# ---------------------------------------------------------------------------------------------
# The processor


@dataclass
class ImageProcessor(PreprocessorConfig):
    """Preprocess images for a ViT exactly as transformers' ``ViTImageProcessorPil`` does.

    The fields (``preprocessor_config.json``'s keys, their meaning, defaults and checks) are
    :class:`vitc.config.PreprocessorConfig`'s; this class adds loading and the image steps. See the
    module docstring for the two routes (processor and pipeline).
    """

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> ImageProcessor:
        """Load the preprocessing of a model.

        Parameters
        ----------
        path : str or PathLike
            A Hugging Face model folder (``preprocessor_config.json``; without it, defaults with the
            square size ``image_size`` from ``config.json``), a ``preprocessor_config.json`` file,
            or a converted vitc model file (its stored HF preprocessor config / model config).

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist or a folder holds neither JSON file.
        """
        p = Path(path)
        if p.is_dir():
            pre, conf = p / "preprocessor_config.json", p / "config.json"
            # file_kind, not is_file: a FIFO or folder of that name is refused by _read_json, not skipped
            if file_kind(pre, "preprocessor config") is not None:
                return cls.from_dict(_read_json(pre))
            if file_kind(conf, "config file") is not None:
                return cls._from_model_config(_read_json(conf), str(conf))
            raise FileNotFoundError(f"no preprocessor_config.json or config.json in '{p}'")
        if not p.exists():
            raise FileNotFoundError(f"model path not found: '{p}'")
        if p.suffix == ".json":
            return cls.from_dict(_read_json(p))
        from vitc.io.vitc_file import read_metadata  # lazy: only vitc model files need it

        meta = read_metadata(p)
        if meta.get("preprocessor"):
            return cls.from_dict(meta["preprocessor"])
        return cls._from_model_config(meta.get("config") or {}, str(p))

    # ---- processing ---------------------------------------------------------------------------

    def __call__(self, images: ImageLike | Sequence[ImageLike], return_tensors: str | None = None) -> np.ndarray:
        """Preprocess one image or a batch, as ``ViTImageProcessorPil(...)(images)["pixel_values"]``.

        Parameters
        ----------
        images : image or list of images
            File paths (str / PathLike), PIL images of any mode, NumPy arrays or torch tensors:
            (H, W, C) or (C, H, W) with C in (1, 3, 4), (H, W), or a batch (N, ...) of them;
            lists (and lists of lists) of any of these.
        return_tensors : {None, "np", "pt"}
            ``"pt"`` returns a torch tensor (torch imported only then).

        Returns
        -------
        np.ndarray
            (B, C, H, W) float32; a single image gives B = 1. C is 3 for RGB input.

        Raises
        ------
        ImageLoadError
            A file cannot be used (``kind`` says why; ``"missing"`` is also a FileNotFoundError), or
            an image cannot be processed (an unsupported mode, dtype or channel count).
        TypeError
            An input is not an image.
        ValueError
            Images of different output sizes cannot be stacked.
        """
        if return_tensors not in (None, "np", "pt"):
            raise ValueError(f"return_tensors: expected None, 'np' or 'pt', found {return_tensors!r}")
        out = [self.preprocess_one(item) for item in flatten_images(images)]
        if self.do_pad and self.pad_size is None:
            # ref: PilBackend.pad with pad_size None: to the largest height and width of the batch
            ph = max(x.shape[1] for x in out)
            pw = max(x.shape[2] for x in out)
            out = [_pad(x, ph, pw) for x in out]
        shapes = {x.shape for x in out}
        if len(shapes) > 1:
            raise ValueError(f"images processed to different shapes {sorted(shapes)} cannot form one batch")
        batch = np.stack(out)
        if return_tensors == "pt":
            import torch

            return torch.from_numpy(batch)
        return batch

    def preprocess_one(self, image: ImageLike, pipeline: bool = False) -> np.ndarray:
        """Preprocess a single image to (C, H, W) float32 (see ``__call__``).

        ``pipeline=True`` gives what ``pipeline("image-classification")`` computes: a PIL image is
        first passed through :func:`load_image` (EXIF orientation, ``convert("RGB")``), as
        ``pipeline_image`` does; paths, arrays and tensors are processed the same either way.
        """
        kind = _image_type(image)
        if kind == "batch" or kind is None:
            raise TypeError(f"image: expected one image, found {_describe(image)}")
        path = image if kind == "path" else None
        try:
            if pipeline and kind == "pil":
                image = load_image(image)
            x = self._to_channels_first(image, kind)
            if self.do_resize:
                x = self._resize(x)
            if self.do_center_crop:
                x = _center_crop(x, self.crop_size["height"], self.crop_size["width"])
            if self.do_rescale:
                x = _rescale(x, self.rescale_factor)
            if self.do_normalize:
                x = _normalize(x, self.image_mean, self.image_std)
            if self.do_pad and self.pad_size is not None:
                x = _pad(x, self.pad_size["height"], self.pad_size["width"])
        except ImageLoadError as e:
            if path is not None and e.path is None:
                raise _make_image_error(path, e.kind, e.detail) from None
            raise
        return np.ascontiguousarray(x, dtype=np.float32)

    def try_preprocess_one(
        self, image: ImageLike, pipeline: bool = False
    ) -> tuple[np.ndarray | None, ImageLoadError | None]:
        """``(preprocess_one(image, pipeline), None)``, or ``(None, error)`` if this image cannot be used.

        For runs over many images: record ``error.kind`` / ``str(error)`` and go on. Only errors
        about the image are returned; a wrong input type still raises.
        """
        try:
            return self.preprocess_one(image, pipeline), None
        except ImageLoadError as e:
            return None, e

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the pixel values for an image of this size (resize, crop, fixed pad)."""
        if self.do_resize:
            height, width = self.resize_size(height, width)
        if self.do_center_crop:
            height, width = self.crop_size["height"], self.crop_size["width"]
        if self.do_pad and self.pad_size is not None:
            height, width = self.pad_size["height"], self.pad_size["width"]
        return height, width

    def resize_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after resizing an image of the given size (transformers' rules)."""
        size = self.size
        if "height" in size:
            return size["height"], size["width"]
        if "max_height" in size:
            # ref: image_utils.get_image_size_for_max_height_width
            scale = min(size["max_height"] / height, size["max_width"] / width)
            new_h, new_w = int(height * scale), int(width * scale)
        elif "longest_edge" in size:
            new_h, new_w = _size_with_aspect_ratio(height, width, size["shortest_edge"], size["longest_edge"])
        else:
            # ref: image_transforms.get_resize_output_image_size(default_to_square=False)
            s = size["shortest_edge"]
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = s, int(s * long / short)
            new_h, new_w = (new_long, new_short) if width <= height else (new_short, new_long)
        if max(new_h, new_w) > MAX_IMAGE_SIDE:
            raise ImageLoadError(
                None,
                "too_large",
                f"{width}x{height} pixels would be resized to {new_w}x{new_h}, beyond {MAX_IMAGE_SIDE} "
                f"(too elongated for size {size})",
            )
        if min(new_h, new_w) < 1:
            raise ImageLoadError(None, "unsupported", f"{width}x{height} pixels would be resized to {new_w}x{new_h}")
        return new_h, new_w

    def _to_channels_first(self, image: Any, kind: str) -> np.ndarray:
        """One image as a (C, H, W) array, converted as transformers' process_image converts it."""
        if kind == "path":
            image, kind = load_image(image), "pil"
        if kind == "pil":
            try:
                # ref: PilBackend.process_image: convert first, so that the PIL mode is still known
                x = _convert_to_rgb_pil(image) if self.do_convert_rgb else np.array(image)
            except ImageLoadError:
                raise
            except Exception as e:
                raise _pillow_error(None, e, f"cannot read {_describe(image)}") from None
            if x.size == 0:
                raise ImageLoadError(None, "unsupported", f"expected a non-empty image, found {_describe(image)}")
            return x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
        x = _tensor_to_numpy(image) if kind == "tensor" else image
        _check_array(x)
        fmt = self.input_data_format
        if x.ndim == 2:  # vitc: a grayscale (H, W) array is an (H, W, 1) one
            x, fmt = x[..., None], CHANNELS_LAST
        if self.do_convert_rgb:
            x = _convert_to_rgb_array(x, fmt)
        if fmt is None:
            fmt = _infer_channel_format(x)
        return np.moveaxis(x, -1, 0) if fmt == CHANNELS_LAST else x

    def _resize(self, x: np.ndarray) -> np.ndarray:
        """ref: PilBackend.resize -> image_transforms.resize (channels first in and out)."""
        new_h, new_w = self.resize_size(x.shape[1], x.shape[2])
        scaled = _needs_scaling_for_pil(x)
        hwc = np.moveaxis(x, 0, -1)
        if hwc.shape[-1] == 1:
            hwc = hwc[..., 0]
        if scaled:
            hwc = _rescale(hwc, 255)
        hwc = hwc.astype(np.uint8, copy=False)
        try:
            pil = Image.fromarray(hwc)
        except TypeError:
            raise ImageLoadError(
                None, "unsupported", f"cannot resize an image of {x.shape[0]} channels (Pillow takes 1, 3 or 4)"
            ) from None
        out = np.array(pil.resize((new_w, new_h), resample=self.resample, reducing_gap=None))
        if out.ndim == 2:
            out = out[..., None]
        out = np.moveaxis(out, -1, 0)
        return _rescale(out, 1 / 255) if scaled else out



def _size_with_aspect_ratio(height: int, width: int, size: int, max_size: int) -> tuple[int, int]:
    # ref: transformers.image_transforms.get_size_with_aspect_ratio
    raw_size = None
    min_side, max_side = float(min(height, width)), float(max(height, width))
    if max_side / min_side * size > max_size:
        raw_size = max_size * min_side / max_side
        size = int(round(raw_size))
    if (height <= width and height == size) or (width <= height and width == size):
        return height, width
    if width < height:
        oh = int(raw_size * height / width) if raw_size is not None else int(size * height / width)
        return oh, size
    ow = int(raw_size * width / height) if raw_size is not None else int(size * width / height)
    return size, ow


def _read_json(path: Path) -> dict[str, Any]:
    # vitc/files.py: every JSON vitc reads has the same limits (size, brackets, depth) and regular
    # files only (a FIFO or /dev/zero given as a config is refused, never read).
    return read_json_file(path, "file")


# ---------------------------------------------------------------------------------------------
# Array steps (channels first), each the NumPy code of transformers.image_transforms


def _rescale(x: np.ndarray, scale: float) -> np.ndarray:
    # ref: image_transforms.rescale: upcast to float64, multiply, cast to float32
    return (x.astype(np.float64) * scale).astype(np.float32)


def _needs_scaling_for_pil(x: np.ndarray) -> bool:
    """ref: image_transforms._rescale_for_pil_conversion: may this image become uint8 as is?"""
    if x.dtype == np.uint8:
        return False
    with np.errstate(invalid="ignore", over="ignore"):  # NaN / inf cast to int: only the answer matters
        integral = np.allclose(x, x.astype(int))
        in_byte_range = bool(np.all(x >= 0) and np.all(x <= 255))
        in_unit_range = bool(np.all(x >= 0) and np.all(x <= 1))
    if integral:
        if in_byte_range:
            return False
        raise ImageLoadError(
            None,
            "unsupported",
            f"cannot resize a {x.dtype} image with values in [{x.min()}, {x.max()}]: integer values must be in 0..255",
        )
    if in_unit_range:
        return True
    raise ImageLoadError(
        None,
        "unsupported",
        f"cannot resize a {x.dtype} image with values in [{np.nanmin(x) if x.size else 0}, "
        f"{np.nanmax(x) if x.size else 0}]: float values must be in [0, 1] or integers in 0..255",
    )


def _center_crop(x: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    # ref: image_transforms.center_crop (channels first): zero padding where the image is smaller
    h, w = x.shape[-2:]
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    bottom, right = top + crop_h, left + crop_w
    if top >= 0 and bottom <= h and left >= 0 and right <= w:
        return x[..., top:bottom, left:right]
    new_h, new_w = max(crop_h, h), max(crop_w, w)
    canvas = np.zeros_like(x, shape=x.shape[:-2] + (new_h, new_w))
    top_pad, left_pad = math.ceil((new_h - h) / 2), math.ceil((new_w - w) / 2)
    canvas[..., top_pad : top_pad + h, left_pad : left_pad + w] = x
    top, bottom, left, right = top + top_pad, bottom + top_pad, left + left_pad, right + left_pad
    return canvas[..., max(0, top) : min(new_h, bottom), max(0, left) : min(new_w, right)]


def _normalize(x: np.ndarray, mean: float | list[float], std: float | list[float]) -> np.ndarray:
    # ref: image_transforms.normalize: float32 unless already float; mean/std in the image's dtype
    channels = x.shape[0]
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    for name, v in (("image_mean", mean), ("image_std", std)):
        if isinstance(v, list) and len(v) != channels:
            raise ImageLoadError(
                None,
                "unsupported",
                f"{name} has {len(v)} values but the image has {channels} channel{'s' if channels != 1 else ''} "
                "(set do_convert_rgb to true to convert images to RGB)",
            )
    mean_a = np.array(mean if isinstance(mean, list) else [mean] * channels, dtype=x.dtype)
    std_a = np.array(std if isinstance(std, list) else [std] * channels, dtype=x.dtype)
    return ((x.T - mean_a) / std_a).T


def _pad(x: np.ndarray, height: int, width: int) -> np.ndarray:
    # ref: PilBackend.pad: zeros at the bottom and right
    ph, pw = height - x.shape[1], width - x.shape[2]
    if ph < 0 or pw < 0:
        raise ImageLoadError(
            None,
            "unsupported",
            f"an image of {x.shape[2]}x{x.shape[1]} pixels is larger than pad_size {width}x{height}",
        )
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="constant", constant_values=0)


# ---------------------------------------------------------------------------------------------
# Input kinds and RGB conversion


def _is_tensor(x: Any) -> bool:
    # torch is imported only by whoever made the tensor: check the type's module, not isinstance
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "numpy")


def _image_type(x: Any) -> str | None:
    """'path', 'pil', 'array', 'tensor', 'batch' (4-D array or tensor) or None (not an image)."""
    if isinstance(x, (str, os.PathLike)):
        return "path"
    if isinstance(x, Image.Image):
        return "pil"
    if isinstance(x, np.ndarray) or _is_tensor(x):
        ndim = x.ndim if isinstance(x, np.ndarray) else x.dim()
        if ndim == 4:
            return "batch"
        return "array" if isinstance(x, np.ndarray) else "tensor"
    return None


def flatten_images(images: Any) -> list[Any]:
    """The single images in ``images``, as transformers' ``make_flat_list_of_images`` finds them.

    A path, PIL image or 2-D/3-D array or tensor is one image; a 4-D array or tensor is a batch;
    a list or tuple holds images, batches or lists of images (one level). Returns a non-empty list.

    Raises
    ------
    TypeError
        Something that is not an image, naming what was found.
    ValueError
        An empty list, or an array of another number of dimensions.
    """

    def expand(x: Any, nested: bool) -> list[Any]:
        kind = _image_type(x)
        if kind == "batch":
            return list(x)
        if kind is not None:
            if kind in ("array", "tensor"):
                ndim = x.ndim if kind == "array" else x.dim()
                if ndim not in (2, 3):
                    raise ValueError(
                        f"image array: expected (H, W, C), (C, H, W), (H, W) or a batch (N, H, W, C), found "
                        f"shape {tuple(x.shape)}"
                    )
            return [x]
        if isinstance(x, (list, tuple)) and not nested:
            return [y for item in x for y in expand(item, True)]
        raise TypeError(
            "image: expected a file path, PIL.Image.Image, numpy array or torch tensor (or a list of them), "
            f"found {type(x).__name__}"
        )

    if isinstance(images, (list, tuple)):
        items = [y for item in images for y in expand(item, False)]
    else:
        items = expand(images, True)
    if not items:
        raise ValueError("images: expected at least one image, found an empty list")
    return items


def pipeline_image(image: ImageLike) -> ImageLike:
    """The image as ``pipeline("image-classification")`` hands it to the image processor.

    Paths and PIL images go through :func:`load_image` (EXIF orientation, ``convert("RGB")``);
    arrays and tensors are returned unchanged. ``processor(pipeline_image(x))`` is the pipeline's
    ``pixel_values`` for ``x``.
    """
    kind = _image_type(image)
    if kind in ("path", "pil"):
        return load_image(image)
    if kind in ("array", "tensor", "batch"):
        return image
    raise TypeError(
        f"image: expected a file path, PIL.Image.Image, numpy array or torch tensor, found {type(image).__name__}"
    )


def _tensor_to_numpy(t: Any) -> np.ndarray:
    # ref: PilBackend.process_image: image.numpy() (vitc detaches and moves to the CPU first)
    try:
        return t.detach().cpu().numpy()
    except (TypeError, RuntimeError) as e:
        raise ImageLoadError(
            None, "unsupported", f"cannot read a torch tensor of dtype {t.dtype} as a NumPy array ({e})"
        ) from None


def _check_array(x: np.ndarray) -> None:
    if x.dtype.kind not in "biuf":
        raise ImageLoadError(
            None, "unsupported", f"image array: expected a bool, integer or float dtype, found dtype {x.dtype}"
        )
    if x.size == 0:
        raise ImageLoadError(None, "unsupported", f"image array: expected a non-empty image, found shape {x.shape}")


def _infer_channel_format(x: np.ndarray) -> str:
    # ref: image_utils.infer_channel_dimension_format(num_channels=(1, 3, 4)): first axis wins ties
    if x.shape[0] in _INFER_CHANNELS:
        return CHANNELS_FIRST
    if x.shape[-1] in _INFER_CHANNELS:
        return CHANNELS_LAST
    raise ImageLoadError(
        None,
        "unsupported",
        f"image array: cannot find the channel axis of shape {x.shape} (expected 1, 3 or 4 channels first or last)",
    )


def _convert_to_rgb_array(x: np.ndarray, fmt: str | None) -> np.ndarray:
    """ref: image_transforms.convert_to_rgb, the NumPy branch: 1 channel repeated, 4 composited on white."""
    fmt = _infer_channel_format(x) if fmt is None else fmt
    axis = -1 if fmt == CHANNELS_LAST else 0
    x = np.moveaxis(x, axis, -1)
    channels = x.shape[-1]
    if channels == 1:
        rgb = np.repeat(x, 3, axis=-1)
    elif channels == 4:
        if np.issubdtype(x.dtype, np.floating) and (x.min() < 0.0 or x.max() > 1.0):
            raise ImageLoadError(
                None,
                "unsupported",
                f"a float RGBA array must be in [0, 1] to be composited onto white, found [{x.min()}, {x.max()}]",
            )
        white = 255 if np.issubdtype(x.dtype, np.integer) else 1.0
        alpha = x[..., 3:4] / white
        composite = alpha * x[..., :3] + (1 - alpha) * white
        rgb = np.round(composite).astype(x.dtype) if white == 255 else composite.astype(x.dtype)
    else:
        rgb = x
    return np.moveaxis(rgb, -1, axis)


def _convert_to_rgb_pil(image: Image.Image) -> np.ndarray:
    """ref: image_transforms.convert_to_rgb, the PIL branch: alpha or a transparency entry onto white."""
    has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.array(image.convert("RGB"))


def to_rgb_pil(image: ImageLike) -> Image.Image:
    """An RGB PIL image to show for ``image`` (explain, attention maps).

    Paths and PIL images: :func:`load_image`, as the pipeline sees them. Arrays and tensors:
    converted as with ``do_convert_rgb`` (grayscale repeated, alpha composited onto white),
    floats in [0, 1] scaled to 0..255.
    """
    kind = _image_type(image)
    if kind in ("path", "pil"):
        return load_image(image)
    if kind not in ("array", "tensor"):
        raise TypeError(
            f"image: expected one file path, PIL.Image.Image, numpy array or torch tensor, found {_describe(image)}"
        )
    x = ImageProcessor(do_resize=False, do_rescale=False, do_normalize=False, do_convert_rgb=True)._to_channels_first(
        image, kind
    )
    if x.shape[0] != 3:
        raise ImageLoadError(None, "unsupported", f"image array: expected 1, 3 or 4 channels, found {x.shape[0]}")
    if _needs_scaling_for_pil(x):
        x = _rescale(x, 255)
    return Image.fromarray(np.ascontiguousarray(np.moveaxis(x, 0, -1).astype(np.uint8)))


# ---------------------------------------------------------------------------------------------
# Decoding files


_ORIENTATION_TAG = 0x0112
# ref: PIL.ImageOps.exif_transpose
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# First bytes of formats Pillow decodes: a file that starts like an image but cannot be identified
# is a damaged image, not "not an image".
_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF
    b"MM\x00*",
)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)


def _looks_like_image(head: bytes) -> bool:
    bmp = head[:2] == b"BM" and len(head) >= 10 and head[6:10] == b"\x00\x00\x00\x00"  # reserved bytes
    return head.startswith(_SIGNATURES) or bmp or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _pillow_error(path: Any, e: BaseException, context: str = "") -> ImageLoadError:
    """Classify an exception raised by Pillow while decoding or converting."""
    prefix = f"{context}: " if context else ""
    text = str(e) or type(e).__name__
    if isinstance(e, Image.DecompressionBombError):
        return _make_image_error(
            path,
            "too_large",
            f"too many pixels for Pillow's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS = "
            f"{Image.MAX_IMAGE_PIXELS}): {text}",
        )
    if isinstance(e, MemoryError):
        return _make_image_error(path, "too_large", f"{prefix}out of memory while decoding ({text})")
    if isinstance(e, OSError) and ("not available" in text or "not supported" in text):
        return _make_image_error(path, "unsupported", f"{prefix}{text}")
    if isinstance(e, ValueError) and not isinstance(e, SyntaxError) and ("conversion" in text or "mode" in text):
        return _make_image_error(path, "unsupported", f"{prefix}{text}")
    # OSError ("image file is truncated", "broken data stream"), SyntaxError, EOFError, struct.error, ...
    return _make_image_error(path, "corrupt", f"{prefix}truncated or corrupt image data ({type(e).__name__}: {text})")


def _open_regular_file(name: str) -> io.BufferedReader:
    """Open a regular file for reading, refusing special files without blocking on them."""
    try:
        st = os.stat(name)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageMissingError(name, "missing", "file not found") from None
    except OSError as e:
        raise ImageLoadError(name, "unreadable", e.strerror or str(e)) from None
    except ValueError as e:  # an embedded NUL byte
        raise ImageLoadError(name, "unreadable", str(e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageLoadError(name, "unreadable", "it is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError(name, "unreadable", f"not a regular file ({_file_type(st.st_mode)})")
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, open() still returns at once.
        fd = os.open(name, _OPEN_FLAGS)
    except FileNotFoundError:
        raise ImageMissingError(name, "missing", "file not found") from None
    except OSError as e:
        raise ImageLoadError(name, "unreadable", e.strerror or str(e)) from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise ImageLoadError(name, "unreadable", "not a regular file")
    return f


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


def _jpeg_without_exif(data: bytes) -> tuple[bytes, bytes] | None:
    """(JPEG bytes with the EXIF APP1 segments removed, the EXIF payload), or None if there are none.

    Pillow parses EXIF while opening a JPEG (for its dpi), so a damaged EXIF block can make a
    JPEG with intact pixels unopenable; without the block it decodes.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    out, exif, i = [data[:2]], b"", 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            out.append(data[i : i + 1])
            i += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data follows, no more headers to strip
            break
        if marker in (0x01, *range(0xD0, 0xD8)):
            out.append(data[i : i + 2])
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        segment = data[i : i + 2 + length]
        if marker == 0xE1 and segment[4:10] == b"Exif\x00\x00":
            exif = exif or segment[4:]  # Pillow reads the first block's header
        else:
            out.append(segment)
        i += 2 + length
    if not exif:
        return None
    out.append(data[i:])
    return b"".join(out), exif


def _orientation_method(get_orientation) -> Image.Transpose | None:
    """The transpose of an EXIF orientation, or None if there is none or it cannot be read."""
    try:
        return _TRANSPOSE.get(get_orientation())
    except Exception:  # damaged EXIF: keep the pixels as stored
        return None


def _upright(img: Image.Image, name: str | None, exif: bytes | None = None) -> Image.Image:
    """Decode ``img`` and apply its EXIF orientation (ref: ImageOps.exif_transpose in load_image).

    If the EXIF block is damaged, the pixels are kept: the orientation is applied when it can
    still be read, else the image stays as stored.
    """
    try:
        img.load()
    except Exception as e:
        raise _pillow_error(name, e) from None
    if exif is None:
        try:
            return ImageOps.exif_transpose(img)
        except MemoryError as e:
            raise _pillow_error(name, e) from None
        except Exception:
            method = _orientation_method(lambda: img.getexif().get(_ORIENTATION_TAG, 1))
    else:  # the EXIF block that had to be removed for the image to open

        def from_block() -> Any:
            block = Image.Exif()
            block.load(exif)
            return block.get(_ORIENTATION_TAG, 1)

        method = _orientation_method(from_block)
    try:
        return img.transpose(method) if method is not None else img.copy()
    except Exception as e:
        raise _pillow_error(name, e) from None


def open_image(path: str | os.PathLike) -> Image.Image:
    """Decode an image file: frame 0, EXIF orientation applied, in the mode it is stored in.

    What ``transformers.image_utils.load_image`` does before ``convert("RGB")``, except that no
    Pillow exception escapes and a damaged EXIF block does not lose the pixels (the orientation
    is applied if it can still be read). Special files are refused without being opened for long
    (a FIFO never blocks), and images over Pillow's decompression-bomb limit
    (``2 * PIL.Image.MAX_IMAGE_PIXELS`` pixels) are refused from their header, before decoding.

    Raises
    ------
    ImageLoadError
        With ``kind`` "missing" (also a FileNotFoundError), "unreadable", "not_an_image",
        "corrupt", "too_large" or "unsupported".
    """
    name = os.fspath(path)
    name = name.decode(errors="replace") if isinstance(name, bytes) else name
    with _open_regular_file(name) as f:
        head = f.read(16)
        if not head:
            raise ImageLoadError(name, "corrupt", "empty file (0 bytes)")
        f.seek(0)
        try:
            img = Image.open(f)
        except Exception as e:
            return _open_after_failure(f, name, head, e)
        with img:
            return _upright(img, name)


def _open_after_failure(f: io.BufferedReader, name: str, head: bytes, error: Exception) -> Image.Image:
    """Image.open failed: a JPEG whose EXIF block breaks Pillow's parser still decodes without it."""
    if isinstance(error, Image.DecompressionBombError):
        raise _pillow_error(name, error) from None
    if head.startswith(b"\xff\xd8"):
        f.seek(0)
        stripped = _jpeg_without_exif(f.read())
        if stripped is not None:
            try:
                img = Image.open(io.BytesIO(stripped[0]), formats=["JPEG"])
            except Exception:
                pass
            else:
                with img:
                    return _upright(img, name, exif=stripped[1])
    if isinstance(error, UnidentifiedImageError):
        if _looks_like_image(head):
            raise ImageLoadError(name, "corrupt", "truncated or corrupt image header (Pillow cannot identify it)")
        raise ImageLoadError(name, "not_an_image", "not an image file (PIL could not identify it)")
    raise _pillow_error(name, error) from None


def load_image(image: str | os.PathLike | Image.Image) -> Image.Image:
    """An image file or PIL image as transformers' ``image_utils.load_image`` returns it (RGB).

    Frame 0, EXIF orientation applied, then ``convert("RGB")``: an alpha band is dropped (the
    stored colours stay, no compositing), a palette transparency entry is kept as
    ``info["transparency"]``, 16-bit and 32-bit values above 255 are clipped by Pillow.
    Files are decoded by :func:`open_image`.

    Raises
    ------
    ImageLoadError
        The file cannot be used (``kind`` says why; ``"missing"`` is also a FileNotFoundError).
    TypeError
        ``image`` is neither a path nor a PIL image.
    """
    if isinstance(image, Image.Image):
        name, img = None, _upright(image, None)
    elif isinstance(image, (str, os.PathLike)):
        name, img = os.fspath(image), open_image(image)
    else:
        raise TypeError(f"load_image: expected a file path or PIL.Image.Image, found {type(image).__name__}")
    try:
        return img.convert("RGB")
    except Exception as e:
        raise _pillow_error(name, e, f"cannot convert mode {img.mode!r} to RGB") from None
