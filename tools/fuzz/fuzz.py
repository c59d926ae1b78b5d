"""atheris fuzz targets for vitc's file readers.

    python tools/fuzz/fuzz.py TARGET CORPUS_DIR [libFuzzer flags]    (tools/fuzz/run.sh runs them all)

TARGET is one of: safetensors (read_safetensors), torch_bin (read_torch_bin), sharded
(load_state_dict of a shard index + one shard), vitc (load_converted, read_metadata and
ViT.from_pretrained).

The contract checked here (and by tests/test_hostile_files.py): for any bytes, a reader returns or
raises ValueError; FileNotFoundError only for a path that names nothing (a shard missing from the
folder); ViT.from_pretrained may also raise NotImplementedError for a valid config vitc cannot run
yet. Any other exception, a crash, a hang (-timeout) or a memory blow-up (-rss_limit_mb) is a finding.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from vitc.checkpoint import load_state_dict, read_safetensors, read_torch_bin
    from vitc.convert import load_converted, read_metadata

import vitc  # noqa: E402  (the model; not instrumented, it only runs on inputs the readers accepted)

SHARD_SEPARATOR = b"\n--SHARD--\n"
# tmpfs if present: every input is written to a file because the readers take paths.
WORK = Path(tempfile.mkdtemp(prefix="vitc-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))


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


def target_vitc(data: bytes) -> None:
    path = _write("x.vitc", data)
    try:
        read_metadata(path)
    except ValueError:
        pass
    try:
        load_converted(path)
    except ValueError:
        return
    try:
        vitc.ViT.from_pretrained(path)
    except (ValueError, NotImplementedError):
        pass


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
