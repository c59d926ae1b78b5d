"""vitc as a drop-in for transformers (issue 16): outputs that behave like ModelOutput, config.json's
output flags, every ViTConfig field, sizes the patch does not divide, non-square patches, any pooler
size and activation. Each against transformers itself, on checkpoints the tests write."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from factories import HF_TEST_CONFIG, hf_forward, make_checkpoint
from test_model import HIDDEN_ATOL, assert_matches_hf, pixels, scaled_max_err

import vitc
from vitc.config import SUPPORTED_ACTIVATIONS, ViTConfig

# ---------------------------------------------------------------------------------------------------
# Outputs: ModelOutput's access patterns, transformers' field order


def assert_same_tuple(ours: tuple, ref: tuple) -> None:
    """Two to_tuple()s: same length, and each entry (array or tuple of arrays) the same values."""
    assert len(ours) == len(ref)
    for a, e in zip(ours, ref):
        if isinstance(e, tuple):
            assert isinstance(a, tuple) and len(a) == len(e)
            for x, y in zip(a, e):
                assert scaled_max_err(x, y.numpy()) < HIDDEN_ATOL
        else:
            assert a.shape == tuple(e.shape)
            assert scaled_max_err(a, e.numpy()) < HIDDEN_ATOL


@pytest.fixture(scope="module")
def cls_ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cls")
    return folder, make_checkpoint(folder)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("attn", [False, True])
def test_classifier_output_like_model_output(cls_ckpt, hidden, attn):
    folder, hf = cls_ckpt
    model = vitc.ViT.from_pretrained(folder)
    x = pixels(HF_TEST_CONFIG, batch=2)
    ours = model(x, output_hidden_states=hidden, output_attentions=attn)
    ref = hf_forward(hf, x, output_hidden_states=hidden, output_attentions=attn)
    assert type(ours).__name__ == type(ref).__name__ == "ImageClassifierOutput"
    assert ours.keys() == list(ref.keys())
    assert list(ours) == list(ref) and len(ours) == len(ref)
    assert [k for k, _ in ours.items()] == [k for k, _ in ref.items()]
    assert_same_tuple(ours.to_tuple(), ref.to_tuple())
    # integer, negative, slice, key and attribute access all name the same arrays
    assert ours[0] is ours["logits"] is ours.logits
    assert ours[-1] is ours.to_tuple()[-1] and ours[:1] == (ours.logits,)
    assert ("hidden_states" in ours) == hidden and ours.loss is None and "loss" not in ours
    if not hidden:
        with pytest.raises(KeyError):
            ours["hidden_states"]  # as transformers: a None field is no key
        assert ours.hidden_states is None
    with pytest.raises(IndexError):
        ours[len(ref)]
    # return_dict=False: the tuple transformers returns
    ref_t = hf_forward(hf, x, output_hidden_states=hidden, output_attentions=attn, return_dict=False)
    ours_t = model(x, output_hidden_states=hidden, output_attentions=attn, return_dict=False)
    assert isinstance(ours_t, tuple)
    assert_same_tuple(ours_t, ref_t)


@pytest.mark.parametrize("pooler", [False, True])
def test_base_model_output_order(tmp_path, pooler):
    hf = make_checkpoint(tmp_path, bare=True, pooler=pooler)
    model = vitc.ViT.from_pretrained(tmp_path)
    x = pixels(HF_TEST_CONFIG, batch=2)
    ours = model(x, output_attentions=True)
    ref = hf_forward(hf, x, output_attentions=True)
    assert type(ours).__name__ == type(ref).__name__ == "BaseModelOutputWithPooling"
    assert ours.keys() == list(ref.keys())  # pooler_output skipped when None, attentions after it
    assert_same_tuple(ours.to_tuple(), ref.to_tuple())
    assert ours[1] is (ours.pooler_output if pooler else ours.attentions)


def _write_flags(folder, **flags) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(flags)
    (folder / "config.json").write_text(json.dumps(cfg))


def test_config_output_flags_are_defaults(tmp_path):
    """config.json's output_attentions / output_hidden_states / return_dict, as transformers reads them."""
    make_checkpoint(tmp_path, bare=True, pooler=True)
    _write_flags(tmp_path, output_attentions=True, output_hidden_states=True, return_dict=False)
    hf = transformers.ViTModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    model = vitc.ViT.from_pretrained(tmp_path)
    x = pixels(HF_TEST_CONFIG, batch=2)
    assert model.config.output_attentions and model.config.output_hidden_states and not model.config.return_dict
    ref, ours = hf_forward(hf, x), model(x)
    assert isinstance(ref, tuple) and isinstance(ours, tuple) and len(ours) == len(ref) == 4
    assert_same_tuple(ours, ref)
    # the call's arguments override the config
    for kwargs in (
        dict(return_dict=True),
        dict(return_dict=True, output_attentions=False),
        dict(output_hidden_states=False),
    ):
        ref, ours = hf_forward(hf, x, **kwargs), model(x, **kwargs)
        assert type(ours) is not tuple or isinstance(ref, tuple)
        if isinstance(ref, tuple):
            assert_same_tuple(ours, ref)
        else:
            assert ours.keys() == list(ref.keys())
            assert_same_tuple(ours.to_tuple(), ref.to_tuple())


def test_config_output_flags_classifier(tmp_path):
    make_checkpoint(tmp_path)
    _write_flags(tmp_path, output_attentions=True, output_hidden_states=True)
    hf = transformers.ViTForImageClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    model = vitc.ViT.from_pretrained(tmp_path)
    x = pixels(HF_TEST_CONFIG, batch=1)
    ref, ours = hf_forward(hf, x), model(x)
    assert ours.keys() == list(ref.keys()) == ["logits", "hidden_states", "attentions"]
    assert_same_tuple(ours.to_tuple(), ref.to_tuple())
    # use_return_dict, the name transformers 4 used, reads as return_dict
    _write_flags(tmp_path, use_return_dict=False)
    assert isinstance(vitc.ViT.from_pretrained(tmp_path)(x), tuple)


def test_return_dict_false_survives_convert(tmp_path):
    make_checkpoint(tmp_path / "hf")
    _write_flags(
        tmp_path / "hf", return_dict=False, output_hidden_states=True, problem_type="multi_label_classification"
    )
    vitc.convert(tmp_path / "hf", tmp_path / "m.vitc")
    model = vitc.ViT.from_pretrained(tmp_path / "m.vitc")
    c = model.config
    assert (c.return_dict, c.output_hidden_states, c.problem_type) == (False, True, "multi_label_classification")
    out = model(pixels(HF_TEST_CONFIG, batch=1))
    assert isinstance(out, tuple) and len(out) == 2  # logits, hidden_states


# ---------------------------------------------------------------------------------------------------
# Config: every transformers ViTConfig field, same meaning and default


def test_every_transformers_field_same_default():
    ours, ref = ViTConfig(), transformers.ViTConfig()
    skip = {"pooler_output_size"}  # transformers fills in hidden_size; vitc keeps None and means the same
    model_fields = [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "initializer_range",
        "layer_norm_eps",
        "image_size",
        "patch_size",
        "num_channels",
        "qkv_bias",
        "encoder_stride",
        "pooler_output_size",
        "pooler_act",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
        "problem_type",
        "num_labels",
        "id2label",
        "model_type",
    ]
    # every field of transformers' ViTConfig is among them
    own = {n for n in vars(ref) if not n.startswith("_")} & set(transformers.ViTConfig.__annotations__)
    assert own <= set(model_fields), own - set(model_fields)
    for name in model_fields:
        if name in skip:
            continue
        assert getattr(ours, name) == getattr(ref, name), name
    assert ours.pooler_size == ref.pooler_output_size


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"hidden_act: .* found 'swish' \(a transformers activation vitc does not implement\)"
    ):
        ViTConfig(hidden_act="swish")
    with pytest.raises(ValueError, match=r"pooler_act: .*found 'bogus' \(not an activation transformers knows"):
        ViTConfig(pooler_act="bogus")
    assert ViTConfig(hidden_act="gelu_python").hidden_act == "gelu"  # the same function in transformers
    for bad in (dict(problem_type="ranking"), dict(global_pool="max"), dict(encoder_stride=0)):
        with pytest.raises(ValueError):
            ViTConfig(**bad)
    with pytest.raises(ValueError, match="requires more than one label"):
        ViTConfig.from_dict({"num_labels": 1, "problem_type": "single_label_classification"})


CONFIG_VARIANTS = {
    # sizes the patch does not divide: transformers' convolution drops the remainder
    "image_31_patch_4": dict(image_size=31, patch_size=4),
    "image_30_patch_4": dict(image_size=30, patch_size=4),
    # non-square patches and images, as lists in config.json
    "rect_patch": dict(image_size=[30, 24], patch_size=[3, 4]),
    "rect_patch_remainder": dict(image_size=[31, 26], patch_size=[4, 3]),
    "gelu_python": dict(hidden_act="gelu_python"),
    "tanh_mlp": dict(hidden_act="tanh"),
}


@pytest.mark.parametrize("name", list(CONFIG_VARIANTS))
def test_config_variants_match_transformers(tmp_path, name):
    kwargs = CONFIG_VARIANTS[name]
    hf = make_checkpoint(tmp_path, **kwargs)
    model = vitc.ViT.from_pretrained(tmp_path)
    size = kwargs.get("image_size", HF_TEST_CONFIG["image_size"])
    h, w = size if isinstance(size, list) else (size, size)
    assert_matches_hf(model, hf, pixels({**HF_TEST_CONFIG, **kwargs}, size=(h, w)))


@pytest.mark.parametrize("pooler_act", [a for a in SUPPORTED_ACTIVATIONS if a != "gelu_fast"] + ["gelu_fast"])
@pytest.mark.parametrize("pooler_size", [32, 20])
def test_pooler_size_and_activation(tmp_path, pooler_act, pooler_size):
    hf = make_checkpoint(tmp_path, bare=True, pooler=True, pooler_act=pooler_act, pooler_output_size=pooler_size)
    model = vitc.ViT.from_pretrained(tmp_path)
    x = pixels(HF_TEST_CONFIG, batch=2)
    assert model(x).pooler_output.shape == (2, pooler_size)
    assert_matches_hf(model, hf, x)


@pytest.mark.parametrize("size", [(31, 31), (33, 29), (30, 31)])
def test_interpolate_at_sizes_the_patch_does_not_divide(tmp_path, size):
    hf = make_checkpoint(tmp_path)
    model = vitc.ViT.from_pretrained(tmp_path)
    assert_matches_hf(model, hf, pixels(HF_TEST_CONFIG, batch=2, size=size), interpolate_pos_encoding=True)


def test_output_of_bare_model_with_torch_input(tmp_path):
    """pixel_values as a torch tensor (what transformers users pass): the same numbers."""
    hf = make_checkpoint(tmp_path, bare=True)
    model = vitc.ViT.from_pretrained(tmp_path)
    x = pixels(HF_TEST_CONFIG, batch=1)
    ours = model(torch.from_numpy(x))
    assert scaled_max_err(ours.last_hidden_state, hf_forward(hf, x).last_hidden_state.numpy()) < HIDDEN_ATOL
