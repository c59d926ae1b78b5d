"""ViT model configuration, read from a Hugging Face ``config.json``.

Field names mirror transformers' ``ViTConfig`` so a checkpoint's config maps one to one; this module
only parses and validates, it holds no weights and runs no model code.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["SUPPORTED_ACTIVATIONS", "ViTConfig"]

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
        """
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        with open(path, encoding="utf-8") as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON ({exc})") from None
            except RecursionError:
                raise ValueError(f"{path}: JSON nested too deeply") from None
        try:
            return cls.from_dict(d)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

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
