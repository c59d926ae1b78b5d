"""Image preprocessing that reproduces transformers' ViTImageProcessor (PIL / "slow" path).

image (file, PIL image or uint8 array) -> EXIF orientation -> RGB -> Pillow resize on uint8 ->
float64 rescale -> float32 -> float32 normalize -> (B, 3, H, W). The arithmetic follows
``transformers.image_transforms.rescale`` / ``normalize`` step by step so pixel values match
transformers exactly. It is not a data-augmentation library and does no cropping or padding.
The settings themselves (``preprocessor_config.json``) and their checks are :class:`vitc.config.PreprocessorConfig`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vitc.config import MAX_IMAGE_SIDE, PreprocessorConfig
from vitc.files import file_kind, read_json_file
from vitc.io.vitc_file import read_metadata

ImageLike = str | os.PathLike | Image.Image | np.ndarray

# 16-bit -> 8-bit: round(v / 257) maps 0..65535 onto 0..255 and inverts the usual 8->16 expansion
# v * 257 exactly. (Pillow's convert("RGB") would instead clip everything above 255 to white.)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_U16_TO_U8_DIVISOR = 257


class ImageProcessor(PreprocessorConfig):
    """Preprocess images for a ViT exactly as transformers' ViTImageProcessor (PIL path) does.

    Fields mirror the keys of a Hugging Face ``preprocessor_config.json``.

    Parameters
    ----------
    do_resize : bool
        Resize to ``size`` with Pillow (antialiased when shrinking, result rounded to uint8).
    size : dict
        ``{"height": H, "width": W}`` (aspect ratio not kept), ``{"shortest_edge": S}`` (short side
        to S, long side ``int(S * long / short)``) or ``{"shortest_edge": S, "longest_edge": L}``,
        as in transformers' PIL backend. An int means a square. Each value is in 1..8192
        (``MAX_IMAGE_SIDE``).
    resample : int
        Pillow filter code: 0 NEAREST, 1 LANCZOS, 2 BILINEAR (default), 3 BICUBIC, 4 BOX, 5 HAMMING.
    do_rescale : bool
        Multiply by ``rescale_factor`` (in float64, then cast to float32).
    rescale_factor : float
        Default 1/255.
    do_normalize : bool
        ``(x - image_mean) / image_std`` in float32.
    image_mean, image_std : list of float
        Per-channel RGB values, default 0.5 each.
    do_convert_rgb : bool or None
        Kept for round trips with HF files. vitc always converts to RGB, because the model needs
        three channels; transformers would fail on a non-RGB input without it.

    Notes
    -----
    Conversion to RGB follows transformers for each kind of input. PIL images and RGBA arrays go
    through ``convert_to_rgb``: an alpha band or a transparency entry is composited onto white.
    Files go through ``load_image`` first, which calls ``convert("RGB")`` and so *drops* an alpha
    band (a transparent pixel keeps its stored colour; pass ``PIL.Image.open(path)`` to composite
    instead). A palette transparency entry survives that as a colour, and pixels of that colour
    become white.
    Everything else goes through ``PIL.Image.convert("RGB")`` (CMYK, palette, 1-bit, grayscale,
    32-bit ``I`` and float ``F``, the last two clipped to 0..255 by Pillow). Deviations: 16-bit
    images (``I;16*`` modes) are scaled to 8 bits as ``round(v / 257)`` instead of being clipped,
    and the EXIF orientation is applied to PIL images too (transformers does it for files only).
    """

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
        meta = read_metadata(p)
        if meta.get("preprocessor"):
            return cls.from_dict(meta["preprocessor"])
        return cls._from_model_config(meta.get("config") or {}, str(p))

    @classmethod
    def _from_model_config(cls, config: dict[str, Any], where: str) -> ImageProcessor:
        image_size = config.get("image_size")
        if image_size is None:
            raise ValueError(f"{where}: no preprocessor config and no 'image_size' in the model config")
        return cls(size=image_size)  # __post_init__ checks it and makes an int a square

    # ---- processing ---------------------------------------------------------------------------

    def __call__(
        self, images: ImageLike | Sequence[ImageLike], return_tensors: str | None = None
    ) -> np.ndarray:
        """Preprocess one image or a list of images.

        Parameters
        ----------
        images : path, PIL.Image, np.ndarray or a list of them
            Files (str / PathLike), PIL images, or uint8 arrays shaped (H, W), (H, W, 1),
            (H, W, 3) RGB or (H, W, 4) RGBA.
        return_tensors : {None, "np", "pt"}
            ``"pt"`` returns a torch tensor (torch imported only then).

        Returns
        -------
        np.ndarray
            (B, 3, H, W) float32; a single image gives B = 1.

        Raises
        ------
        FileNotFoundError
            A file does not exist.
        ValueError
            A file is not a readable image, exceeds Pillow's decompression-bomb limit, or an array
            has the wrong dtype or shape; with shortest-edge sizes, images that come out at
            different sizes cannot be stacked.
        """
        if return_tensors not in (None, "np", "pt"):
            raise ValueError(f"return_tensors: expected None, 'np' or 'pt', found {return_tensors!r}")
        if isinstance(images, (list, tuple)):
            items = list(images)
            if not items:
                raise ValueError("images: expected at least one image, found an empty list")
        else:
            items = [images]
        out = [self.preprocess_one(item) for item in items]
        shapes = {x.shape for x in out}
        if len(shapes) > 1:
            raise ValueError(f"images resized to different shapes {sorted(shapes)} cannot form one batch")
        batch = np.stack(out)
        if return_tensors == "pt":
            import torch

            return torch.from_numpy(batch)
        return batch

    def preprocess_one(self, image: ImageLike) -> np.ndarray:
        """Preprocess a single image to (3, H, W) float32."""
        rgb = to_rgb_pil(image)
        if self.do_resize:
            height, width = self.output_size(rgb.height, rgb.width)
            # ref: transformers.image_transforms.resize -> PIL.Image.resize((width, height), resample)
            rgb = rgb.resize((width, height), resample=self.resample)
        x = np.asarray(rgb)  # (H, W, 3) uint8
        if self.do_rescale:
            # ref: image_transforms.rescale: upcast to float64 first, multiply, then cast to float32
            x = (x.astype(np.float64) * self.rescale_factor).astype(np.float32)
        else:
            x = x.astype(np.float32)
        if self.do_normalize:
            # ref: image_transforms.normalize: mean/std as float32 arrays, subtract then divide
            mean = np.asarray(self.image_mean, dtype=np.float32)
            std = np.asarray(self.image_std, dtype=np.float32)
            x = (x - mean) / std
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after resizing an image of the given size (transformers' rules)."""
        size = self.size
        if "height" in size:
            return size["height"], size["width"]
        s = size["shortest_edge"]
        if "longest_edge" in size:
            return _size_with_aspect_ratio(height, width, s, size["longest_edge"])
        # ref: image_transforms.get_resize_output_image_size(default_to_square=False)
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = s, int(s * long / short)
        if new_long > MAX_IMAGE_SIDE:
            raise ValueError(
                f"image of {width}x{height} pixels: resizing its short side to {s} makes the long side "
                f"{new_long} > {MAX_IMAGE_SIDE} (too elongated for size {{'shortest_edge': {s}}})"
            )
        return (new_long, new_short) if width <= height else (new_short, new_long)


def _size_with_aspect_ratio(height: int, width: int, size: int, max_size: int) -> tuple[int, int]:
    # ref: transformers.image_transforms.get_size_with_aspect_ratio
    raw_size = None
    min_side, max_side = float(min(height, width)), float(max(height, width))
    if max_side / min_side * size > max_size:
        raw_size = max_size * min_side / max_side
        size = round(raw_size)
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


# ---- loading and RGB conversion ---------------------------------------------------------------


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file, apply its EXIF orientation and return it fully decoded.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not an image Pillow can decode, is truncated, or exceeds Pillow's
        decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image file not found: '{p}'")
    if p.is_dir():
        raise ValueError(f"cannot read image '{p}': it is a directory")
    try:
        with Image.open(p) as img:
            img.load()
            return ImageOps.exif_transpose(img)
    except UnidentifiedImageError:
        raise ValueError(f"cannot read image '{p}': not an image file (PIL could not identify it)") from None
    except Image.DecompressionBombError as e:
        raise ValueError(
            f"cannot read image '{p}': too many pixels for Pillow's decompression-bomb limit "
            f"(PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}): {e}"
        ) from None
    # Truncated or corrupt data; Pillow raises SyntaxError for some broken formats.
    except (OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image '{p}': {e}") from None


def to_rgb_pil(image: ImageLike) -> Image.Image:
    """Turn a file path, PIL image or uint8 array into an RGB PIL image (see ImageProcessor Notes).

    Each input kind is converted as transformers converts it: a file goes through ``load_image``
    (``convert("RGB")``, which drops an alpha band) and then ``convert_to_rgb`` like a PIL image,
    which composites alpha or a transparency entry onto white; RGBA arrays are blended onto white.
    """
    if isinstance(image, (str, os.PathLike)):
        img = load_image(image)
        if img.mode not in _SIXTEEN_BIT_MODES:
            # ref: transformers.image_utils.load_image ends with image.convert("RGB"): alpha is dropped.
            # Pillow keeps a palette transparency entry as an RGB colour in info["transparency"],
            # which convert_to_rgb below then composites (pixels of that colour become white).
            img = _convert(img, "RGB")
        return _pil_to_rgb(img)
    if isinstance(image, Image.Image):
        return _pil_to_rgb(ImageOps.exif_transpose(image))
    if isinstance(image, np.ndarray):
        return Image.fromarray(_array_to_rgb(image))
    raise TypeError(
        f"image: expected a file path, PIL.Image.Image or numpy uint8 array, found {type(image).__name__}"
    )


def _convert(img: Image.Image, mode: str) -> Image.Image:
    try:
        return img.convert(mode)
    except ValueError as e:
        raise ValueError(f"cannot convert a PIL image of mode {img.mode!r} to {mode}: {e}") from None


def _pil_to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in _SIXTEEN_BIT_MODES:
        v = np.asarray(img).astype(np.uint32)
        gray = ((v + _U16_TO_U8_DIVISOR // 2) // _U16_TO_U8_DIVISOR).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=-1))
    # ref: transformers.image_transforms.convert_to_rgb: alpha or a transparency entry -> on white.
    # (LAB's "A" band is a colour axis, not alpha.)
    has_alpha = (img.mode != "LAB" and "A" in img.getbands()) or img.info.get("transparency") is not None
    if has_alpha:
        rgba = _convert(img, "RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == "RGB" else _convert(img, "RGB")


def _array_to_rgb(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        raise ValueError(
            f"image array: expected dtype uint8 (H, W) or (H, W, C) with C in (1, 3, 4), found dtype {a.dtype}"
        )
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(
            f"image array: expected shape (H, W) or (H, W, C) with C in (1, 3, 4), found {a.shape}"
        )
    if a.shape[-1] == 1:
        return np.repeat(a, 3, axis=-1)
    if a.shape[-1] == 4:
        # ref: transformers.image_transforms.convert_to_rgb (numpy branch): blend onto white
        alpha = a[..., 3:4] / 255
        composite = alpha * a[..., :3] + (1 - alpha) * 255
        return np.round(composite).astype(np.uint8)
    return np.ascontiguousarray(a)
