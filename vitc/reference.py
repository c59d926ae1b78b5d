"""Slow pure-NumPy twins of vitc's ufuncs, the references the kernel tests compare against.

Every function computes in float64 and returns the result dtype the ufunc would (float32 in,
float32 out). Clarity over speed: loops and textbook formulas, no BLAS tricks, no C.
"""

from __future__ import annotations

import math

import numpy as np

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_TANH_COEF = 0.044715

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def _result_dtype(*arrays: np.ndarray) -> np.dtype:
    return np.result_type(*[np.asarray(a).dtype for a in arrays])


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU 0.5 x (1 + erf(x / sqrt 2)), as 0.5 x erfc(-x / sqrt 2); inf at +inf, NaN at -inf.

    -inf gives NaN (-inf * 0), as torch.nn.functional.gelu gives it, not the -0 limit.
    """
    x = np.asarray(x)
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        y = 0.5 * xd * _erfc(-xd / math.sqrt(2.0))
    y = np.where(np.isposinf(xd), np.inf, y)
    y = np.where(np.isneginf(xd), np.nan, y)  # as torch: -inf * 0
    return y.astype(x.dtype)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """tanh GELU 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3); inf at +inf, NaN at -inf.

    Evaluated as the identical x sigmoid(2u) = x / (1 + exp(-2u)), which keeps full relative
    accuracy for x < 0 where 1 + tanh(u) cancels.
    """
    x = np.asarray(x)
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        a = 2.0 * SQRT_2_OVER_PI * (xd + GELU_TANH_COEF * xd**3)
        e = np.exp(-np.abs(a))
        y = np.where(a >= 0, xd / (1.0 + e), xd * e / (1.0 + e))
    y = np.where(np.isposinf(xd), np.inf, y)
    y = np.where(np.isneginf(xd), np.nan, y)  # as torch: -inf * 0
    return y.astype(x.dtype)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis, biased variance."""
    dtype = _result_dtype(x, weight, bias)
    xd = np.asarray(x, dtype=np.float64)
    mean = xd.mean(axis=-1, keepdims=True)
    var = ((xd - mean) ** 2).mean(axis=-1, keepdims=True)
    eps = np.asarray(eps, dtype=np.float64)[..., None]
    y = (xd - mean) / np.sqrt(var + eps) * np.asarray(weight, np.float64) + np.asarray(bias, np.float64)
    return y.astype(dtype)


def softmax(x: np.ndarray) -> np.ndarray:
    """exp(x - max) / sum over the last axis; NaN rows (and all -inf rows) give NaN."""
    x = np.asarray(x)
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        e = np.exp(xd - xd.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
    return y.astype(x.dtype)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x @ weight.T + bias with weight (n, k)."""
    dtype = _result_dtype(x, weight, bias)
    xd, wd, bd = (np.asarray(a, np.float64) for a in (x, weight, bias))
    return (np.einsum("...mk,...nk->...mn", xd, wd) + bd[..., None, :]).astype(dtype)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """softmax(q @ k.T * scale) @ v for one head; leading axes broadcast. t = 0 gives zeros."""
    dtype = _result_dtype(q, k, v)
    qd, kd, vd = (np.asarray(a, np.float64) for a in (q, k, v))
    scores = np.einsum("...sd,...td->...st", qd, kd) * np.asarray(scale, np.float64)[..., None, None]
    if scores.shape[-1] == 0:
        shape = np.broadcast_shapes(scores.shape[:-1], vd.shape[:-2] + (1,))
        return np.zeros(shape + (vd.shape[-1],), dtype)
    p = softmax(scores)
    return np.einsum("...st,...te->...se", p, vd).astype(dtype)


def mlp(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """fc2(gelu(fc1(x))) with exact GELU."""
    dtype = _result_dtype(x, w1, b1, w2, b2)
    h = gelu(linear(np.asarray(x, np.float64), w1, b1).astype(np.float64))
    return linear(h, np.asarray(w2, np.float64), np.asarray(b2, np.float64)).astype(dtype)
