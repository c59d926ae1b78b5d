"""What a checkpoint's two JSON files say: ``config.json`` (:class:`ViTConfig`) and
``preprocessor_config.json`` (:class:`PreprocessorConfig`), parsed and validated.

Field names mirror transformers' ``ViTConfig`` / ``ViTImageProcessor`` so a checkpoint's files map one to
one; this module only parses and validates: it reads no weights, decodes no image and runs no model code.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from vitc.files import file_kind, read_json_file, short_repr

__all__ = [
    "CONFIG_ERRORS",
    "MAX_IMAGE_SIDE",
    "SUPPORTED_ACTIVATIONS",
    "PreprocessorConfig",
    "ViTConfig",
    "check_preprocessor",
]

# Every activation a `model_type: vit` checkpoint is known to use (see SPEC.md). The names are
# transformers' ACT2FN keys, so a config.json value is looked up verbatim.
SUPPORTED_ACTIVATIONS: tuple[str, ...] = (
    "gelu",
    "gelu_new",
    "gelu_pytorch_tanh",
    "gelu_fast",
    "quick_gelu",
    "relu",
)

# The pooler of a bare ViTModel is tanh(dense(h[:, 0])); transformers allows other ACT2FN names but no
# ViT checkpoint uses them, so anything else is refused rather than silently computed wrong.
SUPPORTED_POOLER_ACTIVATIONS: tuple[str, ...] = ("tanh",)

Size2 = int | tuple[int, int]


def _as_size(name: str, value: Any) -> Size2:
    """Normalise an HF ``image_size``/``patch_size`` value (int or [h, w]) to int or (h, w)."""
    if isinstance(value, bool):
        raise ValueError(f"config {name}: expected a positive int or [height, width] pair, found {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"config {name}: expected a positive int, found {value}")
        return value
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"config {name}: expected a [height, width] pair of ints, found {value!r}")
        h, w = value
        if h <= 0 or w <= 0:
            raise ValueError(f"config {name}: expected positive sizes, found {list(value)}")
        return (h, w)
    raise ValueError(f"config {name}: expected a positive int or [height, width] pair, found {value!r}")


def _pair(size: Size2) -> tuple[int, int]:
    return size if isinstance(size, tuple) else (size, size)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"config {name}: expected a positive int, found {value!r}")
    return value


@dataclass
class ViTConfig:
    """Architecture hyper-parameters of a ViT checkpoint (transformers ``ViTConfig`` names).

    Defaults are transformers' ``ViTConfig`` defaults (ViT-B/16 at 224x224). Unknown keys of a
    ``config.json`` (dropout rates, ``initializer_range``, ``transformers_version``...) do not affect
    inference and are dropped by :meth:`from_dict`.

    Attributes
    ----------
    hidden_size, num_hidden_layers, num_attention_heads, intermediate_size : int
        C, L, H and F in vitc's dimension alphabet.
    hidden_act : str
        One of :data:`SUPPORTED_ACTIVATIONS`.
    layer_norm_eps : float
        Epsilon of every LayerNorm.
    image_size, patch_size : int or (int, int)
        Square size or (height, width), as written in config.json.
    num_channels : int
        Input channels (3 for RGB).
    qkv_bias : bool
        Whether the query/key/value projections have a bias.
    pooler_output_size : int or None
        Output size of the optional ViTModel pooler; None means ``hidden_size``.
    pooler_act : str
        Pooler activation (only "tanh" is supported).
    id2label, label2id : dict
        Class names; ``id2label`` keys are ints (JSON stores them as strings). The default is
        transformers' two labels LABEL_0/LABEL_1; an empty ``id2label`` means no labels
        (``num_labels=0``: a ViTForImageClassification whose classifier is the identity).
    architectures : list of str or None
        e.g. ["ViTForImageClassification"], kept for information.
    model_type : str
        Must be "vit".
    """

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    image_size: Size2 = 224
    patch_size: Size2 = 16
    num_channels: int = 3
    qkv_bias: bool = True
    pooler_output_size: int | None = None
    pooler_act: str = "tanh"
    id2label: dict[int, str] = field(default_factory=lambda: {0: "LABEL_0", 1: "LABEL_1"})
    label2id: dict[str, int] = field(default_factory=dict)
    architectures: list[str] | None = None
    model_type: str = "vit"

    def __post_init__(self) -> None:
        for name in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "num_channels",
        ):
            _positive_int(name, getattr(self, name))
        if self.pooler_output_size is not None:
            _positive_int("pooler_output_size", self.pooler_output_size)
        self.image_size = _as_size("image_size", self.image_size)
        self.patch_size = _as_size("patch_size", self.patch_size)
        if self.model_type != "vit":
            raise ValueError(f"config model_type: expected 'vit', found {self.model_type!r}")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"config hidden_act: expected one of {', '.join(SUPPORTED_ACTIVATIONS)}, "
                f"found {self.hidden_act!r}"
            )
        if self.pooler_act not in SUPPORTED_POOLER_ACTIVATIONS:
            raise ValueError(
                f"config pooler_act: expected one of {', '.join(SUPPORTED_POOLER_ACTIVATIONS)}, "
                f"found {self.pooler_act!r}"
            )
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"config: hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        for axis, img, patch in zip(("height", "width"), _pair(self.image_size), _pair(self.patch_size)):
            if img % patch != 0:
                raise ValueError(
                    f"config: image {axis} ({img}) must be a multiple of the patch {axis} ({patch})"
                )
        eps = self.layer_norm_eps
        if (
            isinstance(eps, bool)
            or not isinstance(eps, (int, float))
            or not (eps >= 0 and math.isfinite(eps))
        ):
            raise ValueError(f"config layer_norm_eps: expected a finite float >= 0, found {eps!r}")
        self.layer_norm_eps = float(eps)
        if not isinstance(self.qkv_bias, bool):
            raise ValueError(f"config qkv_bias: expected true or false, found {self.qkv_bias!r}")
        archs = self.architectures
        if archs is not None:
            # Kept for information, and written to .vitc headers: strings only, so nothing nested
            # or huge rides along into a file.
            if not isinstance(archs, (list, tuple)) or not all(isinstance(a, str) for a in archs):
                raise ValueError(f"config architectures: expected a list of class names, found {short_repr(archs)}")
            self.architectures = list(archs)
        if self.id2label is None:
            self.id2label = {0: "LABEL_0", 1: "LABEL_1"}
        # JSON object keys are strings; transformers turns id2label keys back into ints, so do we.
        try:
            self.id2label = {int(k): str(v) for k, v in (self.id2label or {}).items()}
            self.label2id = {str(k): int(v) for k, v in (self.label2id or {}).items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"config id2label/label2id: expected int ids and str labels ({exc})") from None

    # ---- derived sizes

    @property
    def head_dim(self) -> int:
        """D = hidden_size / num_attention_heads."""
        return self.hidden_size // self.num_attention_heads

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) the position table was trained for."""
        return _pair(self.image_size)

    @property
    def patch_hw(self) -> tuple[int, int]:
        """(height, width) of one patch."""
        return _pair(self.patch_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patches per column and per row of the stored position table."""
        (ih, iw), (ph, pw) = self.image_hw, self.patch_hw
        return ih // ph, iw // pw

    @property
    def num_patches(self) -> int:
        gh, gw = self.grid_size
        return gh * gw

    @property
    def num_positions(self) -> int:
        """T0 = 1 + num_patches, the rows of the position table (CLS first)."""
        return 1 + self.num_patches

    @property
    def pooler_size(self) -> int:
        """Output size of the pooler (``pooler_output_size`` or ``hidden_size``)."""
        return self.pooler_output_size or self.hidden_size

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    # ---- (de)serialisation

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ViTConfig:
        """Build a config from a ``config.json`` dict, ignoring keys that do not affect inference.

        Parameters
        ----------
        d : dict
            Parsed config.json.

        Returns
        -------
        ViTConfig

        Raises
        ------
        ValueError
            If ``d`` is not a dict or a value is invalid.
        """
        if not isinstance(d, dict):
            raise ValueError(f"config: expected a JSON object, found {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if kwargs.get("model_type") is None:
            kwargs.pop("model_type", None)
        if kwargs.get("id2label") is None:
            # transformers' PretrainedConfig: without a label table there are num_labels (default 2)
            # labels named LABEL_i, and config.json omits them when they are the default. A table that
            # is present wins over num_labels, even when empty (num_labels=0 saves "id2label": {}).
            n = d.get("num_labels", 2)
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 1_000_000:
                raise ValueError(f"config num_labels: expected an int in 0..1000000, found {n!r}")
            kwargs["id2label"] = {i: f"LABEL_{i}" for i in range(n)}
        config = cls(**kwargs)
        config._json_keys = frozenset(d)
        return config

    def field_source(self, name: str) -> str:
        """``name=value`` for messages, marked "(default)" if the dict it was read from lacked it.

        ``num_labels`` is written ``num_labels=len(id2label)=K``. Configs built directly (not by
        :meth:`from_dict`) are never marked.
        """
        keys = getattr(self, "_json_keys", None)
        if name == "num_labels":
            text, given = f"num_labels=len(id2label)={self.num_labels}", ("id2label", "num_labels")
        else:
            value = getattr(self, name)
            text, given = f"{name}={list(value) if isinstance(value, tuple) else value}", (name,)
        return text + (" (default)" if keys is not None and not keys.intersection(given) else "")

    @classmethod
    def from_json_file(cls, path: str | os.PathLike[str]) -> ViTConfig:
        """Read a ``config.json`` file (or a folder containing one).

        Parameters
        ----------
        path : str or PathLike
            The JSON file, or a Hugging Face model folder.

        Returns
        -------
        ViTConfig

        Raises
        ------
        ValueError
            For malformed JSON (the limits of :func:`vitc.files.load_json`) or an invalid config.
        FileNotFoundError, IsADirectoryError, PermissionError, vitc.files.UnreadableFileError
            If ``path`` names no file, a folder without config.json, a file this user may not read,
            or a FIFO, device or pseudo-file.
        """
        path = os.fspath(path)
        if file_kind(path, "config file") == "directory":
            path = os.path.join(path, "config.json")
        d = read_json_file(path, "file")  # vitc/files.py: regular files only, one JSON policy
        try:
            return cls.from_dict(d)
        except CONFIG_ERRORS as exc:
            raise ValueError(f"{path}: {exc}"[:2000]) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict with config.json names (id2label keys as strings, pairs as lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            elif f.name == "id2label":
                v = {str(k): lbl for k, lbl in v.items()}
            elif isinstance(v, (dict, list)):
                v = type(v)(v)
            out[f.name] = v
        return out


# ---------------------------------------------------------------------------------------------------
# preprocessor_config.json: the settings of ImageProcessor (vitc/preprocess.py), checked here without
# Pillow so that the readers (vitc/io/) can refuse a bad file when they load it.

# ref: transformers.image_utils.IMAGENET_STANDARD_MEAN / _STD (the ViTImageProcessor defaults)
IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)
DEFAULT_SIZE = 224
# Pillow resampling codes as stored in preprocessor_config.json ("resample": 2).
RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
# Keys that would change the processing if enabled; vitc does not implement them, so refuse them
# instead of silently producing different pixels.
_UNSUPPORTED_IF_TRUE = ("do_center_crop", "do_pad", "do_reduce_labels")


# Largest accepted height / width / edge of ``size``. ViT checkpoints use 224..1024; 8192 leaves room
# for unusual ones while bounding one image's pixel buffer (8192^2 * 3 float32 = 805 MB), so a
# hostile preprocessor config cannot ask for a multi-terabyte allocation.
MAX_IMAGE_SIDE = 8192


def _side(name: str, value: Any) -> int:
    """One side length: a positive int (an integral float such as 224.0 is accepted) <= MAX_IMAGE_SIDE."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an int in 1..{MAX_IMAGE_SIDE}, found {value!r}")
    if not 1 <= value <= MAX_IMAGE_SIDE:
        raise ValueError(f"{name}: expected an int in 1..{MAX_IMAGE_SIDE}, found {value}")
    return int(value)


def _normalize_size(size: Any) -> dict[str, int]:
    """Accept the size spellings HF's get_size_dict accepts for ViT (default_to_square=True)."""
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return {"height": _side("size height", size[0]), "width": _side("size width", size[1])}
    if isinstance(size, dict):
        keys = {k for k, v in size.items() if v is not None}
        if keys not in ({"height", "width"}, {"shortest_edge"}, {"shortest_edge", "longest_edge"}):
            raise ValueError(
                "size: expected keys {'height', 'width'}, {'shortest_edge'} or "
                f"{{'shortest_edge', 'longest_edge'}}, found {sorted(map(str, keys))}"
            )
        order = ("height", "width", "shortest_edge", "longest_edge")
        return {k: _side(f"size {k}", size[k]) for k in order if k in keys}
    if isinstance(size, (numbers.Integral, float)):
        side = _side("size", size)
        return {"height": side, "width": side}
    raise ValueError(f"size: expected an int, (height, width) or a dict, found {size!r}")


def _per_channel(name: str, value: Any) -> list[float]:
    """Three finite numbers (R, G, B) from a number or a length-3 sequence."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = [value] * 3
    elif isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(f"{name}: expected a number or 3 numbers (R, G, B), found {value!r}")
    if len(value) != 3:
        raise ValueError(f"{name}: expected 3 values (R, G, B), found {len(value)}: {list(value)!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{name}: expected 3 finite numbers (R, G, B), found {list(value)!r}")
        out.append(float(v))
    return out


def _flag(name: str, value: Any, allow_none: bool = False) -> bool | None:
    """A JSON boolean (``"false"`` as a string would otherwise count as true)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected true or false{' or null' if allow_none else ''}, found {value!r}")
    return bool(value)


@dataclass
class PreprocessorConfig:
    """The settings of a ``preprocessor_config.json``, each checked; :class:`vitc.ImageProcessor` adds the
    image processing (its docstring describes every field)."""

    do_resize: bool = True
    size: dict[str, int] = field(default_factory=lambda: {"height": DEFAULT_SIZE, "width": DEFAULT_SIZE})
    resample: int = 2
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: list[float] = field(default_factory=lambda: list(IMAGENET_STANDARD_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(IMAGENET_STANDARD_STD))
    do_convert_rgb: bool | None = None

    def __post_init__(self) -> None:
        # Every field is checked here, so a bad value from a file or a caller fails at construction
        # with its name, not later inside Pillow or NumPy.
        self.do_resize = _flag("do_resize", self.do_resize)
        self.do_rescale = _flag("do_rescale", self.do_rescale)
        self.do_normalize = _flag("do_normalize", self.do_normalize)
        self.do_convert_rgb = _flag("do_convert_rgb", self.do_convert_rgb, allow_none=True)
        self.size = _normalize_size(self.size)
        if isinstance(self.resample, float) and self.resample.is_integer():
            self.resample = int(self.resample)
        if isinstance(self.resample, bool) or not isinstance(self.resample, numbers.Integral) or (
            int(self.resample) not in RESAMPLE_NAMES
        ):
            raise ValueError(
                f"resample: expected a Pillow filter code in {sorted(RESAMPLE_NAMES)}, found {self.resample!r}"
            )
        self.resample = int(self.resample)
        factor = self.rescale_factor
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not math.isfinite(factor):
            raise ValueError(f"rescale_factor: expected a finite number such as 1/255, found {factor!r}")
        self.rescale_factor = float(factor)
        self.image_mean = _per_channel("image_mean", self.image_mean)
        self.image_std = _per_channel("image_std", self.image_std)
        if any(s == 0 for s in self.image_std):
            raise ValueError(f"image_std: expected non-zero values, found {self.image_std}")

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessorConfig:
        """Build from a ``preprocessor_config.json`` dict.

        Descriptive keys (``image_processor_type`` ...) and other unknown keys are ignored; enabling a
        step vitc does not implement (center crop, padding) raises ``ValueError``, and so does a
        value of the wrong type or out of range (the message names the key and what was expected):
        the dict may come from an untrusted file.
        """
        if not isinstance(d, dict):
            raise ValueError(f"preprocessor config: expected a JSON object (dict), found {type(d).__name__}")
        for key in _UNSUPPORTED_IF_TRUE:
            if d.get(key):
                raise ValueError(
                    f"preprocessor config: '{key}: true' is not supported by vitc (ViT checkpoints do not use it)"
                )
        names = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in d.items() if k in names and v is not None}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The ``preprocessor_config.json`` dict (``from_dict(to_dict())`` round-trips)."""
        return {
            "do_convert_rgb": self.do_convert_rgb,
            "do_normalize": self.do_normalize,
            "do_rescale": self.do_rescale,
            "do_resize": self.do_resize,
            "image_mean": list(self.image_mean),
            "image_processor_type": "ViTImageProcessor",
            "image_std": list(self.image_std),
            "resample": self.resample,
            "rescale_factor": self.rescale_factor,
            "size": dict(self.size),
        }


# What ViTConfig.from_dict / PreprocessorConfig.from_dict can raise on a hostile config besides
# ValueError (values of the wrong type reaching arithmetic or comparisons); the readers report all of
# them as ValueError naming the file.
CONFIG_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)


def check_preprocessor(where: str, preprocessor: dict[str, Any]) -> None:
    """Refuse a preprocessor config vitc cannot apply now, naming where it came from."""
    try:
        PreprocessorConfig.from_dict(preprocessor)
    except CONFIG_ERRORS as exc:
        raise ValueError(f"{where}: invalid preprocessor config: {exc}"[:2000]) from None
