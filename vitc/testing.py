"""Test helpers for vitc users: logits comparisons with useful failure messages, and parity reports.

``assert_logits_close`` says how far apart two sets of logits are, where, and whether the top-1
classes still agree; ``compare_with_transformers`` runs vitc and transformers (eager attention) on
the same pixels and reports the error of every hidden state. torch and transformers are imported
only by ``compare_with_transformers`` and ``load_transformers_model``. Not a benchmark tool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vitc.model import ViT

TRANSFORMERS_INSTALL_HINT = "pip install 'vitc[test]' (or: pip install torch transformers)"


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Arrays, torch tensors (any device, with grad) and outputs with a ``logits`` field."""
    if hasattr(x, "logits") and not isinstance(x, np.ndarray):
        x = x.logits
        if x is None:
            raise ValueError(f"{name}: the output has no logits (a model without a classifier head)")
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().float().numpy()
    return np.asarray(x)


def _top1_agreement(actual: np.ndarray, expected: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(rows agreeing, rows, indices of the rows that disagree) of the argmax over the last axis."""
    if actual.ndim == 0 or actual.shape[-1] == 0:
        return 0, 0, np.zeros(0, dtype=np.int64)
    a = actual.reshape(-1, actual.shape[-1]).argmax(-1)
    e = expected.reshape(-1, expected.shape[-1]).argmax(-1)
    differ = np.flatnonzero(a != e)
    return len(a) - len(differ), len(a), differ


def assert_logits_close(actual: Any, expected: Any, atol: float = 1e-4, rtol: float = 1e-4) -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise (``np.allclose`` rule).

    Parameters
    ----------
    actual, expected : array-like (B, K) logits: NumPy arrays, torch tensors, or model outputs with
        a ``logits`` field (vitc's ViTOutput, transformers' ImageClassifierOutput).
    atol, rtol : absolute and relative tolerance.

    Raises
    ------
    AssertionError
        With the number of elements out of tolerance, the largest absolute and relative errors and
        where they are, and how many rows still agree on the top-1 class (and which do not).
        NaN in one array but not at the same place in the other counts as out of tolerance.
    """
    a = _to_numpy(actual, "actual").astype(np.float64)
    e = _to_numpy(expected, "expected").astype(np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"logits: expected shape {e.shape} (the shape of expected), found {a.shape}")
    if a.size == 0:
        return
    both_nan = np.isnan(a) & np.isnan(e)
    err = np.where(both_nan, 0.0, np.abs(a - e))
    err = np.where(np.isnan(err), np.inf, err)  # NaN on one side only
    bad = err > atol + rtol * np.abs(e)
    bad |= np.isinf(a) != np.isinf(e)
    if not bad.any():
        return
    rel = err / np.maximum(np.abs(e), np.finfo(np.float64).tiny)
    where_abs = np.unravel_index(int(np.argmax(err)), err.shape)
    where_rel = np.unravel_index(int(np.argmax(np.where(both_nan, 0.0, rel))), rel.shape)
    agree, rows, differ = _top1_agreement(a, e)
    differ_text = ", ".join(str(int(i)) for i in differ[:10]) + (" ..." if len(differ) > 10 else "")
    lines = [
        (
            f"logits not close (atol={atol:g}, rtol={rtol:g}): {int(bad.sum())} of {a.size} elements "
            f"({bad.mean():.1%}) out of tolerance"
        ),
        (
            f"  max abs error {err[where_abs]:.3g} at index {tuple(int(i) for i in where_abs)}: "
            f"actual {a[where_abs]:.7g}, expected {e[where_abs]:.7g}"
        ),
        (
            f"  max rel error {rel[where_rel]:.3g} at index {tuple(int(i) for i in where_rel)}: "
            f"actual {a[where_rel]:.7g}, expected {e[where_rel]:.7g}"
        ),
        f"  top-1 agreement: {agree} of {rows} rows ({agree / rows:.1%})"
        + (f"; rows that differ: {differ_text}" if len(differ) else ""),
    ]
    raise AssertionError("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Parity with transformers


def _import_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as e:
        raise ImportError(
            f"comparing with transformers needs torch and transformers, which are not installed ({e}): "
            f"{TRANSFORMERS_INSTALL_HINT}"
        ) from None
    return torch, transformers


def load_transformers_model(path: str | os.PathLike, classifier: bool | None = None) -> Any:
    """transformers' ViT for a Hugging Face folder, with eager attention, in eval mode.

    Parameters
    ----------
    path : a Hugging Face model folder (config.json + weights).
    classifier : ``ViTForImageClassification`` if True, ``ViTModel`` if False; by default the
        first of config.json's ``architectures`` decides (a classifier unless it names ViTModel).
    """
    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"expected a Hugging Face model folder with config.json, found '{p}'")
    _, transformers = _import_transformers()
    if classifier is None:
        import json

        archs = json.loads((p / "config.json").read_text(encoding="utf-8")).get("architectures") or []
        classifier = not archs or archs[0] != "ViTModel"
    cls = transformers.ViTForImageClassification if classifier else transformers.ViTModel
    return cls.from_pretrained(p, attn_implementation="eager").eval()


def _max_abs(a: np.ndarray, e: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - e.astype(np.float64)), initial=0.0))


@dataclass
class ParityReport:
    """vitc against transformers on the same pixels.

    Attributes
    ----------
    architecture : the transformers class compared against.
    pixel_shape : (B, C, H, W) of the inputs.
    hidden_state_errors : max |vitc - transformers| of each hidden state: [0] the embeddings, then
        the output of every layer.
    last_hidden_state_error : after the final layernorm.
    logits_error : max abs error of the logits (None without a classifier head).
    argmax_agree, rows : rows whose top-1 class agrees, of ``rows`` (0, 0 without logits).
    max_abs_logit : max |logit| of transformers, to judge the errors against.
    """

    architecture: str
    pixel_shape: tuple[int, ...]
    hidden_state_errors: list[float]
    last_hidden_state_error: float
    logits_error: float | None
    argmax_agree: int
    rows: int
    max_abs_logit: float | None

    @property
    def max_error(self) -> float:
        """The largest error of any output compared."""
        errs = [*self.hidden_state_errors, self.last_hidden_state_error]
        return max(errs + ([self.logits_error] if self.logits_error is not None else []))

    @property
    def argmax_agreement(self) -> float | None:
        return self.argmax_agree / self.rows if self.rows else None

    def ok(self, atol: float = 1e-4) -> bool:
        """Every error <= atol and every top-1 class agrees."""
        return self.max_error <= atol and self.argmax_agree == self.rows

    def __str__(self) -> str:
        b, c, h, w = self.pixel_shape
        lines = [
            f"vitc vs transformers {self.architecture} (eager) on {b} image(s) {c}x{h}x{w}: max abs error"
        ]
        for i, err in enumerate(self.hidden_state_errors):
            name = "embeddings" if i == 0 else f"layer {i}"
            lines.append(f"  {name:<18}{err:10.3g}")
        lines.append(f"  {'last_hidden_state':<18}{self.last_hidden_state_error:10.3g}")
        if self.logits_error is not None:
            lines.append(
                f"  {'logits':<18}{self.logits_error:10.3g}   (max |logit| {self.max_abs_logit:.3g})"
            )
            lines.append(f"  argmax agreement  {self.argmax_agree}/{self.rows} ({self.argmax_agreement:.1%})")
        return "\n".join(lines)


def compare_with_transformers(
    model_path: str | os.PathLike,
    pixel_values: Any,
    vitc_model: ViT | str | os.PathLike | None = None,
) -> ParityReport:
    """Run vitc and transformers on the same pixels and report how far apart every output is.

    Parameters
    ----------
    model_path : a Hugging Face ViT folder; transformers loads it with eager attention.
    pixel_values : (B, C, H, W) float32 array or torch tensor, as the image processor returns.
    vitc_model : the vitc model to check (a ViT, or a .vitc file converted from ``model_path``);
        by default vitc loads ``model_path`` itself.

    Returns
    -------
    ParityReport

    Raises
    ------
    ImportError
        If torch or transformers is not installed.
    FileNotFoundError
        If ``model_path`` is not a Hugging Face folder.
    """
    torch, _ = _import_transformers()
    from vitc.model import ViT

    if not (Path(model_path) / "config.json").is_file():
        raise FileNotFoundError(
            f"expected a Hugging Face model folder with config.json, found '{model_path}'"
        )
    x = _to_numpy(pixel_values, "pixel_values").astype(np.float32, copy=False)
    if isinstance(vitc_model, ViT):
        ours_model = vitc_model
    else:
        ours_model = ViT.from_pretrained(model_path if vitc_model is None else vitc_model)
    hf = load_transformers_model(model_path, classifier=ours_model.num_labels > 0)
    ours = ours_model(x, output_hidden_states=True, return_dict=True)
    with torch.no_grad():
        ref = hf(torch.from_numpy(np.ascontiguousarray(x)), output_hidden_states=True)
    ref_hidden = [t.numpy() for t in ref.hidden_states]
    if len(ref_hidden) != len(ours.hidden_states):
        raise ValueError(
            f"hidden_states: transformers returned {len(ref_hidden)}, vitc {len(ours.hidden_states)}; "
            "are the two models the same checkpoint?"
        )
    hidden = [_max_abs(a, e) for a, e in zip(ours.hidden_states, ref_hidden)]
    if hasattr(ref, "logits"):
        ref_logits = ref.logits.numpy()
        agree, rows, _ = _top1_agreement(ours.logits, ref_logits)
        logits_err, max_logit = _max_abs(ours.logits, ref_logits), float(np.abs(ref_logits).max(initial=0.0))
        # ViTForImageClassification returns no last_hidden_state: the final norm of the last layer
        ln = hf.vit.layernorm
        with torch.no_grad():
            ref_last = ln(ref.hidden_states[-1]).numpy()
    else:
        agree = rows = 0
        logits_err = max_logit = None
        ref_last = ref.last_hidden_state.numpy()
    return ParityReport(
        architecture=type(hf).__name__,
        pixel_shape=tuple(x.shape),
        hidden_state_errors=hidden,
        last_hidden_state_error=_max_abs(ours.last_hidden_state, ref_last),
        logits_error=logits_err,
        argmax_agree=agree,
        rows=rows,
        max_abs_logit=max_logit,
    )
