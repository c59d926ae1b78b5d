"""Reduced-precision models with 64-wide heads run attention in bf16 on AMX tiles where the CPU has
them (csrc/kernels/attention_amx.c); their outputs must stay close to transformers' fp32 model.

The kernel itself is checked against NumPy in test_lowp_kernels.py; here the model wiring: the
right kernel is chosen, the outputs keep the bf16 accuracy bar, and requesting attentions (which
the bf16 kernel does not produce) switches back to the fp32 attention.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from factories import make_checkpoint
from tiers import TIERS, at_tier

import vitc
from vitc import _core

AMX_BF16 = _core.kernels()["bf16/int8 attention"] == "amx_bf16"  # at the best tier allowed here
# 64-wide heads (as in ViT-B and ViT-L), 65 tokens: two query blocks with a tail of one row.
CONFIG = dict(image_size=64, patch_size=8, hidden_size=128, num_attention_heads=2, intermediate_size=256)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf64")
    hf = make_checkpoint(folder, **CONFIG)
    return folder, hf


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return a @ b / np.linalg.norm(a) / np.linalg.norm(b)


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_lowp_model_with_bf16_attention_matches_transformers(checkpoint, dtype):
    folder, hf = checkpoint
    x = np.random.default_rng(0).standard_normal((4, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        ref = hf(torch.from_numpy(x)).logits.numpy()
    model = vitc.ViT.from_pretrained(folder, dtype=dtype)
    out = model(x)
    assert cosine(out.logits, ref) > (0.999 if dtype == "bfloat16" else 0.99)
    assert (out.logits.argmax(1) == ref.argmax(1)).mean() >= 0.75
    # Attentions requested: fp32 attention, the same GEMMs. Where AMX runs the bf16 attention, the
    # two differ slightly; elsewhere both are the fp32 kernel and agree exactly.
    with_attn = model(x, output_attentions=True)
    assert cosine(with_attn.logits, ref) > (0.999 if dtype == "bfloat16" else 0.99)
    if AMX_BF16:
        assert not np.array_equal(with_attn.logits, out.logits)
        np.testing.assert_allclose(with_attn.logits, out.logits, rtol=0, atol=0.05 * np.abs(ref).max())
    else:
        np.testing.assert_array_equal(with_attn.logits, out.logits)


def test_fp32_model_never_uses_bf16_attention(checkpoint):
    folder, hf = checkpoint
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64), dtype=np.float32)
    model = vitc.ViT.from_pretrained(folder)
    np.testing.assert_array_equal(model(x).logits, model(x, output_attentions=True).logits)
    with torch.no_grad():
        ref = hf(torch.from_numpy(x)).logits.numpy()
    np.testing.assert_allclose(model(x).logits, ref, rtol=1e-4, atol=1e-4)


def test_kernel_level_change_between_calls(checkpoint):
    """The workspace follows the kernels: AVX-512 (fp32 attention) then AMX (bf16 attention, which
    needs more scratch for short sequences) on one model, and back."""
    folder, _ = checkpoint
    model = vitc.ViT.from_pretrained(folder, dtype="bfloat16")
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16), dtype=np.float32)  # T = 5
    below_amx = [t for t in TIERS if t != "amx"][-1]
    with at_tier(below_amx):
        fp32_attention = model(x, interpolate_pos_encoding=True).logits
    best = model(x, interpolate_pos_encoding=True).logits
    np.testing.assert_allclose(best, fp32_attention, rtol=0, atol=0.05 * np.abs(fp32_attention).max())
    assert np.array_equal(best, fp32_attention) != AMX_BF16
