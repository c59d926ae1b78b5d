"""``vitc convert --dtype bfloat16 / int8``: .vitc files storing the blocks' GEMM weights packed.

Such a file must load (memory-mapped, no packing) into the model that loading the float32 file with
the same dtype gives, bit for bit; refuse every hostile variation with a ValueError naming the file;
and refuse packed weights whose layout this build's kernels do not produce.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from factories import make_checkpoint
from hostile_cases import mutate_header, reseal, vitc_layout

import vitc
from vitc import _core
from vitc.cli import main
from vitc.convert import convert
from vitc.io import load_any, load_converted, read_metadata
from vitc.io.vitc_file import ALIGNMENT
from vitc.weights import GEMM_WEIGHTS, PACKING, expected_tensors, packed_len

vconv = importlib.import_module("vitc.convert")  # vitc.convert is also the function's name
vmodel = importlib.import_module("vitc.model")
vfile = importlib.import_module("vitc.io.vitc_file")
vweights = importlib.import_module("vitc.weights")

MODES = ("bfloat16", "int8")
PACKED_DTYPE = {"bfloat16": np.uint16, "int8": np.int8}
# The tiny transformers test config (C=32, F=37: odd sizes exercise the N and K padding) and variants.
VARIANTS = {
    "cls": {},
    "no_qkv_bias_3_layers": {"qkv_bias": False, "num_hidden_layers": 3, "hidden_act": "gelu_new"},
    "bare_pooler": {"bare": True, "pooler": True},
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def files(request, tmp_path_factory) -> dict[str, Path]:
    """{"hf": folder, "float32" / "bfloat16" / "int8": .vitc file} of one random checkpoint."""
    d = tmp_path_factory.mktemp(request.param)
    make_checkpoint(d / "hf", **VARIANTS[request.param])
    out = {"hf": d / "hf"}
    for dtype in ("float32", *MODES):
        out[dtype] = convert(d / "hf", d / f"{dtype}.vitc", dtype=dtype, progress=False)
    return out


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("int8")
    make_checkpoint(d / "hf")
    return convert(d / "hf", d / "good.vitc", dtype="int8", progress=False)


@pytest.fixture(scope="module")
def bf16_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bf16")
    make_checkpoint(d / "hf")
    return convert(d / "hf", d / "good.vitc", dtype="bfloat16", progress=False)


def pixels(b: int = 3) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((b, 3, 30, 30)).astype(np.float32)


def assert_same_outputs(a: vitc.ViT, b: vitc.ViT) -> None:
    x = pixels()
    oa = a(x, output_hidden_states=True, output_attentions=True)
    ob = b(x, output_hidden_states=True, output_attentions=True)
    for name in ("logits", "last_hidden_state", "pooler_output"):
        va, vb = getattr(oa, name, None), getattr(ob, name, None)  # a bare model has no logits
        assert (va is None) == (vb is None), name
        assert va is None or np.array_equal(va, vb), name
    assert all(np.array_equal(u, v) for u, v in zip(oa.hidden_states, ob.hidden_states, strict=True))
    assert all(np.array_equal(u, v) for u, v in zip(oa.attentions, ob.attentions, strict=True))


# ---------------------------------------------------------------------------------------------------
# Round trip


def test_this_build_packs_the_known_layouts():
    """The NumPy description of PACKING matches the C kernels: if this fails, the kernels changed the
    packing and PACKING needs a new identifier (old files must then be refused, not misread)."""
    assert vweights.build_packing() == PACKING


@pytest.mark.parametrize("dtype", MODES)
def test_file_loads_as_packing_at_load(files, dtype):
    model = vitc.ViT.from_pretrained(files[dtype])
    ref = vitc.ViT.from_pretrained(files["float32"], dtype=dtype)
    assert model.dtype == dtype and f"dtype={dtype}" in repr(model)
    assert_same_outputs(model, ref)
    assert model.num_parameters() == ref.num_parameters() == vitc.ViT.from_pretrained(files["hf"]).num_parameters()
    assert model.weight_nbytes() == ref.weight_nbytes()
    # The explicit dtype equal to the stored one is the same model; the HF folder packs at load alike.
    assert_same_outputs(vitc.ViT.from_pretrained(files[dtype], dtype=dtype), ref)
    assert_same_outputs(vitc.ViT.from_pretrained(files["hf"], dtype=dtype), ref)


@pytest.mark.parametrize("dtype", MODES)
def test_stored_tensors_are_the_packed_arrays(files, dtype):
    cfg, _, fp32 = load_converted(files["float32"])
    cfg2, _, stored = load_converted(files[dtype])
    assert cfg2 == cfg and list(stored) == list(
        expected_tensors(cfg, head="head.weight" in fp32, pooler="pooler.weight" in fp32, dtype=dtype)
    )
    for name, arr in stored.items():
        assert not arr.flags.writeable and not arr.flags.owndata, name  # zero-copy mmap views
        assert arr.ctypes.data % ALIGNMENT == 0, name
    for name, w in fp32.items():
        if not (name.startswith("blocks.") and name.endswith(GEMM_WEIGHTS)):
            assert stored[name].dtype == np.float32 and np.array_equal(stored[name], w), name
            continue
        n, k = w.shape
        if dtype == "bfloat16":
            want = [_core._pack_bf16(np.ascontiguousarray(w))]
            got = [stored[name]]
        else:
            want = list(_core._pack_int8(np.ascontiguousarray(w)))
            got = [stored[name], stored[name + ".scales"], stored[name + ".col_sums"]]
        assert got[0].dtype == PACKED_DTYPE[dtype] and got[0].shape == (packed_len(dtype, n, k),)
        for g, e in zip(got, want, strict=True):
            assert g.dtype == e.dtype and g.shape == e.shape and np.array_equal(g, e), name
    meta = read_metadata(files[dtype])
    assert meta["format_version"] == 3 and meta["dtype"] == dtype and meta["packing"] == {dtype: PACKING[dtype]}
    assert read_metadata(files["float32"])["packing"] is None
    assert load_any(files[dtype])[2].keys() == stored.keys()


@pytest.mark.parametrize("dtype", MODES)
def test_load_does_not_repack(files, dtype, monkeypatch):
    def no_packing(*args):
        raise AssertionError("packed at load")

    monkeypatch.setattr(vmodel, "pack_weight", no_packing)
    monkeypatch.setattr(vconv, "pack_weight", no_packing)
    assert vitc.ViT.from_pretrained(files[dtype]).dtype == dtype
    with pytest.raises(AssertionError, match="packed at load"):  # the float32 file does pack
        vitc.ViT.from_pretrained(files["float32"], dtype=dtype)


def test_file_sizes(tmp_path):
    """ViT proportions (the GEMM weights are nearly all parameters): bf16 ~1/2, int8 ~1/4 of float32."""
    make_checkpoint(
        tmp_path / "hf", image_size=8, patch_size=4, hidden_size=256, intermediate_size=1024, num_attention_heads=4
    )
    size = {
        dtype: convert(tmp_path / "hf", tmp_path / f"{dtype}.vitc", dtype=dtype, progress=False).stat().st_size
        for dtype in ("float32", *MODES)
    }
    # Measured: 6.39 MB, 3.24 MB (0.508), 1.71 MB (0.268: int8 scales and column sums add 8 bytes per
    # output channel, 3 % at K=256, 1 % at ViT-B's 768).
    assert 0.49 < size["bfloat16"] / size["float32"] < 0.52, size
    assert 0.25 < size["int8"] / size["float32"] < 0.28, size
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    for dtype in MODES:
        a = vitc.ViT.from_pretrained(tmp_path / f"{dtype}.vitc")
        b = vitc.ViT.from_pretrained(tmp_path / "float32.vitc", dtype=dtype)
        assert all(np.array_equal(u, v) for u, v in zip(a(x).to_tuple(), b(x).to_tuple()))


# ---------------------------------------------------------------------------------------------------
# Precision mismatches


@pytest.mark.parametrize("stored", MODES)
def test_other_precision_than_stored_refused(files, stored):
    for asked in ("float32", *MODES):
        if asked == stored:
            continue
        with pytest.raises(ValueError, match=f"stores {stored} weights, dtype='{asked}'") as info:
            vitc.ViT.from_pretrained(files[stored], dtype=asked)
        msg = str(info.value)
        assert files[stored].name in msg and f"dtype=None or '{stored}'" in msg
        assert ("float32 weights are not in it" if asked == "float32" else "Convert from float32 instead") in msg


def test_packed_tensors_need_their_dtype(bf16_file, int8_file):
    cfg, pre, tensors = load_converted(bf16_file)
    with pytest.raises(ValueError, match="packed .*not float32"):
        vitc.ViT(cfg, dict(tensors), pre)
    with pytest.raises(ValueError, match="expected float32 or int8 packed as int8, got uint16"):
        vitc.ViT(cfg, dict(tensors), pre, dtype="int8")
    cfg, pre, tensors = load_converted(int8_file)
    tensors = dict(tensors)
    tensors.pop("blocks.1.mlp.fc2.weight.col_sums")
    with pytest.raises(ValueError, match=r"missing tensors \['blocks.1.mlp.fc2.weight.col_sums'\]"):
        vitc.ViT(cfg, tensors, pre, dtype="int8")


@pytest.mark.parametrize("dtype", MODES)
def test_wrong_packed_lengths_caught_in_c_not_crashing(bf16_file, int8_file, dtype):
    """Packed arrays handed to ViT directly (not through a file) are size-checked by _core.Model, once,
    when the model is built (model_py.c)."""
    cfg, pre, tensors = load_converted(bf16_file if dtype == "bfloat16" else int8_file)
    for key in ("blocks.0.attn.qkv.weight", "blocks.1.mlp.fc1.weight") + (
        ("blocks.0.attn.proj.weight.scales", "blocks.1.mlp.fc2.weight.col_sums") if dtype == "int8" else ()
    ):
        bad = dict(tensors)
        bad[key] = np.ascontiguousarray(tensors[key][:-1])
        with pytest.raises(ValueError, match=f"weights: {key}: expected"):
            vitc.ViT(cfg, bad, pre, dtype=dtype)


# ---------------------------------------------------------------------------------------------------
# Hostile files


def with_header(raw: bytes, mutate) -> bytes:
    """The file with a mutated header, resealed (its checksum recomputed): the edit itself must be refused."""
    return mutate_header(raw, mutate)


def tensor(name: str, **kw):
    return lambda h: h["tensors"][name].update(kw)


QKV = "blocks.0.attn.qkv.weight"
FC2 = "blocks.1.mlp.fc2.weight"
# int8 file of the tiny config: qkv (96, 32) packs to 96 * 32 = 3072 bytes, fc2 (32, 37) to 32 * 40.
INT8_CASES = {
    "packed_shorter": (tensor(QKV, shape=[3008], nbytes=3008), r"do not match the config.*3072.*3008"),
    "packed_2d": (tensor(QKV, shape=[96, 32]), "do not match the config"),
    "packed_unpadded": (tensor(FC2, shape=[32 * 37], nbytes=32 * 37), "do not match the config"),
    "packed_nbytes": (tensor(QKV, nbytes=3071), "needs 3072 bytes, found 3071"),
    "packed_huge": (tensor(QKV, shape=[10**6], nbytes=10**6), "within the data region"),
    "packed_as_float32": (tensor(QKV, dtype="float32"), "expected dtype 'int8', found 'float32'"),
    "packed_as_bfloat16": (tensor(QKV, dtype="bfloat16"), "expected dtype 'int8'"),
    "scales_as_int32": (tensor(QKV + ".scales", dtype="int32"), "expected dtype 'float32'"),
    "col_sums_as_float32": (tensor(FC2 + ".col_sums", dtype="float32"), "expected dtype 'int32'"),
    "scales_short": (tensor(QKV + ".scales", shape=[95], nbytes=380), "do not match the config"),
    "col_sums_missing": (lambda h: h["tensors"].pop(FC2 + ".col_sums"), r"do not match.*col_sums"),
    "scales_renamed": (
        lambda h: h["tensors"].update(x=h["tensors"].pop(QKV + ".scales")),
        "do not match the config",
    ),
    "layernorm_as_int8": (tensor("blocks.0.norm1.weight", dtype="int8", nbytes=32), "expected dtype 'float32'"),
    "dtype_float32": (lambda h: h.update(dtype="float32"), "'packing': expected null for a float32 file"),
    "dtype_float32_unpacked": (
        lambda h: h.update(dtype="float32", packing=None),
        "expected dtype 'float32', found 'int8'",
    ),
    "dtype_bfloat16": (lambda h: h.update(dtype="bfloat16"), "header 'packing'"),
    "dtype_unknown": (lambda h: h.update(dtype="int4"), "header 'dtype': expected one of"),
    "dtype_list": (lambda h: h.update(dtype=["int8"]), "header 'dtype': expected str"),
    "packing_missing": (lambda h: h.pop("packing"), r"missing key\(s\) \['packing'\]"),
    "packing_null": (lambda h: h.update(packing=None), "header 'packing'"),
    "packing_list": (lambda h: h.update(packing=["nr32-k4"]), "header 'packing'"),
    "packing_other_key": (lambda h: h.update(packing={"bfloat16": "nr32-k2"}), "header 'packing'"),
    "packing_unknown": (lambda h: h.update(packing={"int8": "nr16-k4"}), "packed in layout 'nr16-k4'"),
    "packing_of_bf16": (lambda h: h.update(packing={"int8": "nr32-k2"}), "packed in layout 'nr32-k2'"),
    "packing_int": (lambda h: h.update(packing={"int8": 1}), "header 'packing'"),
}


BF16_CASES = {
    "packed_shorter": (tensor(QKV, shape=[3040], nbytes=6080), "do not match the config"),
    "packed_as_int8": (tensor(QKV, dtype="int8", nbytes=3072), "expected dtype 'bfloat16'"),
    "dtype_int8": (lambda h: h.update(dtype="int8"), "header 'packing'"),
    "dtype_int8_packing": (lambda h: h.update(dtype="int8", packing={"int8": "nr32-k4"}), "expected dtype 'int8'"),
    "packing_unknown": (lambda h: h.update(packing={"bfloat16": "nr64-k2"}), "packed in layout 'nr64-k2'"),
    "int8_parts_added": (
        # (the informational architectures dropped: room in the header's padding for the longer name)
        lambda h: (
            h["tensors"].update({QKV + ".scales": h["tensors"].pop("blocks.0.norm1.bias")}),
            h["config"].update(architectures=None),
        ),
        r"do not match.*scales",
    ),
}


HOSTILE_CASES = [("int8_file", name, case) for name, case in sorted(INT8_CASES.items())] + [
    ("bf16_file", name, case) for name, case in sorted(BF16_CASES.items())
]


@pytest.mark.parametrize(
    "source, case",
    [(src, case) for src, _, case in HOSTILE_CASES],
    ids=[f"{src[:4]}-{name}" for src, name, _ in HOSTILE_CASES],
)
def test_hostile_lowp_file(tmp_path, request, source, case):
    mutate, match = case
    path = tmp_path / "bad.vitc"
    path.write_bytes(with_header(request.getfixturevalue(source).read_bytes(), mutate))
    for load in (load_converted, vitc.ViT.from_pretrained):
        with pytest.raises(ValueError, match=match) as info:
            load(path)
        assert "bad.vitc" in str(info.value)


@pytest.mark.parametrize("dtype", MODES)
def test_truncated_files_refused(tmp_path, bf16_file, int8_file, dtype):
    raw = (bf16_file if dtype == "bfloat16" else int8_file).read_bytes()
    _, start, n = vitc_layout(raw)
    path = tmp_path / "bad.vitc"
    for cut, match in [(1, "within the data region"), (len(raw) // 3, "within the data region")]:
        path.write_bytes(raw[:-cut])
        for load in (load_converted, vitc.ViT.from_pretrained):
            with pytest.raises(ValueError, match=match):
                load(path)
    path.write_bytes(raw[: start + n // 2])
    with pytest.raises(ValueError, match="header length"):
        vitc.ViT.from_pretrained(path)


def test_header_byte_flips_refused(tmp_path, int8_file):
    """A flipped header byte of an int8 file is refused by the header checksum (format 1 loaded most
    of them); resealed edits are refused by content (test_hostile_lowp_file)."""
    raw = int8_file.read_bytes()
    _, start, n = vitc_layout(raw)
    path = tmp_path / "flip.vitc"
    for pos in range(0, start + n, 5):
        flipped = bytearray(raw)
        flipped[pos] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match="header checksum mismatch|magic|format|header length"):
            vitc.ViT.from_pretrained(path)


def test_resealed_header_edits_refused_or_harmless(tmp_path, int8_file):
    """A header byte changed and resealed (a hand edit with a tool): a ValueError, or a model whose
    forward runs (the C side never sees a packed array of the wrong size)."""
    raw = int8_file.read_bytes()
    _, start, n = vitc_layout(raw)
    path = tmp_path / "flip.vitc"
    outcomes = {"refused": 0, "loaded": 0}
    x = pixels(1)
    for pos in range(start, start + n, 5):
        flipped = bytearray(raw)
        flipped[pos] ^= 0x01
        path.write_bytes(reseal(bytes(flipped)))
        try:
            model = vitc.ViT.from_pretrained(path)
        except ValueError:
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1
        try:
            model(x)
        except ValueError:  # e.g. a config value the forward refuses; never a crash
            pass
    assert outcomes["refused"] > outcomes["loaded"] > 0


def test_build_with_another_layout_refuses(tmp_path, bf16_file, monkeypatch):
    """A build whose kernels pack differently from PACKING can neither read nor write packed files."""
    for module in (vweights, vfile):  # the writer's check and the reader's
        monkeypatch.setattr(module, "build_packing", lambda: {"bfloat16": None, "int8": None})
    with pytest.raises(ValueError, match="this build of vitc packs them as a layout vitc/weights.py does not"):
        vitc.ViT.from_pretrained(bf16_file)
    hf = tmp_path / "hf"
    make_checkpoint(hf)
    with pytest.raises(RuntimeError, match="update PACKING"):
        convert(hf, tmp_path / "m.vitc", dtype="int8", progress=False)
    assert not (tmp_path / "m.vitc").exists()
    assert vitc.ViT.from_pretrained(convert(hf, tmp_path / "f.vitc", progress=False), dtype="int8").dtype == "int8"


def test_convert_checks_what_it_writes(tmp_path, monkeypatch):
    """Packed arrays that disagree with the header laid out from the config abort the write."""
    make_checkpoint(tmp_path / "hf")
    real = vconv.pack_weight
    monkeypatch.setattr(vconv, "pack_weight", lambda w, p: real(w, p)[1:] if p == "bfloat16" else real(w, p))
    with pytest.raises(RuntimeError, match="blocks.0.attn.qkv.weight"):
        convert(tmp_path / "hf", tmp_path / "out" / "m.vitc", dtype="bfloat16", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_atomic_write_int8(tmp_path, monkeypatch):
    make_checkpoint(tmp_path / "hf")
    out = tmp_path / "out"
    out.mkdir()
    real, calls = vfile._write_tensor, []

    def failing(f, arr):
        calls.append(arr.dtype)
        if arr.dtype == np.int32:  # the first col_sums
            raise OSError("disk full (simulated)")
        real(f, arr)

    monkeypatch.setattr(vfile, "_write_tensor", failing)
    with pytest.raises(OSError, match="disk full"):
        convert(tmp_path / "hf", out / "m.vitc", dtype="int8", progress=False)
    assert list(out.iterdir()) == [] and np.dtype(np.int8) in calls


# ---------------------------------------------------------------------------------------------------
# CLI


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("dtype", MODES)
def test_cli_convert_info_predict(tmp_path, capsys, dtype):
    make_checkpoint(tmp_path / "hf", num_labels=7)
    capsys.readouterr()  # transformers' saving progress
    dst = tmp_path / f"tiny-{dtype}.vitc"
    rc, out, err = run(capsys, "convert", str(tmp_path / "hf"), str(dst), "--dtype", dtype)
    assert rc == 0 and err == "" and out.startswith(f"wrote {dst} ({dtype} weights, ")
    assert read_metadata(dst)["dtype"] == dtype

    rc, out, _ = run(capsys, "info", str(dst))
    assert rc == 0 and f"weights {dtype}" in out
    rc, out, _ = run(capsys, "info", str(dst), "--json")
    info = json.loads(out)
    assert rc == 0 and info["dtype"] == dtype and info["num_labels"] == 7
    assert info["file_size_bytes"] == dst.stat().st_size
    rc, out, _ = run(capsys, "info", str(tmp_path / "hf"), "--json")
    assert json.loads(out)["dtype"] == "float32" and json.loads(out)["parameters"] == info["parameters"]

    image = str(vitc.sample_images()[3])
    from_file = run(capsys, "predict", "-m", str(dst), "--dtype", dtype, image)
    from_folder = run(capsys, "predict", "-m", str(tmp_path / "hf"), "--dtype", dtype, image)
    assert from_file == from_folder and from_file[0] == 0
    assert run(capsys, "predict", "-m", str(dst), image) == from_file  # no --dtype: as stored

    rc, _, err = run(capsys, "predict", "-m", str(dst), "--dtype", "float32", image)
    other = "int8" if dtype == "bfloat16" else "bfloat16"
    assert rc == 1 and f"stores {dtype} weights" in err and err.count("\n") == 1
    rc, _, err = run(capsys, "predict", "-m", str(dst), "--dtype", other, image)
    assert rc == 1 and f"--dtype {other}" in err


def test_cli_convert_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["convert", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "--dtype {float32,bfloat16,int8}" in out and "--dtype int8" in out and "packed" in out
