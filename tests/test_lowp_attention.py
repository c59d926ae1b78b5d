"""Reduced-precision models with 64-wide heads run attention in bf16 on AMX tiles or with vdpbf16ps
(AVX-512 BF16) where the CPU has them (csrc/kernels/attention_amx.c, attention_avx512.c), and here
on every CPU the AVX-512 BF16 source on its portable emulation; their outputs must stay close to
transformers' fp32 model.

The kernel itself is checked against NumPy in test_lowp_kernels.py; here the model wiring: the
right kernel is chosen, the outputs keep the bf16 accuracy bar, and requesting attentions (which
the bf16 kernel does not produce) switches back to the fp32 attention.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from factories import make_checkpoint
from tiers import TIERS, at_tier, attention_emulation

import vitc
from vitc import _core

# at the best tier allowed here: AMX tiles or vdpbf16ps; float32 elsewhere
BF16_ATTENTION = _core.kernels()["bf16/int8 attention"] != "float32"
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
    # Attentions requested: fp32 attention, the same GEMMs. Where the bf16 attention runs, the
    # two differ slightly; elsewhere both are the fp32 kernel and agree exactly.
    with_attn = model(x, output_attentions=True)
    assert cosine(with_attn.logits, ref) > (0.999 if dtype == "bfloat16" else 0.99)
    if BF16_ATTENTION:
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
    """The workspace follows the kernels: a tier without bf16 attention (fp32 attention) then the best
    (bf16 attention on AMX or AVX-512 BF16, which needs more scratch for short sequences), and back."""
    folder, _ = checkpoint
    model = vitc.ViT.from_pretrained(folder, dtype="bfloat16")
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16), dtype=np.float32)  # T = 5
    fp32_tier = "avx2" if "avx2" in TIERS else "portable"  # below AVX-512: fp32 attention
    with at_tier(fp32_tier):
        fp32_attention = model(x, interpolate_pos_encoding=True).logits
        with attention_emulation():
            emulated = model(x, interpolate_pos_encoding=True).logits
    best = model(x, interpolate_pos_encoding=True).logits
    np.testing.assert_allclose(best, fp32_attention, rtol=0, atol=0.05 * np.abs(fp32_attention).max())
    np.testing.assert_allclose(emulated, fp32_attention, rtol=0, atol=0.05 * np.abs(fp32_attention).max())
    assert not np.array_equal(emulated, fp32_attention)
    assert np.array_equal(best, fp32_attention) != BF16_ATTENTION


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_emulated_avx512_attention_in_models(checkpoint, tier, dtype):
    """The AVX-512 BF16 attention's source (emulated, any CPU and tier) in bf16 and int8 models: the
    accuracy bar of the AMX path, and no worse than the fp32 attention with the same GEMMs by more
    than bf16 rounding of q, k, v and the probabilities adds; batches and threads change nothing."""
    folder, hf = checkpoint
    x = np.random.default_rng(3).standard_normal((4, 3, 64, 64), dtype=np.float32)
    with torch.no_grad():
        ref = hf(torch.from_numpy(x)).logits.numpy()
    model = vitc.ViT.from_pretrained(folder, dtype=dtype)
    with attention_emulation():
        out = model(x).logits
        fp32_attention = model(x, output_attentions=True).logits
        single = model(x[2:3]).logits
    assert cosine(out, ref) > (0.999 if dtype == "bfloat16" else 0.99)
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.75
    assert not np.array_equal(out, fp32_attention)
    assert rel_err(out, ref) < rel_err(fp32_attention, ref) + 0.01
    np.testing.assert_array_equal(single[0], out[2])
