"""Files vitc reads and writes (issue 15): outputs never replace inputs, .vitc format 2 (checksums, exact
keys, format 1 still read), the memory-mapping contract and mmap=False, odd inputs (lone surrogates,
deep JSON, FIFOs, devices, /proc files, folders, unreadable files) refused with clear errors."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from factories import PREPROCESSOR, hf_forward, hf_state_dict, make_checkpoint, make_model, save_bin
from fake_hub import folder_files, write_cache
from hostile_cases import vitc_layout
from safetensors.torch import save_file
from transformers import ViTForImageClassification

import vitc
from vitc.cli import main
from vitc.config import ViTConfig
from vitc.convert import convert
from vitc.files import MAX_JSON_DEPTH, UnreadableFileError, load_json, mapped_file
from vitc.io import load_any, load_converted, load_state_dict, read_metadata, read_safetensors, read_torch_bin
from vitc.io.vitc_file import ChecksumError, NoChecksumsWarning, is_converted_file

DATA = Path(__file__).parent / "data"
FORMAT1 = {"float32": DATA / "format1-cls-float32.vitc", "int8": DATA / "format1-cls-int8.vitc"}
# A call that would block (a FIFO opened for reading) or read forever (/dev/zero) is a failure; any
# answer comes in well under a second, so this only bounds how long a regression takes to report.
HANG_SECONDS = 60
LOGITS_ATOL = 1e-4  # vitc vs transformers, float32 (the tiny test config)


def pixels(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 30, 30)).astype(np.float32)


def hf_folder(path: Path, seed: int = 0, fmt: str = "safetensors", preprocessor: bool = True) -> Path:
    make_checkpoint(path, fmt=fmt, seed=seed)
    if preprocessor:
        (path / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    return path


def snapshot_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------------------------------
# 1. convert never destroys its input


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("src")
    both = hf_folder(root / "both")
    save_bin(make_model("cls"), root / "tmpbin")
    shutil.copy(root / "tmpbin" / "pytorch_model.bin", both / "pytorch_model.bin")  # not read: safetensors wins
    sharded = hf_folder(root / "sharded", fmt="sharded")
    return {"safetensors": hf_folder(root / "st"), "bin": hf_folder(root / "bin", fmt="bin"), "sharded": sharded,
            "both": both}  # fmt: skip


def shard_names(folder: Path) -> list[str]:
    return sorted(set(json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"].values()))


DESTINATIONS = {
    # name: (source kind, function of (source folder, scratch folder) -> (src argument, dst argument))
    "weights_file": ("safetensors", lambda s, t: (s, s / "model.safetensors")),
    "weights_file_as_src": ("safetensors", lambda s, t: (s / "model.safetensors", s / "model.safetensors")),
    "bin_file": ("bin", lambda s, t: (s, s / "pytorch_model.bin")),
    "unread_bin_beside_safetensors": ("both", lambda s, t: (s, s / "pytorch_model.bin")),
    "config": ("safetensors", lambda s, t: (s, s / "config.json")),
    "preprocessor_config": ("safetensors", lambda s, t: (s, s / "preprocessor_config.json")),
    "index": ("sharded", lambda s, t: (s, s / "model.safetensors.index.json")),
    "first_shard": ("sharded", lambda s, t: (s, s / shard_names(s)[0])),
    "last_shard": ("sharded", lambda s, t: (s, s / shard_names(s)[-1])),
    "relative_spelling": ("safetensors", lambda s, t: (s, Path(os.path.relpath(s, t), "..", s.name, "config.json"))),
    "dot_dot": ("safetensors", lambda s, t: (s, s / "sub" / ".." / "config.json")),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(DESTINATIONS))
def test_convert_refuses_its_own_input(tmp_path, sources, monkeypatch, name):
    kind, make = DESTINATIONS[name]
    src = shutil.copytree(sources[kind], tmp_path / "src")
    (src / "sub").mkdir()
    before = snapshot_bytes(src)
    monkeypatch.chdir(tmp_path)
    src_arg, dst = make(src, tmp_path)
    with pytest.raises(ValueError, match=r"convert: the output .* is the .* \(the same file\): expected a destination"):
        convert(src_arg, dst, progress=False)
    assert snapshot_bytes(src) == before
    assert not [p for p in src.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
@pytest.mark.parametrize("target", ["model.safetensors", "config.json"])
def test_convert_refuses_links_to_its_input(tmp_path, sources, link, target):
    src = shutil.copytree(sources["safetensors"], tmp_path / "src")
    before = snapshot_bytes(src)
    dst = tmp_path / "elsewhere" / "out.vitc"
    dst.parent.mkdir()
    (dst.symlink_to if link == "symlink" else dst.hardlink_to)(src / target)
    with pytest.raises(ValueError, match="is the (weights file|config.json) .* expected a destination"):
        convert(src, dst, progress=False)
    assert snapshot_bytes(src) == before and os.path.lexists(dst)


def test_convert_into_the_source_folder_writes_beside_the_input(tmp_path, sources):
    """A folder as dst means dst/model.vitc: allowed in the source folder, which keeps its files."""
    src = shutil.copytree(sources["safetensors"], tmp_path / "src")
    before = snapshot_bytes(src)
    out = convert(src, src, progress=False)
    assert out == src / "model.vitc"
    after = snapshot_bytes(src)
    assert after.pop("model.vitc") and after == before
    # The checkpoint folder still loads as the checkpoint (safetensors is what it reads).
    np.testing.assert_array_equal(vitc.ViT.from_pretrained(out)(pixels()).logits,
                                  vitc.ViT.from_pretrained(src / "model.safetensors")(pixels()).logits)  # fmt: skip
    (src / "model.vitc").unlink()
    (src / "model.vitc").mkdir()  # a folder where the file would go
    with pytest.raises(IsADirectoryError, match="model.vitc is a folder"):
        convert(src, src, progress=False)


def test_convert_refuses_hub_cache_files(tmp_path, sources, monkeypatch):
    """A hub ID resolves to a cache snapshot whose files are symlinks to blobs: neither the snapshot's
    entries nor the blobs may be the destination."""
    cache = tmp_path / "cache"
    files = folder_files(sources["safetensors"])
    repo = write_cache(cache, "org/vit", {"a" * 40: files}, {"main": "a" * 40})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = repo / "snapshots" / ("a" * 40)
    blobs = sorted((repo / "blobs").iterdir())
    before = {p.name: p.read_bytes() for p in blobs}
    for dst in [snapshot / "model.safetensors", snapshot / "config.json", *blobs]:
        with pytest.raises(ValueError, match="expected a destination that is none of the input files"):
            convert("org/vit", dst, progress=False)
        rc = main(["convert", "org/vit", str(dst)])
        assert rc == 1
    assert {p.name: p.read_bytes() for p in blobs} == before
    assert all((snapshot / n).is_symlink() for n in files)
    out = convert("org/vit", tmp_path / "ok.vitc", progress=False)
    load_converted(out, verify=True)


def test_explain_never_overwrites_an_input_image(tmp_path, capsys):
    """vitc predict --explain DIR: a PNG named like an input image in DIR is refused, before anything
    is written."""
    sample = vitc.sample_images()[0]
    a = tmp_path / "a.png"
    shutil.copy(sample, a)
    shutil.copy(sample, tmp_path / "a_attention.png")  # what a.png's explanation would be called
    before = (tmp_path / "a_attention.png").read_bytes()
    rc = main(["predict", "--explain", str(tmp_path), str(a), str(tmp_path / "a_attention.png")])
    err = capsys.readouterr().err
    assert rc == 1 and "is the input image" in err and "a_attention.png" in err
    assert (tmp_path / "a_attention.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_attention.png"]
    assert main(["predict", "--explain", str(tmp_path / "maps"), str(a)]) == 0  # elsewhere: fine


def test_eval_output_never_replaces_the_dataset_or_model(tmp_path, capsys):
    model = tmp_path / "m.vitc"
    shutil.copy(vitc.default_model.DEFAULT_MODEL_PATH, model)
    samples = vitc.sample_images()[:2]
    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{p}\t{p.name[6]}\n" for p in samples))
    saved = {p: p.read_bytes() for p in (model, listing)}
    for output in (listing, model):
        rc = main(["eval", "--model", str(model), str(listing), "--output", str(output)])
        err = capsys.readouterr().err
        assert rc == 1 and "eval: --output" in err and "expected a destination" in err, err
    assert {p: p.read_bytes() for p in saved} == saved
    out = tmp_path / "preds.jsonl"
    assert main(["eval", "--model", str(model), str(listing), "--output", str(out)]) == 0
    capsys.readouterr()
    kept = out.read_bytes()
    rc = main(["eval", "--merge", str(out), "--output", str(out)])
    assert rc == 1 and "file being merged" in capsys.readouterr().err and out.read_bytes() == kept


# ---------------------------------------------------------------------------------------------------
# 2. .vitc format 2: checksums, exact keys, format 1 still read


@pytest.fixture(scope="module")
def files(tmp_path_factory, sources) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vitc")
    return {dt: convert(sources["safetensors"], d / f"{dt}.vitc", dtype=dt, progress=False)
            for dt in ("float32", "bfloat16", "int8")}  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_convert_is_deterministic(tmp_path, sources, files, dtype):
    again = convert(sources["safetensors"], tmp_path / "again.vitc", dtype=dtype, progress=False)
    assert again.read_bytes() == files[dtype].read_bytes()
    one, two = (convert(sources["sharded"], tmp_path / f"s{i}.vitc", dtype=dtype, progress=False) for i in (1, 2))
    assert one.read_bytes() == two.read_bytes()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_verify_passes_on_good_files(files, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NoChecksumsWarning: format 2 is checked
        for mmap in (True, False):
            m = vitc.ViT.from_pretrained(files[dtype], verify=True, mmap=mmap)
            assert m.dtype == dtype
            load_any(files[dtype], verify=True, mmap=mmap)


def flip(path: Path, offset: int, out: Path) -> Path:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x04
    out.write_bytes(bytes(raw))
    return out


def tensor_table(path: Path) -> dict:
    raw = path.read_bytes()
    _, start, n = vitc_layout(raw)
    return json.loads(raw[start : start + n])["tensors"]


def test_verify_names_the_damaged_tensor(tmp_path, files, capsys):
    table = tensor_table(files["int8"])
    name = "blocks.1.mlp.fc1.weight.scales"
    bad = flip(files["int8"], table[name]["offset"] + 3, tmp_path / "bad.vitc")
    vitc.ViT.from_pretrained(bad)  # without verify the data is not read: loads
    for load in (
        lambda: vitc.ViT.from_pretrained(bad, verify=True),
        lambda: vitc.ViT.from_pretrained(bad, verify=True, mmap=False),
        lambda: load_converted(bad, verify=True),
        lambda: load_any(bad, verify=True),
    ):
        want = rf"bad.vitc: damaged: 1 of {len(table)} tensors .*{name} \(crc32 expected"
        with pytest.raises(ChecksumError, match=want):
            load()
    rc = main(["info", str(bad), "--verify"])
    out, err = capsys.readouterr()
    assert rc == 1 and name in err and "damaged" in err and err.count("\n") == 1
    rc = main(["info", str(files["int8"]), "--verify"])
    out, err = capsys.readouterr()
    assert rc == 0 and "checksums OK" in out
    rc = main(["info", str(files["int8"]), "--verify", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0 and json.loads(out)["checksums"] == "ok"


def test_header_damage_is_found_on_every_load(tmp_path, files):
    """One flipped bit in the activation's name: format 1 loaded it as another model; now every load
    refuses it, with or without verify."""
    raw = files["float32"].read_bytes()
    pos = raw.index(b'"hidden_act":"gelu"') + len('"hidden_act":"gel')
    bad = flip(files["float32"], pos, tmp_path / "bad.vitc")  # "gelu" -> "gelq"
    for load in (vitc.ViT.from_pretrained, read_metadata, load_converted, vitc.ImageProcessor.from_pretrained):
        with pytest.raises(ValueError, match="bad.vitc: header checksum mismatch"):
            load(bad)


def test_format1_files_still_load(tmp_path, capsys):
    """The files of tests/data were written by vitc's format-1 writer. They load as before (same
    tensors as the same checkpoint converted now), and verify says they cannot be checked."""
    assert read_metadata(FORMAT1["float32"])["format_version"] == 1
    cfg, pre, old = load_converted(FORMAT1["float32"])
    # The checkpoint they came from, rebuilt from the file, converted by this vitc (format 2).
    src = tmp_path / "hf"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({**cfg.to_dict(), "architectures": ["ViTForImageClassification"]}))
    save_file(hf_state_dict(cfg, old), str(src / "model.safetensors"), metadata={"format": "pt"})
    (src / "preprocessor_config.json").write_text(json.dumps(pre))
    assert pre == PREPROCESSOR  # format 1 stored the checkpoint's dict as it was
    for dtype in ("float32", "int8"):
        new = load_converted(convert(src, tmp_path / f"{dtype}.vitc", dtype=dtype, progress=False), verify=True)[2]
        stored = load_converted(FORMAT1[dtype])[2]
        assert list(stored) == list(new)
        for k in new:
            np.testing.assert_array_equal(stored[k], new[k], err_msg=k)
        with pytest.warns(NoChecksumsWarning, match="format 1 has no checksums; reconvert to check"):
            m = vitc.ViT.from_pretrained(FORMAT1[dtype], verify=True)
        ref = vitc.ViT.from_pretrained(tmp_path / f"{dtype}.vitc")
        np.testing.assert_array_equal(m(pixels()).logits, ref(pixels()).logits)
        vitc.ViT.from_pretrained(FORMAT1[dtype], mmap=False)
    rc = main(["info", str(FORMAT1["float32"]), "--verify"])
    out, err = capsys.readouterr()
    assert rc == 0 and "format 1 has no checksums; reconvert to check" in out


def test_format1_unknown_keys_refused(tmp_path):
    """Format 1 has no checksum, but its keys are known: a flipped byte in one is refused."""
    raw = FORMAT1["float32"].read_bytes()
    for key in (b'"hidden_act"', b'"preprocessor"', b'"nbytes"'):
        pos = raw.index(key) + 2
        bad = flip(FORMAT1["float32"], pos, tmp_path / "bad.vitc")
        with pytest.raises(ValueError, match="bad.vitc: header.*unknown key"):
            load_converted(bad)


def test_hf_checkpoints_have_nothing_to_verify(sources, capsys):
    with pytest.warns(NoChecksumsWarning, match="a Hugging Face checkpoint carries no checksums"):
        vitc.ViT.from_pretrained(sources["safetensors"], verify=True)
    rc = main(["info", str(sources["safetensors"]), "--verify", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0 and json.loads(out)["checksums"] == "none" and "no checksums" in err


def test_lone_surrogate_label_round_trips(tmp_path, capsys):
    """A label with a lone surrogate (valid JSON: "\\udc80") is kept by transformers; vitc converts
    it and reads back the same label (the .vitc header is ASCII JSON with escapes)."""
    src = tmp_path / "hf"
    model = make_checkpoint(src)
    config = json.loads((src / "config.json").read_text())
    config["id2label"]["3"] = "cat \udc80 \ud83d"  # lone low and high surrogates
    config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
    (src / "config.json").write_text(json.dumps(config))  # ensure_ascii: escaped, as transformers writes
    theirs = ViTForImageClassification.from_pretrained(src)
    assert theirs.config.id2label[3] == "cat \udc80 \ud83d"
    out = convert(src, tmp_path / "m.vitc", progress=False)
    m = vitc.ViT.from_pretrained(out, verify=True)
    assert m.id2label == theirs.config.id2label == vitc.ViT.from_pretrained(src).id2label
    assert read_metadata(out)["config"]["id2label"]["3"] == "cat \udc80 \ud83d"
    ref = hf_forward(model, pixels()).logits.numpy()
    np.testing.assert_allclose(m(pixels()).logits, ref, atol=LOGITS_ATOL)
    rc = main(["info", str(out)])
    assert rc == 0 and "cat \\udc80 \\ud83d" in capsys.readouterr().out  # printable, not a crash
    rc = main(["info", str(out), "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["labels"][3] == "cat \udc80 \ud83d"


def test_header_larger_than_readers_accept_is_not_written(tmp_path, sources, monkeypatch):
    """Non-ASCII labels grow when escaped: a header the readers would refuse is never written."""
    import vitc.files
    import vitc.io.vitc_file

    for module in (vitc.files, vitc.io.vitc_file):
        monkeypatch.setattr(module, "MAX_JSON_BYTES", 64 * 1024)
    src = shutil.copytree(sources["safetensors"], tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    config["id2label"] = {str(i): "猫" * 1500 for i in range(10)}  # 45 kB of UTF-8, 90 kB escaped
    config["label2id"] = {}
    (src / "config.json").write_text(json.dumps(config, ensure_ascii=False))
    with pytest.raises(ValueError, match=r"the .vitc header would be \d+ bytes: expected at most 65536"):
        convert(src, tmp_path / "out" / "m.vitc", progress=False)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# ---------------------------------------------------------------------------------------------------
# 3. The memory-mapping contract and mmap=False


def test_convert_over_a_mapped_file_never_touches_it(tmp_path, sources):
    """vitc convert writes a new inode and renames it: a model mapping the old file keeps its weights."""
    dst = convert(sources["safetensors"], tmp_path / "m.vitc", progress=False)
    old_model = vitc.ViT.from_pretrained(dst)
    before = old_model(pixels()).logits.copy()
    old_inode = dst.stat().st_ino
    fd = os.open(dst, os.O_RDONLY)  # the old inode, to check its bytes afterwards
    old_bytes = dst.read_bytes()
    try:
        other = hf_folder(tmp_path / "other", seed=5)
        convert(other, dst, progress=False)
        assert dst.stat().st_ino != old_inode
        assert os.pread(fd, len(old_bytes) + 1, 0) == old_bytes
    finally:
        os.close(fd)
    np.testing.assert_array_equal(old_model(pixels()).logits, before)
    new = vitc.ViT.from_pretrained(dst)(pixels()).logits
    assert not np.array_equal(new, before)
    np.testing.assert_array_equal(new, vitc.ViT.from_pretrained(other)(pixels()).logits)


def test_mmap_false_is_independent_of_the_file(tmp_path, files):
    for dtype, path in files.items():
        copy = Path(shutil.copy(path, tmp_path / f"{dtype}.vitc"))
        mapped = vitc.ViT.from_pretrained(copy)
        private = vitc.ViT.from_pretrained(copy, mmap=False)
        before = mapped(pixels()).logits.copy()
        np.testing.assert_array_equal(private(pixels()).logits, before)
        _, _, tensors = load_converted(copy, mmap=False)
        for k, a in tensors.items():
            assert mapped_file(a) is None and not a.flags.writeable and a.ctypes.data % 64 == 0, k
        # Rewrite the data in place (what the contract forbids for mapped models), then truncate.
        table = tensor_table(copy)
        with open(copy, "r+b") as f:
            for t in table.values():
                f.seek(t["offset"])
                f.write(b"\x7f" * t["nbytes"])
        np.testing.assert_array_equal(private(pixels()).logits, before)
        assert not np.array_equal(mapped(pixels()).logits, before)  # the hazard mmap=False removes
        del mapped
        os.truncate(copy, 100)
        np.testing.assert_array_equal(private(pixels()).logits, before)


def test_mmap_false_for_hf_checkpoints(sources):
    for kind in ("safetensors", "bin", "sharded"):
        _, _, mapped = load_any(sources[kind])
        _, _, private = load_any(sources[kind], mmap=False)
        assert any(mapped_file(a) is not None for a in mapped.values()), kind  # views of the file
        assert all(mapped_file(a) is None for a in private.values()), kind
        for k in mapped:
            np.testing.assert_array_equal(mapped[k], private[k])
        m = vitc.ViT.from_pretrained(sources[kind], mmap=False, dtype="int8")
        assert m(pixels()).logits.shape == (2, 10)


TRUNCATE_CHILD = textwrap.dedent(
    """
    import os, sys, numpy as np, vitc
    path, mmap = sys.argv[1], sys.argv[2] == "mmap"
    m = vitc.ViT.from_pretrained(path, mmap=mmap)
    x = np.zeros((1, 3, 30, 30), np.float32)
    before = m(x).logits.copy()
    os.truncate(path, 64)
    assert np.array_equal(m(x).logits, before)
    print("unchanged", flush=True)
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="SIGBUS on a truncated mapping is Linux's behaviour")
def test_truncating_a_mapped_file_kills_only_the_mapped_model(tmp_path, files):
    """The contract's reason, shown: truncating a mapped file kills the process (SIGBUS) at the next
    forward; with mmap=False the model does not notice."""
    results = {}
    for mode in ("mmap", "private"):
        path = shutil.copy(files["float32"], tmp_path / f"{mode}.vitc")
        proc = subprocess.run([sys.executable, "-c", TRUNCATE_CHILD, str(path), mode], capture_output=True, text=True)
        results[mode] = (proc.returncode, proc.stdout.strip())
    assert results["private"] == (0, "unchanged")
    assert results["mmap"][0] == -signal.SIGBUS


def test_cli_no_mmap(tmp_path, files, capsys):
    assert main(["info", str(files["int8"]), "--no-mmap", "--verify"]) == 0
    assert "checksums OK" in capsys.readouterr().out
    sample = str(vitc.sample_images()[0])
    assert main(["predict", "--model", str(files["float32"]), "--no-mmap", sample, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["image"] == sample  # JSON lines


# ---------------------------------------------------------------------------------------------------
# 4. Odd inputs: deep JSON, special files, unreadable files


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_json_depth_policy():
    assert load_json("x", nested(MAX_JSON_DEPTH).encode())
    assert load_json("x", b'["' + b"[" * 5000 + b'"]') == ["[" * 5000]  # brackets inside strings
    assert load_json("x", b'["\\"[[[[' + b"[" * 100 + b'"]')
    for text in (nested(MAX_JSON_DEPTH + 1), "[" * 100_000, "[" * 70 + "]" * 70, '[{"a":' * 40 + "1" + "}]" * 40):
        with pytest.raises(ValueError, match="x: header JSON is nested too deeply: expected at most 64"):
            load_json("x", text.encode())


def in_deep_stack(fn, depth: int):
    """Run fn with ``depth`` frames already on the stack (as inside a deep caller)."""
    if depth == 0:
        return fn()
    return in_deep_stack(fn, depth - 1)


@pytest.mark.parametrize("where", ["config.json", "preprocessor_config.json", "model.safetensors.index.json"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900, 50_000])
def test_deeply_nested_json_is_refused_before_parsing(tmp_path, sources, where, depth):
    """Refused with a clear message at any depth past the limit, even from deep inside a caller's
    stack (Python's parser would raise RecursionError there at depths far below its own limit)."""
    src = shutil.copytree(sources["sharded" if "index" in where else "safetensors"], tmp_path / "src")
    doc = json.loads((src / where).read_text())
    doc["extra"] = json.loads(nested(min(depth, 500))) if depth <= 500 else None
    text = json.dumps(doc)
    if depth > 500:
        text = text[:-1] + ', "deep": ' + nested(depth) + "}"
    (src / where).write_text(text)
    stack = sys.getrecursionlimit() - 150
    direct = {
        "config.json": lambda: ViTConfig.from_json_file(src),
        "preprocessor_config.json": lambda: vitc.ImageProcessor.from_pretrained(src),
        "model.safetensors.index.json": lambda: load_state_dict(src),
    }
    for load in (
        lambda: vitc.ViT.from_pretrained(src),
        lambda: convert(src, tmp_path / "m.vitc", progress=False),
        direct[where],
    ):
        with pytest.raises(ValueError, match=rf"{where}: (file|index) JSON is nested too deeply"):
            in_deep_stack(load, stack)


def run_bounded(fn, unblock: Path | None = None):
    """fn() in a thread; fails the test if it has not returned after HANG_SECONDS (a FIFO open that
    blocks, a device read forever). ``unblock`` is a FIFO opened for writing to release a stuck reader."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(HANG_SECONDS)
    if t.is_alive():
        if unblock is not None:
            fd = os.open(unblock, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        pytest.fail(f"blocked for {HANG_SECONDS} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


SPECIAL = ["fifo", "dev_zero", "dev_urandom", "dev_null", "directory", "proc_status", "symlink_loop", "socket"]


def make_special(kind: str, path: Path) -> Path:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink_loop":
        path.symlink_to(path.name)
    elif kind == "socket":
        import socket

        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    else:
        path.symlink_to({"dev_zero": "/dev/zero", "dev_urandom": "/dev/urandom", "dev_null": "/dev/null",
                         "proc_status": "/proc/self/status"}[kind])  # fmt: skip
    return path


EXPECTED = {  # kind -> (exception type, message pattern)
    "fifo": (UnreadableFileError, "found a FIFO"),
    "dev_zero": (UnreadableFileError, "found a character device"),
    "dev_urandom": (UnreadableFileError, "found a character device"),
    "dev_null": (UnreadableFileError, "found a character device"),
    "directory": (IsADirectoryError, "found a directory"),
    "symlink_loop": (UnreadableFileError, "found a symlink loop"),
    "socket": (UnreadableFileError, "found a socket"),
    # A /proc file is a regular file that reports 0 bytes: mapped, it is refused as a pseudo-file.
    "proc_status": (UnreadableFileError, "reports 0 bytes but has contents"),
}


def expect_refusal(call, target: Path, kind: str, exc_type=None, pattern=None) -> None:
    exc_type, pattern = exc_type or EXPECTED[kind][0], pattern or EXPECTED[kind][1]
    with pytest.raises(exc_type) as info:
        run_bounded(call, target if kind == "fifo" else None)
    message = str(info.value)
    assert target.name in message and "Errno" not in message and pattern in message, message


FILE_READERS = {  # name of the special file -> its readers
    "m.vitc": [load_converted, read_metadata, lambda p: load_converted(p, mmap=False), vitc.ViT.from_pretrained],
    "x.safetensors": [read_safetensors, load_state_dict],
    "x.bin": [read_torch_bin, load_state_dict],
}


@pytest.mark.skipif(sys.platform != "linux", reason="Linux special files")
@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize("name", sorted(FILE_READERS))
def test_special_files_given_as_files(tmp_path, kind, name):
    """A FIFO, a device, a folder, a symlink loop or a socket given as a model file: an error naming
    it and what it is, never a block or an endless read."""
    target = make_special(kind, tmp_path / name)
    for reader in FILE_READERS[name]:
        if kind == "directory" and reader in (vitc.ViT.from_pretrained, load_state_dict):
            continue  # a folder is a model path: then it lacks config.json / weights
        if kind == "proc_status" and reader in (read_metadata, FILE_READERS["m.vitc"][2]):
            expect_refusal(partial(reader, target), target, kind, ValueError, "expected magic")  # read, not mapped
            continue
        expect_refusal(partial(reader, target), target, kind)
    # As a model path (from_pretrained, load_any, convert's source): the same refusal.
    if kind not in ("directory", "proc_status"):
        for call in (partial(vitc.ViT.from_pretrained, target), partial(load_any, target),
                     partial(convert, target, tmp_path / "o.vitc", progress=False)):  # fmt: skip
            expect_refusal(call, target, kind)
    assert not is_converted_file(target) and not (tmp_path / "o.vitc").exists()


FOLDER_ROLES = {  # role -> (source kind, file name in the folder)
    "config": ("safetensors", "config.json"),
    "preprocessor": ("safetensors", "preprocessor_config.json"),
    "weights": ("safetensors", "model.safetensors"),
    "index": ("sharded", "model.safetensors.index.json"),
    "shard": ("sharded", None),
}


# A /proc file read as JSON is just invalid JSON (test_pseudo_and_unmappable_files), and a shard
# symlinked out of its folder is refused as such (test_hostile_files): only the mapped roles here.
FOLDER_CASES = [(r, k) for r in sorted(FOLDER_ROLES) for k in SPECIAL if k != "proc_status" or r == "weights"]


@pytest.mark.skipif(sys.platform != "linux", reason="Linux special files")
@pytest.mark.parametrize("role, kind", FOLDER_CASES)
def test_special_files_inside_a_model_folder(tmp_path, sources, role, kind):
    src_kind, fname = FOLDER_ROLES[role]
    src = shutil.copytree(sources[src_kind], tmp_path / "src")
    fname = fname or shard_names(src)[0]
    (src / fname).unlink()
    target = make_special(kind, src / fname)
    calls = [lambda: vitc.ViT.from_pretrained(src), lambda: convert(src, tmp_path / "o.vitc", progress=False)]
    if role in ("weights", "index", "shard"):
        calls.append(lambda: load_state_dict(src))
    if role == "config":
        calls.append(lambda: ViTConfig.from_json_file(src))
    if role == "preprocessor":
        calls.append(lambda: vitc.ImageProcessor.from_pretrained(src))
    for call in calls:
        expect_refusal(call, target, kind)
    assert not (tmp_path / "o.vitc").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="Linux special files")
def test_pseudo_and_unmappable_files(tmp_path):
    for path, pattern in [
        ("/proc/self/status", "reports 0 bytes but has contents"),
        ("/proc/self/mem", "cannot read the checkpoint file"),
    ]:
        with pytest.raises(UnreadableFileError, match=f"{path}: .*{pattern}"):
            read_safetensors(path)
    sysfs = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if sysfs.is_file():
        with pytest.raises(UnreadableFileError, match="cannot memory-map"):
            read_safetensors(sysfs)
    with pytest.raises(ValueError, match="expected magic"):
        load_converted("/proc/self/status", mmap=False)
    with pytest.raises(ValueError, match="status: .*not a vitc file or a Hugging Face checkpoint"):
        vitc.ViT.from_pretrained("/proc/self/status")
    with pytest.raises(ValueError, match="is not valid UTF-8 JSON"):
        ViTConfig.from_json_file("/proc/self/status")


PERMISSION_CHILD = textwrap.dedent(
    """
    import json, sys
    import vitc
    from vitc.config import ViTConfig
    from vitc.convert import convert
    from vitc.io import load_converted, read_safetensors
    src, vitc_file, locked_dir, out = sys.argv[1:5]
    calls = {
        "from_pretrained_folder": lambda: vitc.ViT.from_pretrained(src),
        "convert": lambda: convert(src, out, progress=False),
        "config": lambda: ViTConfig.from_json_file(src),
        "vitc_file": lambda: load_converted(vitc_file),
        "vitc_file_private": lambda: load_converted(vitc_file, mmap=False),
        "safetensors": lambda: read_safetensors(src + "/model.safetensors"),
        "locked_dir": lambda: vitc.ViT.from_pretrained(locked_dir + "/m.vitc"),
    }
    results = {}
    for name, call in calls.items():
        try:
            call()
            results[name] = ["loaded", ""]
        except Exception as exc:
            results[name] = [type(exc).__name__, str(exc)]
    print(json.dumps(results))
    """
)


def _drop_dac_capabilities() -> None:
    """In the child: a root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH obeys file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.skipif(sys.platform != "linux", reason="file modes and capabilities as on Linux")
def test_permission_denied_is_named(tmp_path, sources, files):
    src = shutil.copytree(sources["safetensors"], tmp_path / "src")
    vitc_file = Path(shutil.copy(files["float32"], tmp_path / "m.vitc"))
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(files["float32"], locked / "m.vitc")
    for p in (src / "config.json", src / "model.safetensors", vitc_file):
        p.chmod(0)
    locked.chmod(0)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PERMISSION_CHILD, str(src), str(vitc_file), str(locked), str(tmp_path / "o.vitc")],
            capture_output=True,
            text=True,
            preexec_fn=_drop_dac_capabilities if os.geteuid() == 0 else None,
        )
    finally:
        locked.chmod(stat.S_IRWXU)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    for name, (kind, message) in results.items():
        assert kind == "PermissionError", (name, kind, message)
        assert "permission denied" in message and "Errno" not in message, (name, message)
    assert "config.json: cannot read" in results["config"][1]
    assert "m.vitc: cannot read the .vitc file" in results["vitc_file"][1]
    assert not (tmp_path / "o.vitc").exists()


def test_cli_reports_special_files_in_one_line(tmp_path, capsys):
    fifo = make_special("fifo", tmp_path / "m.vitc")
    sample = str(vitc.sample_images()[0])
    commands = (["info", str(fifo)], ["predict", "-m", str(fifo), sample], ["convert", str(fifo), str(tmp_path / "o")])
    for argv in commands:
        rc = run_bounded(lambda argv=argv: main(argv), fifo)
        err = capsys.readouterr().err
        assert rc == 1 and err.count("\n") == 1 and "FIFO" in err, err


def test_architectures_must_be_names(tmp_path, sources):
    """config.json's architectures go into .vitc headers: class names only, nothing nested."""
    src = shutil.copytree(sources["safetensors"], tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    config["architectures"] = [[["ViTForImageClassification"]]]
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json: config: .*architectures: expected a list of class names"):
        vitc.ViT.from_pretrained(src)


def test_unwritable_destinations_are_named(tmp_path, sources):
    (tmp_path / "afile").write_text("x")
    with pytest.raises((FileExistsError, NotADirectoryError), match="convert: cannot create the folder of"):
        convert(sources["safetensors"], tmp_path / "afile" / "m.vitc", progress=False)
    assert (tmp_path / "afile").read_text() == "x"


def test_destination_that_is_a_symlink_loop(tmp_path, sources):
    """Not an input: the loop is replaced by the new file (a rename replaces the link itself)."""
    loop = tmp_path / "loop.vitc"
    loop.symlink_to(loop.name)
    out = convert(sources["safetensors"], loop, progress=False)
    assert not out.is_symlink() and load_converted(out, verify=True)
