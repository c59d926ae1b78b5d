"""Hostile and corrupt checkpoint files: every reader fails with a clear ValueError, fast, in bounded memory.

The contract (also what tools/fuzz/ checks): for any file contents, read_safetensors, read_torch_bin,
load_state_dict, load_converted and read_metadata return or raise ValueError; FileNotFoundError /
IsADirectoryError only for paths that name nothing usable. Never RecursionError, MemoryError,
TypeError, a crash, a hang or code execution; ViT.from_pretrained gives the same ValueError.
tests/test_checkpoint.py and tests/test_convert.py hold the basic cases; this file adds the rest.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_fixtures import PREPROCESSOR, make_model, save_bin, write_fake_torch_zip

import vitc
from vitc.checkpoint import load_state_dict, read_safetensors, read_torch_bin
from vitc.convert import load_converted, read_metadata

# A hostile tiny file must be refused quickly; generous for a loaded 2-core CI machine.
MAX_SECONDS = 5.0
NEST = 100_000  # JSON / pickle nesting depth of the "bombs": far past the interpreter's recursion limit


def refused(fn, path, match: str | None = None) -> ValueError:
    """Call fn(path), expect a ValueError naming the file (matching ``match``) within MAX_SECONDS."""
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=match) as info:
        fn(path)
    assert time.perf_counter() - t0 < MAX_SECONDS
    assert Path(path).name in str(info.value)
    assert len(str(info.value)) < 3000  # hostile values are not echoed in full
    return info.value


# ---------------------------------------------------------------------------------------------------
# safetensors


def write_st(path: Path, header: bytes | dict, data: bytes = b"") -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def st_entry(**kw) -> dict:
    return {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], **kw}}


@pytest.mark.parametrize(
    "header, match",
    [
        (b"[" * NEST + b"]" * NEST, "nested too deeply"),
        (b'{"a": ' + b"[" * NEST + b"]" * NEST + b"}", "nested too deeply"),
        (b'{"a": ' + b'{"b": ' * NEST + b"1" + b"}" * NEST + b"}", "nested too deeply"),
        (b"\xff\xfe{}", "not valid UTF-8 JSON"),
        (b"{}" + b"\x00" * 8, "not valid UTF-8 JSON"),
        (st_entry(dtype=["F32"]), r"expected dtype in .* found \['F32'\]"),  # unhashable dtype
        (st_entry(dtype=None), "expected dtype in"),
        (st_entry(shape=[1] * 65, data_offsets=[0, 4]), "at most 64 non-negative ints"),
        (st_entry(shape=[2**62] * 10_000), "at most 64 non-negative ints"),  # was seconds of bignum work
        (st_entry(shape=[2**62] * 60), r"needs [\d.]+e\+\d+ bytes"),  # product > 4300 digits is printable
        (st_entry(shape=[2.0]), "non-negative ints"),
        (st_entry(shape=[True, True]), "non-negative ints"),
        (st_entry(shape="2"), "non-negative ints"),
        (st_entry(data_offsets=[False, 8]), r"data_offsets \[begin, end\] ints"),
        (st_entry(data_offsets=[-8, 0]), "within the data region"),
        (st_entry(data_offsets=[0, 2**70]), "within the data region"),
        (st_entry(data_offsets=[2**64 - 8, 2**64]), "within the data region"),
        (st_entry(data_offsets="0,8"), r"data_offsets \[begin, end\] ints"),
        ({"a": [1, 2]}, "expected an object"),
        ({"a": {"dtype": "F32", "shape": [1] * 40, "data_offsets": [0, 8]}, "x" * 10**6: 1}, "needs 4 bytes"),
    ],
)
def test_safetensors_hostile_header(tmp_path, header, match):
    refused(read_safetensors, write_st(tmp_path / "h.safetensors", header, bytes(8)), match)


def test_safetensors_overlap_hidden_by_zero_size_and_unsorted(tmp_path):
    header = {
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        "z": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},  # empty tensors may sit anywhere
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    }
    refused(read_safetensors, write_st(tmp_path / "o.safetensors", header, bytes(12)), "overlap tensor")


def test_safetensors_header_length_edge_cases(tmp_path):
    p = tmp_path / "n.safetensors"
    for n in (2**64 - 1, 2**63, 10**8 + 1):
        p.write_bytes(struct.pack("<Q", n) + b"{}")
        refused(read_safetensors, p, "header length")
    p.write_bytes(b"\x02\x00\x00")
    refused(read_safetensors, p, "expected at least 8 bytes")


# ---------------------------------------------------------------------------------------------------
# PyTorch zip checkpoints: hand-assembled pickles (opcode by opcode, nothing here is ever unpickled
# by a real pickle.load)

PROTO2 = b"\x80\x02"


def op_str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def op_int(n: int) -> bytes:
    return pickle.dumps(n, protocol=2)[2:-1]


def op_tuple(items: tuple) -> bytes:
    return b"(" + b"".join(op_int(i) for i in items) + b"t"


def op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_storage(key: str = "0", stype: str = "FloatStorage", numel: int = 6) -> bytes:
    return (
        b"("
        + op_str("storage")
        + op_global("torch", stype)
        + op_str(key)
        + op_str("cpu")
        + op_int(numel)
        + b"tQ"  # TUPLE, BINPERSID
    )


def op_tensor(storage: bytes | None = None, offset: int = 0, size=(6,), stride=(1,)) -> bytes:
    return (
        op_global("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + (op_storage() if storage is None else storage)
        + op_int(offset)
        + op_tuple(size)
        + op_tuple(stride)
        + b"\x89"  # NEWFALSE (requires_grad)
        + op_global("collections", "OrderedDict")
        + b")R"  # EMPTY_TUPLE, REDUCE: backward hooks
        + b"tR"  # TUPLE, REDUCE
    )


def op_state_dict(**values: bytes) -> bytes:
    body = b"".join(op_str(k) + v for k, v in values.items())
    return PROTO2 + b"}(" + body + b"u."  # EMPTY_DICT, MARK, ..., SETITEMS, STOP


STORAGE_BYTES = np.arange(6, dtype="<f4").tobytes()


def fake_bin(path: Path, payload: bytes, storage: bytes = STORAGE_BYTES, **extra: bytes) -> Path:
    write_fake_torch_zip(path, payload, extra={"archive/data/0": storage, **extra})
    return path


def test_handmade_pickle_reads(tmp_path):
    """The builders above make a valid checkpoint, so the refusals below are about the one change."""
    sd = read_torch_bin(
        fake_bin(tmp_path / "ok.bin", op_state_dict(a=op_tensor(), b=op_tensor(size=(2, 3), stride=(1, 2))))
    )
    np.testing.assert_array_equal(sd["a"], np.arange(6))
    np.testing.assert_array_equal(sd["b"], np.arange(6).reshape(3, 2).T)
    assert sd["b"].flags.c_contiguous


HOSTILE_PICKLES = {
    # globals reached through every opcode that names one
    "stack_global_exec": (
        b"\x80\x04" + op_str("builtins") + op_str("exec") + b"\x93" + op_str("print(1)") + b"\x85R.",
        "refusing to load global builtins.exec",
    ),
    "inst_opcode": (PROTO2 + b"(" + op_str("echo") + b"ios\nsystem\n.", "refusing to load global os.system"),
    "obj_opcode": (
        PROTO2 + b"(" + op_global("os", "system") + op_str("echo") + b"o.",
        "refusing to load global os.system",
    ),
    "ext_opcode": (PROTO2 + b"\x82\x01.", "malformed data.pkl|extension"),
    "getattr_trick": (
        PROTO2
        + op_global("builtins", "getattr")
        + b"("
        + op_global("collections", "OrderedDict")
        + op_str("__init__")
        + b"tR.",
        "refusing to load global builtins.getattr",
    ),
    # allowed globals used with the wrong arguments
    "ordereddict_args": (
        PROTO2 + op_global("collections", "OrderedDict") + b"(]" + b"(" + op_str("a") + op_int(1) + b"ta" + b"tR.",
        "OrderedDict: expected no arguments",
    ),
    "rebuild_too_few_args": (
        op_state_dict(a=op_global("torch._utils", "_rebuild_tensor_v2") + b"(" + op_storage() + b"tR"),
        "malformed data.pkl",
    ),
    "rebuild_not_a_storage": (
        op_state_dict(
            a=op_global("torch._utils", "_rebuild_tensor_v2")
            + b"("
            + op_str("x")
            + op_int(0)
            + op_tuple((1,))
            + op_tuple((1,))
            + b"tR"
        ),
        "expected a persistent storage",
    ),
    "rebuild_parameter_of_string": (
        op_state_dict(a=op_global("torch._utils", "_rebuild_parameter") + b"(" + op_str("x") + b"\x89)tR"),
        "expected str -> tensor",
    ),
    "storage_type_called": (op_state_dict(a=op_global("torch", "FloatStorage") + b")R"), "malformed data.pkl"),
    "newobj_on_allowed": (PROTO2 + op_global("torch", "FloatStorage") + b")\x81.", "malformed data.pkl|NEWOBJ"),
    # persistent ids
    "pid_not_tuple": (op_state_dict(a=op_str("storage") + b"Q"), "expected persistent id"),
    "pid_type_not_storage": (
        op_state_dict(
            a=b"(" + op_str("storage") + op_str("FloatStorage") + op_str("0") + op_str("cpu") + op_int(6) + b"tQ"
        ),
        "expected a storage type",
    ),
    "pid_key_dotdot": (op_state_dict(a=op_tensor(op_storage(key=".."))), "invalid storage key"),
    "pid_key_slash": (op_state_dict(a=op_tensor(op_storage(key="../../etc/passwd"))), "invalid storage key"),
    "pid_key_nul": (op_state_dict(a=op_tensor(op_storage(key="0\x00"))), "invalid storage key"),
    "pid_numel_negative": (op_state_dict(a=op_tensor(op_storage(numel=-1))), "expected numel >= 0"),
    "pid_numel_huge": (op_state_dict(a=op_tensor(op_storage(numel=2**62))), "need .* bytes, found a 24-byte member"),
    "pid_missing_member": (op_state_dict(a=op_tensor(op_storage(key="7"))), "storage member archive/data/7 is missing"),
    "pid_conflicting_types": (
        op_state_dict(a=op_tensor(), b=op_tensor(op_storage(stype="LongStorage", numel=3), size=(3,))),
        "conflicting types",
    ),
    # tensor geometry
    "expanded_stride0": (
        op_state_dict(a=op_tensor(size=(10**6, 10**6), stride=(0, 0))),
        "at most the storage's 6 elements",
    ),
    "stride_past_storage": (op_state_dict(a=op_tensor(size=(2, 3), stride=(3, 2))), "indices below the storage size 6"),
    "offset_past_storage": (op_state_dict(a=op_tensor(offset=6, size=(1,))), "indices below the storage size 6"),
    "negative_stride": (op_state_dict(a=op_tensor(size=(2,), stride=(-1,))), "non-negative ints"),
    "rank_65": (op_state_dict(a=op_tensor(size=(1,) * 65, stride=(1,) * 65)), "at most 64"),
    "empty_with_huge_dim": (
        op_state_dict(a=op_tensor(size=(0, 2**70), stride=(1, 1))),
        "at most the storage's|malformed",
    ),
    # BUILD / SETATTR on the allowed objects (would poison every later load if they were mutable)
    "build_storage_type_dict": (
        PROTO2 + op_global("torch", "FloatStorage") + b"}" + op_str("code") + op_str("BF16") + b"sb.",
        "malformed data.pkl",
    ),
    "build_storage_type_slots": (
        PROTO2 + op_global("torch", "FloatStorage") + b"N}" + op_str("code") + op_str("BF16") + b"s\x86b.",
        "malformed data.pkl",
    ),
    "build_rebuild_function": (
        PROTO2 + op_global("torch._utils", "_rebuild_tensor_v2") + b"N}" + op_str("__call__") + op_int(1) + b"s\x86b.",
        "malformed data.pkl",
    ),
    "build_ordereddict_class": (
        PROTO2 + op_global("collections", "OrderedDict") + b"N}" + op_str("__call__") + op_int(1) + b"s\x86b.",
        "malformed data.pkl",
    ),
    "build_storage_object": (
        op_state_dict(a=op_storage() + b"}" + op_str("code") + op_str("BF16") + b"sb"),
        "malformed data.pkl",
    ),
    "build_tensor_object": (
        op_state_dict(a=op_tensor() + b"}" + op_str("array") + op_int(1) + b"sb"),
        "malformed data.pkl",
    ),
    # memo and structure
    "memo_get_undefined": (PROTO2 + b"h\x63.", "malformed data.pkl|Memo"),
    "long_binget_undefined": (PROTO2 + b"j\xff\xff\xff\x7f.", "malformed data.pkl|Memo"),
    "nested_lists": (PROTO2 + b"}" + op_str("a") + b"]" * NEST + b"a" * (NEST - 1) + b"s.", "expected str -> tensor"),
    "not_a_dict": (PROTO2 + b"]" + op_tensor() + b"a.", "expected a state dict"),
    "int_key": (PROTO2 + b"}" + op_int(1) + op_tensor() + b"s.", r"expected str -> tensor entries, found 1"),
    "truncated": (op_state_dict(a=op_tensor())[:-5], "malformed data.pkl|truncated"),
    "protocol_99": (b"\x80\x63.", "malformed data.pkl.*protocol"),
    "huge_binbytes": (PROTO2 + b"\x8e" + struct.pack("<Q", 2**62) + b"x.", "malformed data.pkl|truncated|exceeds"),
    "huge_frame": (b"\x80\x04\x95" + struct.pack("<Q", 2**62) + b".", "malformed data.pkl|truncated|exceeds|frame"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_PICKLES))
def test_hostile_pickle(tmp_path, monkeypatch, name):
    payload, match = HOSTILE_PICKLES[name]
    monkeypatch.chdir(tmp_path)
    refused(read_torch_bin, fake_bin(tmp_path / f"{name}.bin", payload), match)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.bin"]  # nothing ran


def test_build_cannot_poison_later_loads(tmp_path):
    """A hostile file used to rewrite the shared FloatStorage stand-in (its code to BF16), silently
    turning every later float32 checkpoint into garbage."""
    good = tmp_path / "good.bin"
    torch.save({"a": torch.arange(6, dtype=torch.float32)}, good)
    for name in ("build_storage_type_dict", "build_storage_type_slots", "build_rebuild_function"):
        with pytest.raises(ValueError):
            read_torch_bin(fake_bin(tmp_path / "evil.bin", HOSTILE_PICKLES[name][0]))
    np.testing.assert_array_equal(read_torch_bin(good)["a"], np.arange(6, dtype=np.float32))


def test_build_on_state_dict_instance_is_harmless(tmp_path):
    """torch pickles state_dict._metadata with BUILD on the OrderedDict; an 'items' attribute set that
    way must not change what is read."""
    payload = (
        PROTO2
        + op_global("collections", "OrderedDict")
        + b")R"
        + b"("
        + op_str("a")
        + op_tensor()
        + b"u"
        + b"}("
        + op_str("items")
        + op_int(5)
        + op_str("keys")
        + b"N"
        + b"u"
        + b"b."
    )
    sd = read_torch_bin(fake_bin(tmp_path / "m.bin", payload))
    assert list(sd) == ["a"]
    np.testing.assert_array_equal(sd["a"], np.arange(6))


def test_memo_amplification_refused(tmp_path):
    """One memoised REDUCE argument tuple re-used 2000 times: 2000 distinct F16 tensors over a 512 kB
    storage would need 2000 float32 copies (4 GB) from a 0.5 MB file."""
    n = 1 << 18
    args = (
        b"("
        + op_storage(stype="HalfStorage", numel=n)
        + op_int(0)
        + op_tuple((n,))
        + op_tuple((1,))
        + b"\x89"
        + op_global("collections", "OrderedDict")
        + b")R"
        + b"t"
    )
    body = op_global("torch._utils", "_rebuild_tensor_v2") + b"q\x00" + args + b"q\x01"
    items = b"".join(op_str(f"k{i}") + b"h\x00h\x01R" for i in range(2000))
    payload = PROTO2 + body + b"0" + b"0" + b"}(" + items + b"u."
    path = fake_bin(tmp_path / "amp.bin", payload, storage=bytes(2 * n))
    refused(read_torch_bin, path, "bytes of copies: expected at most")


def test_memo_shared_tensor_is_copied_once(tmp_path):
    """The same tensor object under many keys (memo references) is widened once and shared."""
    n = 1 << 18
    payload = (
        PROTO2
        + op_tensor(op_storage(stype="HalfStorage", numel=n), size=(n,))
        + b"q\x00"
        + b"0"
        + b"}("
        + b"".join(op_str(f"k{i}") + b"h\x00" for i in range(2000))
        + b"u."
    )
    sd = read_torch_bin(fake_bin(tmp_path / "shared.bin", payload, storage=bytes(2 * n)))
    assert len(sd) == 2000 and len({id(v) for v in sd.values()}) == 1 and sd["k0"].dtype == np.float32


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def good_members() -> dict[str, bytes]:
    return {
        "archive/data.pkl": op_state_dict(a=op_tensor()),
        "archive/byteorder": b"little",
        "archive/data/0": STORAGE_BYTES,
    }


def corrupt_deflated_pkl() -> bytes:
    raw = bytearray(zip_bytes(good_members(), zipfile.ZIP_DEFLATED))
    start = raw.find(b"PK\x03\x04") + 30 + len("archive/data.pkl")
    raw[start + 4] ^= 0xFF  # inside the compressed stream: a zlib error or a CRC mismatch
    return bytes(raw)


def garbage_deflate() -> bytes:
    raw = bytearray(zip_bytes(good_members(), zipfile.ZIP_DEFLATED))
    start = raw.find(b"PK\x03\x04") + 30 + len("archive/data.pkl")
    raw[start : start + 6] = b"\xff" * 6
    return bytes(raw)


def crc_mismatch() -> bytes:
    raw = bytearray(zip_bytes(good_members(), zipfile.ZIP_DEFLATED))
    cd = raw.find(b"PK\x01\x02")
    raw[cd + 16] ^= 0xFF  # the central directory's CRC-32 of data.pkl
    return bytes(raw)


def stored_past_eof() -> bytes:
    raw = bytearray(zip_bytes(good_members()))
    for name in (b"archive/data/0",):
        cd = raw.find(b"PK\x01\x02" + raw[raw.find(b"PK\x01\x02") + 4 : raw.find(b"PK\x01\x02") + 4])
        while cd != -1 and raw[cd + 46 : cd + 46 + len(name)] != name:
            cd = raw.find(b"PK\x01\x02", cd + 1)
        raw[cd + 20 : cd + 28] = struct.pack("<II", 2**31, 2**31)  # compressed, uncompressed size
    return bytes(raw)


def bad_central_offset() -> bytes:
    raw = bytearray(zip_bytes(good_members()))
    eocd = raw.rfind(b"PK\x05\x06")
    raw[eocd + 16 : eocd + 20] = struct.pack("<I", 2**31)  # central directory offset past EOF
    return bytes(raw)


def encrypted_flag() -> bytes:
    raw = bytearray(zip_bytes(good_members()))
    cd = raw.find(b"PK\x01\x02")
    raw[cd + 8] |= 1
    return bytes(raw)


@pytest.mark.parametrize(
    "make, match",
    [
        (corrupt_deflated_pkl, "corrupt compressed data|malformed data.pkl"),
        (garbage_deflate, "corrupt compressed data"),
        (crc_mismatch, "corrupt compressed data"),
        (stored_past_eof, "expected .* bytes inside the archive|need"),
        (bad_central_offset, "corrupt zip archive|bad local file header"),
        (encrypted_flag, "encrypted"),
        (lambda: zip_bytes({**good_members(), "/etc/passwd": b"x"}), "unsafe path"),
        (lambda: zip_bytes({**good_members(), "archive\\..\\x": b"x"}), "unsafe path"),
        (lambda: zip_bytes({**good_members(), "C:/x": b"x"}), "unsafe path"),
        (lambda: zip_bytes({"archive/byteorder": b"little"}), "expected archive/data.pkl"),
        (lambda: zip_bytes({**good_members(), "archive/byteorder": b"little" * 10}), "expected at most 16 bytes"),
        (lambda: b"PK\x03\x04" + bytes(100), "neither zip nor pickle|corrupt zip"),
    ],
)
def test_corrupt_zip(tmp_path, make, match):
    path = tmp_path / "z.bin"
    path.write_bytes(make())
    refused(read_torch_bin, path, match)


# ---------------------------------------------------------------------------------------------------
# Sharded indexes


@pytest.fixture()
def sharded(tmp_path) -> Path:
    folder = tmp_path / "m"
    folder.mkdir()
    write_st(folder / "s.safetensors", st_entry(), bytes(8))
    return folder


@pytest.mark.parametrize(
    "index, err, match",
    [
        (b'{"weight_map": ' + b"[" * NEST + b"]" * NEST + b"}", ValueError, "nested too deeply"),
        (b"\xff\xfe", ValueError, "not valid UTF-8 JSON"),
        (b'{"weight_map": {"a": "s.safetensors"}, "weight_map": {}}', ValueError, "duplicate JSON key"),
        (json.dumps({"weight_map": {"a": "x" * 10_000}}).encode(), ValueError, "expected a shard file name"),
        (json.dumps({"weight_map": {"a": "s\x00.safetensors"}}).encode(), ValueError, "expected a shard file name"),
        (json.dumps({"weight_map": {"a": "y" * 250}}).encode(), FileNotFoundError, "not found"),
        (json.dumps({"weight_map": {"a": "/etc/passwd"}}).encode(), ValueError, "must be a file name inside"),
        (json.dumps({"weight_map": {"a": ""}}).encode(), ValueError, "expected a shard file name"),
        (json.dumps({"weight_map": {"a": "."}}).encode(), ValueError, "must be a file name inside"),
        (json.dumps({"weight_map": {"a": 1}}).encode(), ValueError, "expected a shard file name"),
        (json.dumps({"weight_map": []}).encode(), ValueError, "non-empty 'weight_map'"),
        (json.dumps({"weight_map": {"a": "model.safetensors.index.json"}}).encode(), ValueError, "header length"),
        (json.dumps({"weight_map": {"b": "s.safetensors"}}).encode(), ValueError, "missing"),
    ],
)
def test_hostile_index(sharded, index, err, match):
    (sharded / "model.safetensors.index.json").write_bytes(index)
    t0 = time.perf_counter()
    with pytest.raises(err, match=match):
        load_state_dict(sharded)
    assert time.perf_counter() - t0 < MAX_SECONDS


def test_shard_symlink_outside_folder_refused(sharded, tmp_path):
    (sharded / "link.safetensors").symlink_to(sharded / "s.safetensors")
    (tmp_path / "outside.safetensors").write_bytes((sharded / "s.safetensors").read_bytes())
    (sharded / "escape.safetensors").symlink_to(tmp_path / "outside.safetensors")
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "escape.safetensors"}}))
    with pytest.raises(ValueError, match="must be a file name inside"):
        load_state_dict(sharded)


FUZZ_DATA = Path(__file__).parent / "data" / "fuzz"


@pytest.mark.parametrize("path", sorted(FUZZ_DATA.glob("torch_bin-*")), ids=lambda p: p.name)
def test_fuzz_regressions_torch_bin(path):
    """Inputs found by tools/fuzz/ (see the report in each test id's file name)."""
    refused(read_torch_bin, path)
    refused(load_state_dict, path)


def test_huge_memo_index_stays_small(tmp_path):
    """LONG_BINPUT 778593140 made the C unpickler allocate a 12 GB memo array (fuzz finding); run in a
    fresh process so its peak RSS is this read alone. The peak is VmHWM, which belongs to the new
    process image; ru_maxrss survives exec on Linux and would report pytest's own peak."""
    code = (
        "import re, sys\n"
        "from vitc.checkpoint import read_torch_bin\n"
        "try:\n    read_torch_bin(sys.argv[1])\nexcept ValueError:\n    pass\n"
        "status = open('/proc/self/status').read()\n"
        "print(re.search(r'VmHWM:\\s*(\\d+) kB', status).group(1))\n"
    )
    path = FUZZ_DATA / "torch_bin-long-binput-huge-memo.bin"
    peak_kb = int(
        subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    )
    assert peak_kb < 1 << 20, f"peak RSS {peak_kb} kB reading a {path.stat().st_size}-byte file"


def test_paths_that_name_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_state_dict(tmp_path / "nope.safetensors")
    with pytest.raises(IsADirectoryError):
        read_safetensors(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_converted(tmp_path / "nope.vitc")


# ---------------------------------------------------------------------------------------------------
# .vitc files


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hf")
    make_model("cls").save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    return folder


@pytest.fixture(scope="module")
def good_vitc(hf_folder, tmp_path_factory) -> bytes:
    return vitc.convert(hf_folder, tmp_path_factory.mktemp("v") / "good.vitc", progress=False).read_bytes()


def with_header(good: bytes, header: bytes) -> bytes:
    """The good file's prefix and data with a replacement header (data offsets kept valid if it fits)."""
    n = struct.unpack("<Q", good[8:16])[0]
    if len(header) <= n:
        header = header + b" " * (n - len(header))
        return good[:16] + header + good[16 + n :]
    return good[:8] + struct.pack("<Q", len(header)) + header


def mutate_header(good: bytes, fn) -> bytes:
    n = struct.unpack("<Q", good[8:16])[0]
    h = json.loads(good[16 : 16 + n])
    fn(h)
    return with_header(good, json.dumps(h, separators=(",", ":")).encode())


def set_config(**kw):
    return lambda h: h["config"].update(kw)


def first_tensor(**kw):
    return lambda h: next(iter(h["tensors"].values())).update(kw)


VITC_CASES = {
    "json_bomb": (lambda g: with_header(g, b"[" * NEST), "nested too deeply"),
    "config_bomb": (lambda g: with_header(g, b'{"config":' + b"[" * NEST + b"]" * NEST + b"}"), "nested too deeply"),
    "billion_layers": (
        lambda g: mutate_header(g, set_config(num_hidden_layers=10**9)),
        "too few for 1000000000 layers",
    ),
    "huge_image": (lambda g: mutate_header(g, set_config(image_size=2**40, patch_size=1)), "do not match the config"),
    "hidden_size_str": (lambda g: mutate_header(g, set_config(hidden_size="32")), "header config"),
    "hidden_size_float": (lambda g: mutate_header(g, set_config(hidden_size=32.0)), "header config"),
    "hidden_size_bool": (lambda g: mutate_header(g, set_config(hidden_size=True)), "header config"),
    "id2label_list": (lambda g: mutate_header(g, set_config(id2label=[1, 2])), "header config"),
    "id2label_nested": (
        lambda g: mutate_header(g, set_config(id2label={"0": [[1]]}, num_labels=1)),
        "header config|do not match",
    ),
    "image_size_nested": (lambda g: mutate_header(g, set_config(image_size=[[30], [30]])), "header config"),
    "eps_nan_string": (lambda g: mutate_header(g, set_config(layer_norm_eps="nan")), "header config"),
    "num_labels_huge": (
        lambda g: mutate_header(g, lambda h: (h["config"].pop("id2label"), h["config"].update(num_labels=10**12))),
        "header config",
    ),
    "tensor_dtype_list": (lambda g: mutate_header(g, first_tensor(dtype=["float32"])), "expected dtype in"),
    "tensor_offset_bool": (lambda g: mutate_header(g, first_tensor(offset=True)), "integer byte offsets"),
    "tensor_nbytes_float": (lambda g: mutate_header(g, first_tensor(nbytes=1536.0)), "integer byte offsets"),
    "tensor_shape_huge_rank": (lambda g: mutate_header(g, first_tensor(shape=[1] * 100)), "at most 64"),
    "tensor_entry_list": (lambda g: mutate_header(g, lambda h: h["tensors"].update(x=[1])), "expected an object"),
    "preprocessor_list": (lambda g: mutate_header(g, lambda h: h.update(preprocessor=[1])), "expected object or null"),
    "format_version_str": (lambda g: mutate_header(g, lambda h: h.update(format_version="1")), "expected int"),
}


@pytest.mark.parametrize("name", sorted(VITC_CASES))
def test_hostile_vitc(tmp_path, good_vitc, name):
    make, match = VITC_CASES[name]
    path = tmp_path / "bad.vitc"
    path.write_bytes(make(good_vitc))
    refused(load_converted, path, match)
    refused(vitc.ViT.from_pretrained, path, match)


def test_hostile_vitc_metadata(tmp_path, good_vitc):
    path = tmp_path / "bad.vitc"
    path.write_bytes(with_header(good_vitc, b"[" * NEST))
    refused(read_metadata, path, "nested too deeply")
    path.write_bytes(good_vitc[:8] + struct.pack("<Q", 2**64 - 1) + good_vitc[16:])
    refused(read_metadata, path, "header length")


def test_every_header_byte_flip_is_refused_or_harmless(tmp_path, good_vitc):
    """Flip each byte of the prefix and a sample of the header: a clean ValueError or a valid model,
    never another exception. (Flips in the data region are undetectable: the format has no checksum.)"""
    n = struct.unpack("<Q", good_vitc[8:16])[0]
    path = tmp_path / "flip.vitc"
    positions = list(range(16)) + list(range(16, 16 + n, 7))
    outcomes = {"refused": 0, "loaded": 0}
    for pos in positions:
        for xor in (0x01, 0x80):
            raw = bytearray(good_vitc)
            raw[pos] ^= xor
            path.write_bytes(bytes(raw))
            try:
                load_converted(path)
                outcomes["loaded"] += 1
            except ValueError:
                outcomes["refused"] += 1
    assert outcomes["refused"] > len(positions)  # the check itself is exercised


# ---------------------------------------------------------------------------------------------------
# ViT.from_pretrained on corrupt Hugging Face folders


def hf_copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda f: (f / "config.json").write_bytes(b"[" * NEST), "config.json: file JSON is nested too deeply"),
        (lambda f: (f / "config.json").write_bytes(b"\xff"), "config.json: file is not valid UTF-8 JSON"),
        (
            lambda f: (f / "config.json").write_text('{"num_hidden_layers": 1000000000}'),
            "too few for the config's 1000000000 layers",
        ),
        (lambda f: (f / "config.json").write_text('{"hidden_size": [32]}'), "config.json: config"),
        (lambda f: (f / "preprocessor_config.json").write_bytes(b"[" * NEST), "nested too deeply"),
        (
            lambda f: write_st(f / "model.safetensors", b"[" * NEST),
            "model.safetensors: header JSON is nested too deeply",
        ),
        (
            lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:-4]),
            "within the data region",
        ),
        (
            lambda f: (
                (f / "model.safetensors").unlink(),
                fake_bin(f / "pytorch_model.bin", HOSTILE_PICKLES["stack_global_exec"][0]),
            ),
            "refusing to load global builtins.exec",
        ),
        (
            lambda f: (
                (f / "model.safetensors").unlink(),
                fake_bin(f / "pytorch_model.bin", HOSTILE_PICKLES["expanded_stride0"][0]),
            ),
            "at most the storage's 6 elements",
        ),
        (
            lambda f: ((f / "model.safetensors").unlink(), (f / "pytorch_model.bin").write_bytes(crc_mismatch())),
            "corrupt compressed data",
        ),
        (
            lambda f: (
                (f / "model.safetensors").unlink(),
                (f / "model.safetensors.index.json").write_bytes(b"[" * NEST),
            ),
            "nested too deeply",
        ),
    ],
)
def test_from_pretrained_corrupt_folder(tmp_path, hf_folder, corrupt, match):
    folder = hf_copy(hf_folder, tmp_path / "m")
    corrupt(folder)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        vitc.ViT.from_pretrained(folder)
    assert time.perf_counter() - t0 < MAX_SECONDS


def test_from_pretrained_bin_folder_still_loads(tmp_path):
    """The hardened unpickler still reads what torch.save writes (tensor views, _metadata BUILD)."""
    model = make_model("cls")
    save_bin(model, tmp_path / "m")
    vit = vitc.ViT.from_pretrained(tmp_path / "m")
    x = np.random.default_rng(0).standard_normal((1, 3, 30, 30)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).logits.numpy()
    np.testing.assert_allclose(vit(x).logits, ref, atol=1e-4)
