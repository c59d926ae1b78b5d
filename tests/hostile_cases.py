"""Hand-made hostile checkpoint files: the case tables of tests/test_hostile_files.py, importable on their own.

Each case is bytes (or a function of a good file's bytes) and the error a reader must give. The tests
check every case; tools/fuzz/seeds.py writes them as fuzz seeds (see :func:`seed_files`), so the
fuzzer starts from the hostile shapes as well as from valid files. Only the standard library and NumPy
are imported here: nothing in this module ever unpickles anything.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable

import numpy as np

NEST = 100_000  # JSON / pickle nesting depth of the "bombs": far past the interpreter's recursion limit
SHARD_SEPARATOR = b"\n--SHARD--\n"  # the fuzz "sharded" target's input: index JSON, separator, shard


# ---------------------------------------------------------------------------------------------------
# safetensors


def st_bytes(header: bytes | dict, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def st_entry(**kw) -> dict:
    return {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], **kw}}


# (header, match); the data section is 8 zero bytes.
SAFETENSORS_HEADERS: list[tuple[bytes | dict, str]] = [
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
    # ~20x its size in Python lists if parsed: refused by counting brackets first
    (b'{"x": [' + b"[]," * 600_000 + b"[]]}", r"JSON has \d+ '\[' and '\{': expected at most"),
]


# ---------------------------------------------------------------------------------------------------
# PyTorch zip checkpoints: hand-assembled pickles (opcode by opcode)

PROTO2 = b"\x80\x02"


def op_str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def op_int(n: int) -> bytes:
    return pickle.dumps(n, protocol=2)[2:-1]  # pickling an int never runs anything


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


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def fake_bin_bytes(payload: bytes, storage: bytes = STORAGE_BYTES, **extra: bytes) -> bytes:
    """torch.save's layout (archive/data.pkl, byteorder, version, data/0) around a hand-made pickle."""
    members = {"archive/data.pkl": payload, "archive/byteorder": b"little", "archive/version": b"3\n"}
    return zip_bytes({**members, "archive/data/0": storage, **extra})


# name -> (data.pkl, match)
HOSTILE_PICKLES: dict[str, tuple[bytes, str]] = {
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
    "builtins_eval": (
        PROTO2 + op_global("builtins", "eval") + op_str("1+1") + b"\x85R.",
        "refusing to load global builtins.eval",
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
    "nested_lists": (PROTO2 + b"}" + op_str("a") + b"]" * NEST + b"a" * (NEST - 1) + b"s.", "on its stack"),
    "nested_lists_under_cap": (PROTO2 + b"}" + op_str("a") + b"]" * 40_000 + b"a" * 39_999 + b"s.", "str -> tensor"),
    "not_a_dict": (PROTO2 + b"]" + op_tensor() + b"a.", "expected a state dict"),
    "int_key": (PROTO2 + b"}" + op_int(1) + op_tensor() + b"s.", r"expected str -> tensor entries, found 1"),
    "truncated": (op_state_dict(a=op_tensor())[:-5], "malformed data.pkl|truncated"),
    "protocol_99": (b"\x80\x63.", "malformed data.pkl.*protocol"),
    "huge_binbytes": (PROTO2 + b"\x8e" + struct.pack("<Q", 2**62) + b"x.", "malformed data.pkl|truncated|exceeds"),
    "huge_frame": (b"\x80\x04\x95" + struct.pack("<Q", 2**62) + b".", "malformed data.pkl|truncated|exceeds|frame"),
    # the pure-Python unpickler allocates (and zeroes) BYTEARRAY8's length before reading it
    "bytearray8_huge": (b"\x80\x05\x96" + struct.pack("<Q", 2**31) + b".", "BYTEARRAY8 claims 2147483648 bytes"),
    # ~100 bytes of Python objects per byte: each is capped (stack, MARK depth, opcode count)
    "stack_bomb": (PROTO2 + b"]" * 60_000 + b".", "on its stack"),
    "mark_bomb": (PROTO2 + b"(" * 2_000 + b".", "nested MARKs"),
    "opcode_bomb": (PROTO2 + b"N0" * 150_000 + b"}.", "runs more than .* opcodes"),
}


def _deflated_pkl_bin(payload: bytes, *members: tuple[str, bytes]) -> bytes:
    """A .bin whose data.pkl is deflated (torch.save never does that; zip allows it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("archive/data.pkl"), payload, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("archive/byteorder", b"little")
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


# name -> (function making a few-kB .bin, match). Before the caps each took 100-400 MB and seconds:
# deflate makes a 1-4 MB pickle of one-byte opcodes (or 48 MB of storage) from a few kB of file.
PICKLE_BOMBS: dict[str, tuple[Callable[[], bytes], str]] = {
    "lists_4m": (lambda: _deflated_pkl_bin(PROTO2 + b"]" * 4_000_000 + b"."), "inflating deflated member"),
    "marks_4m": (lambda: _deflated_pkl_bin(PROTO2 + b"(" * 4_000_000 + b"."), "inflating deflated member"),
    "lists_1m": (lambda: _deflated_pkl_bin(PROTO2 + b"]" * 1_000_000 + b"."), "on its stack"),
    "marks_1m": (lambda: _deflated_pkl_bin(PROTO2 + b"(" * 1_000_000 + b"."), "nested MARKs"),
    "appends_1m": (
        lambda: _deflated_pkl_bin(PROTO2 + b"]" + (b"(" + b"]" * 998 + b"e") * 1000 + b"."),
        "runs more than .* opcodes",
    ),
    "memo_1m": (lambda: _deflated_pkl_bin(b"\x80\x04N" + b"\x94" * 1_000_000 + b"."), "runs more than .* opcodes"),
    "deflated_storage_zeros": (
        lambda: _deflated_pkl_bin(
            op_state_dict(a=op_tensor(op_storage(numel=12_000_000), size=(12_000_000,))),
            ("archive/data/0", bytes(48_000_000)),
        ),
        "inflating deflated member archive/data/0",
    ),
}


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


def huge_declared_deflate() -> bytes:
    """data.pkl deflated, its central directory entry claiming 4 GB uncompressed."""
    raw = bytearray(zip_bytes(good_members(), zipfile.ZIP_DEFLATED))
    cd = raw.find(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = struct.pack("<I", 0xFFFFFFFE)
    return bytes(raw)


# (make, match)
CORRUPT_ZIPS: list[tuple[Callable[[], bytes], str]] = [
    (corrupt_deflated_pkl, "corrupt compressed data|malformed data.pkl"),
    (garbage_deflate, "corrupt compressed data"),
    (crc_mismatch, "corrupt compressed data"),
    (stored_past_eof, "expected .* bytes inside the archive|need"),
    (bad_central_offset, "corrupt zip archive|bad local file header"),
    (encrypted_flag, "encrypted"),
    (huge_declared_deflate, "expected a ratio below|expected at most"),
    (lambda: zip_bytes({**good_members(), "/etc/passwd": b"x"}), "unsafe path"),
    (lambda: zip_bytes({**good_members(), "archive/../../x": b"x"}), "unsafe path"),
    (lambda: zip_bytes({**good_members(), "archive\\..\\x": b"x"}), "unsafe path"),
    (lambda: zip_bytes({**good_members(), "C:/x": b"x"}), "unsafe path"),
    (lambda: zip_bytes({"archive/byteorder": b"little"}), "expected archive/data.pkl"),
    (lambda: zip_bytes({**good_members(), "archive/byteorder": b"little" * 10}), "expected at most 16 bytes"),
    (lambda: b"PK\x03\x04" + bytes(100), "neither zip nor pickle|corrupt zip"),
]


# ---------------------------------------------------------------------------------------------------
# Sharded indexes: (index bytes, error type, match); the folder holds s.safetensors = st_entry().

SHARD_BYTES = st_bytes(st_entry(), bytes(8))
HOSTILE_INDEXES: list[tuple[bytes, type[Exception], str]] = [
    (b'{"weight_map": ' + b"[" * NEST + b"]" * NEST + b"}", ValueError, "nested too deeply"),
    (b"\xff\xfe", ValueError, "not valid UTF-8 JSON"),
    (b'{"weight_map": {"a": "s.safetensors"}, "weight_map": {}}', ValueError, "duplicate JSON key"),
    (json.dumps({"weight_map": {"a": "x" * 10_000}}).encode(), ValueError, "expected a shard file name"),
    (json.dumps({"weight_map": {"a": "s\x00.safetensors"}}).encode(), ValueError, "expected a shard file name"),
    (json.dumps({"weight_map": {"a": "y" * 250}}).encode(), FileNotFoundError, "not found"),
    (json.dumps({"weight_map": {"a": "/etc/passwd"}}).encode(), ValueError, "must be a file name inside"),
    (json.dumps({"weight_map": {"a": "../s.safetensors"}}).encode(), ValueError, "must be a file name inside"),
    (json.dumps({"weight_map": {"a": ""}}).encode(), ValueError, "expected a shard file name"),
    (json.dumps({"weight_map": {"a": "."}}).encode(), ValueError, "must be a file name inside"),
    (json.dumps({"weight_map": {"a": 1}}).encode(), ValueError, "expected a shard file name"),
    (json.dumps({"weight_map": []}).encode(), ValueError, "non-empty 'weight_map'"),
    (json.dumps({"weight_map": {"a": "model.safetensors.index.json"}}).encode(), ValueError, "header length"),
    (json.dumps({"weight_map": {"b": "s.safetensors"}}).encode(), ValueError, "missing"),
]


# ---------------------------------------------------------------------------------------------------
# PyTorch legacy (non-zip) checkpoints: five pickles, then each storage's count and bytes (ref:
# torch/serialization.py _legacy_save). The header pickles are made with pickle.dumps of ints, dicts
# and lists (pickling them runs nothing); the state dicts opcode by opcode.

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}


def op_legacy_storage(
    key: str = "0", stype: str = "FloatStorage", numel: int = 6, view: tuple[str, int, int] | None = None
) -> bytes:
    """A legacy persistent id: ('storage', type, key, location, numel, view or None)."""
    view_op = b"N" if view is None else b"(" + op_str(view[0]) + op_int(view[1]) + op_int(view[2]) + b"t"
    return (
        b"("
        + op_str("storage")
        + op_global("torch", stype)
        + op_str(key)
        + op_str("cpu")
        + op_int(numel)
        + view_op
        + b"tQ"
    )


def op_legacy_tensor(storage: bytes | None = None, offset: int = 0, size=(6,), stride=(1,)) -> bytes:
    return op_tensor(op_legacy_storage() if storage is None else storage, offset, size, stride)


def legacy_record(data: bytes, itemsize: int = 4, count: int | None = None) -> bytes:
    """A storage's record: its int64 little-endian element count, then its bytes."""
    return struct.pack("<q", len(data) // itemsize if count is None else count) + data


def legacy_bytes(
    payload: bytes,
    keys: object = ("0",),
    records: bytes | None = None,
    *,
    magic: object = LEGACY_MAGIC,
    version: object = 1001,
    sys_info: object = None,
    raw_head: bytes | None = None,
) -> bytes:
    """A legacy torch.save file around a hand-made state dict pickle. ``keys`` is pickled (a list) unless
    bytes; ``raw_head`` replaces the three header pickles."""
    head = raw_head
    if head is None:
        info = LEGACY_SYS_INFO if sys_info is None else sys_info
        head = b"".join(pickle.dumps(v, protocol=2) for v in (magic, version, info))
    keys_pkl = keys if isinstance(keys, bytes) else pickle.dumps(list(keys), protocol=2)
    return head + payload + keys_pkl + (legacy_record(STORAGE_BYTES) if records is None else records)


def good_legacy() -> bytes:
    return legacy_bytes(op_state_dict(a=op_legacy_tensor()))


# name -> (file bytes, match). "Never executed" is checked by the test: the directory stays as it was.
HOSTILE_LEGACY: dict[str, tuple[bytes, str]] = {
    "magic_wrong": (legacy_bytes(op_state_dict(a=op_legacy_tensor()), magic=12345), "expected torch.save's magic"),
    "magic_str": (legacy_bytes(op_state_dict(), magic="torch"), "magic number .* found 'torch'"),
    "plain_pickle": (pickle.dumps({"a": [1, 2]}, protocol=2), "magic number .* found {'a'"),
    "magic_os_system": (
        PROTO2 + op_global("os", "system") + op_str("touch executed") + b"\x85R." + b"rest",
        "refusing to load global os.system",
    ),
    "magic_posix_system_inst": (
        PROTO2 + b"(" + op_str("touch executed") + b"iposix\nsystem\n.",
        "refusing to load global posix.system",
    ),
    "version_wrong": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor()), version=1000),
        "protocol version 1001, found 1000",
    ),
    "version_bool": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor()), version=True),
        "protocol version 1001, found True",
    ),
    "sys_info_list": (legacy_bytes(op_state_dict(a=op_legacy_tensor()), sys_info=[1]), "expected the sys info dict"),
    "sys_info_eval": (
        pickle.dumps(LEGACY_MAGIC, protocol=2)
        + pickle.dumps(1001, protocol=2)
        + PROTO2
        + op_global("builtins", "eval")
        + op_str("open('executed', 'w')")
        + b"\x85R.",
        "refusing to load global builtins.eval",
    ),
    "sys_info_persistent_id": (
        legacy_bytes(
            op_state_dict(),
            raw_head=pickle.dumps(LEGACY_MAGIC, protocol=2)
            + pickle.dumps(1001, protocol=2)
            + PROTO2
            + op_str("x")
            + b"Q.",
        ),
        "sys info: expected no persistent id",
    ),
    "state_dict_exec": (
        legacy_bytes(PROTO2 + op_global("builtins", "exec") + op_str("open('executed', 'w')") + b"\x85R."),
        "refusing to load global builtins.exec",
    ),
    "state_dict_subprocess": (
        legacy_bytes(
            PROTO2
            + op_global("subprocess", "check_call")
            + b"("
            + b"("
            + op_str("touch")
            + op_str("executed")
            + b"ltR."
        ),
        "refusing to load global subprocess.check_call",
    ),
    "whole_module_pickled": (
        legacy_bytes(PROTO2 + b"(" + op_str("module") + op_global("transformers", "ViTModel") + b"NNtQ."),
        "refusing to load global transformers.ViTModel",
    ),
    "zip_style_pid": (legacy_bytes(op_state_dict(a=op_tensor())), "expected persistent id .*view"),
    "numel_huge": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor(op_legacy_storage(numel=2**62)))),
        r"storage 0: \d+ x 4-byte items need \d+ bytes, found a \d+-byte file",
    ),
    "numel_negative": (legacy_bytes(op_state_dict(a=op_legacy_tensor(op_legacy_storage(numel=-1)))), "numel >= 0"),
    "key_slash": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor(op_legacy_storage(key="../x"))), keys=["../x"]),
        "invalid storage key",
    ),
    "conflicting_types": (
        legacy_bytes(
            op_state_dict(
                a=op_legacy_tensor(), b=op_legacy_tensor(op_legacy_storage(stype="LongStorage", numel=3), size=(3,))
            )
        ),
        "conflicting types",
    ),
    "keys_not_list": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor()), keys=pickle.dumps({"0": 1})),
        "list of storage keys",
    ),
    "keys_int": (legacy_bytes(op_state_dict(a=op_legacy_tensor()), keys=[0]), "list of storage keys"),
    "keys_missing": (legacy_bytes(op_state_dict(a=op_legacy_tensor()), keys=[]), "each storage of the state dict once"),
    "keys_duplicate": (legacy_bytes(op_state_dict(a=op_legacy_tensor()), keys=["0", "0"]), "each storage .* once"),
    "keys_unknown": (legacy_bytes(op_state_dict(a=op_legacy_tensor()), keys=["0", "9"]), "each storage .* once"),
    "keys_global": (
        legacy_bytes(
            op_state_dict(a=op_legacy_tensor()), keys=PROTO2 + op_global("os", "system") + op_str("x") + b"\x85R."
        ),
        "refusing to load global os.system",
    ),
    "count_short": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor()), records=legacy_record(STORAGE_BYTES, count=5)),
        "storage 0 at byte \\d+: expected 6 elements .* found 5",
    ),
    "count_huge": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor()), records=legacy_record(STORAGE_BYTES, count=2**62)),
        "expected 6 elements .* found 4611686018427387904",
    ),
    "count_negative": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor()), records=legacy_record(STORAGE_BYTES, count=-1)),
        "expected 6 elements .* found -1",
    ),
    "record_short": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor()), records=legacy_record(STORAGE_BYTES[:20], count=6)),
        r"file is truncated: storage 0 needs bytes \[\d+, \d+\), the file has",
    ),
    "view_past_root": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor(op_legacy_storage(view=("v", 4, 5)), size=(5,)))),
        r"storage view v: elements \[4, 9\) of storage 0: expected them within its 6 elements",
    ),
    "view_metadata_str": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor(op_legacy_storage()[:-3] + op_str("x") + b"tQ"))),
        "expected view metadata",
    ),
    "view_key_is_a_storage": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor(op_legacy_storage(view=("0", 0, 3)), size=(3,)))),
        "names both a storage and a view",
    ),
    "tensor_past_view": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor(op_legacy_storage(view=("v", 2, 3)), size=(4,)))),
        "at most the storage's 3 elements",
    ),
    "stride_past_storage": (
        legacy_bytes(op_state_dict(a=op_legacy_tensor(size=(2, 3), stride=(3, 2)))),
        "indices below the storage size 6",
    ),
    "stack_bomb": (legacy_bytes(PROTO2 + b"]" * 60_000 + b"."), "state dict pickle holds .* on its stack"),
    "mark_bomb": (legacy_bytes(PROTO2 + b"(" * 2_000 + b"."), "nested MARKs"),
    "opcode_bomb": (legacy_bytes(PROTO2 + b"N0" * 150_000 + b"}."), "runs more than .* opcodes"),
    "bytearray8_huge": (
        legacy_bytes(b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b"."),
        "BYTEARRAY8 claims 1099511627776 bytes",
    ),
    "binbytes8_huge": (legacy_bytes(PROTO2 + b"\x8e" + struct.pack("<Q", 2**62) + b"x."), "truncated|malformed"),
    "long4_huge": (legacy_bytes(PROTO2 + b"\x8b" + struct.pack("<i", 2**31 - 1) + b"x."), "truncated|malformed"),
    "not_a_dict": (legacy_bytes(PROTO2 + b"]" + op_legacy_tensor() + b"a."), "expected a state dict"),
    "protocol_99": (b"\x80\x63.", "malformed magic number.*protocol"),
}

# ---------------------------------------------------------------------------------------------------
# .vitc files: functions of a good converted file's bytes


def vitc_layout(raw: bytes) -> tuple[int, int, int]:
    """(format version, header start, header length) of a .vitc file's bytes (16-byte prefix in
    format 1; format 2 adds the header's CRC-32 at offset 16)."""
    version, n = struct.unpack_from("<HQ", raw, 6)
    return version, (16 if version == 1 else 20), n


def reseal(raw: bytes) -> bytes:
    """A format-2 file with its header checksum recomputed for the header it now has: what a forger
    (or an edit with a tool that knows the format) produces. The readers must then refuse the edit by
    its content, which is what most cases below test."""
    version, start, n = vitc_layout(raw)
    if version < 2 or len(raw) < start:
        return raw
    crc = zlib.crc32(raw[start : start + n], zlib.crc32(raw[:16]))
    return raw[:16] + struct.pack("<I", crc) + raw[20:]


def with_header(good: bytes, header: bytes, seal: bool = True) -> bytes:
    """The good file's prefix and data with a replacement header (data offsets kept valid if it fits),
    resealed unless ``seal`` is False."""
    _, start, n = vitc_layout(good)
    if len(header) <= n:
        header = header + b" " * (n - len(header))
        out = good[:start] + header + good[start + n :]
    else:
        out = good[:8] + struct.pack("<Q", len(header)) + good[16:start] + header
    return reseal(out) if seal else out


def mutate_header(good: bytes, fn, seal: bool = True) -> bytes:
    _, start, n = vitc_layout(good)
    h = json.loads(good[start : start + n])
    fn(h)
    return with_header(good, json.dumps(h, separators=(",", ":")).encode(), seal)


def with_version(good: bytes, version: int, seal: bool = True) -> bytes:
    out = good[:6] + struct.pack("<H", version) + good[8:]
    return reseal(out) if seal else out


def rename_key(where, old: str, new: str):
    """Rename a key of the header object ``where(h)`` keeping its place (a flipped byte in a key)."""

    def fn(h: dict) -> None:
        d = where(h)
        items = [(new if k == old else k, v) for k, v in d.items()]
        d.clear()
        d.update(items)

    return fn


def set_config(**kw):
    return lambda h: h["config"].update(kw)


def first_tensor(**kw):
    return lambda h: next(iter(h["tensors"].values())).update(kw)


VITC_CASES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
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
        lambda g: mutate_header(g, set_config(id2label={"0": [[1]]})),
        "header config|do not match",
    ),
    "image_size_nested": (lambda g: mutate_header(g, set_config(image_size=[[30], [30]])), "header config"),
    "eps_nan_string": (lambda g: mutate_header(g, set_config(layer_norm_eps="nan")), "header config"),
    "num_labels_huge": (
        lambda g: mutate_header(g, lambda h: (h["config"].pop("id2label"), h["config"].update(num_labels=10**12))),
        "header 'config'.*unknown key.*num_labels",  # format 2 has no num_labels: id2label says it
    ),
    "tensor_dtype_list": (lambda g: mutate_header(g, first_tensor(dtype=["float32"])), "expected dtype in"),
    "tensor_offset_bool": (lambda g: mutate_header(g, first_tensor(offset=True)), "integer byte offsets"),
    "tensor_nbytes_float": (lambda g: mutate_header(g, first_tensor(nbytes=1536.0)), "integer byte offsets"),
    "tensor_shape_huge_rank": (lambda g: mutate_header(g, first_tensor(shape=[1] * 100)), "at most 64"),
    "tensor_entry_list": (lambda g: mutate_header(g, lambda h: h["tensors"].update(x=[1])), "expected an object"),
    "preprocessor_list": (lambda g: mutate_header(g, lambda h: h.update(preprocessor=[1])), "expected object or null"),
    "format_version_str": (lambda g: mutate_header(g, lambda h: h.update(format_version="1")), "expected int"),
    # format 2 and 3: the header's checksum, its exact keys, the newer-format message
    "header_crc_flipped": (lambda g: g[:16] + bytes([g[16] ^ 1]) + g[17:], "header checksum mismatch"),
    "edit_not_resealed": (
        lambda g: mutate_header(g, set_config(hidden_act="relu"), seal=False),
        "header checksum mismatch",
    ),
    "top_key_unknown": (lambda g: mutate_header(g, lambda h: h.update(extra=1)), r"unknown key\(s\) \['extra'\]"),
    "top_key_missing": (lambda g: mutate_header(g, lambda h: h.pop("checksum")), r"missing key\(s\) \['checksum'\]"),
    "top_key_renamed": (
        lambda g: mutate_header(g, rename_key(lambda h: h, "preprocessor", "preprocessos")),
        "unknown key.*preprocessos.*missing key.*preprocessor",
    ),
    "config_key_renamed": (
        lambda g: mutate_header(g, rename_key(lambda h: h["config"], "hidden_act", "hidden_acu")),
        "header 'config'.*unknown key.*hidden_acu.*missing key.*hidden_act",
    ),
    "config_key_missing": (
        lambda g: mutate_header(g, lambda h: h["config"].pop("layer_norm_eps")),
        r"header 'config'.*missing key\(s\) \['layer_norm_eps'\]",
    ),
    "preprocessor_key_renamed": (
        lambda g: mutate_header(g, rename_key(lambda h: h["preprocessor"], "image_mean", "image_meao")),
        "header 'preprocessor'.*unknown key.*image_meao",
    ),
    "preprocessor_key_missing": (
        lambda g: mutate_header(g, lambda h: h["preprocessor"].pop("resample")),
        "header 'preprocessor'.*missing key.*resample",
    ),
    "tensor_key_unknown": (lambda g: mutate_header(g, first_tensor(strides=[4])), r"unknown key\(s\) \['strides'\]"),
    "tensor_crc_missing": (
        lambda g: mutate_header(g, lambda h: next(iter(h["tensors"].values())).pop("crc32")),
        r"missing key\(s\) \['crc32'\]",
    ),
    "tensor_crc_not_hex": (lambda g: mutate_header(g, first_tensor(crc32="0x12345")), "8 lowercase hex digits"),
    "tensor_crc_int": (lambda g: mutate_header(g, first_tensor(crc32=12345)), "8 lowercase hex digits"),
    "checksum_other": (lambda g: mutate_header(g, lambda h: h.update(checksum="sha256")), "expected 'crc32'"),
    "packing_in_float32": (
        lambda g: mutate_header(g, lambda h: h.update(packing={"float32": "x"})),
        "expected null for a float32 file|packing",
    ),
    "format_version_header_1": (lambda g: mutate_header(g, lambda h: h.update(format_version=1)), "!= prefix 3"),
    "newer_format": (lambda g: with_version(g, 4), r"written by a newer vitc \(format 4\): upgrade vitc$"),
    "newer_format_damaged": (
        lambda g: with_version(g, 4, seal=False),
        r"written by a newer vitc \(format 4\): upgrade vitc \(or the file is damaged",
    ),
    "format_0": (lambda g: with_version(g, 0), "expected format version 1, 2 or 3, found 0"),
}


# ---------------------------------------------------------------------------------------------------
# Fuzz seeds


def seed_files(good_vitc: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
    """Every case above as a fuzz seed: target name -> {file name: bytes}.

    ``good_vitc`` maps names to valid .vitc files; every VITC_CASES mutation is applied to each that
    it fits (a mutation that does not apply to a file is skipped). Multi-megabyte bombs are left out:
    libFuzzer truncates seeds to its -max_len, which would make them ordinary files.
    """
    seeds: dict[str, dict[str, bytes]] = {"safetensors": {}, "torch_bin": {}, "sharded": {}, "vitc": {}}
    for i, (header, _) in enumerate(SAFETENSORS_HEADERS):
        seeds["safetensors"][f"hostile-{i:02d}.safetensors"] = st_bytes(header, bytes(8))
    for name, (payload, _) in HOSTILE_PICKLES.items():
        seeds["torch_bin"][f"hostile-{name}.bin"] = fake_bin_bytes(payload)
    for i, (make, _) in enumerate(CORRUPT_ZIPS):
        seeds["torch_bin"][f"corrupt-zip-{i:02d}.bin"] = make()
    seeds["torch_bin"]["legacy-good.bin"] = good_legacy()
    for name, (data, _) in HOSTILE_LEGACY.items():
        seeds["torch_bin"][f"hostile-legacy-{name}.bin"] = data
    for i, (index, _, _) in enumerate(HOSTILE_INDEXES):
        seeds["sharded"][f"hostile-{i:02d}.seed"] = index + SHARD_SEPARATOR + SHARD_BYTES
    for good_name, good in good_vitc.items():
        for name, (make, _) in VITC_CASES.items():
            try:
                data = make(good)
            except (KeyError, StopIteration, ValueError, TypeError, AttributeError):
                continue
            seeds["vitc"][f"hostile-{name}-{good_name}"] = data
    return seeds
