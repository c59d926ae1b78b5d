"""atheris fuzz targets for vitc's file readers.

    python tools/fuzz/fuzz.py TARGET CORPUS_DIR [libFuzzer flags]    (tools/fuzz/run.sh runs them all)

TARGET is one of: safetensors (read_safetensors), torch_bin (read_torch_bin), sharded
(load_state_dict of a shard index + one shard), vitc (load_converted, read_metadata,
ViT.from_pretrained, then a 1-image forward when the accepted model is small enough to run per input).
The vitc target reads each input twice: as it is (a mutated header almost always fails its checksum,
which must be a clean ValueError), and resealed (its header checksum recomputed, as a forger would),
so the fuzzer also reaches the checks behind the checksum; it also loads with verify=True and mmap=False.

The contract checked here (and by tests/test_hostile_files.py): for any bytes, a reader returns or
raises ValueError; FileNotFoundError only for a path that names nothing (a shard missing from the
folder); ViT.from_pretrained may also raise NotImplementedError for a valid config vitc cannot run
yet. Any other exception, a crash, a hang (-timeout) or a memory blow-up (-rss_limit_mb) is a finding.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path


def _supervise() -> int:
    """Run this script again in a child with a fresh work folder and remove the folder afterwards.

    libFuzzer leaves through C ``exit()`` (end of -max_total_time, a finding) or ``abort()``, which
    skip Python's atexit handlers, so the process that made the folder cannot be the one to remove it.
    """
    work = tempfile.mkdtemp(prefix="vitc-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # `timeout` -> finally
    try:
        return subprocess.call([sys.executable, *sys.argv], env={**os.environ, "VITC_FUZZ_WORK": work})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__" and "VITC_FUZZ_WORK" not in os.environ:
    sys.exit(_supervise())

# ruff: noqa: E402 - the supervisor above runs before the fuzzer's (instrumented) imports
import atheris
import numpy as np

with atheris.instrument_imports():
    from vitc.io.checkpoint import load_state_dict, read_safetensors, read_torch_bin
    from vitc.io.vitc_file import load_converted, read_metadata

import vitc  # the model; not instrumented, it only runs on inputs the readers accepted

SHARD_SEPARATOR = b"\n--SHARD--\n"
# Multiply-adds of one forward above which an accepted .vitc model is not run (the seeds' tiny models
# need ~1e4; a mutated config could ask for a ViT-H).
MAX_FORWARD_MACS = 20_000_000
# Every input is written to a file in it because the readers take paths (tmpfs, made by _supervise;
# a folder of its own, removed at exit, when this module is imported instead of run).
if "VITC_FUZZ_WORK" in os.environ:
    WORK = Path(os.environ["VITC_FUZZ_WORK"])
else:
    WORK = Path(tempfile.mkdtemp(prefix="vitc-fuzz-"))
    atexit.register(shutil.rmtree, WORK, ignore_errors=True)


def _write(name: str, data: bytes) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


def target_safetensors(data: bytes) -> None:
    path = _write("x.safetensors", data)
    try:
        read_safetensors(path)
    except ValueError:
        pass


def target_torch_bin(data: bytes) -> None:
    path = _write("x.bin", data)
    try:
        read_torch_bin(path)
    except ValueError:
        pass


def target_sharded(data: bytes) -> None:
    index, _, shard = data.partition(SHARD_SEPARATOR)
    folder = WORK / "sharded"
    folder.mkdir(exist_ok=True)
    for p in folder.iterdir():
        p.unlink()
    (folder / "model.safetensors.index.json").write_bytes(index)
    # The shard is offered under both names the seeds use; the index decides which is read.
    (folder / "s.safetensors").write_bytes(shard)
    (folder / "s.bin").write_bytes(shard)
    try:
        load_state_dict(folder)
    except (ValueError, FileNotFoundError):
        pass


def _reseal(data: bytes) -> bytes:
    """``data`` with a format-2 header checksum recomputed for the header it holds (unchanged otherwise)."""
    if len(data) < 20 or data[:6] != b"VITC\x00\x01" or int.from_bytes(data[6:8], "little") != 2:
        return data
    n = int.from_bytes(data[8:16], "little")
    if 20 + n > len(data):
        return data
    crc = zlib.crc32(data[20 : 20 + n], zlib.crc32(data[:16]))
    return data[:16] + crc.to_bytes(4, "little") + data[20:]


def target_vitc(data: bytes) -> None:
    _vitc_input(data)
    resealed = _reseal(data)
    if resealed != data:
        _vitc_input(resealed)


def _vitc_input(data: bytes) -> None:
    path = _write("x.vitc", data)
    try:
        read_metadata(path)
    except ValueError:
        pass
    try:
        load_converted(path)
    except ValueError:
        return
    for kwargs in ({"verify": True}, {"mmap": False}):
        try:
            load_converted(path, **kwargs)
        except ValueError:  # ChecksumError for damaged data
            pass
    try:
        model = vitc.ViT.from_pretrained(path)
    except (ValueError, NotImplementedError):
        return
    cfg = model.config
    tokens = cfg.num_patches + 1
    per_token = 4 * cfg.hidden_size + 2 * cfg.intermediate_size + 2 * tokens  # qkv+proj, mlp, attention
    macs = cfg.num_hidden_layers * tokens * cfg.hidden_size * per_token
    if macs > MAX_FORWARD_MACS:
        return
    h, w = cfg.image_hw
    x = np.linspace(-1, 1, cfg.num_channels * h * w, dtype=np.float32).reshape(1, cfg.num_channels, h, w)
    out = model(x, output_hidden_states=True, output_attentions=True)  # any exception is a finding
    assert out.last_hidden_state.shape == (1, tokens, cfg.hidden_size), out.last_hidden_state.shape
    assert len(out.hidden_states) == cfg.num_hidden_layers + 1 and len(out.attentions) == cfg.num_hidden_layers


TARGETS = {
    "safetensors": target_safetensors,
    "torch_bin": target_torch_bin,
    "sharded": target_sharded,
    "vitc": target_vitc,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [CORPUS_DIR] [libFuzzer flags]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
