"""The ViT model: Hugging Face ViT checkpoints run by vitc's C forward pass.

``ViT.from_pretrained`` takes a converted ``.vitc`` file or a Hugging Face model folder; calling the
model mirrors ``transformers.ViTForImageClassification`` / ``ViTModel`` (same argument and output
names). The model is built once into a C object (``vitc._core.Model``), which checks every weight,
keeps the arrays and its working memory, and runs the whole forward with the GIL released; Python
validates the inputs and keeps the position table for the input size.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from vitc import _core
from vitc import predict as _predict
from vitc.config import ViTConfig
from vitc.io.load import load_stored
from vitc.outputs import (
    BaseModelOutputWithPooling,
    DeiTForImageClassificationWithTeacherOutput,
    ImageClassifierOutput,
    MaskedImageModelingOutput,
    ModelOutput,
)
from vitc.preprocess import ImageProcessor
from vitc.weights import GEMM_WEIGHTS, INT8_PARTS, PYTHON_TENSORS, expected_shapes, pack_weight, present_groups

# Interpolated position tables kept (per input size) and idle workspaces the C model keeps (per
# batch shape): small LRUs, so alternating sizes do not recompute, and many sizes do not grow memory.
POS_CACHE_SIZE = 8
WORKSPACE_CACHE_SIZE = _core.Model.WORKSPACE_POOL_SIZE


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


# The output of every model (transformers' ModelOutput types; vitc/outputs.py): one base class.
ViTOutput = ModelOutput


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


def interpolate_pos_embed(pos_embed: np.ndarray, grid_h: int, grid_w: int, prefix: int = 1) -> np.ndarray:
    """Resize a (prefix + s*s, C) position table to a (grid_h, grid_w) patch grid.

    Matches current transformers' ``ViTEmbeddings.interpolate_pos_encoding``: the positions of the
    ``prefix`` tokens (CLS; CLS and distillation for DeiT) are kept, the patch part is resized with
    bicubic interpolation (``size=``, align_corners=False).
    """
    num_positions = pos_embed.shape[0] - prefix
    s = int(round(num_positions**0.5))
    if s * s != num_positions:
        raise ValueError(f"pos_embed: expected {prefix} + s*s rows for a square grid, got {pos_embed.shape[0]}")
    grid = pos_embed[prefix:].astype(np.float64).reshape(s, s, -1)
    mh, mw = _bicubic_matrix(s, grid_h), _bicubic_matrix(s, grid_w)
    resized = np.einsum("ys,sxc->yxc", mh, np.einsum("xt,stc->sxc", mw, grid))
    return np.concatenate([pos_embed[:prefix], resized.reshape(grid_h * grid_w, -1).astype(np.float32)])


class ViT:
    """A Vision Transformer with the outputs of transformers' ``ViTForImageClassification``.

    Build it with :meth:`from_pretrained`. Calling it runs the forward pass::

        model = vitc.ViT.from_pretrained("vit-large-patch16-512.vitc")
        out = model(pixel_values)          # (B, C, H, W) float32
        out.logits.argmax(-1)

    Parameters
    ----------
    config : ViTConfig
    tensors : dict of vitc tensor names (see vitc/weights.py) to float32 arrays; the blocks' GEMM
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
        if dtype not in _core.PRECISIONS:
            raise ValueError(f"dtype: expected one of {', '.join(_core.PRECISIONS)}, got {dtype!r}")
        self.config = config
        self.preprocessor = preprocessor
        self.dtype = dtype
        self._tensors = dict(tensors)
        if dtype != "float32":
            self._pack_gemm_weights()
        # Built once: _core.Model checks every tensor's shape and dtype (naming it), keeps the arrays
        # and its working memory; each call passes only the pixels and the position table.
        self._model = _core.Model(
            {k: v for k, v in self._tensors.items() if k not in PYTHON_TENSORS},
            num_layers=config.num_hidden_layers,
            hidden_size=config.hidden_size,
            num_heads=config.num_attention_heads,
            mlp_size=config.intermediate_size,
            num_channels=config.num_channels,
            patch_size=config.patch_hw,
            image_size=config.image_hw,
            layer_norm_eps=float(config.layer_norm_eps),
            hidden_act=config.hidden_act,
            precision=dtype,
            pooler_act=config.pooler_act,
            pool=config.global_pool,  # timm's "avg" (set by the timm converter)
        )
        if "mim_decoder.weight" in self._tensors and self._model.num_prefix_tokens != 1:
            raise ValueError(
                "a masked-image-modeling decoder after more than the CLS token (DeiTForMaskedImageModeling) "
                "is not supported: expected ViTForMaskedImageModeling"
            )
        self._num_parameters = self._count_parameters()
        self._pos_cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._pos_lock = threading.Lock()
        self._processor: ImageProcessor | None = None
        self._originals_dropped = False

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
        if dtype is not None and dtype not in _core.PRECISIONS:
            raise ValueError(f"dtype: expected one of {', '.join(_core.PRECISIONS)}, got {dtype!r}")
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
        shapes = expected_shapes(
            self.config, head="head.weight" in t, pooler="pooler.weight" in t, groups=present_groups(t)
        )
        total = 0
        for key, a in t.items():
            if key.endswith(GEMM_WEIGHTS) and key in shapes and a.dtype != np.float32:
                total += int(np.prod(shapes[key]))
            elif not key.endswith(INT8_PARTS[1:]):
                total += a.size
        return int(total)

    def _pack_gemm_weights(self) -> None:
        # The four float32 weight matrices of each block go to the kernels' packed layout one at a
        # time, and the float32 version is dropped (its mapped pages released) as soon as it is
        # packed, so memory holds one copy. Weights already packed (a bfloat16 / int8 .vitc file)
        # stay as stored; _core.Model checks every one.
        t = self._tensors
        for key in [k for k in t if k.startswith("blocks.") and k.endswith(GEMM_WEIGHTS)]:
            w = t[key]
            if not isinstance(w, np.ndarray) or w.dtype != np.float32 or w.ndim != 2:
                continue
            packed = pack_weight(w, self.dtype)
            for suffix, part in zip(INT8_PARTS, packed if isinstance(packed, tuple) else (packed,)):
                t[key + suffix] = part
            _release_mapped_pages(w)

    def _drop_packed_originals(self) -> None:
        # The first forward packs the float32 GEMM weights inside _core.Model, which then reads only
        # the packed copies: hold those instead of the (N, K) originals and release a mapped file's
        # pages, so memory keeps one copy (the caller's own references are not touched).
        for key, packed in self._model.tensors.items():
            orig = self._tensors.get(key)
            packed_f32 = packed.dtype == np.float32 and packed.ndim == 1
            if packed_f32 and orig is not None and orig is not packed and orig.ndim == 2:
                self._tensors[key] = packed
                _release_mapped_pages(orig)
        self._originals_dropped = True

    # -- properties ----------------------------------------------------------------------------
    @property
    def id2label(self) -> dict[int, str]:
        return dict(self.config.id2label or {})

    @property
    def num_labels(self) -> int:
        """Classes of the classifier head (0 for a bare ViTModel)."""
        return self._model.num_classes

    @property
    def has_classifier(self) -> bool:
        """True for a ViTForImageClassification checkpoint (its head may have 0 classes: identity)."""
        return self._model.has_head

    @property
    def patch_size(self) -> int | tuple[int, int]:
        """Patch side (or (height, width) for a non-square patch)."""
        ph, pw = self._model.patch_size
        return ph if ph == pw else (ph, pw)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches: 1 (CLS), 2 for DeiT (CLS, distillation)."""
        return self._model.num_prefix_tokens

    @property
    def image_processor(self) -> ImageProcessor:
        """The checkpoint's preprocessing (preprocessor_config.json, or defaults at image_size)."""
        if self._processor is None:
            if self.preprocessor:
                self._processor = ImageProcessor.from_dict(self.preprocessor)
            else:
                h, w = self.config.image_hw
                self._processor = ImageProcessor(size={"height": h, "width": w})
        return self._processor

    def weight_nbytes(self) -> int:
        """Bytes of weights the model holds (packed bf16 / int8 matrices in those modes)."""
        return self._model.weight_nbytes

    def num_parameters(self) -> int:
        """Parameter count (as transformers counts it, QKV counted once)."""
        return self._num_parameters

    def __repr__(self) -> str:
        c, (ih, iw) = self.config, self.config.image_hw
        return (
            f"ViT(layers={c.num_hidden_layers}, hidden={c.hidden_size}, heads={c.num_attention_heads}, "
            f"mlp={c.intermediate_size}, image={ih}x{iw}, patch={self.patch_size}, "
            f"labels={self.num_labels}, act={c.hidden_act}, params={self.num_parameters():,}, dtype={self.dtype})"
        )

    # -- forward -------------------------------------------------------------------------------
    def _check_pixels(self, pixel_values: Any, interpolate_pos_encoding: bool) -> np.ndarray:
        hint = "m.predict(images) for labels, or m.image_processor(images)['pixel_values'] for the model's input"
        if _looks_like_images(pixel_values):
            raise TypeError(
                f"pixel_values: expected preprocessed float pixels (B, C, H, W), got {_kind_of(pixel_values)}; "
                f"use {hint}"
            )
        x = np.asarray(pixel_values)
        cin, (h_img, w_img), (ph, pw) = self.config.num_channels, self.config.image_hw, self._model.patch_size
        expected = f"(B, {cin}, {h_img}, {w_img}) float32"
        # Rule: any real floating dtype (float16/32/64, either byte order) is computed in float32, as
        # transformers casts; integers, bools, complex and strings are refused (pixels are not 0..255).
        if x.dtype.kind != "f":
            raw = " (raw image values? use " + hint + ")" if x.dtype.kind in "ub" else " (cast to float32)"
            raise ValueError(f"pixel_values: expected {expected}, got dtype {x.dtype}{raw}")
        if x.ndim != 4:
            raise ValueError(f"pixel_values: expected rank 4 {expected}, got shape {x.shape}")
        if x.shape[1] != cin:
            raise ValueError(f"pixel_values: expected {cin} channels {expected}, got shape {x.shape}")
        h, w = x.shape[2:]
        # ref: ViTPatchEmbeddings: the convolution drops the rows and columns the patch does not divide
        if h < ph or w < pw:
            p = ph if ph == pw else f"{ph}x{pw}"
            raise ValueError(f"pixel_values: height and width must be at least the patch size {p}, got {h}x{w}")
        if not interpolate_pos_encoding and (h, w) != (h_img, w_img):
            raise ValueError(
                f"pixel_values: expected {h_img}x{w_img} images {expected}, got {h}x{w}; "
                "pass interpolate_pos_encoding=True to run at another size"
            )
        # Native float32, aligned and C-contiguous: what the C core reads (copies only if needed).
        return np.require(x, np.dtype("=f4"), ["C", "A"])

    def _pos_table(self, h: int, w: int) -> np.ndarray | None:
        """The position table for h x w images; None: the stored one applies."""
        pos = self._tensors["pos_embed"]
        (ph, pw), prefix = self._model.patch_size, self._model.num_prefix_tokens
        gh, gw = h // ph, w // pw
        # ref: ViTEmbeddings.interpolate_pos_encoding returns the table unchanged in this case
        if gh * gw == pos.shape[0] - prefix and h == w:
            return None
        with self._pos_lock:
            table = self._pos_cache.get((h, w))
            if table is not None:
                self._pos_cache.move_to_end((h, w))
                return table
        table = interpolate_pos_embed(pos, gh, gw, prefix=prefix)  # outside the lock: other sizes go on
        with self._pos_lock:
            self._pos_cache[(h, w)] = table
            while len(self._pos_cache) > POS_CACHE_SIZE:
                self._pos_cache.popitem(last=False)
        return table

    @property
    def output_type(self) -> type[ModelOutput]:
        """The transformers output class this checkpoint's forward returns (vitc/outputs.py)."""
        if "mim_decoder.weight" in self._tensors:
            return MaskedImageModelingOutput
        if self._model.distilled:
            return DeiTForImageClassificationWithTeacherOutput
        if self._model.has_head:
            return ImageClassifierOutput
        return BaseModelOutputWithPooling

    def _mim_reconstruction(self, last_hidden_state: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """ViTForMaskedImageModeling's decoder: 1x1 convolution of the patch tokens, pixel shuffle.

        ref: modeling_vit.py ViTForMaskedImageModeling.forward (the grid is taken as square there:
        floor(sqrt(patches)); vitc uses the real grid, the same for the square images it was made for).
        """
        prefix = self._model.num_prefix_tokens
        b, _, c = last_hidden_state.shape
        h, w = grid
        s, cin = self.config.encoder_stride, self.config.num_channels
        tokens = last_hidden_state[:, prefix:].reshape(b, h, w, c)
        y = tokens @ self._tensors["mim_decoder.weight"].T + self._tensors["mim_decoder.bias"]  # (B, h, w, Cin*s*s)
        # PixelShuffle: channel (c, i, j) of pixel (y, x) goes to (c, y*s + i, x*s + j)
        y = y.reshape(b, h, w, cin, s, s).transpose(0, 3, 1, 4, 2, 5)
        return np.ascontiguousarray(y.reshape(b, cin, h * s, w * s), dtype=np.float32)

    def __call__(
        self,
        pixel_values: Any,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        interpolate_pos_encoding: bool | None = None,
        return_dict: bool | None = None,
        bool_masked_pos: Any = None,
        *,
        output_attention_means: bool = False,
        profile: bool = False,
    ) -> ModelOutput | tuple:
        """Run the model on (B, C, H, W) pixel values (as the image processor returns them).

        As transformers: ``output_hidden_states``, ``output_attentions`` and ``return_dict`` default to
        the config's (``config.json``; False, False, True unless it says otherwise); given, they win.
        The result is the checkpoint's output type (:attr:`output_type`), or its ``to_tuple()`` when
        ``return_dict`` is false. ``bool_masked_pos`` (masked image modeling's masking) is not
        supported: anything but None is a ValueError.

        vitc's own (attributes of the output, never keys or tuple items): ``output_attention_means``
        gives ``attention_means``, each layer's attentions averaged over heads, (B, T, T) (what
        attention rollout reads, without the memory of every head's); ``profile`` gives ``profile``,
        seconds per stage of the forward summed over layers (patch_embed, qkv, attention, out_proj,
        mlp_up, gelu, mlp_down, norms, quantize, other; a profiled forward runs the MLP activation as
        a pass of its own).
        """
        config = self.config
        want_hidden = config.output_hidden_states if output_hidden_states is None else bool(output_hidden_states)
        want_attn = config.output_attentions if output_attentions is None else bool(output_attentions)
        as_dict = config.return_dict if return_dict is None else bool(return_dict)
        if bool_masked_pos is not None:
            raise ValueError("bool_masked_pos: vitc runs no masked positions (mask tokens); expected None")
        interpolate = bool(interpolate_pos_encoding)
        x = self._check_pixels(pixel_values, interpolate)
        pos = self._pos_table(*x.shape[2:]) if interpolate else None
        out = self._model.forward(
            x,
            pos,
            want_hidden,
            want_attn,
            output_attention_means=bool(output_attention_means),
            profile=bool(profile),
        )
        if not self._originals_dropped:
            self._drop_packed_originals()
        hidden, attn, means = out["hidden_states"], out["attentions"], out["attention_means"]
        (ph, pw) = self._model.patch_size
        common = dict(
            hidden_states=tuple(hidden) if hidden is not None else None,
            attentions=tuple(attn) if attn is not None else None,
            attention_means=tuple(means) if means is not None else None,
            profile=out["profile"],
        )
        kind = self.output_type
        if kind is BaseModelOutputWithPooling:
            result = kind(last_hidden_state=out["last_hidden_state"], pooler_output=out["pooler_output"], **common)
        else:
            extras = dict(last_hidden_state=out["last_hidden_state"], pooler_output=out["pooler_output"], **common)
            if kind is MaskedImageModelingOutput:
                grid = (x.shape[2] // ph, x.shape[3] // pw)
                result = kind(reconstruction=self._mim_reconstruction(out["last_hidden_state"], grid), **extras)
            elif kind is DeiTForImageClassificationWithTeacherOutput:
                result = kind(
                    logits=out["logits"],
                    cls_logits=out["cls_logits"],
                    distillation_logits=out["distillation_logits"],
                    **extras,
                )
            else:
                result = kind(logits=out["logits"], **extras)
        return result if as_dict else result.to_tuple()

    forward = __call__

    # -- images in, labels out -------------------------------------------------------------------
    def predict(
        self,
        images: Any,
        top_k: int | None = 5,
        batch_size: int = 8,
        progress: bool | None = None,
        function_to_apply: str | None = None,
    ) -> _predict.Prediction | _predict.Predictions:
        """Classify images: top-k ``(label, score)`` pairs per image, as ``pipeline("image-classification")``.

        Parameters
        ----------
        images : a path, PIL image (any mode), HWC / CHW / HW array or torch tensor, or a list of them.
        top_k : labels per image, highest score first; more than the model's labels gives all of them,
            None the default 5 (as the pipeline). Equal scores keep the label order.
        batch_size : images per forward pass.
        progress : show a progress bar (default: when there are many images).
        function_to_apply : "softmax", "sigmoid" or "none"; None (default) picks as the pipeline does:
            none for ``problem_type`` "regression", sigmoid for "multi_label_classification" or a
            single label, softmax otherwise. Scores are float32, computed as the pipeline computes them.

        Returns
        -------
        Prediction (a list of pairs) for one image, Predictions (a list of them) for a list.
        """
        return _predict.predict(
            self, images, self.image_processor, top_k, batch_size, progress, function_to_apply=function_to_apply
        )

    def attention_map(self, image: Any) -> np.ndarray:
        """(H, W) heat-map in [0, 1] at the image's size: attention rollout from the CLS token."""
        return _predict.attention_map(self, image, self.image_processor)

    def explain(self, image: Any) -> Any:
        """PIL image: ``image`` with its attention map overlaid and the top label as title.

        What ``vitc predict --explain`` writes; in a notebook it shows inline.
        """
        return _predict.explain(self, image, self.image_processor)


def _looks_like_images(value: Any) -> bool:
    """True for what ``predict`` takes but a forward does not: paths and PIL images (alone or listed)."""
    first = value[0] if isinstance(value, list | tuple) and value else value
    return isinstance(first, str | os.PathLike) or type(first).__module__.startswith("PIL.")


def _kind_of(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {type(value[0]).__name__}"
    return "a PIL image" if type(value).__module__.startswith("PIL.") else f"a {type(value).__name__}"
