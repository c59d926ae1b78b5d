"""vitc.evaluate (vitc/eval/): results equal what the model's own outputs give, outputs resume, shards merge."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from eval_factory import direct, topk, write_corrupt, write_image_folder
from factories import make_checkpoint
from sklearn.metrics import confusion_matrix, top_k_accuracy_score

import vitc
from vitc.cli import add_eval_parser
from vitc.cli import main as vitc_main
from vitc.eval import EvalResult, evaluate, merge
from vitc.eval.dataset import load_dataset, parse_shard, samples_digest
from vitc.eval.output import fingerprint_difference, model_fingerprint, read_output, write_output_atomic

NUM_LABELS = 10
# Probabilities are written with 7 decimals; batches of other sizes may differ in the last bits.
PROB_ATOL = 2e-6
FRUITS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi", "lemon", "mango"]
# Images the model runs for its fingerprint when an output file is written (one probe image).
PROBE_IMAGES = 1


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    make_checkpoint(folder)
    return folder


@pytest.fixture(scope="module")
def model(model_dir) -> vitc.ViT:
    return vitc.ViT.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> vitc.ViT:
    """Same labels and shapes as ``model``, other weights."""
    folder = tmp_path_factory.mktemp("other")
    make_checkpoint(folder, seed=7)
    return vitc.ViT.from_pretrained(folder)


@pytest.fixture(scope="module")
def named_model_dir(tmp_path_factory) -> Path:
    """A checkpoint whose labels are fruit names; 'kiwi' appears twice (as ImageNet repeats 'crane')."""
    folder = tmp_path_factory.mktemp("named")
    labels = FRUITS[:9] + ["kiwi"]
    make_checkpoint(
        folder, seed=1, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """10 class folders (sorted order = class index), 2 or 3 images each, 25 images."""
    root = tmp_path_factory.mktemp("data") / "val"
    return write_image_folder(root, {name: 2 + (i % 2) for i, name in enumerate(FRUITS)})


def ground_truth(root: Path, names: list[str]) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for i, name in enumerate(names):
        for p in sorted((root / name).glob("*.png")):
            paths.append(p)
            labels.append(i)
    return paths, np.asarray(labels)


def without_timing(result: EvalResult) -> dict:
    d = result.to_dict(confusion_matrix=True)
    d.pop("seconds")
    d.pop("images_per_second")
    return d


def records_by_index(path: Path) -> dict[int, dict]:
    _, records, _ = read_output(path)
    return {r["index"]: r for r in records}


def assert_same_records(a: dict[int, dict], b: dict[int, dict]) -> None:
    assert sorted(a) == sorted(b)
    for i, ra in a.items():
        rb = b[i]
        assert (ra["path"], ra["label"], ra.get("topk"), ra.get("error")) == (
            rb["path"],
            rb["label"],
            rb.get("topk"),
            rb.get("error"),
        )
        if "probs" in ra:
            np.testing.assert_allclose(ra["probs"], rb["probs"], atol=PROB_ATOL)


# ---- correctness ---------------------------------------------------------------------------


def test_image_folder_sorted_equals_direct_computation(model, folder, tmp_path):
    out = tmp_path / "preds.jsonl"
    result = evaluate(model, folder, batch_size=3, top_k=(1, 5), output=out, progress=False)
    paths, y = ground_truth(folder, FRUITS)
    probs = direct(model, paths)
    pred = probs.argmax(1)

    assert (result.total, result.evaluated, result.corrupt, result.missing) == (25, 25, 0, 0)
    assert result.class_mapping == "sorted"
    assert result.top1 == pytest.approx(float(np.mean(pred == y)))
    assert result.top5 == pytest.approx(top_k_accuracy_score(y, probs, k=5, labels=range(NUM_LABELS)))
    cm = confusion_matrix(y, pred, labels=range(NUM_LABELS))
    np.testing.assert_array_equal(result.confusion_matrix, cm)
    for c in result.per_class:
        assert (c.correct, c.total) == (cm[c.index, c.index], cm[c.index].sum())
    assert [c.index for c in result.per_class] == list(range(NUM_LABELS))
    off = cm - np.diag(np.diag(cm))
    assert [p.count for p in result.confused] == sorted(off[off > 0].tolist(), reverse=True)[
        : len(result.confused)
    ]
    for p in result.confused:
        assert off[p.true, p.predicted] == p.count and p.true != p.predicted

    # one line per image, in dataset order, with the direct top-5 and probabilities
    header, records, _ = read_output(out)
    assert header["dataset_size"] == 25 and header["class_mapping"] == "sorted"
    assert [r["index"] for r in records] == list(range(25))
    assert [r["path"] for r in records] == [p.relative_to(folder).as_posix() for p in paths]
    assert [r["label"] for r in records] == y.tolist()
    np.testing.assert_array_equal([r["topk"] for r in records], topk(probs, 5))
    np.testing.assert_allclose(
        [r["probs"] for r in records], np.take_along_axis(probs, topk(probs, 5), 1), atol=PROB_ATOL
    )
    assert result.images_per_second is not None and result.images_per_second > 0


def test_folders_named_after_labels_map_by_name(named_model_dir, tmp_path):
    model = vitc.ViT.from_pretrained(named_model_dir)
    root = write_image_folder(tmp_path / "val", {"grape": 3, "banana": 2})  # labels 6 and 1
    result = evaluate(model, root, top_k=(1, 3), progress=False)
    assert result.class_mapping == "names"
    paths, _ = ground_truth(root, ["banana", "grape"])
    y = np.array([1, 1, 6, 6, 6])
    probs = direct(model, paths)
    assert result.top1 == pytest.approx(float(np.mean(probs.argmax(1) == y)))
    assert result.accuracy[3] == pytest.approx(top_k_accuracy_score(y, probs, k=3, labels=range(NUM_LABELS)))
    assert [(c.index, c.label, c.total) for c in result.per_class] == [(1, "banana", 2), (6, "grape", 3)]


def test_class_mapping_rules_and_errors(named_model_dir, tmp_path):
    model = vitc.ViT.from_pretrained(named_model_dir)
    id2label = model.id2label
    root = write_image_folder(tmp_path / "a", {"grape": 1, "banana": 1})
    # forced sorted: banana -> 0, grape -> 1 (with a warning: 2 folders for 10 labels)
    with pytest.warns(UserWarning, match="2 class folders for a model with 10 labels"):
        data = load_dataset(root, id2label, class_mapping="sorted")
    assert [s.label for s in data.samples] == [0, 1]
    # one folder that is not a label: auto falls back to sorted, names refuses it
    write_image_folder(root, {"pear": 1})
    with pytest.warns(UserWarning):
        assert load_dataset(root, id2label).class_mapping == "sorted"
    with pytest.raises(ValueError, match=r"not: 'pear'"):
        load_dataset(root, id2label, class_mapping="names")
    # a label the model repeats cannot be mapped by name
    dup = write_image_folder(tmp_path / "b", {"kiwi": 1})
    with pytest.raises(ValueError, match=r"'kiwi' names the labels \[7, 9\]"):
        load_dataset(dup, id2label)
    # more folders than labels
    many = write_image_folder(tmp_path / "c", {f"c{i:02d}": 1 for i in range(11)})
    with pytest.raises(ValueError, match="expected at most 10 class folders.*found 11"):
        load_dataset(many, id2label)
    with pytest.raises(ValueError, match="class_mapping: expected one of"):
        load_dataset(root, id2label, class_mapping="alphabetical")


def test_list_file_equals_direct_computation(model, tmp_path):
    rng = np.random.default_rng(3)
    from eval_factory import write_image

    paths = [write_image(tmp_path / "imgs" / f"ILSVRC_val_{i:05d}.png", rng) for i in range(7)]
    labels = [3, 0, 9, 3, 5, 5, 1]
    lines = ["# ImageNet-val style list", ""] + [f"imgs/{p.name}\t{lb}" for p, lb in zip(paths, labels)]
    listing = tmp_path / "val.txt"
    listing.write_text("\n".join(lines) + "\n")
    result = evaluate(model, listing, batch_size=4, output=tmp_path / "o.jsonl", progress=False)
    probs = direct(model, paths)
    y = np.asarray(labels)
    assert result.class_mapping == "list" and result.evaluated == 7
    assert result.top1 == pytest.approx(float(np.mean(probs.argmax(1) == y)))
    assert result.top5 == pytest.approx(top_k_accuracy_score(y, probs, k=5, labels=range(NUM_LABELS)))
    assert [r["path"] for r in read_output(tmp_path / "o.jsonl")[1]] == [f"imgs/{p.name}" for p in paths]


@pytest.mark.parametrize(
    "line, message",
    [
        ("a.png", r"val.txt:2: expected 'path<TAB>label_index'"),
        ("a.png\tcat", r"val.txt:2: expected an integer label index, found 'cat'"),
        ("a.png\t10", r"val.txt:2: expected a label index in \[0, 10\).*found 10"),
        ("b.png\t1\nb.png\t2", r"val.txt:3: image 'b.png' is listed twice \(first on line 2\)"),
    ],
)
def test_list_file_errors_name_the_line(model, tmp_path, line, message):
    listing = tmp_path / "val.txt"
    listing.write_text("ok.png\t1\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        evaluate(model, listing, progress=False)


def test_corrupt_and_missing_images_are_counted_not_fatal(model, tmp_path):
    root = write_image_folder(tmp_path / "val", {"LABEL_1": 3, "LABEL_4": 2})
    write_corrupt(root / "LABEL_1" / "broken.png")
    (root / "LABEL_4" / "notes.txt").write_text("ignored: not an image extension")
    (root / "LABEL_4" / "text.jpg").write_text("not a jpeg")
    out = tmp_path / "o.jsonl"
    result = evaluate(model, root, batch_size=2, output=out, progress=False)
    assert (result.total, result.evaluated, result.corrupt) == (7, 5, 2)
    assert sorted(result.corrupt_files) == ["LABEL_1/broken.png", "LABEL_4/text.jpg"]
    good = [p for p in sorted(root.rglob("*.png")) if p.name != "broken.png"]
    y = np.array([1, 1, 1, 4, 4])
    assert result.top1 == pytest.approx(float(np.mean(direct(model, good).argmax(1) == y)))
    errors = [r for r in read_output(out)[1] if "error" in r]
    assert [r["path"] for r in errors] == ["LABEL_1/broken.png", "LABEL_4/text.jpg"]
    assert "cannot read image" in errors[0]["error"]
    assert "corrupt images:" in str(result) and "LABEL_4/text.jpg" in str(result)
    # a list file naming a file that does not exist: counted as corrupt too
    listing = tmp_path / "list.txt"
    listing.write_text("val/LABEL_1/000.png\t1\nval/gone.png\t2\n")
    r = evaluate(model, listing, progress=False)
    assert (r.evaluated, r.corrupt) == (1, 1) and "not found" in r.corrupt_files["val/gone.png"]


def test_relative_dataset_path_gives_the_same_text_from_any_folder(model, tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "data" / "val", {"LABEL_1": 2})
    broken = write_corrupt(root / "LABEL_1" / "broken.png")
    monkeypatch.chdir(tmp_path / "data")
    data = load_dataset("val", model.id2label)
    keys = ["LABEL_1/000.png", "LABEL_1/001.png", "LABEL_1/broken.png"]
    assert data.root == root and [s.key for s in data.samples] == keys  # keys stay relative
    assert [s.path for s in data.samples] == [str(root / k) for k in keys]  # paths are absolute
    relative = evaluate(model, "val", progress=False)
    assert str(broken) in relative.corrupt_files["LABEL_1/broken.png"]
    monkeypatch.chdir(tmp_path)
    assert without_timing(evaluate(model, root, progress=False)) == without_timing(relative)


def test_hidden_class_folders_are_skipped(model, tmp_path):
    """Unlike torchvision's ImageFolder (documented in load_dataset)."""
    root = write_image_folder(tmp_path / "val", {".ipynb_checkpoints": 1, "LABEL_2": 1})
    data = load_dataset(root, model.id2label)
    assert data.classes == ["LABEL_2"] and [(s.key, s.label) for s in data.samples] == [("LABEL_2/000.png", 2)]


def test_top_k_larger_than_classes_counts_every_image(model, folder):
    result = evaluate(model, folder, top_k=[1, 10, 20], progress=False)
    assert result.accuracy[10] == result.accuracy[20] == 1.0


# ---- resume ----------------------------------------------------------------------------------


class CountingModel:
    """Delegates to a ViT and counts the images it runs."""

    def __init__(self, model: vitc.ViT):
        self._model, self.images = model, 0

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, pixel_values, **kwargs):
        self.images += len(pixel_values)
        return self._model(pixel_values, **kwargs)


def test_interrupted_run_resumes_without_recomputing(model, folder, tmp_path):
    full_out = tmp_path / "full.jsonl"
    full = evaluate(model, folder, batch_size=4, output=full_out, progress=False)
    lines = full_out.read_text().splitlines(keepends=True)
    # killed while writing: header, 9 complete records, half a line
    out = tmp_path / "resumed.jsonl"
    out.write_text("".join(lines[:10]) + lines[10][: len(lines[10]) // 2])
    counting = CountingModel(model)
    resumed = evaluate(counting, folder, batch_size=4, output=out, progress=False)
    assert counting.images == 25 - 9 + PROBE_IMAGES
    assert without_timing(resumed) == without_timing(full)
    assert_same_records(records_by_index(out), records_by_index(full_out))
    assert len(out.read_text().splitlines()) == 26  # header + one line per image, the half line gone
    # a finished output: nothing to run, same result
    counting.images = 0
    again = evaluate(counting, folder, output=out, progress=False)
    assert counting.images == PROBE_IMAGES and again.images_per_second is None
    assert without_timing(again) == without_timing(full)


def test_resume_refuses_an_output_of_another_run(model, folder, tmp_path):
    out = tmp_path / "o.jsonl"
    evaluate(model, folder, output=out, shard=(0, 2), progress=False)
    with pytest.raises(ValueError, match=r"cannot resume: this run has shard=\[1, 2\].*shard=\[0, 2\]"):
        evaluate(model, folder, output=out, shard=(1, 2), progress=False)
    with pytest.raises(ValueError, match="holds top-5 predictions, this run needs top-7"):
        evaluate(model, folder, output=out, shard=(0, 2), top_k=(1, 7), progress=False)
    other = write_image_folder(
        tmp_path / "other", {f"x{i}": 3 for i in range(8)} | {"x8": 1}
    )  # 25 images too
    with pytest.raises(ValueError, match="written for another dataset"), pytest.warns(UserWarning):
        evaluate(model, other, output=out, shard=(0, 2), progress=False)
    (tmp_path / "bad.jsonl").write_text('{"not": "a header"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: expected a vitc eval header"):
        evaluate(model, folder, output=tmp_path / "bad.jsonl", progress=False)


# `vitc eval` in a child process whose forward sleeps 20 ms: the whole run takes ~8 s instead of ~0.4 s,
# so a parent starved of CPU on a busy machine still kills it mid-run.
SLOW_EVAL_CHILD = """
import sys, time, vitc.cli, vitc.model
forward = vitc.model.ViT.__call__
def slow_forward(self, *args, **kwargs):
    time.sleep(0.02)
    return forward(self, *args, **kwargs)
vitc.model.ViT.__call__ = slow_forward
sys.exit(vitc.cli.main(sys.argv[1:]))
"""


def test_killed_process_resumes_with_exactly_the_remaining_images(default_model, tmp_path):
    """SIGKILL a real ``vitc eval`` process mid-run, resume it, and get the uninterrupted result."""
    n = 400
    root = write_image_folder(tmp_path / "val", {f"c{i}": n // 10 for i in range(10)}, seed=4)
    out = tmp_path / "out.jsonl"
    with open(tmp_path / "child.err", "wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", SLOW_EVAL_CHILD, "eval", str(root), "-o", str(out), "-b", "1", "--no-progress"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 120
            while not (out.exists() and out.read_bytes().count(b"\n") >= 1 + 20):
                assert child.poll() is None, (tmp_path / "child.err").read_text()
                assert time.monotonic() < deadline, "the child wrote no 20 records in 120 s"
                time.sleep(0.001)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    at_kill = out.read_bytes()
    complete = at_kill[: at_kill.rfind(b"\n") + 1]  # a half-written last line, if any, is dropped
    done = {json.loads(line)["index"] for line in complete.splitlines()[1:]}
    assert 20 <= len(done) < n, "the child should be killed mid-run"

    counting = CountingModel(default_model)
    resumed = evaluate(counting, root, batch_size=8, output=out, progress=False)
    assert counting.images == n - len(done) + PROBE_IMAGES
    after = out.read_bytes()
    assert after.startswith(complete)  # the old lines, byte for byte
    added = [json.loads(line)["index"] for line in after[len(complete) :].splitlines()]
    assert sorted(added) == sorted(set(range(n)) - done)

    full_out = tmp_path / "full.jsonl"
    full = evaluate(default_model, root, batch_size=8, output=full_out, progress=False)
    assert without_timing(resumed) == without_timing(full)
    assert_same_records(records_by_index(out), records_by_index(full_out))


# ---- which dataset, which model ------------------------------------------------------------------


def test_header_identifies_the_dataset_and_the_model(model, other_model, folder, tmp_path):
    out = tmp_path / "o.jsonl"
    evaluate(model, folder, output=out, shard=(1, 2), progress=False)
    header = read_output(out)[0]
    data = load_dataset(folder, model.id2label)
    lines = "".join(f"{s.index}\t{s.key}\t{s.label}\n" for s in data.samples)  # all shards
    assert header["samples_digest"] == hashlib.sha256(lines.encode()).hexdigest()
    moved = shutil.copytree(folder, tmp_path / "elsewhere")
    assert samples_digest(load_dataset(moved, model.id2label).samples) == header["samples_digest"]
    (moved / "fig" / "000.png").rename(moved / "fig" / "0000.png")
    assert samples_digest(load_dataset(moved, model.id2label).samples) != header["samples_digest"]

    fp = model_fingerprint(model)
    assert header["model_fingerprint"] == fp and len(fp) == NUM_LABELS
    assert model_fingerprint(CountingModel(model)) == fp  # any object with __call__ and image_processor
    assert fingerprint_difference(fp, model_fingerprint(other_model)) > 0.01
    threads = vitc.get_num_threads()
    try:
        vitc.set_num_threads(1)
        assert fingerprint_difference(fp, model_fingerprint(model)) is None
    finally:
        vitc.set_num_threads(threads)


def test_resume_refuses_the_output_of_another_model(model, other_model, folder, tmp_path):
    out = tmp_path / "o.jsonl"
    evaluate(model, folder, output=out, progress=False)
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:11]))  # stopped after 10 images
    before = out.read_bytes()
    counting = CountingModel(other_model)
    with pytest.raises(
        ValueError,
        match=r"o.jsonl: cannot resume: the output was written for another model \(.*logits on vitc's probe "
        r"image differ by up to .*\); use another output file \(-o / output=\)",
    ):
        evaluate(counting, folder, output=out, progress=False)
    assert counting.images == PROBE_IMAGES and out.read_bytes() == before
    assert evaluate(model, folder, output=out, progress=False).evaluated == 25  # its own model resumes


def test_resume_refuses_another_dataset_that_agrees_so_far(model, folder, tmp_path):
    """Same size, same labels, same images done so far: only the samples digest tells them apart."""
    data = shutil.copytree(folder, tmp_path / "val")
    out = tmp_path / "o.jsonl"
    evaluate(model, data, output=out, progress=False)
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:6]))  # images 0-4 done
    (data / "mango" / "001.png").rename(data / "mango" / "001b.png")  # image 24: not done yet
    with pytest.raises(
        ValueError,
        match=r"cannot resume: the output was written for another dataset \(samples digest .* differ\); "
        r"use another output file",
    ):
        evaluate(model, data, output=out, progress=False)


def test_outputs_of_an_older_vitc_are_accepted_with_a_warning(model, folder, tmp_path):
    """Files without samples_digest / model_fingerprint resume and merge, with a warning."""

    def strip(path: Path, keep: int | None = None) -> None:
        header, records, _ = read_output(path)
        del header["samples_digest"], header["model_fingerprint"]
        path.write_text("".join(json.dumps(x) + "\n" for x in [header, *records[:keep]]))

    out = tmp_path / "old.jsonl"
    full = evaluate(model, folder, output=out, progress=False)
    strip(out, keep=10)
    with pytest.warns(UserWarning, match="older vitc, without a record of its dataset and model: cannot check"):
        resumed = evaluate(model, folder, output=out, progress=False)
    assert without_timing(resumed) == without_timing(full)
    shards = [tmp_path / f"s{i}.jsonl" for i in range(2)]
    for i, o in enumerate(shards):
        evaluate(model, folder, output=o, shard=(i, 2), progress=False)
    strip(shards[0])
    with pytest.warns(UserWarning, match="merge: a file written by an older vitc has no record of its dataset and"):
        assert without_timing(merge(shards)) | {"seconds": None} == without_timing(full) | {"seconds": None}


# ---- shards and merge --------------------------------------------------------------------------


def test_shards_merge_into_the_full_result(model, folder, tmp_path):
    full_out = tmp_path / "full.jsonl"
    full = evaluate(model, folder, batch_size=5, output=full_out, progress=False)
    outs = [tmp_path / f"s{i}.jsonl" for i in range(3)]
    sizes = []
    for i, o in enumerate(outs):
        r = evaluate(model, folder, batch_size=2, output=o, shard=f"{i}/3", progress=False)
        assert all(idx % 3 == i for idx in records_by_index(o))
        sizes.append(r.total)
    assert sizes == [9, 8, 8]
    merged_out = tmp_path / "merged.jsonl"
    merged = merge(outs[::-1], output=merged_out)
    assert without_timing(merged) | {"seconds": None} == without_timing(full) | {"seconds": None}
    assert merged.seconds is None and merged.images_per_second is None
    assert_same_records(records_by_index(merged_out), records_by_index(full_out))
    assert read_output(merged_out)[0]["shard"] == [0, 1]
    assert sorted(os.listdir(tmp_path)) == ["full.jsonl", "merged.jsonl", "s0.jsonl", "s1.jsonl", "s2.jsonl"]
    # the merged file is a complete single-shard output: resuming from it runs nothing
    counting = CountingModel(model)
    assert without_timing(evaluate(counting, folder, output=merged_out, progress=False)) == without_timing(
        full
    )
    assert counting.images == PROBE_IMAGES


def test_merge_errors_and_incomplete_shards(model, folder, tmp_path):
    outs = [tmp_path / f"s{i}.jsonl" for i in range(3)]
    for i, o in enumerate(outs):
        evaluate(model, folder, output=o, shard=(i, 3), progress=False)
    with pytest.raises(ValueError, match="shard 1/3 is also in"):
        merge([outs[1], outs[1]])
    with pytest.raises(FileNotFoundError, match="eval output not found"):
        merge([tmp_path / "nope.jsonl"])
    with pytest.raises(ValueError, match="top-5 predictions, found a request for top-6"):
        merge(outs, top_k=(6,))
    with pytest.warns(UserWarning, match=r"1 of 3 shards absent \[2\]"):
        partial = merge(outs[:2])
    assert partial.total == 17 and partial.missing == 0
    # a shard cut short: its unfinished images are missing
    lines = outs[2].read_text().splitlines(keepends=True)
    outs[2].write_text("".join(lines[:4]))
    with pytest.warns(UserWarning, match="5 images of the given shards not evaluated"):
        r = merge(outs)
    assert (r.total, r.evaluated, r.missing) == (25, 20, 5)
    assert "5 missing" in r.summary()


def test_merge_refuses_shards_of_two_models_or_two_datasets(model, other_model, folder, tmp_path):
    s0, s1 = tmp_path / "s0.jsonl", tmp_path / "s1.jsonl"
    evaluate(model, folder, output=s0, shard=(0, 2), progress=False)
    evaluate(other_model, folder, output=s1, shard=(1, 2), progress=False)
    with pytest.raises(
        ValueError,
        match=r"s1.jsonl: cannot merge with .*s0.jsonl: it was written for another model \(.*\); merge only "
        r"the shards of one evaluation \(one dataset, one model\), and give each evaluation its own output",
    ):
        merge([s0, s1])
    renamed = shutil.copytree(folder, tmp_path / "renamed")  # same size and labels, one file renamed
    (renamed / "apple" / "000.png").rename(renamed / "apple" / "000b.png")
    s1.unlink()
    evaluate(model, renamed, output=s1, shard=(1, 2), progress=False)
    with pytest.raises(ValueError, match=r"cannot merge with .*: it was written for another dataset \(samples"):
        merge([s0, s1])
    s1.unlink()
    evaluate(model, folder, output=s1, shard=(1, 2), progress=False)
    assert merge([s0, s1]).evaluated == 25


def test_write_output_atomic_leaves_no_temporary_or_partial_file(tmp_path):
    dest = tmp_path / "merged.jsonl"

    def failing_records():
        yield {"index": 0, "path": "a.png", "label": 0}
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        write_output_atomic(dest, {"vitc_eval": 1}, failing_records())
    assert os.listdir(tmp_path) == []  # no destination, no temporary file
    dest.write_text("old\n")
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_output_atomic(dest, {"vitc_eval": 1}, [{"index": 0, "label": object()}])
    assert os.listdir(tmp_path) == ["merged.jsonl"] and dest.read_text() == "old\n"
    (tmp_path / "merged.jsonl.tmp").write_text("someone else's")  # a fixed temporary name would clobber it
    write_output_atomic(dest, {"vitc_eval": 1}, [{"index": 0, "label": 0}])
    assert dest.read_text() == '{"vitc_eval": 1}\n{"index": 0, "label": 0}\n'
    assert sorted(os.listdir(tmp_path)) == ["merged.jsonl", "merged.jsonl.tmp"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it


@pytest.mark.parametrize("text, expected", [(None, (0, 1)), ("2/4", (2, 4)), ((0, 1), (0, 1))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["4/4", "-1/2", "1/0", "a/b", "1", (1, 2, 3)])
def test_parse_shard_errors(text):
    with pytest.raises(ValueError, match="shard: expected"):
        parse_shard(text)


# ---- errors, display, command line ---------------------------------------------------------------


def test_user_errors(model, model_dir, folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        evaluate(model, tmp_path / "missing", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="found no sub-folders"):
        evaluate(model, tmp_path / "empty", progress=False)
    (tmp_path / "empty" / "cls").mkdir()
    with (
        pytest.raises(ValueError, match="found no image files"),
        pytest.warns(UserWarning, match="1 class folder for"),
    ):
        evaluate(model, tmp_path / "empty", progress=False)
    with pytest.raises(FileNotFoundError, match="model not found"):
        evaluate(tmp_path / "no-model", folder, progress=False)
    with pytest.raises(ValueError, match="batch_size: expected a positive int, found 0"):
        evaluate(model, folder, batch_size=0)
    with pytest.raises(ValueError, match="top_k: expected positive ints"):
        evaluate(model, folder, top_k=(0,))
    bare = tmp_path / "bare"
    make_checkpoint(bare, bare=True)
    with pytest.raises(ValueError, match="without a classifier head"):
        evaluate(bare, folder, progress=False)


def test_result_display_and_json(model, folder, capsys):
    result = evaluate(model, folder, progress=True)
    err = capsys.readouterr().err
    assert "eval" in err and "25/25" in err
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, *[\d.]+img/s\]", err), err  # elapsed<ETA, rate
    text = str(result)
    assert (
        "25 images: 25 evaluated, 0 corrupt" in text
        and "top-1 accuracy" in text
        and "class -> label mapping: sorted" in text
    )
    assert "most confused (true -> predicted)" in text
    d = json.loads(json.dumps(result.to_dict()))
    assert d["accuracy"]["top1"] == result.top1 and d["total"] == 25 and "confusion_matrix" not in d
    assert "<table>" in result._repr_html_()


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vitc")
    sub = parser.add_subparsers(dest="command")
    add_eval_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_eval_shards_and_merge(model, model_dir, folder, tmp_path, capsys):
    full = evaluate(model, folder, progress=False)
    for i in range(2):
        assert (
            run_cli(
                [
                    "eval",
                    "--model",
                    str(model_dir),
                    str(folder),
                    "--shard",
                    f"{i}/2",
                    "--output",
                    str(tmp_path / f"s{i}.jsonl"),
                    "--no-progress",
                    "-b",
                    "3",
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert run_cli(["eval", "--merge", str(tmp_path / "s0.jsonl"), str(tmp_path / "s1.jsonl"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = full.to_dict()
    for d in (printed, expected):
        d.pop("seconds"), d.pop("images_per_second")
    assert printed == expected
    assert run_cli(["eval", "-m", str(model_dir), str(folder), "-k", "1", "3", "--no-progress"]) == 0
    assert "top-3 accuracy" in capsys.readouterr().out


def test_cli_merge_of_top3_shards_needs_no_top_k(model_dir, folder, tmp_path, capsys):
    shards = [str(tmp_path / f"s{i}.jsonl") for i in range(2)]
    for i, out in enumerate(shards):
        argv = ["eval", "-m", str(model_dir), str(folder), "-k", "1", "3", "--shard", f"{i}/2", "-o", out]
        assert run_cli([*argv, "--no-progress"]) == 0
    capsys.readouterr()
    assert run_cli(["eval", "--merge", *shards, "--json"]) == 0  # the runs' top-k: 1 3
    printed = json.loads(capsys.readouterr().out)
    single = evaluate(model_dir, folder, top_k=(1, 3), progress=False)
    assert printed["accuracy"] == {"top1": single.top1, "top3": single.accuracy[3]}
    assert run_cli(["eval", "--merge", *shards, "-k", "2", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["accuracy"]) == ["top2"]
    assert run_cli(["eval", "-m", str(model_dir), str(folder), "--no-progress", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["accuracy"]) == ["top1", "top5"]  # evaluation's default


def test_cli_progress_forces_the_bar_with_rate_and_eta(model_dir, folder, capsys):
    base = ["eval", "-m", str(model_dir), str(folder)]
    assert run_cli([*base, "--progress"]) == 0  # stderr is captured, not a terminal
    err = capsys.readouterr().err
    assert "25/25" in err and re.search(r"\[\d\d:\d\d<\d\d:\d\d, *[\d.]+img/s\]", err), err
    assert run_cli(base) == 0
    assert capsys.readouterr().err == ""  # by default: only on a terminal
    assert run_cli([*base, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        run_cli([*base, "--progress", "--no-progress"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_prints_warnings_as_one_line(model_dir, folder, tmp_path, capsys):
    two = write_image_folder(tmp_path / "two", {"b": 1, "a": 1})
    assert vitc_main(["eval", "-m", str(model_dir), str(two), "--no-progress"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"vitc eval: warning: {two}: 2 class folders for a model with 10 labels, and their names are not "
        "the model's labels: folder i in sorted order is taken as class i"
    ]
    shard = str(tmp_path / "s0.jsonl")
    argv = ["eval", "-m", str(model_dir), str(folder), "--shard", "0/2", "-o", shard, "--no-progress"]
    assert vitc_main(argv) == 0
    capsys.readouterr()
    assert vitc_main(["eval", "--merge", shard]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "vitc eval: warning: merge: incomplete evaluation: 1 of 2 shards absent [1], "
        "0 images of the given shards not evaluated"
    ]


def test_cli_user_errors_are_value_errors(model_dir, folder):
    with pytest.raises(ValueError, match="expected a DATASET"):
        run_cli(["eval", "--model", str(model_dir)])
    with pytest.raises(ValueError, match="--merge combines output files"):
        run_cli(["eval", str(folder), "--merge", "a.jsonl"])
    with pytest.raises(ValueError, match="--shard and --ray do not go together"):
        run_cli(["eval", str(folder), "--shard", "0/2", "--ray", "local"])


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        run_cli(["eval", "--help"])
    out = capsys.readouterr().out
    assert "vitc eval --merge" in out and "--shard I/N" in out and "sorted" in out


def test_binary_file_as_dataset_is_a_clear_error(model, folder):
    image = next(folder.rglob("*.png"))
    with pytest.raises(
        ValueError, match="expected an ImageFolder tree or a text list file.*found a binary file"
    ):
        evaluate(model, image, progress=False)
