"""vitc.pytest_plugin: a user's test file run with pytester, with and without the plugin's options."""

from __future__ import annotations

import importlib.metadata

import pytest
from eval_factory import write_digit_folder, write_image_folder
from factories import make_checkpoint

from vitc.default_model import DEFAULT_MODEL_PATH

pytest_plugins = ["pytester"]

USER_TESTS = """
import torch
from vitc.testing import assert_logits_close


def test_parity(vitc_model, hf_model, image_processor, eval_images):
    x = image_processor([str(p) for p in eval_images])
    with torch.no_grad():
        ref = hf_model(torch.from_numpy(x))
    assert_logits_close(vitc_model(x), ref)


def test_vitc_only(vitc_model, image_processor):
    assert vitc_model.num_labels == 10
    assert image_processor.size == {"height": 30, "width": 30}


def test_images_only(eval_images):
    assert len(eval_images) == 5 and all(p.suffix == ".png" for p in eval_images)
"""

# The README's example: an accuracy test is this short.
ACCURACY_TEST = """
import vitc


def test_accuracy(vitc_model, eval_dataset):
    r = vitc.evaluate(vitc_model, eval_dataset)
    assert r.top1 >= 0.9
"""


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("plugin")
    make_checkpoint(root / "model")
    make_checkpoint(root / "other", seed=5)
    write_image_folder(root / "images", {"a": 3, "b": 2})
    return {name: str(root / name) for name in ("model", "other", "images")}


@pytest.fixture
def run(pytester, monkeypatch):
    """Run the user tests with exactly this plugin (no entry-point autoload, so no double registration)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    pytester.makepyfile(test_user=USER_TESTS)

    def run(*args: str):
        return pytester.runpytest("-p", "vitc.pytest_plugin", "-rs", "-p", "no:cacheprovider", *args)

    return run


def test_entry_point_registers_the_plugin():
    found = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "vitc"]
    assert [ep.value for ep in found] == ["vitc.pytest_plugin"]


def test_plugin_autoloads_through_its_entry_point(pytester, monkeypatch, tmp_path):
    """No -p: pytest finds the plugin through the installed pytest11 entry point."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makepyfile(test_accuracy=ACCURACY_TEST)
    data = write_digit_folder(tmp_path / "digits")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--vitc-model", str(DEFAULT_MODEL_PATH), "--eval-images", str(data)
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"vitc: --vitc-model={DEFAULT_MODEL_PATH}, --eval-images={data}"])


def test_accuracy_test_file_passes_and_fails(run, pytester, tmp_path):
    """The README's accuracy test on the embedded model's sample digits, labelled right and wrong."""
    test_file = str(pytester.makepyfile(test_accuracy=ACCURACY_TEST))
    model = str(DEFAULT_MODEL_PATH)
    digits = write_digit_folder(tmp_path / "digits")
    result = run(test_file, "--vitc-model", model, "--eval-images", str(digits))
    result.assert_outcomes(passed=1)
    mislabelled = write_digit_folder(tmp_path / "shifted", shift=1)
    result = run(test_file, "--vitc-model", model, "--eval-images", str(mislabelled))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 0.0 >= 0.9*"])
    result = run(test_file, "--vitc-model", model)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs an evaluation dataset: pass --eval-images PATH to run this test*"])


def test_fixtures_skip_with_the_option_to_pass(run):
    result = run()
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*needs a vitc model: pass --vitc-model PATH to run this test*"])
    result.stdout.fnmatch_lines(["*needs evaluation images: pass --eval-images PATH to run this test*"])


def test_fixtures_with_options_pass(run, paths):
    result = run(
        "--vitc-model", paths["model"], "--hf-model", paths["model"], "--eval-images", paths["images"]
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"vitc: --vitc-model={paths['model']}, --hf-model=*, --eval-images=*"])


def test_only_some_options_skip_the_rest(run, paths):
    result = run("--eval-images", paths["images"])
    result.assert_outcomes(passed=1, skipped=2)
    result = run("--hf-model", paths["model"], "--eval-images", paths["images"])
    result.assert_outcomes(passed=1, skipped=2)  # the processor comes from --hf-model; vitc_model skips


def test_failing_parity_gives_the_helpful_message(run, paths):
    result = run(
        "--vitc-model", paths["other"], "--hf-model", paths["model"], "--eval-images", paths["images"]
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*logits not close (atol=0.0001, rtol=0.0001): * of 50 elements*out of tolerance",
            "*max abs error * at index (*",
            "*top-1 agreement: * of 5 rows*",
        ]
    )


def test_missing_path_is_a_usage_error(run, tmp_path):
    result = run("--vitc-model", str(tmp_path / "nope.vitc"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vitc-model: path not found: *nope.vitc*"])
    result = run("--hf-model", str(tmp_path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hf-model: expected a Hugging Face model folder with config.json*"])


def test_help_lists_the_options(run):
    result = run("--help")
    result.stdout.fnmatch_lines(
        ["*vitc model testing*", "*--vitc-model=PATH*", "*--hf-model=PATH*", "*--eval-images=PATH*"]
    )


def test_marker_is_registered(run):
    result = run("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.vitc_parity*"])
