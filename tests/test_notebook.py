"""examples/quickstart.ipynb runs top to bottom in a fresh kernel and shows what it promises."""

from __future__ import annotations

import base64
import importlib.util
import io
import sys
from pathlib import Path

import ipykernel.kernelspec
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
TIMEOUT_S = 120  # per cell; the whole notebook takes ~15 s
# tqdm.auto draws a widget in a kernel with ipywidgets (the test extra installs it); without, it
# warns and draws a text bar on stderr: the only stderr the notebook may show.
HAS_IPYWIDGETS = importlib.util.find_spec("ipywidgets") is not None
ALLOWED_STDERR = ("TqdmWarning: IProgress not found", "predict: ")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def outputs_text(cell) -> str:
    """Everything a code cell printed or displayed as text/plain or text/html."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out:
            parts.append(out.data.get("text/html", ""))
            parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook after a run in a kernel of this interpreter (the one vitc is installed in)."""
    root = tmp_path_factory.mktemp("jupyter")
    # A kernelspec named like the notebook's ("python3") whose argv is sys.executable, found first
    # through JUPYTER_PATH, so no user-level kernelspec of another Python can take over.
    ipykernel.kernelspec.install(kernel_name="python3", prefix=str(root))
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(root / "share" / "jupyter"))
    mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    try:
        nb = nbformat.read(NOTEBOOK, as_version=4)
        client = NotebookClient(
            nb, kernel_name="python3", timeout=TIMEOUT_S, resources={"metadata": {"path": str(root)}}
        )
        client.execute()
    finally:
        mp.undo()
    return nb


def test_kernel_is_this_interpreter(tmp_path) -> None:
    ipykernel.kernelspec.install(kernel_name="python3", prefix=str(tmp_path))
    spec = (tmp_path / "share" / "jupyter" / "kernels" / "python3" / "kernel.json").read_text()
    assert sys.executable in spec


def test_notebook_is_valid_and_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_runs_without_errors_or_warnings(executed) -> None:
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", f"{out.ename}: {out.evalue}"
            if out.output_type == "stream" and out.name == "stderr":
                assert any(a in out.text for a in ALLOWED_STDERR), f"stderr in {cell.source[:40]!r}: {out.text[:300]}"


def test_key_outputs(executed) -> None:
    text = {c.source.splitlines()[-1]: outputs_text(c) for c in executed.cells if c.cell_type == "code"}
    assert text["model"].strip().startswith("ViT(layers=6, hidden=96, heads=4")
    table = text["preds"]
    assert table.count("<table>") == 10 and "digit 3" in table and "digit_3_1500.png" in table
    for d in range(10):
        assert f"-> digit {d} (" in text['    print(f"{path.name:<18} -> {pred.label} ({pred[0][1]:.1%})")']
    parity = text["assert report.ok(atol=1e-4)"]
    assert "vitc vs transformers ViTForImageClassification" in parity and "argmax agreement  10/10" in parity
    assert text["vitc.show_config()"].strip().startswith("vitc ") and "BLAS:" in text["vitc.show_config()"]


def code_cell(executed, needle: str):
    (cell,) = [c for c in executed.cells if c.cell_type == "code" and needle in c.source]
    return cell


def test_progress_bar_is_the_notebook_widget(executed) -> None:
    cell = code_cell(executed, "progress=True")
    widgets = [o for o in cell.outputs if "data" in o and WIDGET_MIME in o.data]
    stderr = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr")
    if HAS_IPYWIDGETS:
        assert len(widgets) == 1, [o.get("data", o.get("text")) for o in cell.outputs]
        assert stderr == ""
        # nbclient stores the final widget state: the bar's FloatProgress reached 1000 of 1000
        state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
        bars = [w["state"] for w in state.values() if w["model_name"] == "FloatProgressModel"]
        assert [(b["value"], b["max"]) for b in bars] == [(1000, 1000)]
        texts = [w["state"]["value"] for w in state.values() if w["model_name"] == "HTMLModel"]
        assert any(t.startswith("predict:") for t in texts) and any("1000/1000" in t for t in texts)
    else:  # text bar on stderr instead
        assert not widgets and "predict: 100%" in stderr and "1000/1000" in stderr
    assert "accuracy on 1000 held-out digits: 96." in outputs_text(cell)


def test_explanation_shows_inline(executed) -> None:
    """model.explain(...) as a cell's last line displays the overlay PNG (28x28 digit enlarged 9x + title)."""
    cell = code_cell(executed, "model.explain(")
    (png,) = [o.data["image/png"] for o in cell.outputs if "data" in o and "image/png" in o.data]
    with Image.open(io.BytesIO(base64.b64decode(png))) as img:
        assert img.format == "PNG" and img.size == (252, 252 + 24)
        pixels = img.convert("RGB")
        assert pixels.getpixel((0, 0)) == (255, 255, 255)  # the white title band
        assert len(set(map(tuple, np.asarray(pixels)[24:].reshape(-1, 3)))) > 100  # a heat-map, not a flat image


def test_attention_maps_are_drawn(executed) -> None:
    (cell,) = [c for c in executed.cells if "attention_map" in c.source and c.cell_type == "code"]
    images = [o for o in cell.outputs if "data" in o and "image/png" in o.data]
    assert len(images) == 1 and len(images[0].data["image/png"]) > 10_000
