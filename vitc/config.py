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
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from vitc import _core
from vitc.files import file_kind, read_json_file, short_repr

__all__ = [
    "CONFIG_ERRORS",
    "MAX_IMAGE_SIDE",
    "SUPPORTED_ACTIVATIONS",
    "PreprocessorConfig",
    "ViTConfig",
    "check_preprocessor",
]

# The activations vitc computes (the C core's, names as transformers' ACT2FN keys, so a config.json
# value is looked up verbatim), for the blocks' MLP (hidden_act) and the pooler (pooler_act).
SUPPORTED_ACTIVATIONS: tuple[str, ...] = tuple(_core.ACTIVATIONS)
# ACT2FN names that are the same function under another name (transformers: GELUActivation(use_gelu_python)
# computes the erf GELU in Python; numerically the same function).
ACTIVATION_ALIASES: dict[str, str] = {"gelu_python": "gelu"}
# transformers' ACT2FN keys (transformers/activations.py): a name here that vitc lacks is reported as
# "not implemented", any other name as unknown to transformers too.
TRANSFORMERS_ACTIVATIONS: frozenset[str] = frozenset(
    "gelu gelu_10 gelu_accurate gelu_fast gelu_new gelu_python gelu_python_tanh gelu_pytorch_tanh hardswish "
    "laplace leaky_relu linear mish prelu quick_gelu relu relu2 relu6 sigmoid silu sqrtsoftplus swish tanh "
    "xielu".split()
)
# transformers' ViTConfig and DeiTConfig share every field vitc reads; model_type names which.
MODEL_TYPES: tuple[str, ...] = ("vit", "deit")
PROBLEM_TYPES: tuple[str, ...] = ("regression", "single_label_classification", "multi_label_classification")
# timm's global_pool values vitc runs: "token" (the CLS token, transformers' ViT) or "avg" (mean of the
# patch tokens, then fc_norm). Not a transformers field: set by the timm converter (vitc/io/timm.py).
GLOBAL_POOLS: tuple[str, ...] = tuple(_core.POOLS)


def _activation(name: str, value: Any) -> str:
    """A supported activation name (aliases resolved), or a ValueError saying why not."""
    if not isinstance(value, str):
        raise ValueError(f"config {name}: expected an activation name such as 'gelu', found {short_repr(value)}")
    value = ACTIVATION_ALIASES.get(value, value)
    if value in SUPPORTED_ACTIVATIONS:
        return value
    why = (
        "a transformers activation vitc does not implement"
        if value in TRANSFORMERS_ACTIVATIONS
        else "not an activation transformers knows either (ACT2FN)"
    )
    raise ValueError(f"config {name}: expected one of {', '.join(SUPPORTED_ACTIVATIONS)}, found {value!r} ({why})")


def _bool_field(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"config {name}: expected true or false, found {short_repr(value)}")
    return bool(value)


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
        One of :data:`SUPPORTED_ACTIVATIONS` (or an alias of one, :data:`ACTIVATION_ALIASES`);
        another name is refused, saying whether transformers knows it.
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
        Pooler activation: any of :data:`SUPPORTED_ACTIVATIONS` (transformers' default "tanh").
    id2label, label2id : dict
        Class names; ``id2label`` keys are ints (JSON stores them as strings). The default is
        transformers' two labels LABEL_0/LABEL_1; an empty ``id2label`` means no labels
        (``num_labels=0``: a ViTForImageClassification whose classifier is the identity).
    architectures : list of str or None
        e.g. ["ViTForImageClassification"], kept for information.
    model_type : str
        "vit" or "deit" (DeiT: a distillation token after CLS; its config has the same fields).
    hidden_dropout_prob, attention_probs_dropout_prob, initializer_range : float
        Training settings, kept unchanged and without effect on inference.
    encoder_stride : int
        Upsampling factor of ViTForMaskedImageModeling's decoder (its pixel shuffle).
    output_attentions, output_hidden_states, return_dict : bool
        Defaults of the model call's arguments, as in transformers (``use_return_dict`` in a
        config.json is read as ``return_dict``).
    problem_type : str or None
        "regression", "single_label_classification", "multi_label_classification" or None:
        which function ``predict`` applies to the logits (as the image-classification pipeline).
    global_pool : str
        "token" (the CLS token, every transformers checkpoint) or "avg" (timm: the mean of the
        patch tokens, then ``fc_norm``); set by the timm converter.

    Image sizes that the patch size does not divide are valid: the patch convolution drops the
    remainder, as in transformers.
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
    # Training-only settings of transformers' ViTConfig: kept (and written back), no effect here.
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    encoder_stride: int = 16
    # PretrainedConfig's output defaults, honoured by ViT.__call__ (its arguments override them).
    output_attentions: bool = False
    output_hidden_states: bool = False
    return_dict: bool = True
    problem_type: str | None = None
    global_pool: str = "token"

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
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"config model_type: expected one of {', '.join(MODEL_TYPES)}, found {self.model_type!r}")
        self.hidden_act = _activation("hidden_act", self.hidden_act)
        self.pooler_act = _activation("pooler_act", self.pooler_act)
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"config: hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        # ref: ViTPatchEmbeddings: Conv2d(kernel=stride=patch) drops the rows and columns the patch does
        # not divide; an image smaller than one patch has no patch at all.
        for axis, img, patch in zip(("height", "width"), _pair(self.image_size), _pair(self.patch_size)):
            if img < patch:
                raise ValueError(f"config: image {axis} ({img}) is smaller than the patch {axis} ({patch})")
        _positive_int("encoder_stride", self.encoder_stride)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"config {name}: expected a finite number, found {short_repr(v)}")
            setattr(self, name, float(v))
        for name in ("output_attentions", "output_hidden_states", "return_dict"):
            setattr(self, name, _bool_field(name, getattr(self, name)))
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(
                f"config problem_type: expected one of {', '.join(PROBLEM_TYPES)} or null, found "
                f"{short_repr(self.problem_type)}"
            )
        if self.global_pool not in GLOBAL_POOLS:
            raise ValueError(
                f"config global_pool: expected one of {', '.join(GLOBAL_POOLS)}, found {short_repr(self.global_pool)}"
            )
        eps = self.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (eps >= 0 and math.isfinite(eps)):
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
        if self.problem_type == "single_label_classification" and self.num_labels == 1:
            # ref: PretrainedConfig.__post_init__ refuses this too
            raise ValueError(
                'config problem_type: "single_label_classification" requires more than one label (found 1); '
                'use "regression" for a single-output head'
            )

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
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches: CLS, and DeiT's distillation token."""
        return 2 if self.model_type == "deit" else 1

    @property
    def num_positions(self) -> int:
        """T0 = prefix + num_patches, the rows of the position table (CLS first)."""
        return self.num_prefix_tokens + self.num_patches

    @property
    def pooler_size(self) -> int:
        """Output size of the pooler (``pooler_output_size`` or ``hidden_size``)."""
        return self.pooler_output_size or self.hidden_size

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def use_return_dict(self) -> bool:
        """transformers' (deprecated) name of :attr:`return_dict`."""
        return self.return_dict

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
        if "use_return_dict" in d and "return_dict" not in d:
            kwargs["return_dict"] = d["use_return_dict"]
        for name in ("output_attentions", "output_hidden_states", "return_dict", "pooler_act", "encoder_stride"):
            if kwargs.get(name, 0) is None:  # null: the default, as transformers' config does
                kwargs.pop(name)
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

# ref: transformers.image_utils.IMAGENET_STANDARD_MEAN / _STD (the ViT image processor defaults)
IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)
DEFAULT_SIZE = 224
# Pillow resampling codes as stored in preprocessor_config.json ("resample": 2).
RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
CHANNELS_FIRST, CHANNELS_LAST = "channels_first", "channels_last"
_PER_CHANNEL_LENGTHS = (1, 3, 4)

# Largest accepted height / width / edge of any size in a preprocessor config. ViT checkpoints use
# 224..1024; 8192 leaves room for unusual ones while bounding one image's pixel buffer
# (8192^2 * 3 float32 = 805 MB), so a hostile config cannot ask for a multi-terabyte allocation.
MAX_IMAGE_SIDE = 8192
# check_for_model: a preprocessor may produce sides up to this many times the model's image side.
MAX_SIZE_RATIO = 4

# ref: image_processing_utils.VALID_SIZE_DICT_KEYS
_SIZE_KEY_SETS = (
    {"height", "width"},
    {"shortest_edge"},
    {"shortest_edge", "longest_edge"},
    {"longest_edge"},
    {"max_height", "max_width"},
    {"min_pixels", "max_pixels"},
)
# Size spellings the PIL backend's resize implements (the others are accepted in a config but
# fail when resizing, in transformers as here).
_RESIZABLE_KEY_SETS = (
    {"height", "width"},
    {"shortest_edge"},
    {"shortest_edge", "longest_edge"},
    {"max_height", "max_width"},
)


def _side(name: str, value: Any) -> int:
    """One side length: a positive int (an integral float such as 224.0 is accepted) <= MAX_IMAGE_SIDE."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an int in 1..{MAX_IMAGE_SIDE}, found {value!r}")
    if not 1 <= value <= MAX_IMAGE_SIDE:
        raise ValueError(f"{name}: expected an int in 1..{MAX_IMAGE_SIDE}, found {value}")
    return int(value)


def _size_dict(name: str, size: Any, default_to_square: bool | None = True) -> dict[str, int] | None:
    """A size as transformers' ``get_size_dict`` reads it; None stays None.

    ref: image_processing_utils.convert_to_size_dict / get_size_dict. An int is a square if
    ``default_to_square`` is true, else ``{"shortest_edge": n}`` (also for a null default_to_square,
    as transformers does); a pair is (height, width).
    """
    if size is None:
        return None
    if isinstance(size, (list, tuple)):
        if len(size) != 2:
            raise ValueError(f"{name}: expected (height, width), found {list(size)!r}")
        return {"height": _side(f"{name} height", size[0]), "width": _side(f"{name} width", size[1])}
    if isinstance(size, dict):
        keys = set(size)
        if not all(isinstance(k, str) for k in keys) or keys not in _SIZE_KEY_SETS:
            raise ValueError(
                f"{name}: expected keys {{'height', 'width'}}, {{'shortest_edge'}}, {{'shortest_edge', "
                f"'longest_edge'}}, {{'longest_edge'}}, {{'max_height', 'max_width'}} or {{'min_pixels', "
                f"'max_pixels'}}, found {sorted(map(str, keys))}"
            )
        if keys == {"min_pixels", "max_pixels"}:  # pixel counts, not sides
            out = {}
            for k in ("min_pixels", "max_pixels"):
                v = size[k]
                if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                    raise ValueError(f"{name} {k}: expected a positive int, found {v!r}")
                out[k] = int(v)
            return out
        order = ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width")
        return {k: _side(f"{name} {k}", size[k]) for k in order if k in keys}
    if isinstance(size, (numbers.Integral, float)) and not isinstance(size, bool):
        side = _side(name, size)
        return {"height": side, "width": side} if default_to_square else {"shortest_edge": side}
    raise ValueError(f"{name}: expected an int, (height, width) or a dict, found {size!r}")


def _per_channel(name: str, value: Any) -> float | list[float] | None:
    """A finite number (every channel) or a non-empty sequence of them (one per channel); None stays None."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected finite numbers, found {value!r}")
        return float(value)
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ValueError(f"{name}: expected a number or one number per channel (R, G, B), found {value!r}")
    values = list(value)
    if len(values) not in _PER_CHANNEL_LENGTHS:
        # An image has 1, 3 or 4 channels when normalized (transformers infers no other count); any
        # other length would fail on every image.
        raise ValueError(f"{name}: expected 1, 3 or 4 values (one per channel), found {len(values)}: {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{name}: expected finite numbers, one per channel (R, G, B), found {values!r}")
    return [float(v) for v in values]


def _flag(name: str, value: Any) -> bool | None:
    """A JSON boolean or null (``"false"`` as a string would otherwise count as true)."""
    if value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected true, false or null, found {value!r}")
    return bool(value)


@dataclass
class PreprocessorConfig:
    """The settings of a ``preprocessor_config.json``, each checked, with transformers' meaning and defaults;
    :class:`vitc.ImageProcessor` adds the image processing (``ViTImageProcessorPil``'s steps).

    Fields mirror the keys of a Hugging Face ``preprocessor_config.json`` with the same meaning
    and defaults. A key that is absent takes the default; a key set to ``null`` (None) *disables*
    the step or value, as in transformers >= 5 (``do_resize: null`` skips resizing; ``size: null``
    with resizing on is an error). Unknown keys are ignored, as transformers ignores them.

    Parameters
    ----------
    do_resize : bool or None
        Resize with Pillow (antialiased when shrinking, on uint8, result rounded to uint8).
    size : int, (height, width) or dict
        ``{"height": H, "width": W}`` (aspect ratio not kept); ``{"shortest_edge": S}`` (short side
        to S, long side ``int(S * long / short)``); ``{"shortest_edge": S, "longest_edge": L}``;
        ``{"max_height": H, "max_width": W}`` (fit inside, aspect kept). An int means a square,
        or ``{"shortest_edge": n}`` if ``default_to_square`` is false or null. Sides are in
        1..8192 (``MAX_IMAGE_SIDE``). ``{"longest_edge"}`` and ``{"min_pixels", "max_pixels"}``
        are valid only with resizing off, as in transformers' PIL backend.
    resample : int
        Pillow filter code: 0 NEAREST, 1 LANCZOS, 2 BILINEAR (default), 3 BICUBIC, 4 BOX, 5 HAMMING.
    do_center_crop : bool or None
        Crop the center ``crop_size`` (padding with zeros where the image is smaller), after resizing.
    crop_size : int, (height, width) or {"height", "width"}
    do_rescale : bool or None
        Multiply by ``rescale_factor`` (in float64, then cast to float32).
    rescale_factor : float
        Default 1/255.
    do_normalize : bool or None
        ``(x - image_mean) / image_std`` in float32 (or the input's float dtype).
    image_mean, image_std : float or list of float
        One value for every channel, or one per channel; default 0.5 each.
    do_pad : bool or None
        Pad with zeros at the bottom and right, after normalizing, to ``pad_size``, or without it
        to the largest image of the call (one image: no padding).
    pad_size : int, (height, width) or {"height", "width"}
    do_convert_rgb : bool or None
        Convert PIL images and arrays to RGB first (grayscale repeated, alpha or a transparent
        colour composited onto white). Default None: no conversion, as ViTImageProcessor; files
        are always RGB (``load_image``), and so are PIL images in ``pipeline_image``.
    default_to_square : bool or None
        How an int ``size`` is read (see ``size``). Default True.
    input_data_format : {"channels_first", "channels_last"} or None
        Channel axis of array inputs; None infers it as transformers does: the first axis if it
        has 1, 3 or 4 entries, else the last (so a (4, 4, 3) array counts as channels-first).

    Notes
    -----
    What transformers does with each input, and so vitc:

    - file path: ``load_image``: frame 0, EXIF orientation, ``convert("RGB")`` (alpha dropped, not
      composited; 16-bit and 32-bit values clipped to 255 by Pillow); a palette transparency
      entry survives as ``info["transparency"]``, which ``do_convert_rgb`` then composites.
    - PIL image with ``do_convert_rgb``: alpha or a transparency entry composited onto white,
      everything else ``convert("RGB")``. No EXIF orientation (only ``load_image`` applies it).
    - PIL image without it: ``np.array(image)`` (L, P (palette indices!), 1, I, F give one
      channel, LA two, RGBA and CMYK four), and the steps run on that.
    - array or tensor: channel axis inferred (see ``input_data_format``); with ``do_convert_rgb``
      one channel is repeated and four are composited onto white. Integer and float arrays are
      resized through a uint8 PIL image: integer-valued arrays must be in 0..255, others in
      [0, 1] (scaled by 255 and truncated to uint8, and back by 1/255 after resizing, so
      ``do_rescale`` then scales a second time, as transformers does).

    vitc additions: a 2-D array is a grayscale (H, W) image; paths may be ``os.PathLike``;
    tensors that require grad are detached. vitc refusals where transformers would compute
    useless values: a zero ``image_std``, non-boolean flags, sizes above ``MAX_IMAGE_SIDE``.
    The output is always float32 (transformers keeps uint8 or float64 when no step casts; the
    values are the same).
    """

    do_resize: bool | None = True
    size: Any = field(default_factory=lambda: {"height": DEFAULT_SIZE, "width": DEFAULT_SIZE})
    resample: int | None = 2
    do_center_crop: bool | None = None
    crop_size: Any = None
    do_rescale: bool | None = True
    rescale_factor: float | None = 1 / 255
    do_normalize: bool | None = True
    image_mean: Any = field(default_factory=lambda: list(IMAGENET_STANDARD_MEAN))
    image_std: Any = field(default_factory=lambda: list(IMAGENET_STANDARD_STD))
    do_pad: bool | None = None
    pad_size: Any = None
    do_convert_rgb: bool | None = None
    default_to_square: bool | None = True
    input_data_format: str | None = None

    # ---- construction and checks -------------------------------------------------------------

    def __post_init__(self) -> None:
        # Every field is checked here, so a bad value from a file or a caller fails at construction
        # with its name, not later inside Pillow or NumPy.
        for name in ("do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_pad", "do_convert_rgb"):
            setattr(self, name, _flag(name, getattr(self, name)))
        self.default_to_square = _flag("default_to_square", self.default_to_square)
        # ref: BaseImageProcessor._standardize_kwargs: size with default_to_square, the others square
        self.size = _size_dict("size", self.size, self.default_to_square)
        self.crop_size = _size_dict("crop_size", self.crop_size)
        self.pad_size = _size_dict("pad_size", self.pad_size)
        if self.resample is not None:
            if isinstance(self.resample, float) and self.resample.is_integer():
                self.resample = int(self.resample)
            if (
                isinstance(self.resample, bool)
                or not isinstance(self.resample, numbers.Integral)
                or (int(self.resample) not in RESAMPLE_NAMES)
            ):
                raise ValueError(
                    f"resample: expected a Pillow filter code in {sorted(RESAMPLE_NAMES)}, found {self.resample!r}"
                )
            self.resample = int(self.resample)
        factor = self.rescale_factor
        if factor is not None:
            if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not math.isfinite(factor):
                raise ValueError(f"rescale_factor: expected a finite number such as 1/255, found {factor!r}")
            self.rescale_factor = float(factor)
        self.image_mean = _per_channel("image_mean", self.image_mean)
        self.image_std = _per_channel("image_std", self.image_std)
        std = self.image_std if isinstance(self.image_std, list) else [self.image_std]
        if self.image_std is not None and any(s == 0 for s in std):
            raise ValueError(f"image_std: expected non-zero values, found {self.image_std}")
        if self.input_data_format not in (None, CHANNELS_FIRST, CHANNELS_LAST):
            raise ValueError(
                "input_data_format: expected 'channels_first', 'channels_last' or null, "
                f"found {self.input_data_format!r}"
            )
        self._check_step_values()

    def _check_step_values(self) -> None:
        # ref: image_utils.validate_preprocess_arguments, which transformers runs on every call
        def need(step: str, *names: str) -> None:
            missing = [n for n in names if getattr(self, n) is None]
            if missing:
                raise ValueError(
                    f"preprocessor config: {step} is true but {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} null (ViTImageProcessor refuses this too)"
                )

        if self.do_resize:
            need("do_resize", "size", "resample")
            if set(self.size) not in _RESIZABLE_KEY_SETS:
                raise ValueError(
                    f"size: resizing needs 'height' and 'width', 'shortest_edge' (and 'longest_edge') or "
                    f"'max_height' and 'max_width', found {sorted(self.size)}"
                )
        if self.do_rescale:
            need("do_rescale", "rescale_factor")
        if self.do_normalize:
            need("do_normalize", "image_mean", "image_std")
        if self.do_center_crop:
            need("do_center_crop", "crop_size")
        for name in ("crop_size", "pad_size"):
            value = getattr(self, name)
            if value is not None and set(value) != {"height", "width"}:
                raise ValueError(f"{name}: expected 'height' and 'width', found {sorted(value)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessorConfig:
        """Build from a ``preprocessor_config.json`` dict.

        The fields are the keys of transformers' ``ImagesKwargs`` that change the PIL backend's
        pixels. Other keys (``image_processor_type``, ``data_format``, which the PIL backend does
        not use, ``device``, ``do_reduce_labels``, unknown ones) are ignored, as
        ``ViTImageProcessorPil`` keeps them as unused attributes;
        ``null`` disables a step as in transformers; a value of the wrong type or out of range is a
        ``ValueError`` naming the key and what was expected: the dict may come from an untrusted file.
        """
        if not isinstance(d, dict):
            raise ValueError(f"preprocessor config: expected a JSON object (dict), found {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def _from_model_config(cls, config: dict[str, Any], where: str) -> PreprocessorConfig:
        image_size = config.get("image_size")
        if image_size is None:
            raise ValueError(f"{where}: no preprocessor config and no 'image_size' in the model config")
        return cls(size=_size_dict("image_size", image_size))

    def to_dict(self, all_keys: bool = False) -> dict[str, Any]:
        """The ``preprocessor_config.json`` dict (``from_dict(to_dict())`` round-trips), keys sorted.

        As transformers' ``to_dict``, a null whose default is null is left out; a null that
        disables a step on by default is kept. ``all_keys=True`` keeps every field (the form a
        ``.vitc`` header stores: one fixed key set).
        """
        out: dict[str, Any] = {"image_processor_type": "ViTImageProcessor"}
        for f in fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            if value is None and default is None and not all_keys:
                continue
            out[f.name] = dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value
        return dict(sorted(out.items()))

    def check_for_model(self, image_hw: tuple[int, int], num_channels: int = 3) -> None:
        """Refuse a preprocessing that cannot fit a model of ``image_hw`` images with ``num_channels``.

        Rule: every side this processor can produce (``size``'s height, width, shortest and longest
        edge, max height and width when resizing; ``crop_size``; ``pad_size``) must be at most
        ``MAX_SIZE_RATIO`` (4) times the model's larger image side. Real ViT configs stay within
        1.2x (resize 256, crop 224); a larger factor means a broken or hostile config whose
        resize would allocate gigabytes (8192x8192 float32 RGB is 805 MB per image) for a model
        that then refuses the size anyway. Called before any image is processed.

        Also refused: per-channel ``image_mean`` / ``image_std`` lists whose length is not
        ``num_channels`` (transformers would fail on every image).

        Raises
        ------
        ValueError
            Naming the value, the model's image size or channels, and the limit.
        """
        h, w = (int(v) for v in image_hw)
        if h < 1 or w < 1:
            raise ValueError(f"image_hw: expected a positive (height, width), found {tuple(image_hw)}")
        limit = MAX_SIZE_RATIO * max(h, w)
        sides = []
        if self.do_resize and self.size is not None:
            sides += [(f"size {k}", v) for k, v in self.size.items() if not k.endswith("_pixels")]
        if self.do_center_crop and self.crop_size is not None:
            sides += [(f"crop_size {k}", v) for k, v in self.crop_size.items()]
        if self.do_pad and self.pad_size is not None:
            sides += [(f"pad_size {k}", v) for k, v in self.pad_size.items()]
        if self.do_normalize:
            for name in ("image_mean", "image_std"):
                value = getattr(self, name)
                if isinstance(value, list) and len(value) != num_channels:
                    n, plural = len(value), "s" if num_channels != 1 else ""
                    raise ValueError(
                        f"preprocessor config: {name} has {n} value{'s' if n != 1 else ''} for a model of "
                        f"{num_channels} channel{plural}"
                    )
        for name, value in sides:
            if value > limit:
                raise ValueError(
                    f"preprocessor config: {name} {value} is implausibly large for a model of {h}x{w} images "
                    f"(more than {MAX_SIZE_RATIO}x its side, {limit}); fix the preprocessor_config.json"
                )


CONFIG_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)


def check_preprocessor(where: str, preprocessor: dict[str, Any]) -> None:
    """Refuse a preprocessor config vitc cannot apply now, naming where it came from."""
    try:
        PreprocessorConfig.from_dict(preprocessor)
    except CONFIG_ERRORS as exc:
        raise ValueError(f"{where}: invalid preprocessor config: {exc}"[:2000]) from None
