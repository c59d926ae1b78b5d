"""transformers' own ViT and DeiT model tests, ported to vitc (issue 16).

The subset of tests/models/vit/test_modeling_vit.py, tests/models/deit/test_modeling_deit.py and the
ModelTesterMixin tests they run (tests/test_modeling_common.py) that applies to inference: output shapes
(ViTModelTester.create_and_check_*), greyscale images, attentions and hidden states (counts, shapes, asked
by argument or by config), return_dict tuple/dict equivalence, batching equivalence, determinism, the
forward signature, interpolate_pos_encoding, the config's round trip. Same tester config as
transformers' (batch 13, image 30, patch 2, hidden 32, 2 layers, 4 heads, MLP 37, dropout 0.1 (unused
at inference), encoder_stride 2); every output is also compared with transformers' on the same weights.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
import transformers
from test_model import HIDDEN_ATOL, scaled_max_err
from test_transformers_compat import assert_same_tuple

import vitc
from vitc.config import ViTConfig

TESTER = dict(
    image_size=30,
    patch_size=2,
    num_channels=3,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    initializer_range=0.02,
    encoder_stride=2,
)
BATCH = 13
TYPE_SEQUENCE_LABEL_SIZE = 10
NUM_PATCHES = (30 // 2) ** 2

# model class -> (prefix tokens: CLS (+ distillation), what its output holds)
CLASSES = {
    "ViTModel": 1,
    "ViTForImageClassification": 1,
    "ViTForMaskedImageModeling": 1,
    "DeiTModel": 2,
    "DeiTForImageClassification": 2,
    "DeiTForImageClassificationWithTeacher": 2,
}


def floats_tensor(shape, seed: int = 0) -> np.ndarray:
    """transformers' floats_tensor: uniform in [0, 1)."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _checkpoint(folder, name: str, **overrides):
    torch.manual_seed(0)
    config_cls = transformers.DeiTConfig if name.startswith("DeiT") else transformers.ViTConfig
    kwargs = {**TESTER, **overrides, "attn_implementation": "eager"}
    if "ImageClassification" in name:
        kwargs["num_labels"] = TYPE_SEQUENCE_LABEL_SIZE
    model = getattr(transformers, name)(config_cls(**kwargs)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module", params=list(CLASSES))
def pair(request, tmp_path_factory):
    """(model class name, vitc model, transformers model) on the same random weights."""
    folder = tmp_path_factory.mktemp(request.param)
    hf = _checkpoint(folder, request.param)
    return request.param, vitc.ViT.from_pretrained(folder), hf, folder


def _ref(hf, x, **kwargs):
    with torch.no_grad():
        return hf(torch.from_numpy(x), **kwargs)


# ---------------------------------------------------------------------------------------------------
# ViTModelTester.create_and_check_* (and DeiT's): output shapes, greyscale


def test_output_shapes(pair):
    name, model, hf, _ = pair
    x = floats_tensor((BATCH, 3, 30, 30))
    out, ref = model(x), _ref(hf, x)
    seq_length = NUM_PATCHES + CLASSES[name]
    if name.endswith("Model"):
        assert out.last_hidden_state.shape == (BATCH, seq_length, 32)
    elif "MaskedImageModeling" in name:
        assert out.reconstruction.shape == (BATCH, 3, 30, 30)
    else:
        assert out.logits.shape == (BATCH, TYPE_SEQUENCE_LABEL_SIZE)
    assert out.keys() == list(ref.keys())
    assert_same_tuple(out.to_tuple(), ref.to_tuple())


@pytest.mark.parametrize("name", [n for n in CLASSES if not n.endswith("Model")])
def test_greyscale(tmp_path, name):
    hf = _checkpoint(tmp_path, name, num_channels=1)
    model = vitc.ViT.from_pretrained(tmp_path)
    x = floats_tensor((BATCH, 1, 30, 30))
    out = model(x)
    if "MaskedImageModeling" in name:
        assert out.reconstruction.shape == (BATCH, 1, 30, 30)
    else:
        assert out.logits.shape == (BATCH, TYPE_SEQUENCE_LABEL_SIZE)
    assert_same_tuple(out.to_tuple(), _ref(hf, x).to_tuple())


# ---------------------------------------------------------------------------------------------------
# ModelTesterMixin: attentions and hidden states


def _set_config_flags(folder, **flags):
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, **flags}))
    return vitc.ViT.from_pretrained(folder)


def test_attention_outputs(pair, tmp_path):
    """test_attention_outputs: asked by argument, then by config; L attentions of (heads, seq, seq); asking
    for hidden states too adds exactly one output after the others."""
    name, model, hf, folder = pair
    seq_length = NUM_PATCHES + CLASSES[name]
    x = floats_tensor((2, 3, 30, 30), seed=1)
    plain = model(x)
    out = model(x, output_attentions=True)
    assert len(out.attentions) == TESTER["num_hidden_layers"]
    assert all(a.shape == (2, 4, seq_length, seq_length) for a in out.attentions)
    out_len = len(out)
    ref = _ref(hf, x, output_attentions=True)
    for a, e in zip(out.attentions, ref.attentions):
        assert scaled_max_err(a, e.numpy()) < HIDDEN_ATOL
    both = model(x, output_attentions=True, output_hidden_states=True)
    assert len(both) == out_len + 1 and len(plain) == out_len - 1
    assert both.to_tuple()[-1] is both.attentions  # attentions stay last, as in transformers
    # by config (config.json's output_attentions), and the argument still overrides it
    import shutil

    copy = tmp_path / "flags"
    shutil.copytree(folder, copy)
    flagged = _set_config_flags(copy, output_attentions=True)
    assert len(flagged(x).attentions) == TESTER["num_hidden_layers"]
    assert flagged(x, output_attentions=False).attentions is None


def test_hidden_states_output(pair, tmp_path):
    name, model, hf, folder = pair
    seq_length = NUM_PATCHES + CLASSES[name]
    x = floats_tensor((2, 3, 30, 30), seed=2)
    out = model(x, output_hidden_states=True)
    assert len(out.hidden_states) == TESTER["num_hidden_layers"] + 1
    assert all(h.shape == (2, seq_length, 32) for h in out.hidden_states)
    for a, e in zip(out.hidden_states, _ref(hf, x, output_hidden_states=True).hidden_states):
        assert scaled_max_err(a, e.numpy()) < HIDDEN_ATOL
    import shutil

    copy = tmp_path / "flags"
    shutil.copytree(folder, copy)
    flagged = _set_config_flags(copy, output_hidden_states=True)
    assert len(flagged(x).hidden_states) == TESTER["num_hidden_layers"] + 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        dict(output_hidden_states=True),
        dict(output_attentions=True),
        dict(output_hidden_states=True, output_attentions=True),
    ],
)
def test_model_outputs_equivalence(pair, kwargs):
    """test_model_outputs_equivalence: return_dict=False gives the dict output's to_tuple(), entry by entry."""
    _, model, hf, _ = pair
    x = floats_tensor((2, 3, 30, 30), seed=3)
    as_dict = model(x, return_dict=True, **kwargs)
    as_tuple = model(x, return_dict=False, **kwargs)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict)
    for t, d in zip(as_tuple, as_dict.to_tuple()):
        if isinstance(d, tuple):
            assert all(np.array_equal(a, b) for a, b in zip(t, d))
        else:
            np.testing.assert_array_equal(t, d)
    assert_same_tuple(as_tuple, _ref(hf, x, return_dict=False, **kwargs))


def test_batching_equivalence(pair):
    """test_batching_equivalence: a batch gives each image's result alone (within float32 rounding)."""
    _, model, _, _ = pair
    x = floats_tensor((BATCH, 3, 30, 30), seed=4)
    batched = model(x, output_hidden_states=True).to_tuple()
    for i in (0, 5, BATCH - 1):
        single = model(x[i : i + 1], output_hidden_states=True).to_tuple()
        for b, s in zip(batched, single):
            for bb, ss in zip(b if isinstance(b, tuple) else (b,), s if isinstance(s, tuple) else (s,)):
                assert scaled_max_err(bb[i : i + 1], ss) < 1e-5


def test_determinism(pair):
    _, model, _, _ = pair
    x = floats_tensor((3, 3, 30, 30), seed=5)
    first, second = model(x).to_tuple()[0], model(x).to_tuple()[0]
    np.testing.assert_array_equal(first, second)


def test_forward_signature(pair):
    """test_forward_signature: pixel_values first; the output arguments transformers takes."""
    _, model, _, _ = pair
    params = list(inspect.signature(model.__call__).parameters)
    assert params[0] == "pixel_values"
    assert {"output_attentions", "output_hidden_states", "return_dict", "interpolate_pos_encoding"} <= set(params)


def test_save_load(pair, tmp_path):
    """test_save_load: a converted file gives the same outputs as the checkpoint it came from."""
    _, model, _, folder = pair
    converted = vitc.ViT.from_pretrained(vitc.convert(folder, tmp_path / "m.vitc"))
    x = floats_tensor((2, 3, 30, 30), seed=6)
    for a, b in zip(model(x).to_tuple(), converted(x).to_tuple()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------------
# interpolate_pos_encoding (ViTModelIntegrationTest.test_inference_interpolate_pos_encoding, tiny)


@pytest.mark.parametrize("size", [(40, 40), (24, 36)])
def test_interpolate_pos_encoding(pair, size):
    name, model, hf, _ = pair
    x = floats_tensor((1, 3, *size), seed=7)
    out = model(x, interpolate_pos_encoding=True)
    if "MaskedImageModeling" in name and size[0] != size[1]:
        # transformers' MIM decoder reshapes to a square grid and fails here: its encoder is the
        # reference for the hidden states, and the reconstruction has the image's shape.
        enc = _ref(hf.vit, x, interpolate_pos_encoding=True)
        np.testing.assert_allclose(out.last_hidden_state, enc.last_hidden_state.numpy(), rtol=1e-4, atol=1e-4)
        assert out.reconstruction.shape == (1, 3, *size)
        return
    ref = _ref(hf, x, interpolate_pos_encoding=True)
    if name.endswith("Model"):
        seq = (size[0] // 2) * (size[1] // 2) + CLASSES[name]
        assert out.last_hidden_state.shape == (1, seq, 32)
    assert_same_tuple(out.to_tuple(), ref.to_tuple())
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model(x)  # another size without it: refused, as transformers refuses it


# ---------------------------------------------------------------------------------------------------
# ConfigTester.run_common_tests, the parts that apply


def test_config_common():
    """create_and_test_config_common_properties / to_json_string / from_dict / num_labels."""
    config = ViTConfig(**{k: v for k, v in TESTER.items()}, id2label={0: "a", 1: "b", 2: "c"})
    for attr in ("hidden_size", "num_attention_heads", "num_hidden_layers"):
        assert hasattr(config, attr)
    again = ViTConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    # test_config_num_labels: num_labels in a dict makes that many labels, as transformers'
    assert ViTConfig.from_dict({"num_labels": 5}).num_labels == 5
    assert ViTConfig.from_dict({}).num_labels == transformers.ViTConfig().num_labels == 2
    hf = transformers.ViTConfig(**TESTER)
    ours = ViTConfig.from_dict(hf.to_dict())
    for name in TESTER:
        assert getattr(ours, name) == getattr(hf, name), name
