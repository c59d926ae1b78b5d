"""Benchmark model shapes, their analytic FLOP counts and default run counts.

Not a model zoo: every model here is random-weight (written by transformers from a config), because
the benchmark measures speed and memory and checks outputs against transformers, not accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

IN_CHANNELS = 3


@dataclass(frozen=True)
class RunCounts:
    """How many forwards to run; big models get fewer so the default run stays ~15 minutes."""

    warmup: int  # untimed batch-1 forwards before timing (the first one is reported as "1st call")
    runs: int  # timed batch-1 forwards (latency statistics)
    batch_warmup: int  # untimed batch-B forwards
    batch_runs: int  # timed batch-B forwards (throughput)
    accuracy_images: int = 16  # real photos every engine is scored on against fp32 eager (images.py)
    calibration_images: int = 8  # real photos static int8 (NNCF) is calibrated on, disjoint from those


@dataclass(frozen=True)
class ModelSpec:
    """One ViT shape in HF ``ViTConfig`` terms (C hidden, L layers, H heads, F MLP, P patch, K classes)."""

    name: str
    image_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    patch_size: int
    num_labels: int
    counts: RunCounts
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12

    @property
    def tokens(self) -> int:
        """T: patches plus the class token."""
        return (self.image_size // self.patch_size) ** 2 + 1

    def hf_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``transformers.ViTConfig``."""
        d = asdict(self)
        for key in ("name", "counts"):
            d.pop(key)
        d["num_channels"] = IN_CHANNELS
        return d

    def flops_per_image(self) -> int:
        """FLOPs of one image's forward: 2 x multiply-adds of every GEMM.

        Counts the patch-embedding GEMM, per layer the fused QKV, attention output projection, MLP fc1
        and fc2 GEMMs, the two attention matmuls (Q K^T and A V over all heads), and the classifier
        head. LayerNorm, GELU, softmax, bias and residual adds are left out: they are < 0.1% of the
        FLOPs (but not of the memory traffic). ViT-L/16 at 512 gives 723.97 GFLOP, as in PERF.md.
        """
        T, C, F, L, P, K = (
            self.tokens,
            self.hidden_size,
            self.intermediate_size,
            self.num_hidden_layers,
            self.patch_size,
            self.num_labels,
        )
        patch_embed = (T - 1) * C * (IN_CHANNELS * P * P)
        qkv = T * C * 3 * C
        attn_proj = T * C * C
        mlp = 2 * T * C * F
        attn_matmuls = 2 * T * T * C  # H heads x (T x T x D) for Q K^T and again for A V, D = C / H
        head = C * K
        macs = patch_embed + L * (qkv + attn_proj + mlp + attn_matmuls) + head
        return 2 * macs


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # kakaobrain/vit-large-patch16-512 shape: the model vitc is built for.
        ModelSpec(
            name="vit-l16-512",
            image_size=512,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            patch_size=16,
            num_labels=1000,
            counts=RunCounts(warmup=1, runs=5, batch_warmup=0, batch_runs=1, accuracy_images=4, calibration_images=4),
        ),
        # google/vit-base-patch16-224 shape.
        ModelSpec(
            name="vit-b16-224",
            image_size=224,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            patch_size=16,
            num_labels=1000,
            counts=RunCounts(warmup=3, runs=20, batch_warmup=1, batch_runs=3),
        ),
        # Smoke-test size: seconds for the whole pipeline, odd token count (T = 17).
        ModelSpec(
            name="tiny",
            image_size=32,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            patch_size=8,
            num_labels=10,
            counts=RunCounts(warmup=1, runs=1, batch_warmup=0, batch_runs=1, accuracy_images=4, calibration_images=2),
        ),
    )
}

DEFAULT_MODELS = ("vit-l16-512", "vit-b16-224")
QUICK_MODELS = ("tiny",)
