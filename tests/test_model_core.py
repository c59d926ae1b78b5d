"""vitc._core.Model, the C model a ViT is built into: every tensor checked once at build, the forward
generalised to the ViT family (rectangular patches, images the patch does not divide, prefix tokens,
DeiT's distillation head, pooler size and activation, timm's average pooling).

Each case is checked against a float64 NumPy forward written here, and against transformers where
transformers has the architecture (DeiTForImageClassificationWithTeacher, ViT with rectangular
patches, ViTModel's pooler with pooler_output_size and pooler_act).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from factories import HF_TEST_CONFIG, make_checkpoint
from tiers import TIERS, at_tier

from vitc import _core
from vitc import reference as _slow
from vitc.config import ViTConfig
from vitc.io.hf import convert_state_dict
from vitc.model import ViT

# float32 against float64 (the tolerance of tests/test_model.py), scaled by max(1, max |expected|)
ATOL = 1e-4

ACT = {
    "gelu": _slow.gelu,
    "gelu_new": _slow.gelu_tanh,
    "gelu_pytorch_tanh": _slow.gelu_tanh,
    "gelu_fast": _slow.gelu_tanh,
    "quick_gelu": lambda x: x / (1 + np.exp(-1.702 * x)),
    "relu": lambda x: np.maximum(x, 0),
    "tanh": np.tanh,
}


def scaled_err(actual, expected) -> float:
    expected = np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected), initial=0.0) / max(1.0, np.max(np.abs(expected), initial=0.0)))


# ---------------------------------------------------------------------------------------------------
# A float64 NumPy forward of the whole family, the reference of the C forward


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def reference_forward(t: dict, sizes: dict, x: np.ndarray, pos: np.ndarray | None = None) -> dict:
    t = {k: np.asarray(v, np.float64) for k, v in t.items()}
    C, H, eps = sizes["hidden_size"], sizes["num_heads"], sizes["layer_norm_eps"]
    ph, pw = sizes["patch_size"]
    act = ACT[sizes["hidden_act"]]
    B, cin, hi, wi = x.shape
    gh, gw = hi // ph, wi // pw  # Conv2d drops the remainder
    patches = x[:, :, : gh * ph, : gw * pw].astype(np.float64)
    patches = patches.reshape(B, cin, gh, ph, gw, pw).transpose(0, 2, 4, 1, 3, 5).reshape(B, gh * gw, -1)
    emb = patches @ t["patch_embed.proj.weight"].T + t["patch_embed.proj.bias"]
    prefix = [t[k][None] for k in ("cls_token", "dist_token") if k in t] + [t.get("reg_token", np.zeros((0, C)))]
    prefix = np.concatenate(prefix)
    h = np.concatenate([np.broadcast_to(prefix, (B, *prefix.shape)), emb], axis=1)
    h = h + (t["pos_embed"] if pos is None else pos)
    T, D = h.shape[1], C // H
    for i in range(sizes["num_layers"]):
        p = f"blocks.{i}."
        a = layer_norm(h, t[p + "norm1.weight"], t[p + "norm1.bias"], eps)
        qkv = a @ t[p + "attn.qkv.weight"].T + t.get(p + "attn.qkv.bias", 0)
        q, k, v = (qkv[..., j * C : (j + 1) * C].reshape(B, T, H, D).transpose(0, 2, 1, 3) for j in range(3))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D)
        e = np.exp(s - s.max(-1, keepdims=True))
        ctx = (e / e.sum(-1, keepdims=True) @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        h = h + ctx @ t[p + "attn.proj.weight"].T + t[p + "attn.proj.bias"]
        m = layer_norm(h, t[p + "norm2.weight"], t[p + "norm2.bias"], eps)
        hidden = act(m @ t[p + "mlp.fc1.weight"].T + t[p + "mlp.fc1.bias"])
        h = h + hidden @ t[p + "mlp.fc2.weight"].T + t[p + "mlp.fc2.bias"]
    last = layer_norm(h, t["norm.weight"], t["norm.bias"], eps) if "norm.weight" in t else h
    out = {"last_hidden_state": last}
    n_prefix = prefix.shape[0]
    head_in = last[:, n_prefix:].mean(1) if sizes.get("pool") == "avg" else last[:, 0]
    if "fc_norm.weight" in t:
        head_in = layer_norm(head_in, t["fc_norm.weight"], t["fc_norm.bias"], eps)
    if "head.weight" in t:
        w, b = t["head.weight"], t["head.bias"]
        logits = head_in @ w.T + b if w.shape[0] else head_in
        if "head_dist.weight" in t:
            wd, bd = t["head_dist.weight"], t["head_dist.bias"]
            dist = last[:, 1] @ wd.T + bd if wd.shape[0] else last[:, 1]
            out["cls_logits"], out["distillation_logits"] = logits, dist
            logits = (logits + dist) / 2
        out["logits"] = logits
    if "pooler.weight" in t:
        dense = last[:, 0] @ t["pooler.weight"].T + t["pooler.bias"]
        out["pooler_output"] = ACT[sizes.get("pooler_act", "tanh")](dense)
    return out


def random_tensors(
    sizes: dict, *, prefix=("cls_token",), regs=0, head=5, dist=False, pooler=0, norm=True, fc_norm=False, seed=0
) -> dict:
    """Random weights of every tensor a model of `sizes` reads (perturbed norms, real biases)."""
    rng = np.random.default_rng(seed)
    C, F, L = sizes["hidden_size"], sizes["mlp_size"], sizes["num_layers"]
    (ph, pw), (ih, iw) = sizes["patch_size"], sizes["image_size"]
    T0 = len(prefix) + regs + (ih // ph) * (iw // pw)

    def r(*shape, scale=0.2, center=0.0):
        return (center + scale * rng.standard_normal(shape)).astype(np.float32)

    t = {
        "patch_embed.proj.weight": r(C, sizes["num_channels"] * ph * pw),
        "patch_embed.proj.bias": r(C),
        "pos_embed": r(T0, C),
    }
    for name in prefix:
        t[name] = r(C)
    if regs:
        t["reg_token"] = r(regs, C)
    for i in range(L):
        p = f"blocks.{i}."
        t |= {
            p + "norm1.weight": r(C, center=1.0),
            p + "norm1.bias": r(C),
            p + "attn.qkv.weight": r(3 * C, C),
            p + "attn.qkv.bias": r(3 * C),
            p + "attn.proj.weight": r(C, C),
            p + "attn.proj.bias": r(C),
            p + "norm2.weight": r(C, center=1.0),
            p + "norm2.bias": r(C),
            p + "mlp.fc1.weight": r(F, C),
            p + "mlp.fc1.bias": r(F),
            p + "mlp.fc2.weight": r(C, F),
            p + "mlp.fc2.bias": r(C),
        }
    for name, on in (("norm", norm), ("fc_norm", fc_norm)):
        if on:
            t[name + ".weight"], t[name + ".bias"] = r(C, center=1.0), r(C)
    for name, rows, on in (("head", head, head is not None), ("head_dist", head, dist), ("pooler", pooler, pooler)):
        if on:
            t[name + ".weight"], t[name + ".bias"] = r(rows, C), r(rows)
    return t


SIZES = dict(
    num_layers=2,
    hidden_size=24,
    num_heads=3,
    mlp_size=40,
    num_channels=3,
    patch_size=(2, 3),
    image_size=(10, 12),
    layer_norm_eps=1e-6,
    hidden_act="gelu",
)


def build(t: dict, **overrides) -> _core.Model:
    return _core.Model(t, **{**SIZES, **overrides})


def check(model: _core.Model, t: dict, sizes: dict, x: np.ndarray, pos=None) -> None:
    out = model.forward(x, pos, True, True)
    ref = reference_forward(t, sizes, x, pos)
    for key, want in ref.items():
        assert out[key] is not None and out[key].shape == want.shape, key
        assert scaled_err(out[key], want) < ATOL, key
    for key in ("logits", "pooler_output", "cls_logits", "distillation_logits"):
        if key not in ref:
            assert out[key] is None, key
    B, T = x.shape[0], ref["last_hidden_state"].shape[1]
    assert out["hidden_states"].shape == (sizes["num_layers"] + 1, B, T, sizes["hidden_size"])
    assert out["attentions"].shape == (sizes["num_layers"], B, sizes["num_heads"], T, T)


def pixels(b, h, w, seed=1, c=3):
    return np.random.default_rng(seed).standard_normal((b, c, h, w)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# The family against the NumPy forward, at every kernel tier


CASES = {
    "vit": dict(),
    "identity_head": dict(head=0),
    "no_head_pooler": dict(head=None, pooler=24),
    "pooler_16_relu": dict(pooler=16, pooler_act="relu"),
    "deit_distilled": dict(prefix=("cls_token", "dist_token"), dist=True),
    "deit_identity": dict(prefix=("cls_token", "dist_token"), dist=True, head=0),
    "registers": dict(regs=4),
    "timm_avg_fc_norm": dict(norm=False, fc_norm=True, pool="avg"),
    "timm_avg_no_cls": dict(prefix=(), norm=False, fc_norm=True, pool="avg"),
    "timm_avg_final_norm": dict(pool="avg"),
    "timm_token_fc_norm": dict(norm=False, fc_norm=True),
    "quick_gelu": dict(hidden_act="quick_gelu"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_family_matches_numpy(name, tier):
    case = dict(CASES[name])
    model_kw = {k: case.pop(k) for k in ("pool", "pooler_act", "hidden_act") if k in case}
    t = random_tensors(SIZES, **case)
    sizes = {**SIZES, **model_kw}
    model = build(t, **model_kw)
    check(model, t, sizes, pixels(3, 10, 12))


@pytest.mark.parametrize("hw", [(11, 14), (10, 12), (13, 13)])
def test_patch_remainder_dropped_like_conv2d(hw):
    """Pixels past the last whole patch are not read: the result equals the cropped image's, exactly."""
    t = random_tensors(SIZES)
    model = build(t)
    x = pixels(2, *hw)
    gh, gw = hw[0] // 2, hw[1] // 3
    pos = None
    if (gh, gw) != (5, 4):
        pos = np.random.default_rng(3).standard_normal((1 + gh * gw, 24)).astype(np.float32)
    out = model.forward(x, pos)
    cropped = model.forward(np.ascontiguousarray(x[:, :, : gh * 2, : gw * 3]), pos)
    np.testing.assert_array_equal(out["logits"], cropped["logits"])
    check(model, t, SIZES, x, pos)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_reduced_precision_family(precision):
    """The generalised parts (prefix tokens, two heads, avg pooling) run the same in every precision."""
    t = random_tensors(SIZES, prefix=("cls_token", "dist_token"), dist=True, fc_norm=True)
    x = pixels(2, 10, 12)
    fp32 = build(t).forward(x)
    model = build(t, precision=precision)
    assert model.precision == precision and "blocks.0.attn.qkv.weight" in model.tensors
    out = model.forward(x)
    for key in ("logits", "cls_logits", "distillation_logits"):
        rel = np.linalg.norm(out[key] - fp32[key]) / np.linalg.norm(fp32[key])
        assert rel < 0.05, (key, rel)
    np.testing.assert_allclose(out["logits"], (out["cls_logits"] + out["distillation_logits"]) / 2, rtol=1e-6)


def test_determinism_across_batches_and_threads_for_the_family():
    """An image's outputs do not depend on its batch mates or the thread count (fixed reduction order)."""
    import vitc

    t = random_tensors(SIZES, prefix=("cls_token", "dist_token"), dist=True, norm=False, fc_norm=True)
    model = build(t)
    avg = build(random_tensors(SIZES, norm=False, fc_norm=True), pool="avg")
    x = pixels(4, 10, 12)
    before = vitc.get_num_threads()
    try:
        for m in (model, avg):
            batch = m.forward(x)["logits"]
            singles = np.concatenate([m.forward(x[i : i + 1])["logits"] for i in range(4)])
            np.testing.assert_array_equal(batch, singles)
            vitc.set_num_threads(1)
            np.testing.assert_array_equal(m.forward(x)["logits"], batch)
            vitc.set_num_threads(before)
    finally:
        vitc.set_num_threads(before)


# Large enough that the float32 GEMMs split their columns over 2 threads (4 MFLOP and more) at
# batch 8 and, for the MLP, for one image alone; 65 tokens (several row tiles, a partial last one).
SPLIT_SIZES = dict(SIZES, hidden_size=96, num_heads=3, mlp_size=384, patch_size=(4, 4), image_size=(32, 32))


@pytest.mark.parametrize("precision", ["float32"])
@pytest.mark.parametrize("tier", TIERS)
def test_bit_identical_across_threads_and_batch_composition(tier, precision):
    """Issue 15: an image's logits and hidden states are the same bits alone or among 7 other images
    (at any place in the batch), on 1 or 2 threads, at every tier this machine runs."""
    import vitc

    t = random_tensors(SPLIT_SIZES, seed=3)
    x = pixels(8, 32, 32, seed=4)
    before = vitc.get_num_threads()
    with at_tier(tier):
        model = _core.Model(t, **{**SPLIT_SIZES, "precision": precision})
        try:
            runs = {}
            for threads in (1, 2):
                vitc.set_num_threads(threads)
                batch = model.forward(x, None, True)
                shuffled = model.forward(x[::-1].copy())  # other neighbours, other places
                alone = [model.forward(x[i : i + 1], None, True) for i in (0, 5)]
                for key in ("logits", "last_hidden_state"):
                    np.testing.assert_array_equal(shuffled[key][::-1], batch[key], err_msg=key)
                    for j, i in enumerate((0, 5)):
                        np.testing.assert_array_equal(alone[j][key][0], batch[key][i], err_msg=key)
                np.testing.assert_array_equal(alone[1]["hidden_states"][:, 0], batch["hidden_states"][:, 5])
                runs[threads] = batch
            for key in ("logits", "last_hidden_state", "hidden_states"):
                np.testing.assert_array_equal(runs[1][key], runs[2][key], err_msg=key)
        finally:
            vitc.set_num_threads(before)
    ref = reference_forward(t, SPLIT_SIZES, x[:2])["logits"]
    if precision == "float32":
        assert scaled_err(runs[1]["logits"][:2], ref) < ATOL


STAGES = ("patch_embed", "qkv", "attention", "out_proj", "mlp_up", "gelu", "mlp_down", "norms", "quantize", "other")


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "int8"])
def test_profile_stages(precision):
    """forward(profile=True): seconds per stage, non-negative, summing to at most the call's wall time;
    the activation then runs as its own pass: the same float32 outputs."""
    import time

    t = random_tensors(SPLIT_SIZES, seed=5)
    model = _core.Model(t, **{**SPLIT_SIZES, "precision": precision})
    x = pixels(3, 32, 32, seed=6)
    plain = model.forward(x)
    assert plain["profile"] is None
    t0 = time.perf_counter()
    out = model.forward(x, profile=True)
    wall = time.perf_counter() - t0
    prof = out["profile"]
    assert tuple(prof) == STAGES and all(isinstance(v, float) and v >= 0.0 for v in prof.values())
    assert sum(prof.values()) <= wall
    assert prof["qkv"] > 0 and prof["mlp_up"] > 0 and prof["attention"] > 0
    if precision == "float32":
        assert prof["quantize"] == 0.0
        np.testing.assert_array_equal(out["logits"], plain["logits"])
    empty = model.forward(x[:0], profile=True)["profile"]
    assert set(empty.values()) == {0.0}


# ---------------------------------------------------------------------------------------------------
# Against transformers


def hf_to_vitc_deit(hf) -> tuple[dict, dict]:
    """A DeiTForImageClassificationWithTeacher state dict under vitc names (the mapping a DeiT
    converter will own): ViT's names plus the distillation token and the two heads."""
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    c = hf.config
    extra = {
        "dist_token": sd.pop("deit.embeddings.distillation_token").reshape(-1),
        "pos_embed": sd.pop("deit.embeddings.position_embeddings")[0],
        "head.weight": sd.pop("cls_classifier.weight"),
        "head.bias": sd.pop("cls_classifier.bias"),
        "head_dist.weight": sd.pop("distillation_classifier.weight"),
        "head_dist.bias": sd.pop("distillation_classifier.bias"),
    }
    vit_cfg = ViTConfig(
        hidden_size=c.hidden_size,
        num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size,
        image_size=c.image_size,
        patch_size=c.patch_size,
        id2label={},
    )
    sd = {k.replace("deit.", "", 1): v for k, v in sd.items()}
    sd["embeddings.position_embeddings"] = extra["pos_embed"][None, 1:]  # (placeholder shape for the map)
    t = convert_state_dict(vit_cfg, sd)
    t.update(extra)
    sizes = dict(
        num_layers=c.num_hidden_layers,
        hidden_size=c.hidden_size,
        num_heads=c.num_attention_heads,
        mlp_size=c.intermediate_size,
        num_channels=c.num_channels,
        patch_size=c.patch_size,
        image_size=c.image_size,
        layer_norm_eps=c.layer_norm_eps,
        hidden_act=c.hidden_act,
    )
    return t, sizes


def test_deit_with_teacher_matches_transformers():
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    torch.manual_seed(0)
    cfg = DeiTConfig(
        image_size=30,
        patch_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        num_labels=7,
        attn_implementation="eager",
    )
    hf = DeiTForImageClassificationWithTeacher(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    t, sizes = hf_to_vitc_deit(hf)
    model = _core.Model(t, **sizes)
    assert model.num_prefix_tokens == 2 and model.distilled
    x = pixels(3, 30, 30)
    with torch.no_grad():
        ref = hf(torch.from_numpy(x), output_hidden_states=True)
    out = model.forward(x, None, True)
    for key in ("logits", "cls_logits", "distillation_logits"):
        assert scaled_err(out[key], getattr(ref, key).numpy()) < ATOL, key
    assert scaled_err(out["last_hidden_state"], ref.hidden_states[-1].numpy()) > 0  # (final norm applied)
    for a, e in zip(out["hidden_states"], ref.hidden_states):
        assert scaled_err(a, e.numpy()) < ATOL


def test_rectangular_patches_through_vit_match_transformers(tmp_path):
    hf = make_checkpoint(tmp_path, image_size=[12, 15], patch_size=[2, 3])
    model = ViT.from_pretrained(tmp_path)
    assert model.patch_size == (2, 3)
    x = pixels(2, 12, 15)
    with torch.no_grad():
        ref = hf(torch.from_numpy(x)).logits.numpy()
    assert scaled_err(model(x).logits, ref) < ATOL


def test_pooler_size_and_activation_match_transformers(tmp_path):
    """ViTModel's pooler: pooler_output_size != hidden_size, pooler_act other than tanh."""
    from transformers import ViTConfig as HFConfig
    from transformers import ViTModel

    torch.manual_seed(0)
    hf_config = HFConfig(**{**HF_TEST_CONFIG, "pooler_output_size": 20, "pooler_act": "relu"})
    hf = ViTModel(hf_config, add_pooling_layer=True)
    hf.eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    cfg = ViTConfig.from_dict({**HF_TEST_CONFIG, "pooler_output_size": 20})
    t = convert_state_dict(cfg, {k: v.detach().numpy() for k, v in hf.state_dict().items()})
    sizes = dict(
        num_layers=2,
        hidden_size=32,
        num_heads=4,
        mlp_size=37,
        num_channels=3,
        patch_size=2,
        image_size=30,
        layer_norm_eps=cfg.layer_norm_eps,
        hidden_act="gelu",
    )
    model = _core.Model(t, **sizes, pooler_act="relu")
    assert model.pooler_size == 20
    x = pixels(2, 30, 30)
    with torch.no_grad():
        ref = hf(torch.from_numpy(x))
    out = model.forward(x)
    assert scaled_err(out["pooler_output"], ref.pooler_output.numpy()) < ATOL
    assert scaled_err(out["last_hidden_state"], ref.last_hidden_state.numpy()) < ATOL
    # Through vitc.ViT, which takes the pooler size from the tensors (tanh: the config default).
    tanh = ViT(cfg, t)
    assert tanh.pooler_size if hasattr(tanh, "pooler_size") else tanh._model.pooler_size == 20
    assert tanh(x).pooler_output.shape == (2, 20)


def test_timm_average_pooling_against_numpy_on_transformers_weights(tmp_path):
    """timm's global_pool="avg": no final norm on the tokens, head(fc_norm(mean of the patch tokens)).
    transformers' ViT lacks it: its encoder output (hidden_states[-1]) is the reference's input."""
    hf = make_checkpoint(tmp_path)
    cfg = ViTConfig.from_json_file(tmp_path)
    t = convert_state_dict(cfg, {k: v.detach().numpy() for k, v in hf.state_dict().items()})
    t["fc_norm.weight"], t["fc_norm.bias"] = t.pop("norm.weight"), t.pop("norm.bias")
    sizes = dict(
        num_layers=2,
        hidden_size=32,
        num_heads=4,
        mlp_size=37,
        num_channels=3,
        patch_size=2,
        image_size=30,
        layer_norm_eps=cfg.layer_norm_eps,
        hidden_act="gelu",
    )
    model = _core.Model(t, **sizes, pool="avg")
    x = pixels(3, 30, 30)
    with torch.no_grad():
        tokens = hf(torch.from_numpy(x), output_hidden_states=True).hidden_states[-1].numpy().astype(np.float64)
    pooled = layer_norm(tokens[:, 1:].mean(1), t["fc_norm.weight"], t["fc_norm.bias"], cfg.layer_norm_eps)
    want = pooled @ t["head.weight"].T.astype(np.float64) + t["head.bias"]
    out = model.forward(x)
    assert scaled_err(out["last_hidden_state"], tokens) < ATOL  # no final norm
    assert scaled_err(out["logits"], want) < ATOL


# ---------------------------------------------------------------------------------------------------
# Checked once, at build; per call only what the call passes


def test_constants_come_from_c():
    assert _core.PRECISIONS == ("float32", "bfloat16", "int8")
    hidden_acts = {"gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "quick_gelu", "relu"}
    assert set(_core.ACTIVATIONS) == hidden_acts | {"tanh"}
    assert _core.POOLS == ("token", "avg")
    assert _core.PACKING == {"bfloat16": "nr32-k2", "int8": "nr32-k4"}
    from vitc.weights import PACKING, PRECISIONS

    assert PRECISIONS == _core.PRECISIONS and PACKING == _core.PACKING


@pytest.mark.parametrize(
    "mutate,error,match",
    [
        (lambda t: t.pop("blocks.1.mlp.fc2.bias"), ValueError, r"missing tensors \['blocks.1.mlp.fc2.bias'\]"),
        (lambda t: t.pop("head.bias"), ValueError, r"missing tensors \['head.bias'\]"),
        (lambda t: t.update(extra=t["head.bias"]), ValueError, r"unexpected tensors \['extra'\]"),
        (
            lambda t: t.update({"blocks.0.attn.qkv.weight": t["blocks.0.attn.qkv.weight"][:-1]}),
            ValueError,
            r"weights: blocks.0.attn.qkv.weight: expected float32 \(72, 24\), got float32 \(71, 24\)",
        ),
        (
            lambda t: t.update({"norm.weight": t["norm.weight"].astype(np.float64)}),
            ValueError,
            r"weights: norm.weight: expected float32 \(24,\), got float64 \(24,\)",
        ),
        (lambda t: t.update({"norm.bias": [0.0] * 24}), TypeError, "norm.bias: expected a numpy array, got list"),
        (
            lambda t: t.update({"pos_embed": t["pos_embed"][1:]}),
            ValueError,
            r"pos_embed: expected float32 \(21, 24\), got float32 \(20, 24\)",
        ),
        (lambda t: t.pop("cls_token"), ValueError, "reads the CLS token"),
        (lambda t: t.update(dist_token=t.pop("cls_token")), ValueError, "dist_token: expected a cls_token"),
    ],
)
def test_build_errors_name_the_tensor(mutate, error, match):
    t = random_tensors(SIZES)
    mutate(t)
    with pytest.raises(error, match=match):
        build(t)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(hidden_act="swish"), r"hidden_act: expected one of \['gelu', "),
        (dict(pooler_act="sigmoid"), "pooler_act: expected one of"),
        (dict(precision="fp8"), "precision: expected one of 'float32', 'bfloat16', 'int8', got 'fp8'"),
        (dict(pool="max"), "pool: expected one of 'token', 'avg', got 'max'"),
        (dict(num_heads=5), r"hidden_size \(24\) must be a multiple of num_heads \(5\)"),
        (dict(patch_size=(2, 0)), "patch_size: expected positive sizes"),
        (dict(image_size=(1, 12)), "smaller than patch_size"),
        (dict(layer_norm_eps=float("nan")), "finite layer_norm_eps"),
    ],
)
def test_build_errors_name_the_setting(kw, match):
    with pytest.raises(ValueError, match=match):
        build(random_tensors(SIZES), **kw)


def test_reduced_precision_build_checks_packed_arrays():
    t = random_tensors(SIZES)
    bf16 = build(t, precision="bfloat16").tensors
    assert bf16["blocks.0.mlp.fc1.weight"].dtype == np.uint16 and t["blocks.0.mlp.fc1.weight"].dtype == np.float32
    with pytest.raises(ValueError, match="is packed .*not float32"):
        build(bf16)
    with pytest.raises(ValueError, match="expected float32 or int8 packed as int8, got uint16"):
        build(bf16, precision="int8")
    short = dict(bf16, **{"blocks.1.mlp.fc2.weight": bf16["blocks.1.mlp.fc2.weight"][:-2]})
    packed_as = r"blocks.1.mlp.fc2.weight: expected uint16 \(bfloat16 packed from \(24, 40\)\)"
    with pytest.raises(ValueError, match=packed_as):
        build(short, precision="bfloat16")
    int8 = build(t, precision="int8").tensors
    assert int8["blocks.0.attn.proj.weight.col_sums"].dtype == np.int32
    del int8["blocks.0.attn.proj.weight.scales"]
    with pytest.raises(ValueError, match=r"missing tensors \['blocks.0.attn.proj.weight.scales'\]"):
        build(int8, precision="int8")


def test_per_call_checks():
    model = build(random_tensors(SIZES))
    with pytest.raises(ValueError, match=r"pixels: expected a float32 array \(B, 3, H, W\) with H >= 2 and W >= 3"):
        model.forward(np.zeros((1, 3, 10, 12)))  # float64
    with pytest.raises(ValueError, match=r"pixels: expected \(B, 3, H, W\).*got \(1, 1, 10, 12\)"):
        model.forward(np.zeros((1, 1, 10, 12), np.float32))
    with pytest.raises(ValueError, match=r"pixels: expected .*got \(1, 3, 1, 12\)"):
        model.forward(np.zeros((1, 3, 1, 12), np.float32))
    with pytest.raises(ValueError, match="stored position table is for 10x12 images: pass an interpolated pos_table"):
        model.forward(np.zeros((1, 3, 12, 12), np.float32))
    with pytest.raises(ValueError, match=r"pos_table: expected \(21, 24\) for a 5x4 patch grid and 1 prefix"):
        model.forward(np.zeros((1, 3, 10, 12), np.float32), np.zeros((20, 24), np.float32))
    # Any layout of float32 pixels is accepted (copied when needed): the same result.
    x = pixels(2, 10, 12)
    np.testing.assert_array_equal(model.forward(np.asfortranarray(x))["logits"], model.forward(x)["logits"])
    out = model.forward(np.zeros((0, 3, 10, 12), np.float32), None, True, True)
    assert out["logits"].shape == (0, 5) and out["attentions"].shape == (2, 0, 3, 21, 21)


def test_model_keeps_what_it_reads():
    t = random_tensors(SIZES)
    model = build(t)
    held = model.tensors
    assert set(held) == set(t) and all(held[k] is t[k] for k in t)  # aligned contiguous float32: no copy
    assert model.weight_nbytes == sum(a.nbytes for a in t.values())
    # The first forward packs the float32 GEMM weights (the blocks' four and the patch projection):
    # each packed copy replaces its original; every other array is kept as given.
    x = pixels(2, 10, 12)
    logits = model.forward(x)["logits"]
    held = model.tensors
    gemm = {k for k in t if k.endswith(("qkv.weight", "proj.weight", "fc1.weight", "fc2.weight"))}
    assert "patch_embed.proj.weight" in gemm and len(gemm) == 1 + 4 * 2
    assert set(held) == set(t) and all(held[k] is t[k] for k in set(t) - gemm)
    for k in gemm:
        n, k_ = t[k].shape
        assert held[k].shape == (-(-n // 16) * 16 * k_,) and held[k].ctypes.data % 64 == 0
    assert model.weight_nbytes == sum(a.nbytes for a in held.values())
    # the packed arrays build the model again
    np.testing.assert_array_equal(build(held).forward(x)["logits"], logits)
    del t, held
    np.testing.assert_array_equal(model.forward(x)["logits"], logits)


def test_tier_change_between_calls_keeps_the_workspace_consistent():
    """The workspace is planned per call from the tier it runs at (bf16 attention on AMX needs more)."""
    t = random_tensors(SIZES)
    model = build(t, precision="bfloat16")
    x = pixels(1, 10, 12)
    results = []
    for tier in (*TIERS, *reversed(TIERS)):
        with at_tier(tier):
            results.append(model.forward(x)["logits"])
    for r in results:
        assert np.linalg.norm(r - results[0]) <= 0.05 * np.linalg.norm(results[0])
