"""Images in, labels out: ViT.predict, attention rollout and attention maps against transformers."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import tqdm.auto
from factories import HF_TEST_CONFIG, hf_forward, make_checkpoint
from mnist_data import load_default_heldout
from PIL import Image

import vitc
from vitc import predict as predict_module
from vitc.predict import (
    Prediction,
    Predictions,
    attention_rollout,
    explain,
    interrupts_deferred,
    iter_predictions,
    render_explanation,
)
from vitc.preprocess import ImageLoadError, ImageMissingError

# Probabilities: softmax of float32 logits that agree with transformers to ~1e-5.
PROB_ATOL = 1e-5
# Rollout: products of L attention matrices, each within ~1e-6 of transformers'.
ROLLOUT_ATOL = 1e-5
# The same image in batches of different sizes: float32 sums may be ordered differently.
BATCH_ATOL = 1e-6


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """Twelve held-out digits, (12, 28, 28, 3) uint8."""
    return load_default_heldout()[0][::83][:12]


def hf_probs(default_hf, images: list) -> np.ndarray:
    """softmax of transformers' logits, its own image processor and default_model, in float64."""
    hf_model, hf_processor = default_hf
    pixel_values = hf_processor(images, return_tensors="np")["pixel_values"]
    with torch.no_grad():
        logits = hf_model(torch.from_numpy(pixel_values)).logits.double()
    return torch.softmax(logits, dim=-1).numpy()


def assert_matches(pred: Prediction, probs: np.ndarray, top_k: int, labels: dict[int, str]) -> None:
    """``pred`` is the top-k of ``probs``: right length, sorted, right labels and probabilities."""
    assert isinstance(pred, Prediction)
    assert len(pred) == top_k
    assert all(isinstance(lb, str) and isinstance(p, float) for lb, p in pred)
    ps = [p for _, p in pred]
    assert ps == sorted(ps, reverse=True)
    expected = np.argsort(-probs, kind="stable")[:top_k]
    assert [lb for lb, _ in pred] == [labels[int(i)] for i in expected]
    np.testing.assert_allclose(ps, probs[expected], rtol=0, atol=PROB_ATOL)
    assert pred.label == labels[int(np.argmax(probs))]


# ---------------------------------------------------------------------------------------------
# predict


@pytest.mark.parametrize("kind", ["path", "pil", "array", "array_gray"])
def test_predict_one_image(default_model, default_hf, kind) -> None:
    path = vitc.sample_images()[3]
    with Image.open(path) as img:
        pil = img.convert("RGB")
    image = {"path": path, "pil": pil, "array": np.asarray(pil), "array_gray": np.asarray(pil)[..., 0]}[kind]
    pred = default_model.predict(image, top_k=3)
    assert_matches(pred, hf_probs(default_hf, [pil])[0], 3, default_model.id2label)
    assert pred.label == "digit 3"
    assert pred.source == (str(path) if kind == "path" else None)


def test_predict_list_returns_one_prediction_per_image(default_model, default_hf, digits) -> None:
    images = list(digits)
    preds = default_model.predict(images, top_k=4)
    assert isinstance(preds, Predictions) and len(preds) == len(images)
    for pred, probs in zip(preds, hf_probs(default_hf, images), strict=True):
        assert_matches(pred, probs, 4, default_model.id2label)
    # a tuple, a stacked (N, H, W, C) array and a generator are lists of images too
    for many in (tuple(images), digits, (im for im in images)):
        again = default_model.predict(many, top_k=4)
        assert isinstance(again, Predictions) and [p.label for p in again] == [p.label for p in preds]
    assert default_model.predict([], top_k=4) == []


def test_predict_paths_keep_their_source(default_model) -> None:
    paths = vitc.sample_images()[:3]
    preds = default_model.predict(paths, top_k=2)
    assert [p.source for p in preds] == [str(p) for p in paths]


@pytest.mark.parametrize("batch_size", [1, 3, 5, 12, 100])
def test_batch_size_does_not_change_results(default_model, digits, batch_size) -> None:
    reference = default_model.predict(list(digits), top_k=10, batch_size=len(digits))
    preds = default_model.predict(list(digits), top_k=10, batch_size=batch_size)
    assert len(preds) == len(reference)
    for a, b in zip(preds, reference, strict=True):
        assert [lb for lb, _ in a] == [lb for lb, _ in b]
        np.testing.assert_allclose([p for _, p in a], [p for _, p in b], rtol=0, atol=BATCH_ATOL)


def test_top_k_larger_than_num_labels_is_clipped(default_model, default_hf, digits) -> None:
    pred = default_model.predict(digits[0], top_k=1000)
    assert len(pred) == default_model.num_labels == 10
    assert_matches(pred, hf_probs(default_hf, [digits[0]])[0], 10, default_model.id2label)
    assert sum(p for _, p in pred) == pytest.approx(1.0, abs=1e-6)  # float32 scores, as the pipeline's


def test_top_k_none_is_the_default(default_model, digits) -> None:
    """pipeline(image, top_k=None) returns its default 5, and so does predict."""
    assert default_model.predict(digits[0], top_k=None) == default_model.predict(digits[0], top_k=5)


@pytest.mark.parametrize("top_k", [0, -1, 2.0, "3", True])
def test_invalid_top_k_raises(default_model, digits, top_k) -> None:
    with pytest.raises(ValueError, match="top_k"):
        default_model.predict(digits[0], top_k=top_k)


@pytest.mark.parametrize("batch_size", [0, -2, 1.5])
def test_invalid_batch_size_raises(default_model, digits, batch_size) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        default_model.predict(list(digits), batch_size=batch_size)


def test_numpy_integer_top_k_is_accepted(default_model, digits) -> None:
    assert len(default_model.predict(digits[0], top_k=np.int64(2))) == 2


def test_bare_vit_model_cannot_predict(tmp_path) -> None:
    make_checkpoint(tmp_path, bare=True)
    bare = vitc.ViT.from_pretrained(tmp_path)
    image = np.zeros((HF_TEST_CONFIG["image_size"],) * 2 + (3,), dtype=np.uint8)
    with pytest.raises(ValueError, match="no classes"):
        bare.predict(image)


def test_html_repr_shows_labels_and_probabilities(default_model) -> None:
    paths = vitc.sample_images()[:2]
    preds = default_model.predict(paths, top_k=3)
    page = preds._repr_html_()
    for pred in preds:
        one = pred._repr_html_()
        assert one.startswith("<table") and one in page
        for label, p in pred:
            assert label in one and f"{p:.2%}" in one
        assert paths[preds.index(pred)].name in one
    escaped = Prediction([("<cat & dog>", 1.0)])._repr_html_()
    assert "&lt;cat &amp; dog&gt;" in escaped and "<cat" not in escaped


def test_text_repr_is_a_readable_table() -> None:
    pred = Prediction([("digit 0", 0.9254123456789012), ("digit 10", 0.0312345678901234), ("cat", 3e-7)])
    assert repr(pred) == "Prediction:\n  digit 0    92.54%\n  digit 10    3.12%\n  cat         0.00%"
    assert str(pred) == repr(pred)  # print(pred) shows the table too
    named = Prediction([("cat", 0.5)], source="img/cat.jpg")
    assert repr(named) == "Prediction('img/cat.jpg'):\n  cat   50.00%"
    many = Predictions([named, pred])
    assert repr(many).splitlines() == [
        "Predictions (2 images):",
        "  Prediction('img/cat.jpg'):",
        "    cat   50.00%",
        "  Prediction:",
        "    digit 0    92.54%",
        "    digit 10    3.12%",
        "    cat         0.00%",
    ]
    assert repr(Prediction([])) == "Prediction: []" and repr(Predictions()) == "Predictions: []"
    # still plain lists of (label, float) pairs
    assert pred == [("digit 0", 0.9254123456789012), ("digit 10", 0.0312345678901234), ("cat", 3e-7)]
    assert pred[0][1] == 0.9254123456789012 and many[0] == [("cat", 0.5)] and many == [named, pred]


def test_text_repr_of_real_predictions_has_no_raw_floats(default_model) -> None:
    preds = default_model.predict(vitc.sample_images()[:2], top_k=3)
    text = repr(preds)
    assert not re.search(r"\d\.\d{5,}", text), text  # no 17-digit floats
    for pred in preds:
        for label, p in pred:
            assert re.search(rf"{label} +{p:.2%}".replace(".", r"\."), text)


def test_progress_bar_goes_to_stderr(default_model, digits, capsys) -> None:
    default_model.predict(list(digits), batch_size=4, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "predict" in err and "12/12" in err
    default_model.predict(list(digits), batch_size=4, progress=False)
    assert capsys.readouterr() == ("", "")


def test_progress_bar_is_tqdm_auto(default_model, digits, monkeypatch) -> None:
    """tqdm.auto picks the notebook widget in Jupyter and the text bar elsewhere."""
    made = []

    class Spy(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Spy)
    default_model.predict(list(digits), batch_size=4, progress=True)
    assert [m["total"] for m in made] == [12]
    default_model.predict(list(digits), batch_size=4)  # few images: no bar by default
    default_model.predict(list(digits), batch_size=2)  # more than 4 batches: a bar
    assert [m["total"] for m in made] == [12, 12]


# ---------------------------------------------------------------------------------------------
# attention rollout


def rollout_reference(attentions: list[np.ndarray]) -> np.ndarray:
    """Abnar & Zuidema's rollout written out plainly: R = A'_L ... A'_1, A' = (mean_h A + I) / 2."""
    b, _, t, _ = attentions[0].shape
    out = np.empty((b, t - 1))
    for i in range(b):
        r = np.eye(t)
        for layer in attentions:
            a = np.mean(np.asarray(layer[i], dtype=np.float64), axis=0)
            r = (0.5 * a + 0.5 * np.eye(t)) @ r
        out[i] = r[0, 1:]  # what the CLS token draws from each patch
    return out


def test_rollout_matches_numpy_on_transformers_attentions(default_model, default_hf, digits) -> None:
    hf_model, hf_processor = default_hf
    pixel_values = hf_processor(list(digits[:4]), return_tensors="np")["pixel_values"]
    ref = hf_forward(hf_model, pixel_values, output_attentions=True).attentions
    expected = rollout_reference([a.numpy() for a in ref])
    ours = attention_rollout(default_model(pixel_values, output_attentions=True).attentions)
    assert ours.shape == expected.shape == (4, 49)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=ROLLOUT_ATOL)
    # rows of every 0.5 A + 0.5 I sum to 1, so the CLS row does too: patches get what CLS keeps not
    assert np.all(ours > 0) and np.all(ours.sum(-1) < 1)


def test_rollout_random_checkpoint(tmp_path) -> None:
    hf_model = make_checkpoint(tmp_path, num_hidden_layers=3)
    x = np.random.default_rng(0).standard_normal((2, 3, 30, 30)).astype(np.float32)
    ref = hf_forward(hf_model, x, output_attentions=True).attentions
    ours = vitc.ViT.from_pretrained(tmp_path)(x, output_attentions=True).attentions
    np.testing.assert_allclose(
        attention_rollout(ours), rollout_reference([a.numpy() for a in ref]), rtol=0, atol=ROLLOUT_ATOL
    )


def test_rollout_of_one_layer_is_half_the_cls_attention() -> None:
    a = np.random.default_rng(1).random((2, 3, 5, 5))
    a /= a.sum(-1, keepdims=True)
    np.testing.assert_allclose(attention_rollout([a]), 0.5 * a.mean(1)[:, 0, 1:], rtol=1e-12)
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])


def full_product_rollout(attentions: list[np.ndarray]) -> np.ndarray:
    """The previous implementation: the full (T, T) products from the first layer to the last."""
    b, _, t, _ = attentions[0].shape
    rollout = np.broadcast_to(np.eye(t), (b, t, t)).copy()
    for a in attentions:
        rollout = (0.5 * a.astype(np.float64).mean(axis=1) + 0.5 * np.eye(t)) @ rollout
    return rollout[:, 0, 1:]


@pytest.mark.parametrize("layers, heads, t", [(1, 1, 2), (4, 3, 17), (12, 6, 50)])
def test_cls_row_rollout_equals_row_0_of_the_full_product(layers, heads, t) -> None:
    """Carrying e_0 from the last layer down gives row 0 of M_L ... M_1 (random row-stochastic A)."""
    rng = np.random.default_rng(layers * 100 + t)
    attentions = []
    for _ in range(layers):
        a = rng.random((2, heads, t, t)) ** 3  # uneven, as trained attention is
        attentions.append((a / a.sum(-1, keepdims=True)).astype(np.float32))
    expected = full_product_rollout(attentions)
    np.testing.assert_allclose(attention_rollout(attentions), expected, rtol=1e-12, atol=1e-15)
    # and from head averages (what output_attention_means gives)
    means = [a.astype(np.float64).mean(axis=1) for a in attentions]
    np.testing.assert_allclose(vitc.predict._cls_rollout(means), expected, rtol=1e-12, atol=1e-15)


def test_attention_means_are_the_head_averages(tmp_path) -> None:
    """output_attention_means: (B, T, T) per layer, the mean over heads of output_attentions (float32
    sums in head order), with the same logits; the rollout from them matches transformers'."""
    hf_model = make_checkpoint(tmp_path, num_hidden_layers=3)
    model = vitc.ViT.from_pretrained(tmp_path)
    x = np.random.default_rng(0).standard_normal((2, 3, 30, 30)).astype(np.float32)
    full = model(x, output_attentions=True)
    means = model(x, output_attention_means=True)
    assert means.attentions is None and len(means.attention_means) == len(full.attentions)
    np.testing.assert_array_equal(means.logits, full.logits)
    for m, a in zip(means.attention_means, full.attentions):
        assert m.shape == (a.shape[0], a.shape[2], a.shape[3]) and m.dtype == np.float32
        np.testing.assert_allclose(m, a.astype(np.float64).mean(axis=1), rtol=1e-6, atol=1e-7)
    both = model(x, output_attentions=True, output_attention_means=True)
    for m, b in zip(means.attention_means, both.attention_means):
        np.testing.assert_array_equal(m, b)
    ref = hf_forward(hf_model, x, output_attentions=True).attentions
    np.testing.assert_allclose(
        vitc.predict._cls_rollout(means.attention_means),
        rollout_reference([a.numpy() for a in ref]),
        rtol=0,
        atol=ROLLOUT_ATOL,
    )


@pytest.mark.parametrize("shape", [(28, 28, 3), (40, 56, 3), (33, 17)])
def test_attention_map_has_image_size_and_unit_range(default_model, digits, shape) -> None:
    image = np.asarray(Image.fromarray(digits[1]).resize(shape[1::-1], Image.BILINEAR))
    if len(shape) == 2:
        image = image[..., 0]
    heat = default_model.attention_map(image)
    assert heat.shape == shape[:2] and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    # normalized to [0, 1] on the patch grid, then bilinearly resized: peaks are smoothed a little
    assert heat.max() > 0.5 and heat.min() < 0.1


def test_attention_map_follows_the_rollout(default_model, digits) -> None:
    """At the default_model's own size, the hottest patch of the map is the patch rollout ranks first."""
    image = digits[2]
    heat = default_model.attention_map(image)
    grid = attention_rollout(default_model(default_model.image_processor(image), output_attentions=True).attentions)[0]
    p = default_model.patch_size
    cells = heat.reshape(28 // p, p, 28 // p, p).mean(axis=(1, 3)).ravel()
    assert np.corrcoef(cells, grid)[0, 1] > 0.9


def test_explain_returns_the_explain_png_image(default_model, default_hf, tmp_path) -> None:
    """explain(model, image) is what ``vitc predict --explain`` draws: overlay + top label as title."""
    path = vitc.sample_images()[3]
    img = explain(default_model, path)
    assert img.mode == "RGB" and img.size == (252, 252 + 24)  # 28x28 enlarged 9x, 24 px title band
    pred = default_model.predict(path, top_k=1)
    assert pred.label == "digit 3"
    expected = render_explanation(path, default_model.attention_map(path), f"{pred[0][0]} ({pred[0][1]:.1%})")
    assert np.array_equal(np.asarray(img), np.asarray(expected))
    # the title is drawn: the band is not blank, and a different title changes it
    band = np.asarray(img)[:24]
    assert band.min() < 128
    other = np.asarray(render_explanation(path, default_model.attention_map(path), "digit 8 (1.0%)"))[:24]
    assert not np.array_equal(band, other)
    # the overlay differs from the plain enlarged image (the heat-map is there)
    with Image.open(path) as f:
        plain = np.asarray(f.convert("RGB").resize((252, 252), Image.NEAREST)).astype(int)
    assert np.abs(np.asarray(img)[24:].astype(int) - plain).mean() > 20
    assert np.array_equal(np.asarray(default_model.explain(path)), np.asarray(img))  # the method form
    # PIL images display inline in Jupyter
    assert img._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    # also for arrays and PIL images
    with Image.open(path) as f:
        assert np.array_equal(np.asarray(explain(default_model, f.convert("RGB"))), np.asarray(img))
    assert np.array_equal(np.asarray(explain(default_model, np.asarray(Image.open(path).convert("RGB")))),
                          np.asarray(img))


def test_explain_rejects_many_images_and_bare_models(default_model, digits, tmp_path) -> None:
    with pytest.raises(ValueError, match="explain: expected one image"):
        explain(default_model, list(digits[:2]))
    make_checkpoint(tmp_path, bare=True)
    bare = vitc.ViT.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no classes"):
        explain(bare, np.zeros((HF_TEST_CONFIG["image_size"],) * 2 + (3,), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------
# Runs over many images: per-image errors, lazy batches, memory, interrupts (issue 15)


def bad_images(tmp_path):
    """A file of each kind that cannot give pixels, with the kind vitc reports for it."""
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    corrupt = tmp_path / "cut.png"
    corrupt.write_bytes(vitc.sample_images()[0].read_bytes()[:60])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    folder = tmp_path / "folder.png"
    folder.mkdir()
    return {
        str(tmp_path / "missing.png"): "missing",
        str(not_an_image): "not_an_image",
        str(corrupt): "corrupt",
        str(empty): "corrupt",
        str(folder): "unreadable",
    }


def test_unreadable_images_are_errors_in_place_and_the_run_goes_on(default_model, tmp_path) -> None:
    bad = bad_images(tmp_path)
    good = [str(p) for p in vitc.sample_images()[:3]]
    images = [good[0], *bad, good[1], good[2]]
    preds = default_model.predict(images, top_k=2, batch_size=2)
    assert isinstance(preds, Predictions) and len(preds) == len(images)
    alone = default_model.predict(good, top_k=2)
    assert [p for p in preds if p.ok] == alone  # the good images: the same predictions, in order
    failed = [p for p in preds if not p.ok]
    assert [p.source for p in failed] == list(bad) and all(p == [] and p.label is None for p in failed)
    assert [p.error.kind for p in failed] == list(bad.values())
    assert all(isinstance(p.error, ImageLoadError) and p.error.path == p.source for p in failed)
    assert isinstance(failed[0].error, FileNotFoundError)  # missing is missing, not corrupt
    assert preds.errors == [p.error for p in failed]
    assert preds.error_counts == {"missing": 1, "unreadable": 1, "not_an_image": 1, "corrupt": 2}
    text = repr(preds)
    assert "not read (missing)" in text and "5 of 8 images could not be read" in text
    assert "not read (corrupt)" in preds._repr_html_()
    # one image on its own: its error is raised
    with pytest.raises(ImageMissingError, match="missing.png"):
        default_model.predict(str(tmp_path / "missing.png"))
    # a wrong type is a programming error, not an image error
    with pytest.raises(TypeError, match="expected"):
        default_model.predict([good[0], 42])


def test_a_file_that_breaks_the_decoder_is_recorded_not_raised(default_model, tmp_path, monkeypatch) -> None:
    """An exception no one classified (a decoder bug on a strange file) ends one image, not the run."""
    import struct

    from vitc.preprocess import ImageProcessor

    strange = tmp_path / "strange.png"
    strange.write_bytes(vitc.sample_images()[0].read_bytes())
    real = ImageProcessor.try_preprocess_one

    def buggy(self, image, pipeline=False):
        if str(image) == str(strange):
            raise struct.error("unpack requires a buffer of 4 bytes")
        return real(self, image, pipeline)

    monkeypatch.setattr(ImageProcessor, "try_preprocess_one", buggy)
    preds = default_model.predict([strange, vitc.sample_images()[1]])
    assert preds[1].ok and preds[0].error.kind == "corrupt"
    assert "(struct.error: unpack requires a buffer of 4 bytes)" in str(preds[0].error)


def test_iter_predictions_is_lazy_one_batch_ahead(default_model, digits) -> None:
    pulled = []

    def images():
        for i in range(40):
            pulled.append(i)
            yield digits[i % len(digits)]

    stream = iter_predictions(default_model, images(), top_k=1, batch_size=4)
    assert pulled == []  # nothing decoded before the first result is asked for
    first = next(stream)
    assert isinstance(first, Prediction) and first.ok
    assert len(pulled) <= 2 * 4  # the batch it came from and at most one batch ahead
    rest = list(stream)
    assert len(rest) == 39 and len(pulled) == 40
    assert [p.label for p in [first, *rest]] == [p.label for p in default_model.predict([*images()], top_k=1)]
    with pytest.raises(ValueError, match="batch_size"):
        iter_predictions(default_model, images(), batch_size=0)  # checked at the call, not at the first next()


def test_predict_memory_is_flat_in_the_number_of_images(default_model) -> None:
    """A generator of 10x more images does not use more memory: decoded a batch at a time."""
    import tracemalloc

    def images(n):
        rng = np.random.default_rng(0)
        for _ in range(n):
            yield rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)  # 120 kB each

    default_model.predict(images(8), batch_size=4)  # warm: workspaces and caches
    peaks = {}
    for n in (16, 160):
        tracemalloc.start()
        try:
            assert len(default_model.predict(images(n), batch_size=4)) == n
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # all 160 images held at once would be 19 MB; one batch ahead holds ~1 MB
    assert peaks[160] < 2 * peaks[16] + 2_000_000, peaks


class HugeBatchModel:
    """A model whose forward asks NumPy for far more memory than any machine has."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, pixel_values, **kwargs):
        np.empty((len(pixel_values), 2**40), dtype=np.float32)
        raise AssertionError("unreachable")


def test_a_batch_that_does_not_fit_says_how_much_it_needs(default_model, digits) -> None:
    huge = HugeBatchModel(default_model)
    with pytest.raises(MemoryError) as info:
        predict_module.predict(huge, list(digits[:3]), default_model.image_processor, batch_size=3)
    text = str(info.value)
    assert "batch of 3 images" in text
    assert re.search(r"needs [\d.]+ GiB more \(an array of shape \(3, 1099511627776\) float32\)", text), text
    assert "batch_size=" in text and "--batch-size" in text


def test_interrupts_deferred_holds_ctrl_c_until_the_block_ends() -> None:
    import os
    import signal

    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with interrupts_deferred():  # without a signal: nothing happens
        pass
