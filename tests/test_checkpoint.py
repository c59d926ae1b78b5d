"""Tests of vitc.io.checkpoint: exact reads of real HF checkpoints, and refusal of hostile/corrupt files."""

from __future__ import annotations

import builtins
import io
import json
import os
import pickletools
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from factories import (
    hostile_pickle,
    hub_state_dict,
    make_model,
    save_bin,
    state_dict_numpy,
    write_fake_torch_zip,
)

from vitc.io.checkpoint import load_state_dict, read_safetensors, read_torch_bin

REPO = Path(__file__).resolve().parents[1]


def assert_same(found: dict, expected: dict) -> None:
    assert sorted(found) == sorted(expected)
    for k, v in expected.items():
        assert found[k].dtype == v.dtype, k
        assert found[k].shape == v.shape, k
        np.testing.assert_array_equal(found[k], v, err_msg=k)


# ---------------------------------------------------------------------------------------------------
# Real checkpoints


@pytest.mark.parametrize("kind", ["cls", "bare"])
def test_safetensors_folder_matches_state_dict(tmp_path, kind, cls_model, bare_model):
    model = cls_model if kind == "cls" else bare_model
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    expected = state_dict_numpy(model)
    assert_same(load_state_dict(tmp_path), expected)
    assert_same(read_safetensors(tmp_path / "model.safetensors"), expected)
    if kind == "bare":
        assert "pooler.dense.weight" in expected
    # The fixture's renaming must reproduce transformers' own on-disk names (independent reference).
    from safetensors.numpy import load_file

    assert_same(load_file(tmp_path / "model.safetensors"), expected)


def test_safetensors_arrays_are_readonly_views(tmp_path, cls_model):
    cls_model.save_pretrained(tmp_path)
    sd = read_safetensors(tmp_path / "model.safetensors")
    w = sd["vit.embeddings.position_embeddings"]
    assert not w.flags.writeable and not w.flags.owndata


@pytest.mark.parametrize("kind", ["cls", "bare"])
def test_torch_bin_matches_state_dict(tmp_path, kind, cls_model, bare_model):
    model = cls_model if kind == "cls" else bare_model
    save_bin(model, tmp_path)
    expected = state_dict_numpy(model)
    assert_same(read_torch_bin(tmp_path / "pytorch_model.bin"), expected)
    assert_same(load_state_dict(tmp_path), expected)


def test_sharded_safetensors(tmp_path, cls_model):
    cls_model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    assert_same(load_state_dict(tmp_path), state_dict_numpy(cls_model))


def test_sharded_bin(tmp_path, cls_model):
    save_bin(cls_model, tmp_path, shard_size=20_000)
    assert len(list(tmp_path.glob("pytorch_model-*.bin"))) > 1
    assert_same(load_state_dict(tmp_path), state_dict_numpy(cls_model))
    assert_same(load_state_dict(tmp_path / "pytorch_model.bin.index.json"), state_dict_numpy(cls_model))


def test_prefers_safetensors_over_bin(tmp_path, cls_model):
    cls_model.save_pretrained(tmp_path)
    other = make_model("cls", seed=5)
    torch.save(hub_state_dict(other), tmp_path / "pytorch_model.bin")
    assert_same(load_state_dict(tmp_path), state_dict_numpy(cls_model))
    assert_same(load_state_dict(tmp_path / "pytorch_model.bin"), state_dict_numpy(other))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_half_and_double_checkpoints(tmp_path, dtype, cls_model):
    sd = {k: v.to(dtype) for k, v in hub_state_dict(cls_model).items()}
    model = make_model("cls").to(dtype)
    model.save_pretrained(tmp_path)
    torch.save(sd, tmp_path / "w.bin")
    expected_dtype = np.float64 if dtype == torch.float64 else np.float32
    expected = {k: v.float().numpy().astype(expected_dtype) for k, v in sd.items()}
    assert_same(read_torch_bin(tmp_path / "w.bin"), expected)
    assert_same(read_safetensors(tmp_path / "model.safetensors"), expected)


def test_non_contiguous_and_shared_storage(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {"t": base.t(), "slice": base[1:3, 2:5], "same": base, "param": torch.nn.Parameter(base[0])}
    torch.save(sd, tmp_path / "x.bin")
    got = read_torch_bin(tmp_path / "x.bin")
    for k, v in sd.items():
        np.testing.assert_array_equal(got[k], v.detach().numpy())
        assert got[k].flags.c_contiguous


def test_readers_do_not_import_torch(tmp_path, cls_model):
    cls_model.save_pretrained(tmp_path / "st")
    save_bin(cls_model, tmp_path / "bin")
    code = (
        "import sys, vitc.io.checkpoint as c\nfrom vitc.io import load_any\n"
        f"a = c.load_state_dict({str(tmp_path / 'st')!r})\n"
        f"b = c.load_state_dict({str(tmp_path / 'bin')!r})\n"
        f"load_any({str(tmp_path / 'bin')!r})\n"
        "assert len(a) == len(b) > 0\n"
        "assert 'torch' not in sys.modules and 'safetensors' not in sys.modules, 'torch imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert res.returncode == 0, res.stderr


def test_missing_checkpoint_lists_candidates(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors.*pytorch_model.bin"):
        load_state_dict(tmp_path)


# ---------------------------------------------------------------------------------------------------
# Hostile pickles: refused before anything runs


@pytest.mark.parametrize(
    "func, args, name",
    [
        (os.system, ("echo pwned > marker",), "system"),
        (builtins.eval, ("open('marker', 'w').write('pwned')",), "eval"),
        (builtins.exec, ("open('marker', 'w').write('pwned')",), "exec"),
    ],
)
def test_hostile_pickle_is_refused(tmp_path, monkeypatch, func, args, name):
    monkeypatch.chdir(tmp_path)
    write_fake_torch_zip(tmp_path / "evil.bin", hostile_pickle(func, *args))
    with pytest.raises(
        ValueError, match=f"refusing to load global [\\w.]*{name} from .*evil.bin: only tensor"
    ):
        read_torch_bin(tmp_path / "evil.bin")
    assert not (tmp_path / "marker").exists()


def test_torch_global_outside_allow_list_is_refused(tmp_path):
    payload = b"\x80\x02ctorch\nload\nq\x00."
    write_fake_torch_zip(tmp_path / "evil.bin", payload)
    with pytest.raises(ValueError, match=r"refusing to load global torch\.load"):
        read_torch_bin(tmp_path / "evil.bin")


def test_legacy_format_reads(tmp_path):
    """The pre-1.6 format is read too (tests/test_legacy_torch.py has the rest)."""
    torch.save({"a": torch.ones(2)}, tmp_path / "old.bin", _use_new_zipfile_serialization=False)
    np.testing.assert_array_equal(read_torch_bin(tmp_path / "old.bin")["a"], np.ones(2, np.float32))


def test_unsafe_member_paths_refused(tmp_path):
    write_fake_torch_zip(tmp_path / "a.bin", pickle_of_empty_dict(), extra={"archive/../evil": b"x"})
    with pytest.raises(ValueError, match="unsafe path"):
        read_torch_bin(tmp_path / "a.bin")
    write_fake_torch_zip(tmp_path / "b.bin", pickle_of_empty_dict(), extra={"other/data/0": b"x"})
    with pytest.raises(ValueError, match="one top-level folder"):
        read_torch_bin(tmp_path / "b.bin")


def pickle_of_empty_dict() -> bytes:
    return b"\x80\x02}q\x00."


def test_zip_bomb_declared_size_refused(tmp_path):
    path = tmp_path / "bomb.bin"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pickle_of_empty_dict())
    raw = bytearray(path.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")  # central directory entry: uncompressed size at +24
    raw[cd + 24 : cd + 28] = struct.pack("<I", 0xF000_0000)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="zip bomb|expected at most"):
        read_torch_bin(path)


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "x.bin"
    torch.save({"a": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, path)
    return path


def _rewrite_member(path: Path, name_suffix: str, fn) -> None:
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, fn(data) if name.endswith(name_suffix) else data)


def test_storage_smaller_than_numel_refused(tmp_path):
    path = _saved(tmp_path)
    _rewrite_member(path, "/data/0", lambda d: d[:8])
    with pytest.raises(ValueError, match="need 24 bytes, found a 8-byte member"):
        read_torch_bin(path)


def test_tensor_outside_storage_refused(tmp_path):
    path = _saved(tmp_path)

    def bump_offset(pkl: bytes) -> bytes:
        ops = list(pickletools.genops(io.BytesIO(pkl)))
        i = next(n for n, (op, _, _) in enumerate(ops) if op.name == "BINPERSID")
        op, arg, pos = ops[i + 1]  # the storage offset follows the storage
        assert op.name == "BININT1" and arg == 0
        return pkl[: pos + 1] + bytes([5]) + pkl[pos + 2 :]

    _rewrite_member(path, "data.pkl", bump_offset)
    with pytest.raises(ValueError, match="expected element indices below the storage size 6, found 10"):
        read_torch_bin(path)


def test_big_endian_refused(tmp_path):
    path = _saved(tmp_path)
    _rewrite_member(path, "byteorder", lambda d: b"big")
    with pytest.raises(ValueError, match="expected byteorder 'little'"):
        read_torch_bin(path)


def test_truncated_bin_refused(tmp_path):
    path = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError):
        read_torch_bin(path)


# ---------------------------------------------------------------------------------------------------
# Hostile / corrupt safetensors


def write_st(path: Path, header: dict, data: bytes, *, n: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if n is None else n) + raw + data)
    return path


GOOD = {
    "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]},
}


def test_handmade_safetensors_ok(tmp_path):
    data = np.arange(6, dtype="<f4").tobytes()
    sd = read_safetensors(write_st(tmp_path / "ok.safetensors", {"__metadata__": {"x": "y"}, **GOOD}, data))
    np.testing.assert_array_equal(sd["a"], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(sd["b"], [4, 5])


@pytest.mark.parametrize(
    "mutate, data_len, match",
    [
        (
            lambda h: h,
            20,
            r"tensor 'b'.*expected offsets within the data region \[\d+, \d+\].*found \[\d+, \d+\]",
        ),
        (lambda h: h["a"].update(data_offsets=[0, 24]), 24, "needs 16 bytes, found 24"),
        (lambda h: h["b"].update(data_offsets=[8, 16]), 24, "overlap tensor 'a'"),
        (
            lambda h: h["a"].update(shape=[2, 3]),
            24,
            r"shape \[2, 3\] x 4-byte items needs 24 bytes, found 16",
        ),
        (lambda h: h["a"].update(dtype="F8"), 24, "tensor 'a': expected dtype in .* found 'F8'"),
        (lambda h: h["a"].update(shape=[-1, 4]), 24, "non-negative ints"),
        (lambda h: h["a"].update(shape=[2**40, 2**40]), 24, "needs 4835703278458516698824704 bytes"),
        (lambda h: h["a"].update(data_offsets=[16, 0]), 24, "begin <= end"),
        (lambda h: h["a"].update(data_offsets=[0]), 24, r"expected data_offsets \[begin, end\]"),
    ],
)
def test_corrupt_safetensors_refused(tmp_path, mutate, data_len, match):
    header = json.loads(json.dumps(GOOD))
    mutate(header)
    path = write_st(tmp_path / "bad.safetensors", header, bytes(data_len))
    with pytest.raises(ValueError, match=match) as info:
        read_safetensors(path)
    assert "bad.safetensors" in str(info.value)


def test_safetensors_header_length_past_eof(tmp_path):
    path = write_st(tmp_path / "bad.safetensors", GOOD, bytes(24), n=10**6)
    with pytest.raises(ValueError, match="bad.safetensors: header length 1000000 is invalid"):
        read_safetensors(path)
    path = write_st(tmp_path / "huge.safetensors", GOOD, bytes(24), n=2**63)
    with pytest.raises(ValueError, match="header length"):
        read_safetensors(path)


def test_safetensors_bad_json_and_duplicates(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 4) + b"[1] ")
    with pytest.raises(ValueError, match="expected a JSON object header, found list"):
        read_safetensors(path)
    raw = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {}}'
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    with pytest.raises(ValueError, match="duplicate JSON key 'a'"):
        read_safetensors(path)


def test_truncated_safetensors_refused(tmp_path, cls_model):
    cls_model.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    raw = path.read_bytes()
    for cut in (4, 100, len(raw) - 1):
        path.write_bytes(raw[:cut])
        with pytest.raises(ValueError, match="model.safetensors"):
            read_safetensors(path)


# ---------------------------------------------------------------------------------------------------
# Sharded indexes


def test_shard_outside_folder_refused(tmp_path, cls_model):
    cls_model.save_pretrained(tmp_path / "m", max_shard_size="20KB")
    index = tmp_path / "m" / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    name = next(iter(data["weight_map"]))
    data["weight_map"][name] = "../evil.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="must be a file name inside"):
        load_state_dict(tmp_path / "m")


def test_shard_missing_tensor_refused(tmp_path, cls_model):
    cls_model.save_pretrained(tmp_path, max_shard_size="20KB")
    index = tmp_path / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["vit.extra.weight"] = next(iter(data["weight_map"].values()))
    index.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"missing: \['vit.extra.weight'\]"):
        load_state_dict(tmp_path)
