"""vitc.eval.ray: evaluation on a local Ray cluster equals the single-process evaluation."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from eval_factory import write_corrupt, write_image_folder
from factories import make_checkpoint

from vitc.cli import main
from vitc.eval.output import read_output

PROB_ATOL = 2e-6


def test_missing_ray_is_a_clear_import_error(tmp_path, monkeypatch):
    from vitc.eval.ray import evaluate_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'vitc\[ray\]'"):
        evaluate_ray(tmp_path, tmp_path)


def test_bad_worker_count(tmp_path):
    from vitc.eval.ray import evaluate_ray

    with pytest.raises(ValueError, match="num_workers: expected a positive int, found 0"):
        evaluate_ray(tmp_path, tmp_path, num_workers=0)


def test_cli_ray_local_equals_single_process(tmp_path, monkeypatch, capsys):
    """``vitc eval --ray local`` (which starts and stops Ray: the module's only Ray start) run from a
    relative dataset path prints and writes what the single-process ``vitc eval`` does."""
    import ray  # the test extra installs ray[data]: a missing one is an install bug, not a skip

    make_checkpoint(tmp_path / "model")
    root = write_image_folder(tmp_path / "val", {f"LABEL_{c}": 3 for c in (0, 3, 4, 8)})
    write_corrupt(root / "LABEL_3" / "broken.png")
    monkeypatch.chdir(tmp_path)  # every path below is relative
    common = ["eval", "--model", "model", "val", "--json", "--no-progress"]

    assert main([*common, "-b", "4", "-o", "single.jsonl"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert not ray.is_initialized()
    assert main([*common, "-b", "3", "-o", "ray.jsonl", "--ray", "local", "--workers", "2"]) == 0
    out = capsys.readouterr()
    assert not ray.is_initialized()  # the CLI stopped the Ray it started
    distributed = json.loads(out.out)
    assert distributed.pop("images_per_second") > 0
    for d in (single, distributed):
        d.pop("seconds"), d.pop("images_per_second", None)
    assert single == distributed
    assert (distributed["total"], distributed["evaluated"], distributed["corrupt"]) == (13, 12, 1)
    assert list(distributed["corrupt_files"]) == ["LABEL_3/broken.png"]
    assert str(root / "LABEL_3" / "broken.png") in distributed["corrupt_files"]["LABEL_3/broken.png"]

    ha, ra, _ = read_output(tmp_path / "single.jsonl")
    hb, rb, _ = read_output(tmp_path / "ray.jsonl")
    assert {k: v for k, v in ha.items() if k != "model"} == {k: v for k, v in hb.items() if k != "model"}
    assert hb["model"] == str((tmp_path / "model").resolve())
    ra, rb = sorted(ra, key=lambda r: r["index"]), sorted(rb, key=lambda r: r["index"])
    assert [(r["index"], r["path"], r["label"], r.get("topk"), r.get("error")) for r in ra] == [
        (r["index"], r["path"], r["label"], r.get("topk"), r.get("error")) for r in rb
    ]
    for x, y in zip(ra, rb):
        if "probs" in x:
            np.testing.assert_allclose(x["probs"], y["probs"], atol=PROB_ATOL)
