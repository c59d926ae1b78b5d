"""Legacy (non-zip) torch.save files, as old hub uploads have: read without torch, as torch reads them.

Files are written by torch.save(..., _use_new_zipfile_serialization=False) from transformers models;
the reader must give torch.load's tensors and vitc must give transformers' logits. Hostile legacy files
are in tests/test_hostile_files.py (cases in tests/hostile_cases.py).
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import numpy as np
import pytest
import torch
from factories import hf_forward, make_checkpoint, make_model, state_dict_numpy
from safetensors.torch import load_file

import vitc
from vitc.io.checkpoint import load_state_dict, read_torch_bin

# |logit difference| allowed, scaled by max(1, max|logit|): the parity bar of tests/test_model.py.
LOGITS_ATOL = 1e-4
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def save_legacy(obj, path: Path, protocol: int = 2) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    return path


def assert_same_logits(vit: vitc.ViT, hf_model) -> None:
    px = np.random.default_rng(0).standard_normal((2, 3, 30, 30)).astype(np.float32)
    ours = vit(px).logits
    ref = hf_forward(hf_model, px).logits.numpy()
    assert float(np.max(np.abs(ours - ref)) / max(1.0, np.max(np.abs(ref)))) < LOGITS_ATOL
    np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))


def legacy_folder(folder: Path, seed: int = 0, **save_kwargs) -> torch.nn.Module:
    """A transformers checkpoint whose pytorch_model.bin is in the legacy format."""
    model = make_checkpoint(folder, seed=seed)
    save_legacy(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin", **save_kwargs)
    (folder / "model.safetensors").unlink()
    return model


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_legacy_checkpoint_matches_transformers(tmp_path, protocol) -> None:
    """from_pretrained and convert on a legacy pytorch_model.bin, every pickle protocol torch.save takes."""
    model = legacy_folder(tmp_path / "hf", protocol=protocol)
    assert (tmp_path / "hf" / "pytorch_model.bin").read_bytes()[:1] == b"\x80"  # not a zip
    assert_same_logits(vitc.ViT.from_pretrained(tmp_path / "hf"), model)
    assert_same_logits(
        vitc.ViT.from_pretrained(vitc.convert(tmp_path / "hf", tmp_path / "m.vitc", progress=False)), model
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_legacy_state_dict_equals_torch_load(tmp_path, dtype) -> None:
    """A transformers state dict in each storage dtype: the values torch.load gives, widened to float32
    for the half types (exactly: a float16 / bfloat16 value is a float32 value)."""
    sd = {k: v.to(dtype) for k, v in make_model("cls").state_dict().items()}
    path = save_legacy(sd, tmp_path / "m.bin")
    ours = read_torch_bin(path)
    ref = torch.load(path, weights_only=True)
    assert list(ours) == list(ref)
    for k, v in ref.items():
        expected = v.float().numpy() if dtype in (torch.float16, torch.bfloat16) else v.numpy()
        assert ours[k].dtype == expected.dtype and ours[k].flags.c_contiguous
        np.testing.assert_array_equal(ours[k], expected)


def test_legacy_views_shared_storages_and_odd_tensors(tmp_path) -> None:
    """Tensors sharing one storage (slices, a transpose, an offset view), parameters (keep_vars),
    empty and 0-d tensors, integer storages: as torch.load gives them."""
    base = torch.arange(24, dtype=torch.float32)
    lin = torch.nn.Linear(3, 2)
    sd = {
        "whole": base,
        "slice": base[5:11],
        "matrix_t": base.view(4, 6).t(),
        "strided": base[1::3],
        "param": lin.weight,  # an nn.Parameter: _rebuild_parameter
        "empty": torch.empty(0, 4),
        "scalar": torch.tensor(2.5),
        "ints": torch.arange(7),
        "half_view": torch.arange(10, dtype=torch.float16)[2:6],
    }
    legacy = save_legacy(sd, tmp_path / "v.bin")
    torch.save(sd, tmp_path / "zip.bin")  # the zip reader shares the tensor rebuilding: same results
    for path in (legacy, tmp_path / "zip.bin"):
        ours = read_torch_bin(path)
        ref = torch.load(path, weights_only=True)
        assert list(ours) == list(ref)
        for k, v in ref.items():
            expected = v.detach().float().numpy() if v.dtype == torch.float16 else v.detach().numpy()
            assert ours[k].shape == expected.shape and ours[k].flags.c_contiguous, k
            np.testing.assert_array_equal(ours[k], expected)


def memory_owner(a: np.ndarray) -> object:
    """What finally holds an array's memory: an mmap for a view of the file, None for a copy."""
    obj: object = a
    while getattr(obj, "base", None) is not None:  # ndarrays, and as_strided's DummyArray
        obj = obj.base
    return obj.obj if isinstance(obj, memoryview) else None


def test_legacy_storages_are_mapped_when_aligned(tmp_path) -> None:
    """The records start where the pickles end: an aligned float32 storage is a read-only view of the
    file's memory map (as zip files give), a misaligned one a copy. Key lengths shift the alignment."""
    kinds = set()
    for pad in range(4):
        sd = {"k" * (1 + pad): torch.zeros(1), **{f"t{i}": torch.full((64,), float(i)) for i in range(4)}}
        got = read_torch_bin(save_legacy(sd, tmp_path / f"m{pad}.bin"))
        for i in range(4):
            np.testing.assert_array_equal(got[f"t{i}"], np.full(64, i, np.float32))
        mapped = [isinstance(memory_owner(got[f"t{i}"]), mmap.mmap) for i in range(4)]
        assert len(set(mapped)) == 1  # 4 + 8-byte records keep every storage's alignment
        kinds.add(mapped[0])
    assert kinds == {True, False}


def test_legacy_shards_and_folders(tmp_path) -> None:
    """A sharded pytorch_model.bin checkpoint whose shards are legacy files, through load_state_dict."""
    model = make_model("cls")
    folder = tmp_path / "sharded"
    folder.mkdir()
    model.config.to_json_file(folder / "config.json")
    sd = torch.nn.Module.state_dict(model)
    from factories import hub_state_dict

    hub = hub_state_dict(model)
    names = list(hub)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:]), 1):
        shard = f"pytorch_model-{i:05d}-of-00002.bin"
        save_legacy({k: hub[k] for k in part}, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    got = load_state_dict(folder)
    expected = state_dict_numpy(model)
    assert sorted(got) == sorted(expected) and len(sd) == len(got)
    for k, v in expected.items():
        np.testing.assert_array_equal(got[k], v)
    assert_same_logits(vitc.ViT.from_pretrained(folder), model)
