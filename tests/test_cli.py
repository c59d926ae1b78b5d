"""The ``vitc`` command: predict, convert, info; user errors as one line with status 1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from factories import make_checkpoint
from PIL import Image

import vitc
from vitc.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = vitc.sample_images()
SAMPLE_NAME = re.compile(r"digit_(\d)_\d+\.png")


DEFAULT_MODEL_NOTE = (
    "vitc predict: no --model given: using vitc's embedded MNIST digits model (10 classes, 28x28 digits); "
    "pass --model (a .vitc file, Hugging Face folder or hub ID) for your own"
)


def true_label(path: str | Path) -> str:
    return f"digit {SAMPLE_NAME.fullmatch(Path(path).name).group(1)}"


def parse_text(out: str) -> dict[str, list[tuple[str, float]]]:
    """``vitc predict`` text output -> {image: [(label, probability), ...]}."""
    result: dict[str, list[tuple[str, float]]] = {}
    current = None
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line
            result[current] = []
        else:
            pct, label = line.strip().split("%", 1)
            result[current].append((label.strip(), float(pct) / 100))
    return result


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc: int, err: str, *words: str) -> None:
    """Status 1, exactly one line on stderr, no traceback, and the line says what went wrong."""
    assert rc == 1
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and err.startswith("vitc")
    for w in words:
        assert w in err, err


# ---------------------------------------------------------------------------------------------
# predict


def test_predict_samples_with_the_default_model(capsys) -> None:
    rc, out, err = run(capsys, "predict")
    assert rc == 0 and err == ""
    preds = parse_text(out)
    assert list(preds) == [str(p) for p in SAMPLES]
    for image, pairs in preds.items():
        assert len(pairs) == 5
        assert pairs[0][0] == true_label(image)
        probs = [p for _, p in pairs]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_predict_top_k(capsys) -> None:
    rc, out, _ = run(capsys, "predict", "--top-k", "3", str(SAMPLES[2]), str(SAMPLES[7]))
    assert rc == 0
    preds = parse_text(out)
    assert list(preds) == [str(SAMPLES[2]), str(SAMPLES[7])]
    assert all(len(pairs) == 3 for pairs in preds.values())
    assert [pairs[0][0] for pairs in preds.values()] == ["digit 2", "digit 7"]


def json_lines(out: str) -> list[dict]:
    """``vitc predict --json`` output: one JSON record per line."""
    assert out.endswith("\n")
    return [json.loads(line) for line in out.splitlines()]


def test_predict_json(capsys) -> None:
    rc, out, _ = run(capsys, "predict", "--json", "-k", "2", "--batch-size", "3")
    assert rc == 0
    records = json_lines(out)
    assert [r["image"] for r in records] == [str(p) for p in SAMPLES]
    for r in records:
        assert len(r["predictions"]) == 2
        assert set(r["predictions"][0]) == {"label", "probability"}
        assert r["predictions"][0]["label"] == true_label(r["image"])
        assert r["predictions"][0]["probability"] >= r["predictions"][1]["probability"]


def test_predict_matches_the_python_api(capsys) -> None:
    rc, out, _ = run(capsys, "predict", "--json", "--top-k", "10", *map(str, SAMPLES[:3]))
    assert rc == 0
    api = vitc.load_default_model().predict(SAMPLES[:3], top_k=10)
    assert [[(p["label"], p["probability"]) for p in r["predictions"]] for r in json_lines(out)] == api


def test_predict_with_a_model_folder(tmp_path, capsys) -> None:
    make_checkpoint(tmp_path / "hf")
    image = tmp_path / "gray.png"
    Image.new("RGB", (45, 30), (90, 120, 200)).save(image)
    rc, out, _ = run(capsys, "predict", "--model", str(tmp_path / "hf"), str(image), "-k", "3")
    assert rc == 0
    (pairs,) = parse_text(out).values()
    assert len(pairs) == 3 and all(label.startswith("LABEL_") for label, _ in pairs)


def test_predict_explain_writes_one_png_per_image(tmp_path, capsys) -> None:
    # two images with the same file name in different folders still get a PNG each
    twin = tmp_path / "other" / SAMPLES[0].name
    twin.parent.mkdir()
    twin.write_bytes(SAMPLES[0].read_bytes())
    images = [str(p) for p in SAMPLES[:3]] + [str(twin)]
    out_dir = tmp_path / "maps" / "nested"
    rc, out, _ = run(capsys, "predict", "--explain", str(out_dir), *images)
    assert rc == 0 and len(parse_text(out)) == 4
    pngs = sorted(out_dir.iterdir())
    assert len(pngs) == 4 and all(p.suffix == ".png" for p in pngs)
    assert not list(out_dir.glob("*.tmp"))
    for png in pngs:
        with Image.open(png) as img:
            assert img.format == "PNG" and img.mode == "RGB"
            # 28x28 digits are enlarged 9x (to ~256 px), with a 24 px title band above
            assert img.size == (252, 252 + 24)


def test_predict_progress_bar_on_a_terminal(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    rc, out, err = run(capsys, "predict", "--batch-size", "1")
    assert rc == 0 and len(parse_text(out)) == len(SAMPLES)
    assert "predict" in err and f"{len(SAMPLES)}/{len(SAMPLES)}" in err


def test_predict_explain_progress_bar_on_a_terminal(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    rc, out, err = run(capsys, "predict", "--explain", str(tmp_path / "maps"))
    assert rc == 0 and len(parse_text(out)) == len(SAMPLES) == len(list((tmp_path / "maps").iterdir()))
    assert "explain" in err and f"{len(SAMPLES)}/{len(SAMPLES)}" in err
    # few images, or not a terminal: no bar
    rc, _, err = run(capsys, "predict", "--explain", str(tmp_path / "few"), *map(str, SAMPLES[:2]))
    assert rc == 0 and err.splitlines() == [DEFAULT_MODEL_NOTE]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    rc, _, err = run(capsys, "predict", "--explain", str(tmp_path / "pipe"))
    assert rc == 0 and err == ""


def test_python_m_vitc_predict() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vitc", "predict", "--top-k", "1"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # not a terminal: no progress bar
    preds = parse_text(proc.stdout)
    assert len(preds) == len(SAMPLES)
    assert all(pairs[0][0] == true_label(image) for image, pairs in preds.items())


class _ClosedPipe:
    """A stdout whose reader has gone away: the write end of a pipe with its read end closed."""

    def __init__(self) -> None:
        read_end, self.fd = os.pipe()
        os.close(read_end)

    def fileno(self) -> int:
        return self.fd

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["predict"], ["predict", "--json"], ["info"], ["info", "--json"], []])
def test_closed_stdout_ends_quietly(capsys, monkeypatch, argv) -> None:
    """vitc predict | head -2: no "error: [Errno 32] Broken pipe", status 141 (128 + SIGPIPE)."""
    pipe = _ClosedPipe()
    monkeypatch.setattr(sys, "stdout", pipe)
    monkeypatch.setattr("vitc.cli._silence_stdout", lambda: None)  # keep pytest's own descriptor 1
    try:
        assert main(argv) == 141
    finally:
        os.close(pipe.fd)
    assert capsys.readouterr().err == ""


def test_broken_pipe_elsewhere_is_an_error(capsys, monkeypatch) -> None:
    """A BrokenPipeError that is not stdout's (a worker's pipe, a socket) is reported, not hidden."""

    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("vitc.predict.iter_predictions", broken)
    assert main(["predict"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vitc predict: error: ") and "Broken pipe" in err and err.count("\n") == 1


def test_python_m_vitc_into_a_closed_pipe() -> None:
    """The real thing: the read end is closed before vitc writes, so every write fails with EPIPE,
    including the interpreter's final flush of whatever is still buffered."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vitc", "predict"], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == ""


def test_python_m_vitc_user_error(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vitc", "predict", "--model", str(tmp_path / "no-such-model.vitc")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout == ""
    assert_user_error(proc.returncode, proc.stderr, "model not found", "no-such-model.vitc")


# ---------------------------------------------------------------------------------------------
# convert, info


def test_convert_then_info(tmp_path, capsys) -> None:
    hf_model = make_checkpoint(tmp_path / "hf", num_labels=7)
    dst = tmp_path / "tiny.vitc"
    rc, out, err = run(capsys, "convert", str(tmp_path / "hf"), str(dst))
    assert rc == 0 and dst.is_file() and out.startswith(f"wrote {dst}")
    n_params = sum(p.numel() for p in hf_model.parameters())

    rc, out, _ = run(capsys, "info", str(dst))
    assert rc == 0
    assert out.startswith(f"ViTForImageClassification at {dst}")
    assert f"parameters {n_params:,}" in out
    assert "image 30x30, patch 2, hidden 32, 2 layers, 4 heads" in out and "labels 7" in out

    rc, out, _ = run(capsys, "info", str(dst), "--json")
    info = json.loads(out)
    assert rc == 0 and info["parameters"] == n_params and info["num_labels"] == 7
    assert info["labels"] == [hf_model.config.id2label[i] for i in range(7)]

    # the converted file predicts like the folder it came from
    image = str(SAMPLES[5])
    from_file = run(capsys, "predict", "-m", str(dst), image)
    from_folder = run(capsys, "predict", "-m", str(tmp_path / "hf"), image)
    assert from_file == from_folder and from_file[0] == 0


def test_info_default_model(capsys) -> None:
    rc, out, _ = run(capsys, "info")
    model = vitc.load_default_model()
    assert rc == 0 and f"parameters {model.num_parameters():,}" in out and "digit 0" in out


def test_info_json_lists_every_label(capsys) -> None:
    rc, out, _ = run(capsys, "info", "--json")
    info = json.loads(out)
    assert rc == 0
    assert info["labels"] == [f"digit {d}" for d in range(10)]  # all of them, in class-id order
    assert info["labels_preview"] == info["labels"][:5]
    assert info["num_labels"] == len(info["labels"])


# ---------------------------------------------------------------------------------------------
# user errors and help


def test_user_errors_are_one_line(tmp_path, capsys) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["predict", "--model", str(tmp_path / "missing.vitc"), str(SAMPLES[0])], "model not found"),
        (["predict", "--top-k", "0"], "--top-k"),
        (["predict", "--top-k", "-3"], "--top-k"),
        (["predict", "--top-k", "three"], "--top-k"),
        (["predict", "--batch-size", "0"], "--batch-size"),
        (["predict", "--explain", str(a_file)], "not a directory"),
        (["predict", "--explain", str(a_file / "maps")], f"--explain: not a directory: {a_file} (cannot create"),
        (["predict", "--explain", str(a_file / "a" / "b"), str(SAMPLES[0])], "not a directory"),
        (["predict", "--model", str(tmp_path / "nope.vitc")], "model not found: "),
        (["convert", str(vitc.default_model.DEFAULT_MODEL_PATH), str(tmp_path / "out")], ": already a vitc file"),
        (["predict", "--no-such-option"], "unrecognized arguments"),
        (["predict", "--model", str(a_file), str(SAMPLES[0])], "config.json"),
        (["convert", str(tmp_path / "missing"), str(tmp_path / "out.vitc")], "source not found"),
        (["info", str(tmp_path / "missing.vitc")], "model not found"),
        (["info", str(a_file)], "config.json"),
        (["--threads", "zero", "info"], "--threads"),
        (["no-such-command"], "invalid choice"),
    ]
    for argv, words in cases:
        rc, out, err = run(capsys, *argv)
        assert out == "", argv
        assert_user_error(rc, err, words)


def test_model_is_checked_before_images(tmp_path, capsys) -> None:
    """A mistyped --model is the error to report, not the missing images that follow from it."""
    rc, out, err = run(capsys, "predict", "--model", str(tmp_path / "nope.vitc"))
    assert out == "" and "no images" not in err
    assert_user_error(rc, err, "model not found", "nope.vitc")


def test_errors_from_the_library_become_one_line(tmp_path, capsys, monkeypatch) -> None:
    """Multi-line messages are joined and OSErrors lose their '[Errno N]' prefix."""
    src = tmp_path / "hf"
    src.mkdir()  # the CLI only checks that the source exists before calling vitc.convert
    failures = [
        (ValueError("first line\n  second line\n"), "vitc convert: error: first line; second line\n"),
        (NotADirectoryError(20, "Not a directory", "a/b"), "vitc convert: error: Not a directory: a/b\n"),
        (PermissionError(13, "Permission denied"), "vitc convert: error: Permission denied\n"),
    ]
    for exc, expected in failures:

        def fail(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr(vitc, "convert", fail)
        rc, out, err = run(capsys, "convert", str(src), str(tmp_path / "out.vitc"))
        assert_user_error(rc, err)
        assert err == expected and "Errno" not in err


@pytest.mark.parametrize("command", ["predict", "convert", "info", "eval"])
def test_help_shows_examples(capsys, command) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: vitc {command}")
    assert "examples:" in out and f"  vitc {command} " in out


def test_top_level_help(capsys) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("predict", "convert", "info", "eval", "bench"):
        assert command in out
    assert "examples:" in out
    examples = out.split("examples:")[1]
    for command in ("predict", "convert", "info"):
        assert f"  vitc {command} " in examples
    assert "vitc --threads 4 predict" in examples
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out == out


def test_option_help_explains_with_examples(capsys) -> None:
    main([])
    top = " ".join(capsys.readouterr().out.split())  # argparse wraps help text
    assert "--threads THREADS threads for vitc and its BLAS" in top and "e.g. 'vitc --threads 4 predict" in top
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    predict = " ".join(capsys.readouterr().out.split())
    assert '{"image": PATH, "predictions": [{"label": LABEL, "probability": P}, ...]}' in predict
    with pytest.raises(SystemExit):
        main(["info", "--help"])
    info = " ".join(capsys.readouterr().out.split())
    assert "labels (all, in class-id order)" in info


def test_bench_help_reaches_the_benchmark_suite() -> None:
    """``vitc bench --help`` is passed to vitc/bench/run.py (argparse would otherwise swallow it)."""
    proc = subprocess.run(
        [sys.executable, "-m", "vitc", "bench", "--help"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: vitc bench") and "--engines" in proc.stdout


def test_bench_from_the_console_script(tmp_path) -> None:
    """The ``vitc`` console script (not python -m, which adds the current folder to sys.path) runs the
    suite from any folder: it is part of the package (vitc/bench/)."""
    script = Path(sys.executable).parent / "vitc"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(script), "bench", "--help"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: vitc bench") and "--engines" in proc.stdout


# ---------------------------------------------------------------------------------------------
# predict over many images: streamed, per-image errors, Ctrl-C (issue 15)


def unreadable_images(tmp_path: Path) -> dict[str, str]:
    """{path: kind} of images vitc cannot read."""
    text = tmp_path / "notes.png"
    text.write_text("hello")
    cut = tmp_path / "cut.png"
    cut.write_bytes(SAMPLES[0].read_bytes()[:70])
    (tmp_path / "folder.jpg").mkdir()
    return {
        str(tmp_path / "missing.png"): "missing",
        str(text): "not_an_image",
        str(cut): "corrupt",
        str(tmp_path / "folder.jpg"): "unreadable",
    }


@pytest.mark.parametrize("as_json", [False, True])
def test_predict_reports_each_unreadable_image_and_goes_on(tmp_path, capsys, as_json) -> None:
    bad = unreadable_images(tmp_path)
    good = [str(p) for p in SAMPLES[:3]]
    images = [good[0], *bad, good[1], good[2]]
    rc, out, err = run(capsys, "predict", *(["--json"] if as_json else []), "-b", "2", "-k", "2", *images)
    assert rc == 1 and "Traceback" not in err
    printed = [r["image"] for r in json_lines(out)] if as_json else list(parse_text(out))
    assert printed == good  # the good ones, in order
    lines = err.splitlines()
    assert lines[0] == DEFAULT_MODEL_NOTE
    prefixes = [f"vitc predict: error: {kind}: cannot read image '{path}': " for path, kind in bad.items()]
    assert len(lines) == 2 + len(bad) and all(map(str.startswith, lines[1:-1], prefixes))
    assert lines[1].endswith("file not found") and lines[4].endswith("it is a directory")
    assert lines[-1] == (
        "vitc predict: 4 of 7 images could not be read (1 missing, 1 unreadable, 1 not_an_image, 1 corrupt); "
        "3 predicted"
    )
    # every image unreadable: nothing on stdout, status 1, still no traceback
    rc, out, err = run(capsys, "predict", "--model", str(vitc.default_model.DEFAULT_MODEL_PATH), *bad)
    assert rc == 1 and out == "" and err.count("vitc predict: error: ") == 4 and "Traceback" not in err


def test_predict_says_when_it_uses_the_embedded_model(tmp_path, capsys) -> None:
    rc, out, err = run(capsys, "predict", str(SAMPLES[0]))
    assert rc == 0 and err.splitlines() == [DEFAULT_MODEL_NOTE]
    rc, out, err = run(capsys, "predict", "--model", str(vitc.default_model.DEFAULT_MODEL_PATH), str(SAMPLES[0]))
    assert rc == 0 and err == ""
    rc, out, err = run(capsys, "predict")  # the demo: the sample digits belong to the embedded model
    assert rc == 0 and err == ""


def test_predict_help_explains_streaming_and_exit_status(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 every image predicted; 1 some image could not be read" in text
    assert "130 interrupted" in text and "JSON lines" in text and "as each batch finishes" in text


# `vitc predict` in a child whose forward sleeps: results come out batch by batch.
SLOW_PREDICT_CHILD = """
import sys, time, vitc.cli, vitc.model
forward = vitc.model.ViT.__call__
def slow_forward(self, *args, **kwargs):
    time.sleep(0.3)
    return forward(self, *args, **kwargs)
vitc.model.ViT.__call__ = slow_forward
sys.exit(vitc.cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_keeps_every_result_already_printed(as_json) -> None:
    """SIGINT after the first batch: what was printed is whole, parses and is the start of the input."""
    import select
    import signal
    import time

    images = [str(p) for p in SAMPLES] * 4  # 40 images, 20 batches of 2: ~6 s
    argv = ["predict", "-b", "2", "-k", "2", *(["--json"] if as_json else []), *images]
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_PREDICT_CHILD, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        first = b""
        while not first.endswith(b"\n"):  # the first result, printed while later batches still run
            assert time.monotonic() < deadline, "no result printed in 120 s"
            ready, _, _ = select.select([child.stdout], [], [], 1.0)
            if ready:
                first += os.read(child.stdout.fileno(), 1)
            assert child.poll() is None, child.stderr.read().decode()
        child.send_signal(signal.SIGINT)
        rest, err = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
    out, err = (first + rest).decode(), err.decode()
    assert child.returncode == 130, err
    assert "Traceback" not in err and err.rstrip().endswith("vitc predict: interrupted")
    assert out.endswith("\n")
    if as_json:
        printed = [r["image"] for r in json_lines(out)]
        assert all(len(r["predictions"]) == 2 for r in json_lines(out))
    else:
        parsed = parse_text(out)
        printed = list(parsed)
        assert all(len(pairs) == 2 for pairs in parsed.values())
    assert 1 <= len(printed) < len(images) and printed == images[: len(printed)]
