"""Hostile and corrupt checkpoint files: every reader fails with a clear ValueError, fast, in bounded memory.

The contract (also what tools/fuzz/ checks): for any file contents, read_safetensors, read_torch_bin,
load_state_dict, load_converted and read_metadata return or raise ValueError; FileNotFoundError /
IsADirectoryError only for paths that name nothing usable. Never RecursionError, MemoryError,
TypeError, a crash, a hang or code execution; ViT.from_pretrained gives the same ValueError.
tests/test_checkpoint.py and tests/test_convert.py hold the basic cases; this file adds the rest.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from factories import PREPROCESSOR, make_model, save_bin
from hostile_cases import (
    CORRUPT_ZIPS,
    HOSTILE_INDEXES,
    HOSTILE_LEGACY,
    HOSTILE_PICKLES,
    NEST,
    PICKLE_BOMBS,
    PROTO2,
    SAFETENSORS_HEADERS,
    SHARD_BYTES,
    SHARD_SEPARATOR,
    STORAGE_BYTES,
    VITC_CASES,
    crc_mismatch,
    fake_bin_bytes,
    good_legacy,
    good_members,
    legacy_bytes,
    op_global,
    op_int,
    op_legacy_storage,
    op_legacy_tensor,
    op_state_dict,
    op_storage,
    op_str,
    op_tensor,
    op_tuple,
    reseal,
    st_bytes,
    vitc_layout,
    with_header,
    zip_bytes,
)

import vitc
from vitc.io import checkpoint
from vitc.io.checkpoint import load_state_dict, read_safetensors, read_torch_bin
from vitc.io.vitc_file import ChecksumError, load_converted, read_metadata

# A hostile tiny file must be refused with little work: CPU seconds of the reading process (not wall
# time, which a loaded shared CI machine stretches), generous for a slow 2-core machine.
MAX_SECONDS = 5.0
# Peak resident memory a few-kB hostile file may add to the reading process (measured: < 10 MB; the
# bombs took 60-370 MB before the unpickler's caps and the inflate budget).
MAX_BOMB_PEAK_MB = 32


def refused(fn, path, match: str | None = None) -> ValueError:
    """Call fn(path), expect a ValueError naming the file (matching ``match``) within MAX_SECONDS."""
    t0 = time.process_time()
    with pytest.raises(ValueError, match=match) as info:
        fn(path)
    assert time.process_time() - t0 < MAX_SECONDS
    assert Path(path).name in str(info.value)
    assert len(str(info.value)) < 3000  # hostile values are not echoed in full
    return info.value


# ---------------------------------------------------------------------------------------------------
# safetensors


def write_st(path: Path, header: bytes | dict, data: bytes = b"") -> Path:
    path.write_bytes(st_bytes(header, data))
    return path


def st_entry(**kw) -> dict:
    return {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], **kw}}


@pytest.mark.parametrize("header, match", SAFETENSORS_HEADERS)
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
    p.write_bytes(struct.pack("<Q", checkpoint.MAX_HEADER_BYTES + 1) + b" " * (checkpoint.MAX_HEADER_BYTES + 1))
    refused(read_safetensors, p, f"header length .* expected at most {checkpoint.MAX_HEADER_BYTES} bytes")


def test_safetensors_tensor_count_capped(tmp_path, monkeypatch):
    """200k empty tensors took 8 s to validate. A table of MAX_TENSORS real-looking entries fits the
    header-size and bracket caps, so the count is what refuses one more."""
    n = checkpoint.MAX_TENSORS + 1
    entry = {"dtype": "F32", "shape": [1024, 1024], "data_offsets": [0, 4 << 20]}
    header = json.dumps({f"encoder.layer.{i}.attention.attention.query.weight": entry for i in range(n)}).encode()
    assert (
        len(header) <= checkpoint.MAX_HEADER_BYTES
        and header.count(b"[") + header.count(b"{") <= checkpoint.MAX_JSON_CONTAINERS
    )
    refused(read_safetensors, write_st(tmp_path / "over.safetensors", header), f"lists {n} tensors: expected at most")
    # the boundary itself, with a small cap
    monkeypatch.setattr(checkpoint, "MAX_TENSORS", 3)
    empty = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    assert len(read_safetensors(write_st(tmp_path / "3.safetensors", {f"t{i}": empty for i in range(3)}))) == 3
    refused(
        read_safetensors, write_st(tmp_path / "4.safetensors", {f"t{i}": empty for i in range(4)}), "lists 4 tensors"
    )


def test_index_tensor_count_capped(sharded):
    weight_map = {f"t{i}": "s.safetensors" for i in range(checkpoint.MAX_TENSORS + 1)}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    refused(load_state_dict, sharded / "model.safetensors.index.json", "weight_map lists .* expected at most")


def test_json_bracket_bomb_refused_before_parsing(tmp_path):
    """A 16 MB header of '[],' would take ~400 MB of lists; the bracket count refuses it unparsed.
    What remains is the file's mapped pages and one copy of the header: ~2x the file (plus ASan's
    overhead under tools/sanitize.sh), measured 32-33 MB."""
    n = (checkpoint.MAX_HEADER_BYTES - 16) // 3
    header = b'{"x":[' + b"[]," * n + b"[]]}"
    path = write_st(tmp_path / "lists.safetensors", header)
    peak = child_peak("read_safetensors", path)
    assert "expected at most" in peak.message and peak.seconds < MAX_SECONDS
    size_mb = path.stat().st_size >> 20
    assert peak.mb < 3 * size_mb, f"{size_mb} MB file: +{peak.mb} MB"


# ---------------------------------------------------------------------------------------------------
# PyTorch zip checkpoints: hand-assembled pickles (tests/hostile_cases.py; nothing there is ever
# unpickled by a real pickle.load)


def fake_bin(path: Path, payload: bytes, storage: bytes = STORAGE_BYTES, **extra: bytes) -> Path:
    path.write_bytes(fake_bin_bytes(payload, storage, **extra))
    return path


def test_handmade_pickle_reads(tmp_path):
    """The builders make a valid checkpoint, so the refusals below are about the one change."""
    sd = read_torch_bin(
        fake_bin(tmp_path / "ok.bin", op_state_dict(a=op_tensor(), b=op_tensor(size=(2, 3), stride=(1, 2))))
    )
    np.testing.assert_array_equal(sd["a"], np.arange(6))
    np.testing.assert_array_equal(sd["b"], np.arange(6).reshape(3, 2).T)
    assert sd["b"].flags.c_contiguous


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
    refused(read_torch_bin, path, "copies .* would need .* bytes: expected at most")


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


class Peak(NamedTuple):
    message: str  # the ValueError's text, or "loaded"
    seconds: float
    mb: int  # peak resident memory added by the read


CHILD = """
import re, sys, time
from vitc.io import checkpoint

def kb(field):
    return int(re.search(field + r":\\s*(\\d+) kB", open("/proc/self/status").read()).group(1))

before = kb("VmRSS")
t0 = time.process_time()
try:
    getattr(checkpoint, sys.argv[1])(sys.argv[2])
    message = "loaded"
except ValueError as exc:
    message = str(exc)
print(time.process_time() - t0, (kb("VmHWM") - before) // 1024, message.replace(chr(10), " "))
"""


def child_peak(reader: str, path: Path) -> Peak:
    """Run checkpoint.<reader>(path) in a fresh process: its peak RSS is this read alone. VmHWM belongs
    to the new process image (ru_maxrss survives exec on Linux and would report pytest's own peak);
    VmRSS before the read excludes the imports, so the difference over-estimates, never hides."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, reader, str(path)], capture_output=True, text=True, check=True
    ).stdout
    seconds, mb, message = out.strip().split(" ", 2)
    return Peak(message, float(seconds), int(mb))


@pytest.mark.parametrize("name", sorted(PICKLE_BOMBS))
def test_pickle_bomb_stays_small(tmp_path, name):
    """A few kB of deflated data.pkl made of one-byte opcodes (']' EMPTY_LIST, '(' MARK, MEMOIZE) or a
    deflated storage of zeros: took 60-410 MB and up to 5 s before the caps; now a quick ValueError."""
    make, match = PICKLE_BOMBS[name]
    path = tmp_path / f"{name}.bin"
    path.write_bytes(make())
    peak = child_peak("read_torch_bin", path)
    assert re.search(match, peak.message), peak.message
    assert path.name in peak.message and peak.seconds < MAX_SECONDS
    assert peak.mb < MAX_BOMB_PEAK_MB, f"{path.stat().st_size}-byte file: +{peak.mb} MB"


def test_memo_size_capped(tmp_path, monkeypatch):
    """The memo cap (above any real pickle's ~10 entries per tensor) with a lowered limit: the op budget
    otherwise hits first for a small file."""
    monkeypatch.setattr(checkpoint, "MAX_PICKLE_MEMO", 100)
    refused(read_torch_bin, fake_bin(tmp_path / "memo.bin", b"\x80\x04N" + b"\x94" * 200 + b"0}."), "101 memo entries")


def test_deflated_members_within_budget_load(tmp_path):
    """zip allows deflated members and other writers use them: they load while they fit the budget."""
    path = tmp_path / "deflated.bin"
    path.write_bytes(zip_bytes(good_members(), zipfile.ZIP_DEFLATED))
    np.testing.assert_array_equal(read_torch_bin(path)["a"], np.arange(6))


def test_inflated_and_copied_bytes_share_one_budget(tmp_path, monkeypatch):
    """Inflating a storage and widening it from F16 both spend the same budget: each alone fits."""
    n = 1 << 18
    payload = op_state_dict(a=op_tensor(op_storage(stype="HalfStorage", numel=n), size=(n,)))
    path = tmp_path / "half.bin"
    path.write_bytes(
        zip_bytes({**good_members(), "archive/data.pkl": payload, "archive/data/0": bytes(2 * n)}, zipfile.ZIP_DEFLATED)
    )
    size = path.stat().st_size
    # budget = ratio * size + slack; needed: 2n inflated storage bytes, then 4n of float32 copy
    monkeypatch.setattr(checkpoint, "MAX_COPY_RATIO", 0)
    monkeypatch.setattr(checkpoint, "MAX_COPY_SLACK", 6 * n + 1000)  # + data.pkl and byteorder inflated
    assert read_torch_bin(path)["a"].dtype == np.float32
    monkeypatch.setattr(checkpoint, "MAX_COPY_SLACK", 4 * n)
    refused(read_torch_bin, path, "copies .* would need")
    monkeypatch.setattr(checkpoint, "MAX_COPY_SLACK", 2 * n - 1)
    refused(read_torch_bin, path, "inflating deflated member archive/data/0")
    assert size < n  # the zeros compress: without the budget the ratio check alone would pass


@pytest.mark.parametrize("layers, tensors", [(24, None), (None, 10_000)])
def test_real_checkpoints_fit_the_caps(tmp_path, layers, tensors):
    """What torch.save writes stays far inside the op, stack and memo caps: a 24-layer ViT-L-shaped
    state dict (392 tensors, 14k opcodes) and 10k small tensors (320k opcodes, 80k memo entries)."""
    if layers:
        sd = make_model("cls", num_hidden_layers=layers, num_labels=1000).state_dict()
    else:
        sd = {f"layers.{i // 10}.w{i % 10}": torch.full((2, 3), float(i)) for i in range(tensors)}
    torch.save(sd, tmp_path / "m.bin")
    got = read_torch_bin(tmp_path / "m.bin")
    assert list(got) == list(sd)
    for k in list(sd)[:: max(1, len(sd) // 50)]:
        np.testing.assert_array_equal(got[k], sd[k].numpy())


@pytest.mark.parametrize("make, match", CORRUPT_ZIPS)
def test_corrupt_zip(tmp_path, make, match):
    path = tmp_path / "z.bin"
    path.write_bytes(make())
    refused(read_torch_bin, path, match)


# ---------------------------------------------------------------------------------------------------
# PyTorch legacy (non-zip) checkpoints: the same unpickler, five pickles, storages after them


def test_handmade_legacy_reads_as_torch_reads_it(tmp_path):
    """The legacy builders make files torch.load reads the same way, views included (no current torch
    writes a storage view), so the refusals below are about the one change each makes."""
    views = op_state_dict(
        a=op_legacy_tensor(),
        v=op_legacy_tensor(op_legacy_storage(view=("v", 2, 3)), size=(3,)),
        w=op_legacy_tensor(op_legacy_storage(view=("v", 2, 3)), offset=1, size=(2,)),
    )
    for data in (good_legacy(), legacy_bytes(views)):
        path = tmp_path / "l.bin"
        path.write_bytes(data)
        ours = read_torch_bin(path)
        ref = torch.load(path, weights_only=False)  # our own file: nothing hostile in it
        assert list(ours) == list(ref)
        for k in ref:
            np.testing.assert_array_equal(ours[k], ref[k].numpy())
    np.testing.assert_array_equal(ours["v"], [2, 3, 4])
    np.testing.assert_array_equal(ours["w"], [3, 4])


@pytest.mark.parametrize("name", sorted(HOSTILE_LEGACY))
def test_hostile_legacy(tmp_path, monkeypatch, name):
    data, match = HOSTILE_LEGACY[name]
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    refused(read_torch_bin, path, match)
    refused(load_state_dict, path, match)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # nothing ran ("executed" absent)


def torch_legacy_bytes(tmp_path: Path) -> bytes:
    """A small torch-written legacy file: float32, float16, bfloat16 and int64 tensors, a view."""
    base = torch.arange(12, dtype=torch.float32)
    sd = {"w": base.view(3, 4), "t": base.view(3, 4).t(), "h": torch.ones(5).half(), "b": torch.ones(2).bfloat16()}
    sd["n"] = torch.arange(3)
    torch.save(sd, tmp_path / "t.bin", _use_new_zipfile_serialization=False)
    return (tmp_path / "t.bin").read_bytes()


def test_legacy_truncated_anywhere(tmp_path):
    """Every prefix of a hand-made and of a torch-written file: a ValueError saying it is truncated."""
    path = tmp_path / "cut.bin"
    for whole in (good_legacy(), torch_legacy_bytes(tmp_path)):
        for n in range(1, len(whole)):
            path.write_bytes(whole[:n])
            with pytest.raises(ValueError, match="truncated") as info:
                read_torch_bin(path)
            assert "cut.bin" in str(info.value), n


def test_legacy_byte_flips_are_refused_or_harmless(tmp_path):
    """Flip each byte of a torch-written file: a ValueError or a state dict, never another exception."""
    good = torch_legacy_bytes(tmp_path)
    path = tmp_path / "flip.bin"
    outcomes = {"refused": 0, "loaded": 0}
    for pos in range(len(good)):
        for xor in (0x01, 0x80):
            raw = bytearray(good)
            raw[pos] ^= xor
            path.write_bytes(bytes(raw))
            try:
                read_torch_bin(path)
                outcomes["loaded"] += 1
            except ValueError as exc:
                assert len(str(exc)) < 3000
                outcomes["refused"] += 1
    assert outcomes["refused"] > len(good) // 2 and outcomes["loaded"] > 0


def test_legacy_pickles_must_end_within_the_cap(tmp_path, monkeypatch):
    """The pickles come before GBs of storages: they are read from the first MAX_PICKLE_BYTES only."""
    monkeypatch.setattr(checkpoint, "MAX_PICKLE_BYTES", 1000)
    path = tmp_path / "long.bin"
    path.write_bytes(legacy_bytes(op_state_dict(a=op_legacy_tensor(), pad=op_str("x" * 2000))))
    refused(read_torch_bin, path, "state dict pickle does not end within the first 1000 bytes")
    # under the cap the pickles are read (and this one then refused for its string value)
    path.write_bytes(legacy_bytes(op_state_dict(a=op_legacy_tensor(), pad=op_str("x" * 500))))
    refused(read_torch_bin, path, "found 'pad' -> str")


def test_legacy_tar_format_refused(tmp_path):
    import tarfile

    with tarfile.open(tmp_path / "old.tar", "w") as tar:
        tar.add(__file__, arcname="storages")
    refused(read_torch_bin, tmp_path / "old.tar", "tar format of torch.save")


@pytest.mark.parametrize("name, match", [("stack_bomb", "on its stack"), ("bytearray8_huge", "BYTEARRAY8 claims")])
def test_legacy_bombs_stay_small(tmp_path, name, match):
    path = tmp_path / f"{name}.bin"
    path.write_bytes(HOSTILE_LEGACY[name][0])
    peak = child_peak("read_torch_bin", path)
    assert re.search(match, peak.message), peak.message
    assert peak.mb < MAX_BOMB_PEAK_MB, f"{path.stat().st_size}-byte file: +{peak.mb} MB"


def test_bytearray8_length_checked_in_zip_files_too(tmp_path):
    """13 bytes claiming 2**31 made the pure-Python unpickler allocate and zero 2 GB."""
    path = fake_bin(tmp_path / "ba8.bin", b"\x80\x05\x96" + struct.pack("<Q", 2**31) + b".")
    peak = child_peak("read_torch_bin", path)
    assert "BYTEARRAY8 claims 2147483648 bytes" in peak.message, peak.message
    assert peak.mb < MAX_BOMB_PEAK_MB


# ---------------------------------------------------------------------------------------------------
# Sharded indexes


@pytest.fixture()
def sharded(tmp_path) -> Path:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "s.safetensors").write_bytes(SHARD_BYTES)
    return folder


@pytest.mark.parametrize("index, err, match", HOSTILE_INDEXES)
def test_hostile_index(sharded, index, err, match):
    (sharded / "model.safetensors.index.json").write_bytes(index)
    t0 = time.process_time()
    with pytest.raises(err, match=match):
        load_state_dict(sharded)
    assert time.process_time() - t0 < MAX_SECONDS


def test_shard_symlink_outside_folder_refused(sharded, tmp_path):
    (sharded / "link.safetensors").symlink_to(sharded / "s.safetensors")
    (tmp_path / "outside.safetensors").write_bytes((sharded / "s.safetensors").read_bytes())
    (sharded / "escape.safetensors").symlink_to(tmp_path / "outside.safetensors")
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "escape.safetensors"}}))
    with pytest.raises(ValueError, match="must be a file name inside"):
        load_state_dict(sharded)


FUZZ_DATA = Path(__file__).parent / "data" / "fuzz"


def load_sharded_input(data: bytes, folder: Path) -> dict:
    """The fuzz 'sharded' target's input: index JSON, SHARD_SEPARATOR, the bytes of the one shard."""
    index, _, shard = data.partition(SHARD_SEPARATOR)
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_bytes(index)
    (folder / "s.safetensors").write_bytes(shard)
    (folder / "s.bin").write_bytes(shard)
    return load_state_dict(folder)


def load_vitc_input(path: Path) -> None:
    read_metadata(path)
    load_converted(path)
    vitc.ViT.from_pretrained(path)


# file-name prefix in tests/data/fuzz (the fuzz target that found it) -> how that target reads it
FUZZ_READERS = {
    "safetensors": lambda path, tmp: read_safetensors(path),
    "torch_bin": lambda path, tmp: (read_torch_bin(path), load_state_dict(path)),
    "sharded": lambda path, tmp: load_sharded_input(path.read_bytes(), tmp / "sharded"),
    "vitc": lambda path, tmp: load_vitc_input(path),
}


@pytest.mark.parametrize("path", sorted(FUZZ_DATA.iterdir()), ids=lambda p: p.name)
def test_fuzz_regressions(tmp_path, path):
    """Inputs found by tools/fuzz/, named <target>-<what it did>: they load or raise ValueError, fast
    (FileNotFoundError too for a sharded index naming a shard that is not there)."""
    target = path.name.split("-", 1)[0]
    assert target in FUZZ_READERS, f"{path.name}: expected a prefix in {sorted(FUZZ_READERS)}"
    t0 = time.process_time()
    try:
        FUZZ_READERS[target](path, tmp_path)
    except ValueError as exc:
        assert len(str(exc)) < 3000
    except (FileNotFoundError, NotImplementedError):
        assert target in ("sharded", "vitc")
    assert time.process_time() - t0 < MAX_SECONDS


def test_huge_memo_index_stays_small(tmp_path):
    """LONG_BINPUT 778593140 made the C unpickler allocate a 12 GB memo array (fuzz finding); run in a
    fresh process so its peak RSS is this read alone. The peak is VmHWM, which belongs to the new
    process image; ru_maxrss survives exec on Linux and would report pytest's own peak."""
    path = FUZZ_DATA / "torch_bin-long-binput-huge-memo.bin"
    peak = child_peak("read_torch_bin", path)
    assert peak.message != "loaded"
    assert peak.mb < MAX_BOMB_PEAK_MB, f"{path.stat().st_size}-byte file: +{peak.mb} MB"


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


def test_every_header_byte_flip_is_refused(tmp_path, good_vitc):
    """Flip bits in every byte of the prefix and the header: each is a ValueError naming the file
    (the header checksum; format 1 loaded most of them, some with another activation, epsilon or
    preprocessing)."""
    _, start, n = vitc_layout(good_vitc)
    path = tmp_path / "flip.vitc"
    for pos in range(start + n):
        for xor in (0x01, 0x80):
            raw = bytearray(good_vitc)
            raw[pos] ^= xor
            path.write_bytes(bytes(raw))
            with pytest.raises(ValueError, match="flip.vitc"):
                read_metadata(path)
            if pos % 13 == 0:
                with pytest.raises(ValueError, match="flip.vitc"):
                    load_converted(path)


def test_resealed_header_byte_flips_are_refused_or_harmless(tmp_path, good_vitc):
    """The same flips with the checksum recomputed (a forged or tool-edited header): a clean
    ValueError or a valid model, never another exception."""
    _, start, n = vitc_layout(good_vitc)
    path = tmp_path / "flip.vitc"
    outcomes = {"refused": 0, "loaded": 0}
    for pos in range(start, start + n, 7):
        for xor in (0x01, 0x80):
            raw = bytearray(good_vitc)
            raw[pos] ^= xor
            path.write_bytes(reseal(bytes(raw)))
            try:
                load_converted(path)
                outcomes["loaded"] += 1
            except ValueError:
                outcomes["refused"] += 1
    assert outcomes["refused"] > n // 7  # the checks themselves are exercised


def test_data_byte_flips_found_by_verify(tmp_path, good_vitc):
    """A flipped bit inside any tensor loads (the data is not read at load), and verify=True names
    that tensor; padding between tensors is not covered (it is never read)."""
    _, start, n = vitc_layout(good_vitc)
    table = json.loads(good_vitc[start : start + n])["tensors"]
    path = tmp_path / "flip.vitc"
    checked = 0
    for name, t in table.items():
        for pos in range(t["offset"], t["offset"] + t["nbytes"], max(1, t["nbytes"] // 3)):
            raw = bytearray(good_vitc)
            raw[pos] ^= 0x10
            path.write_bytes(bytes(raw))
            load_converted(path)
            with pytest.raises(ChecksumError, match=rf"flip.vitc: damaged: 1 of {len(table)} tensors .*{name}") as info:
                load_converted(path, verify=True)
            assert info.value.tensors == [name]
            checked += 1
    assert checked >= len(table)
    path.write_bytes(good_vitc)
    load_converted(path, verify=True)


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
    t0 = time.process_time()
    with pytest.raises(ValueError, match=match):
        vitc.ViT.from_pretrained(folder)
    assert time.process_time() - t0 < MAX_SECONDS


def test_from_pretrained_bin_folder_still_loads(tmp_path):
    """The hardened unpickler still reads what torch.save writes (tensor views, _metadata BUILD)."""
    model = make_model("cls")
    save_bin(model, tmp_path / "m")
    vit = vitc.ViT.from_pretrained(tmp_path / "m")
    x = np.random.default_rng(0).standard_normal((1, 3, 30, 30)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).logits.numpy()
    np.testing.assert_allclose(vit(x).logits, ref, atol=1e-4)
