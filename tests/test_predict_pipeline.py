"""ViT.predict against pipeline("image-classification") (issue 16): the function applied to the logits
(by config.problem_type / num_labels, or function_to_apply), top_k, the order of tied scores, and the
inputs the pipeline takes (paths, PIL images of any mode, arrays, torch tensors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from factories import PREPROCESSOR, make_checkpoint
from PIL import Image
from transformers import ViTForImageClassification, pipeline

import vitc
from vitc.predict import choose_function

# Scores are computed by both in float32 from logits that differ by float32 rounding.
SCORE_ATOL = 1e-5


def _photo(seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (9, 11, channels), dtype=np.uint8)
    return np.kron(base, np.ones((5, 5, 1), np.uint8))  # blocky, so resizing is not just noise


def _folder(tmp_path, preprocessor: dict | None = None, tie: bool = False, scale: float = 1.0, **config):
    hf = make_checkpoint(tmp_path, **config)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(preprocessor or PREPROCESSOR))
    if tie or scale != 1.0:
        # Tied classes: rows 2 and 5 (and 7) of the classifier equal, so their logits are equal bit for
        # bit; ``scale`` saturates sigmoid / softmax so that many scores round to the same float32.
        with torch.no_grad():
            w, b = hf.classifier.weight, hf.classifier.bias
            if tie and w.shape[0] > 7:
                w[5], b[5], w[7], b[7] = w[2], b[2], w[2], b[2]
            w.mul_(scale)
            b.mul_(scale)
        hf.save_pretrained(tmp_path)
    return ViTForImageClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()


def assert_same(ours, ref, atol: float = SCORE_ATOL) -> None:
    """vitc's [(label, score)] against the pipeline's [{"label", "score"}]: same labels in the same order."""
    assert [label for label, _ in ours] == [r["label"] for r in ref]
    np.testing.assert_allclose([s for _, s in ours], [r["score"] for r in ref], atol=atol, rtol=0)


CASES = {
    "single_label": dict(),
    "one_label": dict(num_labels=1),  # sigmoid
    "multi_label": dict(problem_type="multi_label_classification"),
    "regression": dict(problem_type="regression", num_labels=3),
    "single_label_explicit": dict(problem_type="single_label_classification"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_function_by_problem_type(tmp_path, case):
    hf = _folder(tmp_path, **CASES[case])
    pipe = pipeline("image-classification", model=hf, image_processor=str(tmp_path))
    model = vitc.ViT.from_pretrained(tmp_path)
    expected = {"single_label": "softmax", "one_label": "sigmoid", "multi_label": "sigmoid", "regression": "none"}
    assert choose_function(model.config) == expected.get(case, "softmax")
    image = Image.fromarray(_photo())
    for top_k in (1, 3, 1000):
        assert_same(model.predict(image, top_k=top_k), pipe(image, top_k=top_k))
    assert_same(model.predict(image, top_k=None), pipe(image))  # None: the default 5
    for fn in ("softmax", "sigmoid", "none", "SIGMOID"):
        assert_same(model.predict(image, function_to_apply=fn), pipe(image, function_to_apply=fn))


def test_bad_function_to_apply(tmp_path):
    _folder(tmp_path)
    model = vitc.ViT.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="function_to_apply: expected one of softmax, sigmoid, none"):
        model.predict(_photo(), function_to_apply="tanh")


@pytest.mark.parametrize(
    "fn,scale", [("softmax", 1.0), ("sigmoid", 1.0), ("none", 1.0), ("sigmoid", 400.0), ("softmax", 400.0)]
)
def test_ties_in_pipeline_order(tmp_path, fn, scale):
    """Equal scores keep label order, as the pipeline's stable sort keeps them."""
    hf = _folder(tmp_path, tie=True, scale=scale)
    pipe = pipeline("image-classification", model=hf, image_processor=str(tmp_path))
    model = vitc.ViT.from_pretrained(tmp_path)
    for seed in range(3):
        image = Image.fromarray(_photo(seed))
        ours, ref = model.predict(image, top_k=10, function_to_apply=fn), pipe(image, top_k=10, function_to_apply=fn)
        scores = [s for _, s in ours]
        assert len(set(scores)) < len(scores)  # the test has ties to order
        # logits of 400x the weights differ by 400x the float32 rounding: so may the scores
        assert_same(ours, ref, atol=SCORE_ATOL * scale)


def test_inputs_the_pipeline_takes(tmp_path):
    """Paths, PIL images of every mode, HWC / CHW arrays, 4-channel arrays, torch tensors."""
    pre = {**PREPROCESSOR, "do_convert_rgb": True}
    hf = _folder(tmp_path, preprocessor=pre)
    pipe = pipeline("image-classification", model=hf, image_processor=str(tmp_path))
    model = vitc.ViT.from_pretrained(tmp_path)
    rgba = _photo(1, channels=4)
    rgba[..., 3] = np.where(rgba[..., 3] > 128, 255, 40)
    pil_rgba = Image.fromarray(rgba, "RGBA")
    path = tmp_path / "image.png"
    pil_rgba.save(path)
    inputs = {
        "path": str(path),
        "rgb": Image.fromarray(_photo(2)),
        "rgba": pil_rgba,
        "la": pil_rgba.convert("LA"),
        "p": Image.fromarray(_photo(3)).convert("P"),
        "l": Image.fromarray(_photo(4)).convert("L"),
        "hwc_array": _photo(5),
        "rgba_array": rgba,
        "chw_tensor": torch.from_numpy(np.ascontiguousarray(_photo(6).transpose(2, 0, 1))),
        "float_tensor": torch.from_numpy(np.ascontiguousarray(_photo(7).transpose(2, 0, 1))).float() / 255,
    }
    for name, x in inputs.items():
        ours, ref = model.predict(x, top_k=4), pipe(x, top_k=4)
        assert [label for label, _ in ours] == [r["label"] for r in ref], name
        np.testing.assert_allclose([s for _, s in ours], [r["score"] for r in ref], atol=SCORE_ATOL, err_msg=name)
    # a list of them: one prediction each, in order
    many = model.predict(list(inputs.values()), top_k=2)
    assert [p.label for p in many] == [pipe(x, top_k=1)[0]["label"] for x in inputs.values()]


def test_cli_function(tmp_path):
    """vitc predict --function, and the default by problem_type, as the pipeline's scores."""
    import subprocess
    import sys

    hf = _folder(tmp_path / "m", problem_type="multi_label_classification")
    pipe = pipeline("image-classification", model=hf, image_processor=str(tmp_path / "m"))
    Image.fromarray(_photo(8)).save(tmp_path / "x.png")
    for args, fn in (([], None), (["--function", "none"], "none")):
        proc = subprocess.run(
            [sys.executable, "-m", "vitc", "predict", "--model", str(tmp_path / "m"), "--json", "-k", "3", *args]
            + [str(tmp_path / "x.png")],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout.splitlines()[0])["predictions"]
        ref = pipe(str(tmp_path / "x.png"), top_k=3, **({"function_to_apply": fn} if fn else {}))
        assert [g["label"] for g in got] == [r["label"] for r in ref]
        np.testing.assert_allclose([g["probability"] for g in got], [r["score"] for r in ref], atol=SCORE_ATOL)
