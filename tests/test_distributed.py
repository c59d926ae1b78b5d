"""vitc.distributed: evaluation on a local Ray cluster equals the single-process evaluation."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from eval_factory import write_corrupt, write_image_folder
from hf_factory import make_checkpoint

from vitc.evaluate import evaluate, read_output

PROB_ATOL = 2e-6


def test_missing_ray_is_a_clear_import_error(tmp_path, monkeypatch):
    from vitc.distributed import evaluate_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'vitc\[ray\]'"):
        evaluate_ray(tmp_path, tmp_path)


def test_bad_worker_count(tmp_path):
    from vitc.distributed import evaluate_ray

    with pytest.raises(ValueError, match="num_workers: expected a positive int, found 0"):
        evaluate_ray(tmp_path, tmp_path, num_workers=0)


def test_ray_equals_single_process(tmp_path):
    import ray  # the test extra installs ray[data]: a missing one is an install bug, not a skip
    make_checkpoint(tmp_path / "model")
    root = write_image_folder(tmp_path / "val", {f"LABEL_{c}": 3 for c in (0, 3, 4, 8)})
    write_corrupt(root / "LABEL_3" / "broken.png")
    single = evaluate(
        tmp_path / "model", root, batch_size=4, output=tmp_path / "single.jsonl", progress=False
    )

    from vitc.distributed import evaluate_ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        distributed = evaluate_ray(
            tmp_path / "model",
            root,
            num_workers=2,
            batch_size=3,
            output=tmp_path / "ray.jsonl",
            progress=False,
        )
    finally:
        ray.shutdown()
    a, b = single.to_dict(confusion_matrix=True), distributed.to_dict(confusion_matrix=True)
    for d in (a, b):
        d.pop("seconds"), d.pop("images_per_second")
    assert a == b
    assert (distributed.total, distributed.evaluated, distributed.corrupt) == (13, 12, 1)
    assert distributed.images_per_second > 0
    ha, ra, _ = read_output(tmp_path / "single.jsonl")
    hb, rb, _ = read_output(tmp_path / "ray.jsonl")
    assert {k: v for k, v in ha.items() if k != "model"} == {k: v for k, v in hb.items() if k != "model"}
    ra, rb = sorted(ra, key=lambda r: r["index"]), sorted(rb, key=lambda r: r["index"])
    assert [(r["index"], r["path"], r["label"], r.get("topk"), "error" in r) for r in ra] == [
        (r["index"], r["path"], r["label"], r.get("topk"), "error" in r) for r in rb
    ]
    for x, y in zip(ra, rb):
        if "probs" in x:
            np.testing.assert_allclose(x["probs"], y["probs"], atol=PROB_ATOL)
