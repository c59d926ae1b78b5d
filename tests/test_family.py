"""The rest of the ViT family (issue 16): ViTModel backbones, ViTForMaskedImageModeling, DeiT (with and
without the distillation head), timm checkpoints as the hub holds them. Each against transformers on the
same weights (timm's average pooling, which transformers' ViT lacks, against a NumPy reference)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from factories import HF_TEST_CONFIG, hf_forward, make_checkpoint, write_timm_checkpoint
from test_model import HIDDEN_ATOL, LOGITS_ATOL, assert_matches_hf, pixels, scaled_max_err
from test_transformers_compat import assert_same_tuple

import vitc
from vitc.io.timm import config_from_timm

TINY = {k: v for k, v in HF_TEST_CONFIG.items()}


def _save(folder, cls, seed: int = 0, **overrides):
    """A random tiny transformers model of class ``cls``, every tensor perturbed, saved to ``folder``."""
    torch.manual_seed(seed)
    config_cls = transformers.DeiTConfig if cls.__name__.startswith("DeiT") else transformers.ViTConfig
    model = cls(config_cls(**{**TINY, **overrides}, attn_implementation="eager")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(folder)
    return model


# ---------------------------------------------------------------------------------------------------
# ViTModel as a backbone


@pytest.mark.parametrize("pooler", [True, False])
def test_backbone_features(tmp_path, pooler):
    """The features a backbone user reads: the CLS token of last_hidden_state, and pooler_output."""
    hf = make_checkpoint(tmp_path, bare=True, pooler=pooler)
    model = vitc.ViT.from_pretrained(tmp_path)
    x = pixels(HF_TEST_CONFIG, batch=3)
    ours, ref = model(x), hf_forward(hf, x)
    assert scaled_max_err(ours.last_hidden_state[:, 0], ref.last_hidden_state[:, 0].numpy()) < HIDDEN_ATOL
    if pooler:
        assert scaled_max_err(ours.pooler_output, ref.pooler_output.numpy()) < HIDDEN_ATOL
    else:
        assert ours.pooler_output is None and ref.pooler_output is None
    assert_matches_hf(model, hf, x)


# ---------------------------------------------------------------------------------------------------
# DeiT


DEIT = ["DeiTForImageClassificationWithTeacher", "DeiTForImageClassification", "DeiTModel"]


@pytest.mark.parametrize("name", DEIT)
@pytest.mark.parametrize("size", [None, (34, 34), (26, 38)])
def test_deit_matches_transformers(tmp_path, name, size):
    hf = _save(tmp_path, getattr(transformers, name))
    model = vitc.ViT.from_pretrained(tmp_path)
    assert model.config.model_type == "deit" and model._model.num_prefix_tokens == 2
    x = pixels(HF_TEST_CONFIG, batch=2, size=size)
    kwargs = dict(interpolate_pos_encoding=True) if size else {}
    ours = model(x, output_hidden_states=True, output_attentions=True, **kwargs)
    ref = hf_forward(hf, x, output_hidden_states=True, output_attentions=True, **kwargs)
    assert type(ours).__name__ == type(ref).__name__
    assert ours.keys() == list(ref.keys())
    assert_same_tuple(ours.to_tuple(), ref.to_tuple())
    if name.endswith("WithTeacher"):
        np.testing.assert_allclose(ours.logits, (ours.cls_logits + ours.distillation_logits) / 2, rtol=1e-6)
        assert scaled_max_err(ours.logits, ref.logits.numpy()) < LOGITS_ATOL


def test_deit_attention_map_and_predict(tmp_path):
    """The rollout reads the CLS row past both prefix tokens; predict averages the two heads."""
    hf = _save(tmp_path, transformers.DeiTForImageClassificationWithTeacher)
    model = vitc.ViT.from_pretrained(tmp_path)
    image = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    assert model.attention_map(image).shape == (40, 50)
    x = model.image_processor([image])
    want = torch.softmax(hf_forward(hf, x).logits, -1)[0].numpy()
    pred = model.predict(image, top_k=3)
    np.testing.assert_allclose([p for _, p in pred], np.sort(want)[::-1][:3], atol=1e-5)


def test_deit_converted_file(tmp_path):
    hf = _save(tmp_path / "hf", transformers.DeiTForImageClassificationWithTeacher)
    vitc.convert(tmp_path / "hf", tmp_path / "deit.vitc")
    model = vitc.ViT.from_pretrained(tmp_path / "deit.vitc", verify=True)
    x = pixels(HF_TEST_CONFIG, batch=2)
    ours, ref = model(x), hf_forward(hf, x)
    for key in ("logits", "cls_logits", "distillation_logits"):
        assert scaled_max_err(ours[key], ref[key].numpy()) < LOGITS_ATOL
    for dtype in ("bfloat16", "int8"):  # the reduced-precision files keep the family's tensors
        vitc.convert(tmp_path / "hf", tmp_path / f"deit-{dtype}.vitc", dtype=dtype)
        low = vitc.ViT.from_pretrained(tmp_path / f"deit-{dtype}.vitc")
        assert low(x).distillation_logits.shape == (2, 10)


# ---------------------------------------------------------------------------------------------------
# ViTForMaskedImageModeling


@pytest.mark.parametrize("stride", [2, 3])
def test_masked_image_modeling(tmp_path, stride):
    hf = _save(tmp_path / "hf", transformers.ViTForMaskedImageModeling, encoder_stride=stride)
    x = pixels(HF_TEST_CONFIG, batch=2)
    ref = hf_forward(hf, x, output_hidden_states=True)
    for src in (tmp_path / "hf", vitc.convert(tmp_path / "hf", tmp_path / "mim.vitc")):
        model = vitc.ViT.from_pretrained(src)
        ours = model(x, output_hidden_states=True)
        assert type(ours).__name__ == type(ref).__name__ == "MaskedImageModelingOutput"
        assert ours.keys() == list(ref.keys()) == ["reconstruction", "hidden_states"]
        assert ours.reconstruction.shape == tuple(ref.reconstruction.shape) == (2, 3, 15 * stride, 15 * stride)
        assert_same_tuple(ours.to_tuple(), ref.to_tuple())
    # at another (square) size, as transformers' decoder takes a square grid
    y = pixels(HF_TEST_CONFIG, batch=1, size=(34, 34))
    ours, ref = model(y, interpolate_pos_encoding=True), hf_forward(hf, y, interpolate_pos_encoding=True)
    assert scaled_max_err(ours.reconstruction, ref.reconstruction.numpy()) < HIDDEN_ATOL
    with pytest.raises(ValueError, match="bool_masked_pos"):
        model(x, bool_masked_pos=np.zeros((2, 225), bool))


def test_deit_masked_image_modeling_refused(tmp_path):
    """transformers' DeiT decoder reads sequence_output[:, 1:-1] (not the patches): refused, not guessed."""
    _save(tmp_path, transformers.DeiTForMaskedImageModeling, encoder_stride=2)
    with pytest.raises(ValueError, match="DeiTForMaskedImageModeling.*not supported"):
        vitc.ViT.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------------------------
# timm checkpoints


def _timm_hf(seed: int = 0):
    """The transformers model a timm checkpoint is written from: timm's LayerNorm eps 1e-6, erf GELU."""
    from factories import make_model

    model = make_model("cls", seed, eager=True, layer_norm_eps=1e-6)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def test_timm_token_pooling(tmp_path):
    hf = _timm_hf()
    write_timm_checkpoint(tmp_path / "timm", hf, global_pool="token")
    model = vitc.ViT.from_pretrained(tmp_path / "timm")
    c = model.config
    assert (c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.layer_norm_eps) == (32, 2, 37, 1e-6)
    x = pixels(HF_TEST_CONFIG, batch=3)
    assert_matches_hf(model, hf, x)
    assert_matches_hf(model, hf, pixels(HF_TEST_CONFIG, batch=1, size=(34, 26)), interpolate_pos_encoding=True)


def _avg_pool_reference(hf, x: np.ndarray) -> np.ndarray:
    """timm's average pooling in NumPy on transformers' last block output: fc_norm(mean of the patch
    tokens) then the head (no final norm on the tokens)."""
    ref = hf_forward(hf, x, output_hidden_states=True)
    tokens = ref.hidden_states[-1].numpy().astype(np.float64)  # before the final layernorm
    pooled = tokens[:, 1:].mean(axis=1)
    mu, var = pooled.mean(-1, keepdims=True), pooled.var(-1, keepdims=True)
    w, b = hf.vit.layernorm.weight.detach().double().numpy(), hf.vit.layernorm.bias.detach().double().numpy()
    normed = (pooled - mu) / np.sqrt(var + hf.config.layer_norm_eps) * w + b
    return normed @ hf.classifier.weight.detach().double().numpy().T + hf.classifier.bias.detach().double().numpy()


def test_timm_average_pooling(tmp_path):
    hf = _timm_hf(1)
    write_timm_checkpoint(tmp_path / "timm", hf, global_pool="avg")
    model = vitc.ViT.from_pretrained(tmp_path / "timm")
    assert model.config.global_pool == "avg"
    x = pixels(HF_TEST_CONFIG, batch=3)
    out = model(x, output_hidden_states=True)
    assert scaled_max_err(out.logits, _avg_pool_reference(hf, x)) < LOGITS_ATOL
    ref = hf_forward(hf, x, output_hidden_states=True)
    for a, e in zip(out.hidden_states, ref.hidden_states):
        assert scaled_max_err(a, e.numpy()) < HIDDEN_ATOL


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_vitc_convert_cli_on_timm(tmp_path, pool):
    hf = _timm_hf(2)
    src = write_timm_checkpoint(tmp_path / "timm", hf, global_pool=pool)
    dst = tmp_path / "timm.vitc"
    proc = subprocess.run(
        [sys.executable, "-m", "vitc", "convert", str(src), str(dst)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    model = vitc.ViT.from_pretrained(dst, verify=True)
    direct = vitc.ViT.from_pretrained(src)
    x = pixels(HF_TEST_CONFIG, batch=2)
    np.testing.assert_array_equal(model(x).logits, direct(x).logits)
    assert model.config.global_pool == pool
    # timm's eval transform as the preprocessing: resize to size / crop_pct, center crop
    pre = model.image_processor
    assert pre.do_center_crop and pre.crop_size == {"height": 30, "width": 30} and pre.size == {"shortest_edge": 33}


def test_timm_names_and_refusals(tmp_path):
    config, pre = config_from_timm({"architecture": "vit_base_patch16_224", "num_classes": 1000})
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.intermediate_size, config.patch_size, config.image_size, config.num_labels) == (3072, 16, 224, 1000)
    config, _ = config_from_timm(
        {"architecture": "vit_large_patch16_384", "num_classes": 2, "label_names": ["cat", "dog"]}
    )
    assert (config.hidden_size, config.num_hidden_layers, config.image_size, config.id2label) == (
        1024,
        24,
        384,
        {0: "cat", 1: "dog"},
    )
    for bad, match in (
        ({"architecture": "resnet50"}, "expected a ViT name"),
        ({"architecture": "vit_base_patch16_224", "global_pool": "map"}, "global_pool"),
        ({"architecture": "vit_base_patch16_224", "model_args": {"class_token": False}}, "class_token"),
    ):
        with pytest.raises(ValueError, match=match):
            config_from_timm(bad)
    # a tensor vitc does not run (register tokens) is refused by name
    hf = _timm_hf()
    src = write_timm_checkpoint(tmp_path / "timm", hf)
    from safetensors.numpy import load_file, save_file

    sd = load_file(src / "model.safetensors")
    sd["reg_token"] = np.zeros((1, 4, 32), np.float32)
    save_file(sd, src / "model.safetensors")
    with pytest.raises(ValueError, match=r"does not use: \['reg_token'\]"):
        vitc.ViT.from_pretrained(src)
    cfg = json.loads((src / "config.json").read_text())
    assert "model_type" not in cfg
