"""Forward-pass outputs that behave like transformers' ``ModelOutput``.

One class per transformers output type a ViT-family model returns, with its fields in transformers'
order: attribute access (``out.logits``), key access (``out["logits"]``), integer and slice access
(``out[0]``, the fields that are not None, in order), ``to_tuple()``, ``keys()``, ``values()``,
``items()``, ``len``, ``in`` and iteration over the keys, as an ``OrderedDict`` of the set fields.

vitc computes no loss (it takes no labels): ``loss`` fields are always None, so skipped, as in
transformers without labels. A classifier's output also carries ``last_hidden_state`` and
``pooler_output`` as attributes (vitc additions, used by ``vitc.testing`` and attention maps); they
are not keys, so indexing and ``to_tuple()`` give exactly transformers' tuple.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

__all__ = [
    "BaseModelOutputWithPooling",
    "DeiTForImageClassificationWithTeacherOutput",
    "ImageClassifierOutput",
    "MaskedImageModelingOutput",
    "ModelOutput",
]


class ModelOutput:
    """Base class: ``FIELDS`` are the keys in transformers' order; ``EXTRAS`` are attributes only."""

    FIELDS: ClassVar[tuple[str, ...]] = ()
    EXTRAS: ClassVar[tuple[str, ...]] = ()
    # vitc's own, on every output type, attributes only: head-averaged attentions per layer (what
    # attention rollout reads) when asked with output_attention_means=True, and the stage times of
    # the forward (seconds) when asked with profile=True; None otherwise.
    VITC_EXTRAS: ClassVar[tuple[str, ...]] = ("attention_means", "profile")

    def __init__(self, **values: Any) -> None:
        names = self.FIELDS + self.EXTRAS + self.VITC_EXTRAS
        unknown = set(values) - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__}: expected fields among {names}, got {sorted(unknown)}")
        for name in names:
            object.__setattr__(self, name, values.get(name))

    # -- mapping view of the fields that are set ---------------------------------------------------
    def keys(self) -> list[str]:
        """Names of the fields that are not None, in transformers' order."""
        return [k for k in self.FIELDS if getattr(self, k) is not None]

    def values(self) -> list[Any]:
        return [getattr(self, k) for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_tuple(self) -> tuple[Any, ...]:
        """The fields that are not None, in order: what ``return_dict=False`` returns."""
        return tuple(self.values())

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            if key not in self.keys():  # as transformers: a None (or unknown) field is no key
                raise KeyError(key)
            return getattr(self, key)
        if isinstance(key, (int, slice)) and not isinstance(key, bool):
            return self.to_tuple()[key]
        raise TypeError(f"{type(self).__name__}: index with a field name, an int or a slice, got {key!r}")

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.FIELDS + self.EXTRAS + self.VITC_EXTRAS:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        object.__setattr__(self, name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.FIELDS:
            raise KeyError(key)
        object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        def show(v: Any) -> str:
            shape = getattr(v, "shape", None)
            if shape is not None:
                return f"array{tuple(shape)}"
            if isinstance(v, tuple):
                return f"tuple of {len(v)}"
            return repr(v)

        return f"{type(self).__name__}({', '.join(f'{k}={show(v)}' for k, v in self.items())})"


class BaseModelOutputWithPooling(ModelOutput):
    """A ``ViTModel`` / ``DeiTModel``: ``pooler_output`` is None (skipped) without a pooler."""

    FIELDS = ("last_hidden_state", "pooler_output", "hidden_states", "attentions")


class ImageClassifierOutput(ModelOutput):
    """``ViTForImageClassification`` / ``DeiTForImageClassification`` (``loss`` always None)."""

    FIELDS = ("loss", "logits", "hidden_states", "attentions")
    EXTRAS = ("last_hidden_state", "pooler_output")


class DeiTForImageClassificationWithTeacherOutput(ModelOutput):
    """``DeiTForImageClassificationWithTeacher``: ``logits`` is the mean of the two heads."""

    FIELDS = ("logits", "cls_logits", "distillation_logits", "hidden_states", "attentions")
    EXTRAS = ("last_hidden_state", "pooler_output")


class MaskedImageModelingOutput(ModelOutput):
    """``ViTForMaskedImageModeling`` (``loss`` always None: vitc takes no ``bool_masked_pos``)."""

    FIELDS = ("loss", "reconstruction", "hidden_states", "attentions")
    EXTRAS = ("last_hidden_state", "pooler_output")
