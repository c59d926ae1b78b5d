"""The ViT model: Hugging Face ViT checkpoints run by vitc's C forward pass.

``ViT.from_pretrained`` takes a converted ``.vitc`` file or a Hugging Face model folder; calling the
model mirrors ``transformers.ViTForImageClassification`` / ``ViTModel`` (same argument and output
names). The whole forward runs in C with the GIL released; Python only validates inputs, keeps the
position table for the input size and the working memory for the batch shape.
"""

from __future__ import annotations

import mmap
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitc import _core
from vitc import predict as _predict
from vitc.config import ViTConfig
from vitc.io.load import load_stored
from vitc.preprocess import ImageProcessor
from vitc.weights import GEMM_WEIGHTS, INT8_PARTS, expected_shapes, pack_weight
from vitc.weights import TENSOR_DTYPES as _DTYPES

# HF hidden_act -> the C core's vitc_act enum (csrc/vitc_kernels.h).
ACTIVATIONS = {
    "gelu": 1,
    "gelu_new": 2,
    "gelu_pytorch_tanh": 2,
    "gelu_fast": 2,  # 0.5x(1+tanh(0.79788456x(1+0.044715x^2))): the same function as gelu_new
    "quick_gelu": 3,
    "relu": 4,
}

# Order of vitc/convert.py tensor names that csrc/forward_py.c expects.
MODEL_TENSORS = (
    "patch_embed.proj.weight",
    "patch_embed.proj.bias",
    "cls_token",
    "pos_embed",  # replaced by the table for the input size
    "norm.weight",
    "norm.bias",
    "head.weight",
    "head.bias",
    "pooler.weight",
    "pooler.bias",
)
BLOCK_TENSORS = (
    "norm1.weight",
    "norm1.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
)
OPTIONAL_TENSORS = {"head.weight", "head.bias", "pooler.weight", "pooler.bias", "attn.qkv.bias"}

# Weight precisions of the blocks' four GEMM matrices -> the C core's vitc_wdtype (vit_forward.h).
WEIGHT_DTYPES = {"float32": 0, "bfloat16": 1, "int8": 2}
# Interpolated position tables kept (per input size) and workspaces kept per thread (per batch
# shape): small LRUs, so alternating sizes do not recompute, and many sizes do not grow memory.
POS_CACHE_SIZE = 8
WORKSPACE_CACHE_SIZE = 2


def _mapped_file(a: np.ndarray) -> mmap.mmap | None:
    """The memory-mapped file an array views, if any (ndarray -> ... -> memoryview -> mmap)."""
    base = a
    for _ in range(16):
        if base is None or isinstance(base, mmap.mmap):
            break
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return base if isinstance(base, mmap.mmap) else None


def _release_mapped_pages(a: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped file's array (re-read from the file on next use).

    After packing, the float32 GEMM weights of a mapped .vitc file are no longer read; releasing each
    as soon as it is packed keeps the packed copy from adding to, rather than replacing, its memory.
    """
    mm = _mapped_file(a)
    if mm is None or not hasattr(mm, "madvise") or a.nbytes == 0:
        return
    page = mmap.PAGESIZE
    offset = a.ctypes.data - np.frombuffer(mm, dtype=np.uint8).ctypes.data
    start = offset // page * page
    length = -(-(offset + a.nbytes - start) // page) * page
    try:
        mm.madvise(mmap.MADV_DONTNEED, start, min(length, len(mm) - start))
    except (OSError, ValueError):
        pass  # advice only


@dataclass
class ViTOutput:
    """Outputs of a forward pass, named as transformers names them.

    Attributes
    ----------
    logits : (B, num_labels) array, or None for a model without a classifier. A
        ViTForImageClassification with ``num_labels=0`` has an identity classifier: (B, hidden_size),
        the CLS row of ``last_hidden_state``, as in transformers.
    last_hidden_state : (B, T, hidden_size) array, after the final layernorm.
    pooler_output : (B, hidden_size) array when the checkpoint has a pooler, else None.
    hidden_states : tuple of L+1 (B, T, hidden_size) arrays (embeddings, then each layer's
        output) when ``output_hidden_states=True``, else None.
    attentions : tuple of L (B, heads, T, T) arrays when ``output_attentions=True``, else None.
    """

    logits: np.ndarray | None
    last_hidden_state: np.ndarray
    pooler_output: np.ndarray | None = None
    hidden_states: tuple[np.ndarray, ...] | None = None
    attentions: tuple[np.ndarray, ...] | None = None

    def __getitem__(self, key: str) -> Any:
        # transformers' ModelOutput allows out["logits"]
        if not isinstance(key, str):
            raise TypeError(f"ViTOutput: index with a field name such as 'logits', got {key!r}")
        return getattr(self, key)

    def keys(self) -> list[str]:
        """Names of the fields that are set (not None), like transformers' ModelOutput."""
        return [k for k in self.__dataclass_fields__ if getattr(self, k) is not None]


def _bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) matrix of torch's bicubic resize, align_corners=False, A=-0.75.

    ref: PyTorch aten/src/ATen/native/UpSample.h (area_pixel_compute_source_index with cubic,
    cubic_convolution1/2, upsample_get_value_bounded clamps the taps to the border).
    """
    A = -0.75
    scale = in_size / out_size
    real = scale * (np.arange(out_size) + 0.5) - 0.5
    idx = np.floor(real).astype(np.int64)
    t = real - idx

    def near(x):  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    weights = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)
    m = np.zeros((out_size, in_size))
    for tap in range(4):
        cols = np.clip(idx - 1 + tap, 0, in_size - 1)
        np.add.at(m, (np.arange(out_size), cols), weights[:, tap])
    return m


def interpolate_pos_embed(pos_embed: np.ndarray, grid_h: int, grid_w: int) -> np.ndarray:
    """Resize a (1 + s*s, C) position table to a (grid_h, grid_w) patch grid.

    Matches current transformers' ``ViTEmbeddings.interpolate_pos_encoding``: the class position is
    kept, the patch part is resized with bicubic interpolation (``size=``, align_corners=False).
    """
    num_positions = pos_embed.shape[0] - 1
    s = int(round(num_positions**0.5))
    if s * s != num_positions:
        raise ValueError(f"pos_embed: expected 1 + s*s rows for a square grid, got {pos_embed.shape[0]}")
    grid = pos_embed[1:].astype(np.float64).reshape(s, s, -1)
    mh, mw = _bicubic_matrix(s, grid_h), _bicubic_matrix(s, grid_w)
    resized = np.einsum("ys,sxc->yxc", mh, np.einsum("xt,stc->sxc", mw, grid))
    return np.concatenate([pos_embed[:1], resized.reshape(grid_h * grid_w, -1).astype(np.float32)])


class ViT:
    """A Vision Transformer with the outputs of transformers' ``ViTForImageClassification``.

    Build it with :meth:`from_pretrained`. Calling it runs the forward pass::

        model = vitc.ViT.from_pretrained("vit-large-patch16-512.vitc")
        out = model(pixel_values)          # (B, C, H, W) float32
        out.logits.argmax(-1)

    Parameters
    ----------
    config : ViTConfig
    tensors : dict of vitc tensor names (see vitc/convert.py) to float32 arrays; the blocks' GEMM
        weights may instead be already packed in ``dtype`` (as a bfloat16 / int8 .vitc file stores them).
    preprocessor : the checkpoint's preprocessor_config.json settings, or None.
    dtype : precision of the blocks' weight matrices: "float32" (default), "bfloat16" or "int8"
        (per-output-channel scales, activations quantized per token). Layernorms, softmax, residuals,
        attention and accumulation stay float32.
    """

    def __init__(
        self,
        config: ViTConfig,
        tensors: dict[str, np.ndarray],
        preprocessor: dict | None = None,
        dtype: str = "float32",
    ):
        if dtype not in WEIGHT_DTYPES:
            raise ValueError(f"dtype: expected one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
        if config.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"hidden_act: expected one of {sorted(ACTIVATIONS)}, got {config.hidden_act!r}"
            )
        self.config = config
        self.preprocessor = preprocessor
        self._tensors = tensors
        ph, pw = config.patch_hw
        if ph != pw:
            raise NotImplementedError(f"patch_size: non-square patches ({ph}x{pw}) are not supported yet")
        if "pooler.weight" in tensors and config.pooler_size != config.hidden_size:
            raise NotImplementedError(
                f"pooler_output_size {config.pooler_size} != hidden_size {config.hidden_size} is not supported yet"
            )
        self._patch = ph
        self._image_hw = config.image_hw
        # A head with zero classes is transformers' Identity classifier (num_labels=0): logits are the
        # CLS row of last_hidden_state, taken in Python; the C core runs without a head.
        self._identity_head = "head.weight" in tensors and tensors["head.weight"].shape[0] == 0
        self._dims = (
            config.num_hidden_layers,
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
            tensors["head.weight"].shape[0] if "head.weight" in tensors else 0,  # 0 for the Identity head
            self._patch,
            config.num_channels,
        )
        self.dtype = dtype
        self._num_parameters = self._count_parameters()
        self._weights = self._weight_tuple()
        if dtype != "float32":
            self._pack_gemm_weights()
        else:
            packed = [k for k, a in tensors.items() if k.endswith(GEMM_WEIGHTS) and a.dtype != np.float32]
            if packed:
                raise ValueError(
                    f"weights: {packed[0]} is packed ({tensors[packed[0]].dtype}): pass the dtype it was "
                    "packed for (bfloat16 or int8), not float32"
                )
        self._pos_cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._pos_lock = threading.Lock()
        self._local = threading.local()  # per-thread workspaces: one shared model, many threads
        self._processor: ImageProcessor | None = None

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype: str | None = None,
        revision: str | None = None,
        *,
        mmap: bool = True,
        verify: bool = False,
    ) -> ViT:
        """Load a converted ``.vitc`` file (memory-mapped), a Hugging Face ViT folder or a hub ID.

        An HF folder (config.json + model.safetensors / pytorch_model.bin / sharded index) is
        converted in memory; ``vitc convert`` makes a file that loads faster. A hub ID
        (``"kakaobrain/vit-large-patch16-512"``) at ``revision`` (branch, tag, ``refs/pr/N`` or commit;
        default "main") is read from the Hugging Face cache, or downloaded with huggingface_hub when
        that is installed and offline mode is off (:func:`vitc.io.hub.resolve_model`).

        ``dtype=None`` (default) keeps the precision the weights are stored in: float32 for HF
        folders and float32 files, bfloat16 / int8 for files written by ``vitc convert --dtype``
        (mapped as stored, no packing at load). ``dtype="bfloat16"`` or ``"int8"`` on float32
        weights packs the blocks' weight matrices for the reduced-precision kernels at load. A file
        storing reduced-precision weights loads only in its own precision (ValueError otherwise).

        ``mmap=True`` (default) maps the file read-only: loading takes milliseconds and the weights
        are shared with other processes mapping the same file, but **the file must not be modified in
        place while the model lives**: a rewrite in place changes the weights, a truncation kills the
        process with SIGBUS. Replacing it by renaming a new file over it (what ``vitc convert`` does)
        is safe: the model keeps the old file. ``mmap=False`` reads every tensor into process memory
        (the file's size in RAM, read once): the model is then independent of the file.

        ``verify=True`` checks every tensor against its checksum (``.vitc`` files of format 2;
        the header's checksum is checked on every load) and raises
        :class:`vitc.io.vitc_file.ChecksumError` (a ValueError naming the damaged tensors); it reads
        the whole file once (~0.5 s per GB). Files without checksums (format 1, HF checkpoints) load
        with a :class:`vitc.io.vitc_file.NoChecksumsWarning`.
        """
        if dtype is not None and dtype not in WEIGHT_DTYPES:
            raise ValueError(f"dtype: expected one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
        config, preprocessor, tensors, stored = load_stored(path, revision, mmap=mmap, verify=verify)
        if dtype is None:
            dtype = stored
        elif stored != "float32" and dtype != stored:
            why = (
                "the float32 weights are not in it: load the float32 checkpoint it was converted from"
                if dtype == "float32"
                else "reduced-precision weights cannot be re-quantized losslessly. Convert from float32 instead "
                f"(vitc convert SRC DST --dtype {dtype}, or from_pretrained(float32 file or HF folder, "
                f"dtype={dtype!r}))"
            )
            raise ValueError(
                f"{path}: the file stores {stored} weights, dtype={dtype!r} was asked for: {why}; or load this "
                f"file in its precision (dtype=None or {stored!r}; vitc predict --dtype {stored})"
            )
        return cls(config, tensors, preprocessor, dtype=dtype)

    def _count_parameters(self) -> int:
        # Packed GEMM weights (padded, with int8 scales and column sums) count as their (N, K) matrix.
        t = self._tensors
        shapes = expected_shapes(self.config, head="head.weight" in t, pooler="pooler.weight" in t)
        total = 0
        for key, a in t.items():
            if key.endswith(GEMM_WEIGHTS) and key in shapes and a.dtype != np.float32:
                total += int(np.prod(shapes[key]))
            elif not key.endswith(INT8_PARTS[1:]):
                total += a.size
        return int(total)

    def _pack_gemm_weights(self) -> None:
        # The four weight matrices of each block go to the kernels' packed layout; their float32
        # versions are dropped (and their mapped pages released) so memory holds one copy. Weights
        # already packed (a bfloat16 / int8 .vitc file) are used as stored; forward_py.c checks sizes.
        weights = list(self._weights)
        packed_dtype = _DTYPES[self.dtype]  # a packed matrix's element type in a .vitc file
        for i in range(self.config.num_hidden_layers):
            for name in GEMM_WEIGHTS:
                key = f"blocks.{i}.{name}"
                slot = len(MODEL_TENSORS) + i * len(BLOCK_TENSORS) + BLOCK_TENSORS.index(name)
                w = self._tensors[key]
                if w.dtype == np.float32:
                    weights[slot] = pack_weight(w, self.dtype)
                    _release_mapped_pages(self._tensors.pop(key))
                    continue
                if w.dtype != packed_dtype:
                    raise ValueError(
                        f"weights: {key}: expected float32 or {self.dtype} packed as {packed_dtype}, got {w.dtype}"
                    )
                parts = [key + suffix for suffix in INT8_PARTS] if self.dtype == "int8" else [key]
                missing = [k for k in parts if k not in self._tensors]
                if missing:
                    raise ValueError(f"weights: missing tensors {missing} of the packed int8 {key}")
                stored = tuple(self._tensors.pop(k) for k in parts)
                weights[slot] = stored if self.dtype == "int8" else stored[0]
        self._weights = tuple(weights)

    def _weight_tuple(self) -> tuple:
        t = self._tensors
        missing = [
            n for n in MODEL_TENSORS if n not in t and n not in OPTIONAL_TENSORS and n != "pos_embed"
        ]
        if missing or "pos_embed" not in t:
            raise ValueError(f"weights: missing tensors {missing or ['pos_embed']}")
        head = [None if self._identity_head and n.startswith("head.") else t.get(n) for n in MODEL_TENSORS]
        blocks = []
        for i in range(self.config.num_hidden_layers):
            for n in BLOCK_TENSORS:
                key = f"blocks.{i}.{n}"
                if key not in t and n not in OPTIONAL_TENSORS:
                    raise ValueError(f"weights: missing tensor {key!r}")
                blocks.append(t.get(key))
        return tuple(head + blocks)

    # -- properties ----------------------------------------------------------------------------
    @property
    def id2label(self) -> dict[int, str]:
        return dict(self.config.id2label or {})

    @property
    def num_labels(self) -> int:
        """Classes of the classifier head (0 for a bare ViTModel)."""
        return self._dims[4]

    @property
    def has_classifier(self) -> bool:
        """True for a ViTForImageClassification checkpoint (its head may have 0 classes: identity)."""
        return "head.weight" in self._tensors

    @property
    def patch_size(self) -> int:
        return self._patch

    @property
    def image_processor(self) -> ImageProcessor:
        """The checkpoint's preprocessing (preprocessor_config.json, or defaults at image_size)."""
        if self._processor is None:
            if self.preprocessor:
                self._processor = ImageProcessor.from_dict(self.preprocessor)
            else:
                h, w = self._image_hw
                self._processor = ImageProcessor(size={"height": h, "width": w})
        return self._processor

    def weight_nbytes(self) -> int:
        """Bytes of weights the model holds (packed bf16 / int8 matrices in those modes)."""

        def nbytes(w) -> int:
            return sum(nbytes(p) for p in w) if isinstance(w, tuple) else (0 if w is None else w.nbytes)

        return int(sum(nbytes(w) for w in self._weights))

    def num_parameters(self) -> int:
        """Parameter count (as transformers counts it, QKV counted once)."""
        return self._num_parameters

    def __repr__(self) -> str:
        c = self.config
        return (
            f"ViT(layers={c.num_hidden_layers}, hidden={c.hidden_size}, heads={c.num_attention_heads}, "
            f"mlp={c.intermediate_size}, image={self._image_hw[0]}x{self._image_hw[1]}, patch={self._patch}, "
            f"labels={self.num_labels}, act={c.hidden_act}, params={self.num_parameters():,}, dtype={self.dtype})"
        )

    # -- forward -------------------------------------------------------------------------------
    def _check_pixels(self, pixel_values: Any, interpolate_pos_encoding: bool) -> np.ndarray:
        x = np.asarray(pixel_values)
        cin, (h_img, w_img), p = self.config.num_channels, self._image_hw, self._patch
        expected = f"(B, {cin}, {h_img}, {w_img}) float32"
        # Rule: any real floating dtype (float16/32/64, either byte order) is computed in float32, as
        # transformers casts; integers, bools, complex and strings are refused (pixels are not 0..255).
        if x.dtype.kind != "f":
            raise ValueError(f"pixel_values: expected {expected}, got dtype {x.dtype} (cast to float32)")
        if x.ndim != 4:
            raise ValueError(f"pixel_values: expected rank 4 {expected}, got shape {x.shape}")
        if x.shape[1] != cin:
            raise ValueError(f"pixel_values: expected {cin} channels {expected}, got shape {x.shape}")
        h, w = x.shape[2:]
        if h == 0 or w == 0 or h % p or w % p:
            raise ValueError(
                f"pixel_values: height and width must be positive multiples of the patch size {p}, got {h}x{w}"
            )
        if not interpolate_pos_encoding and (h, w) != (h_img, w_img):
            raise ValueError(
                f"pixel_values: expected {h_img}x{w_img} images {expected}, got {h}x{w}; "
                "pass interpolate_pos_encoding=True to run at another size"
            )
        # Native float32, aligned and C-contiguous: what the C core reads (copies only if needed).
        return np.require(x, np.dtype("=f4"), ["C", "A"])

    def _pos_table(self, h: int, w: int) -> np.ndarray:
        pos = self._tensors["pos_embed"]
        p = self._patch
        gh, gw = h // p, w // p
        # ref: ViTEmbeddings.interpolate_pos_encoding returns the table unchanged in this case
        if gh * gw == pos.shape[0] - 1 and h == w:
            return pos
        with self._pos_lock:
            table = self._pos_cache.get((h, w))
            if table is not None:
                self._pos_cache.move_to_end((h, w))
                return table
        table = interpolate_pos_embed(pos, gh, gw)  # outside the lock: threads of other sizes go on
        with self._pos_lock:
            self._pos_cache[(h, w)] = table
            while len(self._pos_cache) > POS_CACHE_SIZE:
                self._pos_cache.popitem(last=False)
        return table

    def _workspace(self, b: int, h: int, w: int, threads: int) -> np.ndarray:
        # Working memory for this batch shape, kept (per thread, the last WORKSPACE_CACHE_SIZE shapes)
        # for the next call of the same shape. The size is asked every call (cheap): it also depends
        # on the kernels the CPU runs (AMX attention) and the thread count.
        n = _core.vit_workspace_len(self._dims, b, h, w, threads, WEIGHT_DTYPES[self.dtype])
        cache = getattr(self._local, "workspaces", None)
        if cache is None:
            cache = self._local.workspaces = OrderedDict()
        key = (b, h, w, threads)
        ws = cache.get(key)
        if ws is not None and ws.size == n:
            cache.move_to_end(key)
            return ws
        cache.pop(key, None)
        while len(cache) >= WORKSPACE_CACHE_SIZE:
            cache.popitem(last=False)  # free the oldest before allocating the new one
        ws = cache[key] = np.empty(n, dtype=np.float32)
        return ws

    def __call__(
        self,
        pixel_values: Any,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        interpolate_pos_encoding: bool = False,
    ) -> ViTOutput:
        """Run the model on (B, C, H, W) pixel values (as the image processor returns them)."""
        x = self._check_pixels(pixel_values, interpolate_pos_encoding)
        b, _, h, w = x.shape
        L, C, H, _, K, p, _ = self._dims
        T = (h // p) * (w // p) + 1
        pos = self._pos_table(h, w) if interpolate_pos_encoding else self._tensors["pos_embed"]
        weights = self._weights[:3] + (pos,) + self._weights[4:]

        last = np.empty((b, T, C), dtype=np.float32)
        logits = np.empty((b, K), dtype=np.float32) if K else None
        pooled = np.empty((b, C), dtype=np.float32) if "pooler.weight" in self._tensors else None
        hidden = np.empty((L + 1, b, T, C), dtype=np.float32) if output_hidden_states else None
        attn = np.empty((L, b, H, T, T), dtype=np.float32) if output_attentions else None
        if b > 0:
            threads = _core.get_num_threads()
            _core.vit_forward(
                weights, self._dims, float(self.config.layer_norm_eps), ACTIVATIONS[self.config.hidden_act],
                WEIGHT_DTYPES[self.dtype], x, last, logits, pooled, hidden, attn,
                self._workspace(b, h, w, threads), threads,
            )
        if self._identity_head:
            logits = last[:, 0].copy()  # ref: ViTForImageClassification, classifier = nn.Identity()
        return ViTOutput(
            logits=logits,
            last_hidden_state=last,
            pooler_output=pooled,
            hidden_states=tuple(hidden) if hidden is not None else None,
            attentions=tuple(attn) if attn is not None else None,
        )

    forward = __call__

    # -- images in, labels out -------------------------------------------------------------------
    def predict(
        self, images: Any, top_k: int = 5, batch_size: int = 8, progress: bool | None = None
    ) -> _predict.Prediction | _predict.Predictions:
        """Classify images: top-k ``(label, probability)`` pairs per image.

        Parameters
        ----------
        images : a path, PIL image or HWC uint8 array, or a list of them.
        top_k : labels per image, most probable first (softmax over the logits).
        batch_size : images per forward pass.
        progress : show a progress bar (default: when there are many images).

        Returns
        -------
        Prediction (a list of pairs) for one image, Predictions (a list of them) for a list.
        """
        return _predict.predict(self, images, self.image_processor, top_k, batch_size, progress)

    def attention_map(self, image: Any) -> np.ndarray:
        """(H, W) heat-map in [0, 1] at the image's size: attention rollout from the CLS token."""
        return _predict.attention_map(self, image, self.image_processor)

    def explain(self, image: Any) -> Any:
        """PIL image: ``image`` with its attention map overlaid and the top label as title.

        What ``vitc predict --explain`` writes; in a notebook it shows inline.
        """
        return _predict.explain(self, image, self.image_processor)
