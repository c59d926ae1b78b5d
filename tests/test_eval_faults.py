"""vitc eval never loses a user's work, never gets stuck, never corrupts its output (issue 15).

Per-image errors with a kind, one writer per output (and none left stuck by a killed run), damaged
or edited outputs refused with their file and line, interrupted runs that resume to the clean
result, dataset folders with symlink loops and duplicates, the messages a new user meets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from eval_factory import write_corrupt, write_image_folder
from factories import make_checkpoint

import vitc
from vitc.cli import main as vitc_main
from vitc.eval import evaluate, merge
from vitc.eval.dataset import load_dataset
from vitc.eval.output import OutputFileError, OutputInUseError, OutputLock, parse_output, read_output

PROB_ATOL = 2e-6
FRUITS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi", "lemon", "mango"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    make_checkpoint(folder)
    return folder


@pytest.fixture(scope="module")
def model(model_dir) -> vitc.ViT:
    return vitc.ViT.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """10 class folders (sorted order = class index), 2 or 3 images each, 25 images."""
    root = tmp_path_factory.mktemp("data") / "val"
    return write_image_folder(root, {name: 2 + (i % 2) for i, name in enumerate(FRUITS)})


@pytest.fixture(scope="module")
def clean(model, folder, tmp_path_factory) -> tuple[Path, dict]:
    """A complete output of ``folder`` and its result (without timing)."""
    out = tmp_path_factory.mktemp("clean") / "full.jsonl"
    return out, without_timing(evaluate(model, folder, batch_size=4, output=out, progress=False))


def without_timing(result) -> dict:
    d = result.to_dict(confusion_matrix=True)
    d.pop("seconds"), d.pop("images_per_second")
    return d


def same_records(a: Path, b: Path) -> None:
    ra = {r["index"]: r for r in read_output(a)[1]}
    rb = {r["index"]: r for r in read_output(b)[1]}
    assert sorted(ra) == sorted(rb)
    for i, x in ra.items():
        y = rb[i]
        assert (x["path"], x["label"], x.get("topk"), x.get("error"), x.get("kind")) == (
            y["path"], y["label"], y.get("topk"), y.get("error"), y.get("kind")
        )
        if "probs" in x:
            np.testing.assert_allclose(x["probs"], y["probs"], atol=PROB_ATOL)


# ---- per-image errors ----------------------------------------------------------------------------


def test_error_records_have_a_kind_and_are_counted_by_kind(model, tmp_path, capsys, model_dir):
    root = write_image_folder(tmp_path / "val", {"LABEL_1": 3, "LABEL_4": 2})
    write_corrupt(root / "LABEL_1" / "broken.png")
    (root / "LABEL_4" / "text.jpg").write_text("not a jpeg")
    (root / "LABEL_4" / "empty.png").write_bytes(b"")
    (root / "LABEL_4" / "folder.png").mkdir()  # a folder is walked, not an image: nothing in it
    (root / "LABEL_1" / "gone.png").symlink_to(tmp_path / "nowhere.png")  # a broken symlink: missing
    out = tmp_path / "o.jsonl"
    result = evaluate(model, root, batch_size=2, output=out, progress=False)
    assert (result.total, result.evaluated, result.corrupt) == (9, 5, 4)
    assert result.errors_by_kind == {"missing": 1, "not_an_image": 1, "corrupt": 2}
    kinds = {r["path"]: r["kind"] for r in read_output(out)[1] if "error" in r}
    assert kinds == {
        "LABEL_1/broken.png": "corrupt",
        "LABEL_1/gone.png": "missing",
        "LABEL_4/empty.png": "corrupt",
        "LABEL_4/text.jpg": "not_an_image",
    }
    assert "file not found" in result.corrupt_files["LABEL_1/gone.png"]  # missing is missing
    assert "9 images: 5 evaluated, 4 corrupt (by kind: missing 1, not_an_image 1, corrupt 2)" in result.summary()
    assert result.to_dict()["errors_by_kind"] == result.errors_by_kind
    # the command line prints the counts by kind too, and exits 0: bad images are not fatal
    assert vitc_main(["eval", "-m", str(model_dir), str(root), "--no-progress"]) == 0
    assert "(by kind: missing 1, not_an_image 1, corrupt 2)" in capsys.readouterr().out


def test_a_file_that_breaks_the_decoder_never_aborts_the_run_or_its_resume(model, folder, tmp_path, monkeypatch):
    """An exception no one classified (AttributeError, struct.error from a strange file) is one error
    record of kind corrupt; the run, and every resume of it, goes on."""
    import struct

    from vitc.preprocess import ImageProcessor

    strange = next(folder.rglob("*.png"))
    real = ImageProcessor.try_preprocess_one

    def buggy(self, image, pipeline=False):
        if str(image) == str(strange):
            raise struct.error("unpack requires a buffer of 4 bytes")
        return real(self, image, pipeline)

    monkeypatch.setattr(ImageProcessor, "try_preprocess_one", buggy)
    out = tmp_path / "o.jsonl"
    for cut in (False, True):  # the run, then its resume from a cut-short output
        if cut:
            out.write_text("".join(out.read_text().splitlines(keepends=True)[:5]))
        result = evaluate(model, folder, batch_size=4, output=out, progress=False)
        assert (result.evaluated, result.corrupt, result.errors_by_kind) == (24, 1, {"corrupt": 1})
    (record,) = [r for r in read_output(out)[1] if "error" in r]
    assert "(struct.error: unpack requires" in record["error"] and record["kind"] == "corrupt"


def test_images_of_another_size_are_errors_not_the_end_of_the_run(tmp_path):
    """A preprocessing that does not resize (do_resize false) leaves other-sized images: each is an
    error record of kind unsupported, and images of the model's size are evaluated."""
    from factories import PREPROCESSOR
    from PIL import Image

    make_checkpoint(tmp_path / "m")
    (tmp_path / "m" / "preprocessor_config.json").write_text(json.dumps({**PREPROCESSOR, "do_resize": False}))
    m = vitc.ViT.from_pretrained(tmp_path / "m")
    root = tmp_path / "val" / "LABEL_0"
    root.mkdir(parents=True)
    Image.new("RGB", (30, 30), (10, 20, 30)).save(root / "a.png")
    Image.new("RGB", (40, 20), (10, 20, 30)).save(root / "b.png")
    result = evaluate(m, tmp_path / "val", batch_size=2, progress=False)
    assert (result.evaluated, result.errors_by_kind) == (1, {"unsupported": 1})
    assert "the model takes 3x30x30" in result.corrupt_files["LABEL_0/b.png"]


class HugeModel:
    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, pixel_values, **kwargs):
        if len(pixel_values) > 1:  # the fingerprint's one probe image still runs
            np.empty((len(pixel_values), 2**40), dtype=np.float32)
        return self._model(pixel_values, **kwargs)


def test_a_batch_that_does_not_fit_names_its_size(model, folder):
    with pytest.raises(MemoryError, match=r"evaluate: out of memory for a batch of 4 images: it needs .*GiB.*"
                       r"lower the batch size \(batch_size=, --batch-size"):
        evaluate(HugeModel(model), folder, batch_size=4, progress=False)


# ---- one writer per output -----------------------------------------------------------------------

# `vitc eval` in a child whose forward sleeps: a run that lasts long enough to be met mid-way.
SLOW_EVAL_CHILD = """
import sys, time, vitc.cli, vitc.model
forward = vitc.model.ViT.__call__
def slow_forward(self, *args, **kwargs):
    time.sleep(0.05)
    return forward(self, *args, **kwargs)
vitc.model.ViT.__call__ = slow_forward
sys.exit(vitc.cli.main(sys.argv[1:]))
"""


def start_slow_eval(argv: list[str], err_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_EVAL_CHILD, *argv], stdout=subprocess.DEVNULL, stderr=open(err_path, "wb")
    )


def wait_for_records(child: subprocess.Popen, out: Path, n: int, err_path: Path) -> None:
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_bytes().count(b"\n") >= 1 + n):
        assert child.poll() is None, err_path.read_text()
        assert time.monotonic() < deadline, f"the child wrote no {n} records in 120 s"
        time.sleep(0.01)


def test_a_second_writer_is_refused_and_a_killed_one_leaves_nothing_stuck(model_dir, model, folder, clean, tmp_path,
                                                                          capsys):
    out = tmp_path / "out.jsonl"
    argv = ["eval", "-m", str(model_dir), str(folder), "-b", "1", "-o", str(out), "--no-progress"]
    err_path = tmp_path / "child.err"
    child = start_slow_eval(argv, err_path)
    try:
        wait_for_records(child, out, 3, err_path)
        # the command line: one line naming the other run, status 1, the output untouched
        before = out.read_bytes()
        assert vitc_main(argv) == 1
        err = capsys.readouterr().err
        assert err.splitlines()[-1] == (
            f"vitc eval: error: {out}: another evaluation (pid {child.pid}) is writing this output; wait for it "
            "to finish, or give this run another output file (-o / output=)"
        )
        assert out.read_bytes().startswith(before)  # only the other run's appends
        # the Python API, and a merge into that output, are refused the same way
        with pytest.raises(OutputInUseError, match=f"pid {child.pid}"):
            evaluate(model, folder, output=out, progress=False)
        with pytest.raises(OutputInUseError):
            merge([clean[0]], output=out)
        os.kill(child.pid, signal.SIGKILL)  # a crash: the kernel drops its lock
        child.wait()
    finally:
        child.kill()
        child.wait()
    assert (tmp_path / "out.jsonl.lock").exists()  # a dead run's file ...
    resumed = evaluate(model, folder, batch_size=4, output=out, progress=False)  # ... is no lock
    assert without_timing(resumed) == clean[1]
    same_records(out, clean[0])
    assert sorted(os.listdir(tmp_path)) == ["child.err", "out.jsonl"]  # the lock file is gone too


def test_output_lock_within_one_process(tmp_path):
    out = tmp_path / "o.jsonl"
    with OutputLock(out):
        with pytest.raises(OutputInUseError, match=rf"pid {os.getpid()}"):
            OutputLock(out).acquire()
    with OutputLock(out):  # released: taken again
        pass
    assert os.listdir(tmp_path) == []


# ---- damaged or edited outputs -------------------------------------------------------------------


def _edit(line_no: int, fn):
    def damage(lines: list[str]) -> list[str]:
        lines[line_no - 1] = fn(lines[line_no - 1])
        return lines

    return damage


def _record(line_no: int, fn):
    def change(text: str) -> str:
        r = json.loads(text)
        fn(r)
        return json.dumps(r) + "\n"

    return _edit(line_no, change)


DAMAGE = {
    "a non-JSON line": (_edit(6, lambda _: "garbage\n"), 6, "expected a JSON line, found unparsable text"),
    "a line cut but its newline kept": (_edit(7, lambda t: t[:20] + "\n"), 7, "expected a JSON line"),
    "bytes that are not UTF-8": (_edit(3, lambda _: "\udcff\udcfe\n"), 3, "expected a JSON line"),
    "a label of -1": (_record(4, lambda r: r.update(label=-1)), 4, r"label -1 out of range \[0, 10\)"),
    "a label of num_labels": (_record(4, lambda r: r.update(label=10)), 4, r"label 10 out of range \[0, 10\)"),
    "a label of the wrong type": (_record(5, lambda r: r.update(label="3")), 5, "'label': expected an int"),
    "an index of the wrong type": (_record(5, lambda r: r.update(index=2.0)), 5, "'index': expected an int"),
    "an index past the dataset": (_record(5, lambda r: r.update(index=25)), 5, r"index 25 out of range \[0, 25\)"),
    "a missing key": (_record(8, lambda r: r.pop("path")), 8, "an image record without 'path'"),
    "a class out of range": (_record(9, lambda r: r["topk"].__setitem__(0, 10)), 9, "'topk': expected at least 5"),
    "a probability out of range": (_record(9, lambda r: r["probs"].__setitem__(0, 1.5)), 9, "'probs': expected 5"),
    "a record that is not an object": (_edit(9, lambda _: "[1, 2]\n"), 9, "found list"),
    "an error record with predictions": (_record(9, lambda r: r.update(error="x")), 9, "an error record has"),
    "an unknown error kind": (_record(9, lambda r: r.update(error="x", kind="cosmic", topk=None) or r.pop("topk")
                                      or r.pop("probs")), 9, "'kind': expected one of"),
    "a duplicated image": (lambda ls: ls[:10] + [ls[4]] + ls[10:], 11, "is recorded twice, first on line 5"),
    "a header without num_labels": (_record(1, lambda h: h.pop("num_labels")), 1, "header field 'num_labels'"),
    "a header with labels of the wrong type": (_record(1, lambda h: h.update(labels="x")), 1, "header field 'labels'"),
    "a header with a bad shard": (_record(1, lambda h: h.update(shard=[2, 2])), 1, "header field 'shard'"),
    "another format version": (_record(1, lambda h: h.update(vitc_eval=99)), 1, "expected output format 1, found 99"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_output_is_refused_with_file_line_and_what_is_wrong(model, folder, clean, tmp_path, case):
    damage, line_no, message = DAMAGE[case]
    lines = clean[0].read_text(encoding="utf-8").splitlines(keepends=True)
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes("".join(damage(lines)).encode("utf-8", "surrogateescape"))
    before = damaged.read_bytes()
    pattern = rf"{damaged}:{line_no}: .*{message}"
    with pytest.raises(OutputFileError, match=pattern):
        evaluate(model, folder, output=damaged, progress=False)  # resume
    with pytest.raises(OutputFileError, match=pattern):
        merge([damaged])
    with pytest.raises(ValueError, match=pattern):
        read_output(damaged)
    assert damaged.read_bytes() == before  # a refused file is left as it was
    assert sorted(os.listdir(tmp_path)) == ["damaged.jsonl"]


def test_a_damaged_output_is_one_line_on_the_command_line(model_dir, folder, clean, tmp_path, capsys):
    lines = clean[0].read_text().splitlines(keepends=True)
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("".join(DAMAGE["a label of -1"][0](lines)))
    for argv in (["-m", str(model_dir), str(folder), "-o", str(damaged)], ["--merge", str(damaged)]):
        assert vitc_main(["eval", *argv, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"vitc eval: error: {damaged}:4: label -1 out of range [0, 10)")


def test_a_header_of_another_run_is_refused_on_resume_and_merge(model, folder, clean, tmp_path):
    h, records, _ = read_output(clean[0])
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps(x) + "\n" for x in [{**h, "labels": [f"x{i}" for i in range(10)]}, *records]))
    with pytest.raises(ValueError, match=r"cannot resume: this run has labels="):
        evaluate(model, folder, output=other, progress=False)
    with pytest.raises(ValueError, match="cannot merge with .*: labels is"):
        merge([clean[0], other])


def test_an_incomplete_last_line_is_dropped_with_a_note_and_recomputed(model, folder, clean, tmp_path):
    data = clean[0].read_bytes()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(data[: data.rfind(b"\n", 0, len(data) - 1) + 40])  # the last line, half written
    assert parse_output(cut).partial_line == 26
    with pytest.warns(UserWarning, match=r"cut.jsonl:26: dropped an incomplete last line .*evaluated again"):
        resumed = evaluate(model, folder, output=cut, progress=False)
    assert without_timing(resumed) == clean[1]
    same_records(cut, clean[0])
    cut.write_bytes(data[: data.rfind(b"\n", 0, len(data) - 1) + 40])
    with (
        pytest.warns(UserWarning, match="cut.jsonl:26: dropped an incomplete last line.*counts as not evaluated"),
        pytest.warns(UserWarning, match="1 images of the given shards not evaluated"),
    ):
        assert merge([cut]).missing == 1
    # a header cut short: nothing to keep, the run starts over
    cut.write_bytes(data[:30])
    with pytest.warns(UserWarning, match="cut.jsonl:1: dropped"):
        assert without_timing(evaluate(model, folder, output=cut, progress=False)) == clean[1]


# ---- interrupted runs resume to the clean result -------------------------------------------------


def test_ctrl_c_leaves_an_output_that_resumes_to_the_clean_result(model_dir, model, folder, clean, tmp_path):
    out = tmp_path / "out.jsonl"
    argv = ["eval", "-m", str(model_dir), str(folder), "-b", "1", "-o", str(out), "--no-progress", "--json"]
    err_path = tmp_path / "child.err"
    child = start_slow_eval(argv, err_path)
    try:
        wait_for_records(child, out, 5, err_path)
        child.send_signal(signal.SIGINT)
        child.wait(timeout=120)
    finally:
        child.kill()
        child.wait()
    err = err_path.read_text()
    assert child.returncode == 130 and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"vitc eval: interrupted; {out} holds the images done: run the same command to resume"
    )
    assert parse_output(out).partial_line is None  # whole lines only: Ctrl-C is held while writing
    assert sorted(os.listdir(tmp_path)) == ["child.err", "out.jsonl"]  # no lock left behind
    done = len(read_output(out)[1])
    assert 5 <= done < 25
    assert without_timing(evaluate(model, folder, batch_size=3, output=out, progress=False)) == clean[1]
    same_records(out, clean[0])


# ---- dataset folders: links, loops, duplicates ---------------------------------------------------

WALK_CHILD = """
import json, sys, warnings
from vitc.eval.dataset import load_dataset
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    data = load_dataset(sys.argv[1], {i: f"LABEL_{i}" for i in range(10)})
print(json.dumps({"samples": [[s.key, s.label] for s in data.samples], "warnings": [str(w.message) for w in caught]}))
"""


def test_symlink_loops_end_and_each_file_counts_once(tmp_path):
    root = write_image_folder(tmp_path / "val", {"LABEL_1": 2, "LABEL_2": 1})
    a, b = root / "LABEL_1", root / "LABEL_2"
    write_image_folder(a / "sub", {"deep": 1})  # LABEL_1/sub/deep/000.png
    (a / "loop").symlink_to("..")  # the dataset root: a loop
    (a / "self").symlink_to(".")  # itself
    (a / "sub" / "deep" / "up").symlink_to("../..")  # the class folder again
    (a / "sub" / "deep" / "up2").symlink_to("../../..")  # two loops in one folder: 2^depth paths in os.walk
    (b / "dup.png").symlink_to(a / "000.png")  # a symlinked duplicate
    (b / "linked").symlink_to(a / "sub")  # a symlinked duplicate folder
    os.link(b / "000.png", b / "hard.png")  # a hard link: the same file
    (b / "other").symlink_to(tmp_path / "outside")  # a folder outside the tree, linked in
    write_image_folder(tmp_path / "outside", {"x": 1})
    proc = subprocess.run([sys.executable, "-c", WALK_CHILD, str(root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["samples"] == [
        ["LABEL_1/000.png", 1],
        ["LABEL_1/001.png", 1],
        ["LABEL_1/sub/deep/000.png", 1],
        ["LABEL_2/000.png", 2],
        ["LABEL_2/other/x/000.png", 2],
    ]
    folders, files = found["warnings"]
    assert "5 linked folders lead to a folder already walked (a symlink loop, or a second path" in folders
    assert "not walked again: 'LABEL_1/loop' ..." in folders
    assert "2 image files are reached by more than one path (symlinks or hard links) and counted once" in files
    assert "'LABEL_2/dup.png' is 'LABEL_1/000.png' ..." in files


def test_walk_order_and_keys_are_those_of_a_tree_without_links(folder):
    data = load_dataset(folder, {i: f"LABEL_{i}" for i in range(10)})
    assert [s.key for s in data.samples] == sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*.png")
    )


def test_a_list_file_that_is_a_fifo_is_refused_not_waited_on(model, tmp_path):
    import threading

    fifo = tmp_path / "list.txt"
    os.mkfifo(fifo)
    refused = threading.Event()

    def writer_after_a_while():  # so that a reader blocked on the FIFO fails the test instead of hanging it
        if not refused.wait(20):
            with open(fifo, "w"):
                pass

    threading.Thread(target=writer_after_a_while, daemon=True).start()
    try:
        with pytest.raises(ValueError, match="found a special file"):
            evaluate(model, fifo, progress=False)
    finally:
        refused.set()


# ---- what a new user meets -----------------------------------------------------------------------


def test_evaluate_takes_path_label_pairs_and_says_what_it_takes(model, folder, monkeypatch, tmp_path):
    paths = sorted(folder.rglob("*.png"))
    pairs = [(p, FRUITS.index(p.parent.name)) for p in paths]
    from_folder = evaluate(model, folder, progress=False)
    from_pairs = evaluate(model, pairs, progress=False)
    assert (from_pairs.top1, from_pairs.top5, from_pairs.evaluated) == (
        from_folder.top1, from_folder.top5, from_folder.evaluated
    )
    assert from_pairs.class_mapping == "list"
    by_name = evaluate(model, {str(p): f"LABEL_{FRUITS.index(p.parent.name)}" for p in paths}, progress=False)
    assert by_name.top1 == from_folder.top1
    monkeypatch.chdir(folder)
    out = tmp_path / "o.jsonl"
    evaluate(model, [("apple/000.png", 0), ("gone.png", 3)], output=out, progress=False)
    assert [r["path"] for r in read_output(out)[1]] == ["apple/000.png", "gone.png"]
    with pytest.raises(TypeError, match=r"dataset\[0\]: expected an \(image path, label\) pair, found 'a.png'"):
        evaluate(model, ["a.png", "b.png"], progress=False)
    with pytest.raises(TypeError, match="dataset: expected a folder .* or a list of \\(image path, label\\) pairs, "
                       "found int"):
        evaluate(model, 42, progress=False)
    with pytest.raises(ValueError, match=r"dataset\[1\]: expected a label index in \[0, 10\)"):
        evaluate(model, [("a.png", 1), ("b.png", 10)], progress=False)
    with pytest.raises(ValueError, match="label 'zebra' is not a label of the model"):
        evaluate(model, [("a.png", "zebra")], progress=False)
    with pytest.raises(ValueError, match=r"image 'a.png' is listed twice \(first at dataset\[0\]\)"):
        evaluate(model, [("a.png", 1), ("./a.png", 2)], progress=False)
    with pytest.raises(TypeError, match="model: expected a vitc.ViT, a path .* found int"):
        evaluate(3, folder, progress=False)


def test_vitc_eval_says_when_it_uses_the_embedded_model(tmp_path, capsys):
    from eval_factory import write_digit_folder

    root = write_digit_folder(tmp_path / "digits")
    assert vitc_main(["eval", str(root), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "vitc eval: no --model given: using vitc's embedded MNIST digits model (10 classes, 28x28 digits); "
        "pass --model (a .vitc file, Hugging Face folder or hub ID) for your own"
    ]


def test_vitc_eval_options_are_checked_as_options(model_dir, folder, capsys):
    for argv, words in [
        (["--batch-size", "0"], "--batch-size"),
        (["-k", "0"], "--top-k"),
        (["--workers", "-1", "--ray", "local"], "--workers"),
    ]:
        assert vitc_main(["eval", "-m", str(model_dir), str(folder), *argv]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and "expected a positive integer" in err


def test_merging_into_a_copy_leaves_the_shards_valid(model, folder, clean, tmp_path):
    shards = [tmp_path / f"s{i}.jsonl" for i in range(2)]
    for i, s in enumerate(shards):
        evaluate(model, folder, output=s, shard=(i, 2), progress=False)
    shutil.copy(shards[0], tmp_path / "copy.jsonl")
    merged = merge(shards, output=tmp_path / "all.jsonl")
    assert without_timing(merged) | {"seconds": None} == clean[1] | {"seconds": None}
    assert sorted(os.listdir(tmp_path)) == ["all.jsonl", "copy.jsonl", "s0.jsonl", "s1.jsonl"]


def test_list_files_and_pairs_read_each_file_once(model, tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 2})
    (root / "a" / "link.png").symlink_to("000.png")
    listing = tmp_path / "val.txt"
    listing.write_text("imgs/a/000.png\t1\nimgs/a/001.png\t2\nimgs/a/link.png\t3\n")
    with pytest.warns(UserWarning, match=r"1 listed image is another path to a file listed before .* line 3 "
                      r"'imgs/a/link.png' is 'imgs/a/000.png'"):
        data = load_dataset(listing, model.id2label)
    assert [(s.key, s.label) for s in data.samples] == [("imgs/a/000.png", 1), ("imgs/a/001.png", 2)]
    listing.write_text("imgs/a/000.png\t1\n./imgs/a/000.png\t1\n")
    with pytest.raises(ValueError, match=r"val.txt:2: image './imgs/a/000.png' is listed twice \(first on line 1\)"):
        load_dataset(listing, model.id2label)
    with pytest.warns(UserWarning, match=r"dataset\[1\] '.*link.png' is '.*000.png'"):
        data = load_dataset([(root / "a" / "000.png", 1), (root / "a" / "link.png", 1)], model.id2label)
    assert len(data.samples) == 1


def test_merge_takes_one_file_as_a_path(model, folder, clean):
    assert merge(clean[0]).evaluated == merge([clean[0]]).evaluated == 25
