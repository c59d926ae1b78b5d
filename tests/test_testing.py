"""vitc.testing: logits assertions with useful messages, parity reports against transformers."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
from factories import make_checkpoint

import vitc
from vitc.testing import ParityReport, assert_logits_close, compare_with_transformers

# The parity bar of the model tests (tests/test_model.py): vitc and transformers in float32.
PARITY_ATOL = 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    make_checkpoint(folder)
    return folder


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 3, 30, 30)).astype(np.float32)


def logits(rows: int = 4, classes: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, classes)).astype(np.float32)


def test_close_logits_pass():
    x = logits()
    assert_logits_close(x, x)
    assert_logits_close(x + 5e-5, x)  # within atol
    assert_logits_close(x * (1 + 5e-5), x, atol=0)  # within rtol
    assert_logits_close(np.zeros((0, 6)), np.zeros((0, 6)))
    nan = x.copy()
    nan[0, 0] = np.nan
    assert_logits_close(nan, nan)


def test_failure_message_gives_errors_location_and_top1_agreement():
    expected = logits()
    actual = expected.copy()
    row = 2
    top = int(expected[row].argmax())
    actual[row, top] -= 10.0  # changes row 2's top-1 class
    actual[0, 1] += 3e-4  # a small error elsewhere
    with pytest.raises(AssertionError) as info:
        assert_logits_close(actual, expected)
    msg = str(info.value)
    assert "2 of 24 elements (8.3%) out of tolerance" in msg
    assert f"max abs error 10 at index ({row}, {top})" in msg
    assert re.search(r"max rel error [\d.e+-]+ at index", msg)
    assert f"top-1 agreement: 3 of 4 rows (75.0%); rows that differ: {row}" in msg


def test_failure_when_top1_still_agrees_says_so():
    expected = logits()
    with pytest.raises(AssertionError, match=r"top-1 agreement: 4 of 4 rows \(100.0%\)$"):
        assert_logits_close(expected + 1e-3, expected)


def test_nan_inf_and_shape_mismatch_fail():
    x = logits()
    nan = x.copy()
    nan[1, 2] = np.nan
    with pytest.raises(AssertionError, match="1 of 24 elements"):
        assert_logits_close(nan, x)
    inf = x.copy()
    inf[0, 0] = np.inf
    with pytest.raises(AssertionError, match="1 of 24 elements"):
        assert_logits_close(inf, x)
    with pytest.raises(AssertionError, match=r"expected shape \(4, 6\).*found \(4, 5\)"):
        assert_logits_close(x[:, :5], x)


def test_accepts_tensors_and_model_outputs(checkpoint, pixels):
    model = vitc.ViT.from_pretrained(checkpoint)
    out = model(pixels)
    t = torch.from_numpy(out.logits.copy()).requires_grad_(True)
    assert_logits_close(out, t)
    with pytest.raises(AssertionError, match="top-1 agreement"):
        assert_logits_close(out, t * 2)


def test_parity_report_against_transformers(checkpoint, pixels, tmp_path):
    report = compare_with_transformers(checkpoint, pixels)
    assert isinstance(report, ParityReport) and report.architecture == "ViTForImageClassification"
    assert len(report.hidden_state_errors) == 3  # embeddings + 2 layers
    assert report.max_error < PARITY_ATOL and report.ok(PARITY_ATOL)
    assert (report.argmax_agree, report.rows) == (3, 3)
    text = str(report)
    for part in ("embeddings", "layer 1", "layer 2", "last_hidden_state", "logits", "argmax agreement  3/3"):
        assert part in text
    # a converted file, against the folder it came from
    dst = vitc.convert(checkpoint, tmp_path / "m.vitc")
    assert compare_with_transformers(checkpoint, torch.from_numpy(pixels), vitc_model=dst).ok(PARITY_ATOL)


def test_parity_report_finds_a_different_model(checkpoint, pixels, tmp_path):
    other = tmp_path / "other"
    make_checkpoint(other, seed=7)
    report = compare_with_transformers(checkpoint, pixels, vitc_model=vitc.ViT.from_pretrained(other))
    assert not report.ok(PARITY_ATOL)
    assert min(report.hidden_state_errors) > 1e-2 and report.logits_error > 1e-2


def test_parity_report_for_a_bare_model(tmp_path, pixels):
    make_checkpoint(tmp_path, bare=True, pooler=True)
    report = compare_with_transformers(tmp_path, pixels)
    assert report.architecture == "ViTModel" and report.logits_error is None and report.rows == 0
    assert report.ok(PARITY_ATOL)
    assert "logits" not in str(report) and "last_hidden_state" in str(report)


def test_missing_transformers_is_a_clear_import_error(checkpoint, pixels, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"needs torch and transformers.*pip install"):
        compare_with_transformers(checkpoint, pixels)


def test_not_a_hf_folder(tmp_path, pixels):
    with pytest.raises(FileNotFoundError, match="expected a Hugging Face model folder with config.json"):
        compare_with_transformers(tmp_path, pixels, vitc_model=None)
