"""One model shared by many threads, the GIL released during the forward, and extreme inputs
(NaN/inf pixels, empty batches, batches too large for memory)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from factories import make_checkpoint

import vitc

THREADS = 4
CALLS_PER_THREAD = 5
# A forward that takes a measurable time on one core: hidden 256, 4 layers, 64x64 image, patch 8.
BIG = dict(
    image_size=64, patch_size=8, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024
)
MIN_COUNTER_STEPS = 10_000  # a pure-Python counter thread does millions per second when it holds the GIL


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    make_checkpoint(folder)
    return folder


@pytest.fixture(scope="module")
def small_model(small_folder):
    return vitc.ViT.from_pretrained(small_folder)


@pytest.fixture(scope="module")
def big_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    make_checkpoint(folder, **BIG)
    return vitc.ViT.from_pretrained(folder)


def pixels(b: int, size: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((b, 3, size, size)).astype(np.float32)


@pytest.mark.parametrize("dtype", ("float32", "bfloat16", "int8"))
def test_threads_share_one_model(small_folder, dtype):
    """4 threads on one model (shared packed weights, per-thread workspaces) give the serial results
    bit for bit, in every weight mode."""
    model = vitc.ViT.from_pretrained(small_folder, dtype=dtype)
    assert model.dtype == dtype
    inputs = [pixels(1 + i % 3, seed=i) for i in range(THREADS)]
    serial = [model(x, output_hidden_states=True, output_attentions=True) for x in inputs]
    results: list = [None] * THREADS
    errors: list = []
    start = threading.Barrier(THREADS)

    def work(i: int) -> None:
        try:
            start.wait()
            for _ in range(CALLS_PER_THREAD):
                results[i] = model(inputs[i], output_hidden_states=True, output_attentions=True)
                np.testing.assert_array_equal(results[i].logits, serial[i].logits)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, ref in zip(results, serial, strict=True):
        np.testing.assert_array_equal(got.logits, ref.logits)
        np.testing.assert_array_equal(got.last_hidden_state, ref.last_hidden_state)
        for a, b in zip(got.hidden_states, ref.hidden_states, strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(got.attentions, ref.attentions, strict=True):
            np.testing.assert_array_equal(a, b)


def test_gil_released_during_forward(big_model):
    x = pixels(8, size=64)
    big_model(x)  # warm-up: workspace allocation
    steps = 0
    done = threading.Event()

    def count() -> None:
        nonlocal steps
        while not done.is_set():
            steps += 1

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.01)  # let the counter start before the forward takes the CPU
    before = steps
    t0 = time.perf_counter()
    big_model(x)
    elapsed = time.perf_counter() - t0
    during = steps - before
    done.set()
    counter.join()
    assert elapsed > 0.02, f"forward too short ({elapsed:.3f} s) to tell"
    assert during > MIN_COUNTER_STEPS, f"counter made {during} steps during a {elapsed:.3f} s forward"


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_propagate(small_model, value):
    x = pixels(2)
    x[0, 1, 3, 4] = value
    out = small_model(x, output_hidden_states=True, output_attentions=True)
    assert not np.isfinite(out.logits[0]).any() or np.isnan(out.logits[0]).any()
    assert np.isnan(out.last_hidden_state[0]).any()
    np.testing.assert_array_equal(out.logits[1], small_model(x[1:]).logits[0])  # rows stay independent


def test_all_nan_batch_does_not_crash(small_model):
    out = small_model(np.full((3, 3, 30, 30), np.nan, np.float32))
    assert np.isnan(out.logits).all()


def test_huge_finite_pixels(small_model):
    out = small_model(np.full((1, 3, 30, 30), np.finfo(np.float32).max, np.float32))
    assert out.logits.shape == (1, 10)  # values may overflow to inf/nan; the point is no crash


def test_zero_size_batch(small_model):
    out = small_model(np.empty((0, 3, 30, 30), np.float32), output_hidden_states=True, output_attentions=True)
    assert out.logits.shape == (0, 10)
    assert out.last_hidden_state.shape == (0, 226, 32)
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (0, 226, 32)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (0, 4, 226, 226)


def test_batch_too_large_for_memory_raises_memory_error(small_model):
    """A batch whose outputs/workspace exceed the address space: MemoryError, not a crash. The input is
    a zero-stride view, so only vitc's own allocations are huge."""
    b = 1 << 40
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape=(b, 3, 30, 30), strides=(0, 0, 0, 0))
    with pytest.raises(MemoryError):
        small_model(x)
    assert small_model(pixels(1)).logits.shape == (1, 10)  # still usable afterwards


def test_workspace_too_large_raises_memory_error(small_model):
    """Same when only the workspace is too large (outputs fit): the failure is in the C model's
    allocation of its working memory."""
    from vitc import _core

    _core._set_workspace_limit(1)  # every workspace is refused, as a huge one would be
    try:
        with pytest.raises(MemoryError, match="working memory"):
            small_model(pixels(1))
    finally:
        _core._set_workspace_limit(None)
