"""Tests of vitc.convert: the HF -> vitc name table, the .vitc file format, atomic writes, corrupt files."""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from factories import PREPROCESSOR, make_model, save_bin, state_dict_numpy
from hostile_cases import mutate_header, reseal, vitc_layout
from transformers import ViTConfig as HFConfig

import vitc
from vitc.config import PreprocessorConfig, ViTConfig
from vitc.convert import convert
from vitc.io import convert_state_dict, is_converted_file, load_any, load_converted, read_metadata
from vitc.io.hf import WEIGHT_MAP
from vitc.io.vitc_file import ALIGNMENT, CONFIG_KEYS, HEADER_KEYS, PREPROCESSOR_KEYS, TENSOR_KEYS
from vitc.weights import TENSORS, expected_shapes

# The module that writes .vitc files (its _write_tensor is the seam for injected write failures).
vfile = importlib.import_module("vitc.io.vitc_file")


def hf_folder(path: Path, model: torch.nn.Module, *, fmt: str = "safetensors", preprocessor: bool = True) -> Path:
    if fmt == "safetensors":
        model.save_pretrained(path)
    else:
        save_bin(model, path)
    if preprocessor:
        (path / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    return path


def config_of(model: torch.nn.Module) -> ViTConfig:
    return ViTConfig.from_dict(model.config.to_dict())


# ---------------------------------------------------------------------------------------------------
# Config


def test_config_from_hf(cls_model, tmp_path):
    cls_model.config.to_json_file(tmp_path / "config.json")
    cfg = ViTConfig.from_json_file(tmp_path)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (
        32,
        2,
        4,
        37,
    )
    assert cfg.image_size == 30 and cfg.patch_size == 2 and cfg.num_positions == 1 + 15 * 15
    assert cfg.id2label[3] == "LABEL_3" and cfg.num_labels == 10 and cfg.layer_norm_eps == 1e-12
    assert ViTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert ViTConfig() == ViTConfig.from_dict({})  # defaults are transformers' defaults
    assert ViTConfig().hidden_size == 768 and ViTConfig().image_size == 224


def test_config_pairs_and_errors():
    cfg = ViTConfig(image_size=[32, 48], patch_size=[4, 8])
    assert cfg.grid_size == (8, 6) and cfg.to_dict()["image_size"] == [32, 48]
    with pytest.raises(ValueError, match=r"hidden_size \(30\) must be a multiple of num_attention_heads \(4\)"):
        ViTConfig(hidden_size=30, num_attention_heads=4)
    # sizes the patch does not divide are valid (transformers' convolution drops the remainder)
    assert ViTConfig(image_size=30, patch_size=4).grid_size == (7, 7)
    with pytest.raises(ValueError, match=r"image height \(3\) is smaller than the patch height \(4\)"):
        ViTConfig(image_size=3, patch_size=4)
    with pytest.raises(
        ValueError,
        match="expected one of gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, quick_gelu, relu, tanh, found 'swish'",
    ):
        ViTConfig(hidden_act="swish")
    with pytest.raises(ValueError, match="expected one of vit, deit, found 'beit'"):
        ViTConfig.from_dict({"model_type": "beit"})


@pytest.mark.parametrize(
    "d, labels",
    [
        ({}, 2),  # transformers' default, config.json omits it
        ({"id2label": {}}, 0),  # num_labels=0: saved as an empty table
        ({"num_labels": 0}, 0),
        ({"num_labels": 3}, 3),
        ({"id2label": {"0": "a"}}, 1),
        ({"id2label": None}, 2),
    ],
)
def test_config_label_count_follows_transformers(d, labels):
    cfg = ViTConfig.from_dict(d)
    assert cfg.num_labels == labels == HFConfig.from_dict(d).num_labels
    assert ViTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # the .vitc header keeps it
    assert ViTConfig().num_labels == 2 and ViTConfig(id2label={}).num_labels == 0


# ---------------------------------------------------------------------------------------------------
# The name table


def test_weight_map_builds_every_vitc_tensor_once():
    """The HF table (vitc/io/hf.py) has exactly one rule per tensor of vitc's schema (vitc/weights.py)."""
    assert sorted(r.dst for r in WEIGHT_MAP) == sorted(t.name for t in TENSORS)
    assert len({t.name for t in TENSORS}) == len(TENSORS)


def test_mapping_cls(cls_model):
    sd = state_dict_numpy(cls_model)
    cfg = config_of(cls_model)
    out = convert_state_dict(cfg, sd)
    assert {k: v.shape for k, v in out.items()} == expected_shapes(cfg, head=True, pooler=False)
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in out.values())
    w = sd["vit.embeddings.patch_embeddings.projection.weight"]
    np.testing.assert_array_equal(out["patch_embed.proj.weight"], w.reshape(32, 3 * 2 * 2))
    np.testing.assert_array_equal(
        out["patch_embed.proj.weight"][5, 1 * 2 * 2 + 1 * 2 + 1], w[5, 1, 1, 1]
    )  # (channel, y, x) order
    np.testing.assert_array_equal(out["cls_token"], sd["vit.embeddings.cls_token"][0, 0])
    np.testing.assert_array_equal(out["pos_embed"], sd["vit.embeddings.position_embeddings"][0])
    for i in range(2):
        a = f"vit.encoder.layer.{i}.attention.attention"
        for j, p in enumerate(("query", "key", "value")):
            np.testing.assert_array_equal(
                out[f"blocks.{i}.attn.qkv.weight"][32 * j : 32 * (j + 1)], sd[f"{a}.{p}.weight"]
            )
            np.testing.assert_array_equal(out[f"blocks.{i}.attn.qkv.bias"][32 * j : 32 * (j + 1)], sd[f"{a}.{p}.bias"])
        pairs = {
            "attn.proj.weight": "attention.output.dense.weight",
            "norm1.bias": "layernorm_before.bias",
            "norm2.weight": "layernorm_after.weight",
            "mlp.fc1.weight": "intermediate.dense.weight",
            "mlp.fc2.weight": "output.dense.weight",
            "mlp.fc2.bias": "output.dense.bias",
        }
        for dst, src in pairs.items():
            np.testing.assert_array_equal(out[f"blocks.{i}.{dst}"], sd[f"vit.encoder.layer.{i}.{src}"])
    np.testing.assert_array_equal(out["norm.weight"], sd["vit.layernorm.weight"])
    np.testing.assert_array_equal(out["head.weight"], sd["classifier.weight"])
    assert out["head.weight"].shape == (10, 32) and out["blocks.0.mlp.fc1.weight"].shape == (37, 32)


def test_mapping_bare_with_pooler(bare_model):
    sd = state_dict_numpy(bare_model)
    cfg = config_of(bare_model)
    out = convert_state_dict(cfg, sd)
    assert set(out) == set(expected_shapes(cfg, head=False, pooler=True))
    np.testing.assert_array_equal(out["pooler.weight"], sd["pooler.dense.weight"])
    np.testing.assert_array_equal(out["blocks.1.norm1.weight"], sd["encoder.layer.1.layernorm_before.weight"])


@pytest.mark.parametrize("kind", ["cls", "bare"])
def test_transformers5_in_memory_names(kind, cls_model, bare_model):
    # torch.save(model.state_dict()) under transformers 5 keeps its renamed parameters.
    model = cls_model if kind == "cls" else bare_model
    raw = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    expected = convert_state_dict(config_of(model), state_dict_numpy(model))
    found = convert_state_dict(config_of(model), raw)
    assert list(found) == list(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(found[k], v)


def test_mapping_without_qkv_bias():
    model = make_model("cls", qkv_bias=False)
    out = convert_state_dict(config_of(model), state_dict_numpy(model))
    assert "blocks.0.attn.qkv.bias" not in out and out["blocks.0.attn.qkv.weight"].shape == (96, 32)


def test_missing_misshaped_and_unused(cls_model):
    cfg = config_of(cls_model)
    sd = state_dict_numpy(cls_model)
    bad = dict(sd)
    del bad["vit.encoder.layer.1.attention.attention.key.weight"]
    with pytest.raises(ValueError, match=r"missing 1 tensor.*vit.encoder.layer.1.attention.attention.key.weight"):
        convert_state_dict(cfg, bad)
    bad = {**sd, "vit.encoder.layer.0.intermediate.dense.weight": np.zeros((36, 32), np.float32)}
    with pytest.raises(ValueError, match=r"intermediate.dense.weight: expected shape \(37, 32\), found \(36, 32\)"):
        convert_state_dict(cfg, bad)
    bad = {**sd, "vit.embeddings.mask_token": np.zeros((1, 1, 32), np.float32)}
    with pytest.raises(ValueError, match=r"does not use: \['vit.embeddings.mask_token'\]"):
        convert_state_dict(cfg, bad)
    # A config with qkv_bias=False must not silently drop the checkpoint's biases.
    with pytest.raises(ValueError, match="attention.query.bias"):
        convert_state_dict(ViTConfig.from_dict({**cfg.to_dict(), "qkv_bias": False}), sd)
    # A partial classifier is a missing tensor, not an absent head.
    bad = dict(sd)
    del bad["classifier.bias"]
    with pytest.raises(ValueError, match=r"missing.*classifier.bias"):
        convert_state_dict(cfg, bad)
    bad = {**sd, "vit.layernorm.bias": sd["vit.layernorm.bias"].astype(np.int32)}
    with pytest.raises(ValueError, match="expected a floating-point dtype, found int32"):
        convert_state_dict(cfg, bad)
    # A classifier with an empty label table (num_labels=0) cannot be sized.
    with pytest.raises(ValueError, match="has a classifier but config.json has no id2label"):
        convert_state_dict(ViTConfig.from_dict({**cfg.to_dict(), "id2label": {}}), sd)


def edit_config(folder: Path, edit) -> Path:
    d = json.loads((folder / "config.json").read_text())
    edit(d)
    (folder / "config.json").write_text(json.dumps(d))
    return folder


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d.pop("hidden_size"),
            "tensor vit.embeddings.patch_embeddings.projection.weight: expected shape (768, 3, 2, 2), found "
            "(32, 3, 2, 2) (expected from config.json: hidden_size=768 (default), num_channels=3, patch_size=2)",
        ),
        (
            lambda d: (d.pop("id2label"), d.pop("label2id")),
            "tensor classifier.weight: expected shape (2, 32), found (10, 32) "
            "(expected from config.json: num_labels=len(id2label)=2 (default), hidden_size=32)",
        ),
        (
            lambda d: d.update(id2label={"0": "a", "1": "b", "2": "c"}),
            "tensor classifier.weight: expected shape (3, 32), found (10, 32) "
            "(expected from config.json: num_labels=len(id2label)=3, hidden_size=32)",
        ),
        (
            lambda d: d.update(image_size=32),
            "tensor vit.embeddings.position_embeddings: expected shape (1, 257, 32), found (1, 226, 32) "
            "(expected from config.json: image_size=32, patch_size=2, hidden_size=32)",
        ),
    ],
)
def test_shape_mismatch_names_the_config_fields(tmp_path, cls_model, edit, message):
    folder = edit_config(hf_folder(tmp_path / "hf", cls_model), edit)
    with pytest.raises(ValueError, match=re.escape(message)):
        convert(folder, tmp_path / "m.vitc", progress=False)
    assert not (tmp_path / "m.vitc").exists()


# ---------------------------------------------------------------------------------------------------
# .vitc files


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_roundtrip(tmp_path, cls_model, fmt):
    src = hf_folder(tmp_path / "hf", cls_model, fmt=fmt)
    dst = convert(src, tmp_path / "out" / "m.vitc", progress=False)
    assert dst == tmp_path / "out" / "m.vitc" and is_converted_file(dst) and not is_converted_file(src)
    cfg, pre, tensors = load_converted(dst)
    expected = convert_state_dict(config_of(cls_model), state_dict_numpy(cls_model))
    # The header stores the preprocessing as vitc applies it, every key present (format 2).
    canonical = PreprocessorConfig.from_dict(PREPROCESSOR).to_dict(all_keys=True)
    assert cfg == config_of(cls_model) and pre == canonical and pre.items() >= PREPROCESSOR.items()
    assert list(tensors) == list(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(tensors[k], v, err_msg=k)
        assert tensors[k].dtype == np.float32 and tensors[k].flags.c_contiguous
        assert not tensors[k].flags.writeable and not tensors[k].flags.owndata  # zero-copy mmap views
        assert tensors[k].ctypes.data % ALIGNMENT == 0
    meta = read_metadata(dst)
    assert "tensors" not in meta and meta["format_version"] == 3 and meta["dtype"] == "float32"
    assert meta["config"] == cfg.to_dict() and meta["checksum"] == "crc32" and meta["packing"] is None
    for loaded, want_pre in (
        (load_any(dst), canonical),
        (load_any(src), PREPROCESSOR),
        (load_any(src / ("model.safetensors" if fmt == "safetensors" else "pytorch_model.bin")), PREPROCESSOR),
    ):
        assert loaded[0] == cfg and loaded[1] == want_pre
        for k, v in expected.items():
            np.testing.assert_array_equal(loaded[2][k], v)


def test_bare_model_roundtrip_and_no_preprocessor(tmp_path, bare_model):
    src = hf_folder(tmp_path / "hf", bare_model, preprocessor=False)
    dst = convert(src, tmp_path, progress=False)  # an existing folder: writes model.vitc inside
    assert dst == tmp_path / "model.vitc"
    _, pre, tensors = load_converted(dst)
    assert pre is None and "pooler.weight" in tensors and "head.weight" not in tensors


def test_file_layout(tmp_path, cls_model):
    dst = convert(hf_folder(tmp_path / "hf", cls_model), tmp_path / "m.vitc", progress=False)
    raw = dst.read_bytes()
    magic, version, n, crc = struct.unpack("<6sHQI", raw[:20])
    assert magic == b"VITC\x00\x01" and version == 3 and (20 + n) % ALIGNMENT == 0
    assert crc == zlib.crc32(raw[:16] + raw[20 : 20 + n])
    assert raw[20 : 20 + n].isascii()
    header = json.loads(raw[20 : 20 + n])
    assert list(header) == list(HEADER_KEYS) and list(header["config"]) == list(CONFIG_KEYS)
    assert list(header["preprocessor"]) == list(PREPROCESSOR_KEYS)
    ends = []
    for name, t in header["tensors"].items():
        assert t["offset"] % ALIGNMENT == 0 and t["nbytes"] == 4 * int(np.prod(t["shape"])), name
        assert list(t) == list(TENSOR_KEYS), name
        assert t["crc32"] == f"{zlib.crc32(raw[t['offset'] : t['offset'] + t['nbytes']]):08x}", name
        ends.append(t["offset"] + t["nbytes"])
    assert max(ends) == len(raw)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoints(tmp_path, dtype):
    model = make_model("cls", seed=3).to(dtype)
    cfg, _, tensors = load_any(hf_folder(tmp_path, model))
    expected = convert_state_dict(cfg, state_dict_numpy(model))
    for k, v in expected.items():
        assert tensors[k].dtype == np.float32
        np.testing.assert_array_equal(tensors[k], v)


def test_unknown_dtype(tmp_path, cls_model):
    # bfloat16 and int8 files: tests/test_convert_lowp.py
    src = hf_folder(tmp_path / "hf", cls_model)
    for dtype in (np.float16, "float16", "uint16", None):
        with pytest.raises(ValueError, match="dtype: expected one of float32, bfloat16, int8, got"):
            convert(src, tmp_path / "m.vitc", dtype=dtype)
    assert not (tmp_path / "m.vitc").exists()


def test_atomic_write(tmp_path, cls_model, monkeypatch):
    src = hf_folder(tmp_path / "hf", cls_model)
    out = tmp_path / "out"
    out.mkdir()
    calls = []
    real = vfile._write_tensor

    def failing(f, arr):
        calls.append(1)
        if len(calls) == 5:
            raise OSError("disk full (simulated)")
        real(f, arr)

    monkeypatch.setattr(vfile, "_write_tensor", failing)
    with pytest.raises(OSError, match="disk full"):
        convert(src, out / "m.vitc", progress=False)
    assert list(out.iterdir()) == []  # neither the destination nor a temporary file
    # An existing destination survives a failed rewrite untouched.
    (out / "m.vitc").write_bytes(b"old")
    calls.clear()
    with pytest.raises(OSError):
        convert(src, out / "m.vitc", progress=False)
    assert [p.name for p in out.iterdir()] == ["m.vitc"] and (out / "m.vitc").read_bytes() == b"old"
    monkeypatch.setattr(vfile, "_write_tensor", real)
    convert(src, out / "m.vitc", progress=False)
    assert [p.name for p in out.iterdir()] == ["m.vitc"] and is_converted_file(out / "m.vitc")


@pytest.mark.parametrize(
    "pre, match",
    [
        ({"image_mean": "x"}, "image_mean"),
        ({"image_mean": [0.5, 0.5]}, "image_mean"),
        ({"image_std": [0, 0, 0]}, "image_std"),
        ({"resample": 99}, "resample"),
        ({"resample": [1]}, "resample"),
        ({"size": {"height": "a", "width": 3}}, "size"),
        ({"rescale_factor": "q"}, "rescale_factor"),
        ({"do_center_crop": True}, "do_center_crop"),
    ],
)
def test_invalid_preprocessor_config_refused(tmp_path, cls_model, good_file, pre, match):
    """Refused when read, naming the file and the field, not when an image is first processed."""
    folder = hf_folder(tmp_path / "hf", cls_model, preprocessor=False)
    pre_file = folder / "preprocessor_config.json"
    pre_file.write_text(json.dumps({**PREPROCESSOR, **pre}))
    where = re.escape(f"{pre_file}: invalid preprocessor config: ") + f".*{match}"
    for load in (
        lambda: convert(folder, tmp_path / "m.vitc", progress=False),
        lambda: vitc.ViT.from_pretrained(folder),
        lambda: load_any(folder / "model.safetensors"),
    ):
        with pytest.raises(ValueError, match=where):
            load()
    assert not (tmp_path / "m.vitc").exists()
    # The same settings in a .vitc header (a hand-edited file, resealed) are refused when it is loaded;
    # a key the format does not have is refused as such.
    bad = rewrite_header(good_file, tmp_path / "bad.vitc", lambda h: h["preprocessor"].update(pre))
    if set(pre) <= set(PREPROCESSOR_KEYS):
        want = re.escape(f"{bad}: header: invalid preprocessor config: ") + f".*{match}"
    else:
        want = re.escape(f"{bad}: header 'preprocessor': ") + f".*unknown key.*{match}"
    with pytest.raises(ValueError, match=want):
        vitc.ViT.from_pretrained(bad)


def test_not_a_checkpoint_file(tmp_path, cls_model, good_file):
    folder = hf_folder(tmp_path / "hf", cls_model)
    png = folder / "cat.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    message = re.escape(f"{png}: not a vitc file or a Hugging Face checkpoint (expected a .vitc file")
    for load in (
        lambda: convert(png, tmp_path / "m.vitc"),
        lambda: vitc.ViT.from_pretrained(png),
        lambda: load_any(png),
    ):
        with pytest.raises(ValueError, match=message):
            load()
    # convert() of a .vitc file: it already is one.
    with pytest.raises(ValueError, match=re.escape(f"{good_file}: already a vitc file")):
        convert(good_file, tmp_path / "m.vitc")
    renamed = tmp_path / "model.bin"  # the magic decides, not the name
    renamed.write_bytes(good_file.read_bytes())
    with pytest.raises(ValueError, match="already a vitc file"):
        convert(renamed, tmp_path / "m.vitc")
    assert not (tmp_path / "m.vitc").exists()
    # A damaged .vitc file is reported as a .vitc file, not as a folder missing config.json.
    (tmp_path / "broken.vitc").write_bytes(b"XXXX" + bytes(60))
    with pytest.raises(ValueError, match="broken.vitc: expected magic"):
        vitc.ViT.from_pretrained(tmp_path / "broken.vitc")


def test_missing_sources(tmp_path, cls_model):
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        convert(tmp_path / "nope", tmp_path / "m.vitc")
    cls_model.save_pretrained(tmp_path / "hf")
    os.remove(tmp_path / "hf" / "config.json")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_any(tmp_path / "hf")


# Runs a conversion whose writer stalls after the first tensor (printing "writing"), so the test can
# SIGKILL it mid-write.
SLOW_CONVERT = textwrap.dedent(
    """
    import sys, time

    import vitc.io.vitc_file as c
    from vitc.convert import convert

    real = c._write_tensor

    def slow(f, arr):
        real(f, arr)
        f.flush()
        print("writing", flush=True)
        time.sleep(600)

    c._write_tensor = slow
    convert(sys.argv[1], sys.argv[2], progress=False)
    """
)


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("previous", [False, True])
def test_killed_conversion_leaves_no_destination_and_its_temp_is_removed(tmp_path, cls_model, previous):
    src = hf_folder(tmp_path / "hf", cls_model)
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "m.vitc"
    if previous:
        old = convert(src, dst, progress=False).read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CONVERT, str(src), str(dst)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "writing\n"
        (tmp,) = temp_files(out)
        assert tmp.name.startswith(f".m.vitc.{proc.pid}.") and tmp.stat().st_size > 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)  # reaped: its pid no longer exists
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert temp_files(out) == [tmp]  # what a killed conversion leaves behind
    if previous:
        assert dst.read_bytes() == old  # the previous file is intact
    else:
        assert not dst.exists()
    # A temp file of a conversion still running (this process) and another destination's are kept.
    live = out / f".m.vitc.{os.getpid()}.abc123.tmp"
    live.write_bytes(b"x")
    other = out / f".n.vitc.{proc.pid}.abc123.tmp"
    other.write_bytes(b"x")
    result = subprocess.run(
        [sys.executable, "-m", "vitc", "convert", str(src), str(dst)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert is_converted_file(dst) and load_converted(dst)[0] == config_of(cls_model)
    assert temp_files(out) == sorted([live, other])


def test_temp_name_carries_the_pid(tmp_path, cls_model, monkeypatch):
    src = hf_folder(tmp_path / "hf", cls_model)
    seen = []
    real = vfile._write_tensor

    def spy(f, arr):
        seen.extend(p.name for p in temp_files(tmp_path))
        real(f, arr)

    monkeypatch.setattr(vfile, "_write_tensor", spy)
    convert(src, tmp_path / "m.vitc", progress=False)
    assert seen and re.fullmatch(rf"\.m\.vitc\.{os.getpid()}\.[a-z0-9_]+\.tmp", seen[0])
    assert temp_files(tmp_path) == []


# ---------------------------------------------------------------------------------------------------
# Corrupt .vitc files


@pytest.fixture(scope="module")
def good_file(tmp_path_factory, cls_model):
    d = tmp_path_factory.mktemp("vitc")
    return convert(hf_folder(d / "hf", cls_model), d / "good.vitc", progress=False)


def rewrite_header(src: Path, dst: Path, mutate) -> Path:
    """Copy src to dst with a mutated JSON header padded back to the same length (data unchanged) and
    its checksum recomputed, so the edit itself is what the reader must refuse."""
    dst.write_bytes(mutate_header(src.read_bytes(), mutate))
    return dst


def first(h: dict) -> dict:
    return h["tensors"]["patch_embed.proj.weight"]


def second(h: dict) -> dict:
    return h["tensors"]["patch_embed.proj.bias"]


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda h: first(h).update(offset=first(h)["offset"] + 4), "expected offset aligned to 64 bytes"),
        (lambda h: second(h).update(offset=first(h)["offset"]), "overlap tensor"),
        (lambda h: first(h).update(nbytes=first(h)["nbytes"] - 4), r"needs 1536 bytes, found 1532"),
        (lambda h: first(h).update(offset=10**9), "expected offsets within the data region"),
        (lambda h: first(h).update(offset=0), "expected offsets within the data region"),
        (lambda h: first(h).update(dtype="float16"), "expected dtype in"),
        (lambda h: first(h).update(dtype="bfloat16"), "expected dtype 'float32', found 'bfloat16'"),
        (lambda h: h.update(dtype="float16"), "header 'dtype': expected one of float32, bfloat16, int8"),
        (lambda h: first(h).update(shape=[32, 4, 3], nbytes=1536), "tensors do not match the config"),
        (lambda h: h["tensors"].pop("norm.bias"), "tensors do not match the config.*norm.bias"),
        (lambda h: h["config"].update(hidden_act="swish"), "header config: config hidden_act"),
        (lambda h: h.pop("tensors"), r"header: expected the keys .*missing key\(s\) \['tensors'\]"),
        (lambda h: h.update(tensors=[]), "header 'tensors': expected dict"),
        (lambda h: h["config"].update(hidden_act="relu"), None),  # resealed: a valid file of another model
    ],
)
def test_corrupt_header_refused(tmp_path, good_file, mutate, match):
    path = rewrite_header(good_file, tmp_path / "bad.vitc", mutate)
    if match is None:
        assert load_converted(path)[0].hidden_act == "relu"
        return
    with pytest.raises(ValueError, match=match) as info:
        load_converted(path)
    assert "bad.vitc" in str(info.value)


def test_truncated_and_bad_prefix_refused(tmp_path, good_file):
    raw = good_file.read_bytes()
    path = tmp_path / "bad.vitc"
    _, start, n = vitc_layout(raw)
    for data, match in [
        (raw[:-1], "expected offsets within the data region"),
        (raw[: start + n // 2], "header length"),
        (raw[:10], "expected at least 16 bytes"),
        (raw[:18], "expected at least 20 bytes"),
        (b"XXXX" + raw[4:], "expected magic"),
        (raw[:6] + struct.pack("<H", 4) + raw[8:], r"written by a newer vitc \(format 4\): upgrade vitc"),
        (raw[:6] + struct.pack("<H", 0) + raw[8:], "expected format version 1, 2 or 3, found 0"),
        (raw[:8] + struct.pack("<Q", 2**62) + raw[16:], "header length"),
        (raw[:start] + b"[" + raw[start + 1 :], "header checksum mismatch"),
        (reseal(raw[:start] + b"[" + raw[start + 1 :]), "not valid UTF-8 JSON"),
    ]:
        path.write_bytes(data)
        with pytest.raises(ValueError, match=match) as info:
            load_converted(path)
        assert "bad.vitc" in str(info.value)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="bad.vitc: file is empty"):
        load_converted(path)
