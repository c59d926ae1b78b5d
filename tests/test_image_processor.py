"""vitc.preprocess against transformers' PIL image processor: photographs, arrays, tensors, configs.

Every comparison is bit for bit: vitc runs the same arithmetic in the same order and dtypes as
``ViTImageProcessorPil``. Files, PIL modes and damaged inputs are in test_images_real_world.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image, ImageOps
from transformers import ViTConfig, ViTForImageClassification
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from vitc.config import MAX_SIZE_RATIO
from vitc.preprocess import ImageLoadError, ImageProcessor, flatten_images, pipeline_image

# Real photographs shipped with scikit-image (uint8). Crops make odd, non-square sizes.
PHOTOS = {
    "astronaut": lambda: skimage.data.astronaut(),  # 512x512 RGB
    "chelsea": lambda: skimage.data.chelsea(),  # 300x451 RGB
    "coffee_crop": lambda: skimage.data.coffee()[17:150, 33:240],  # 133x207 RGB (smaller than 224)
    "rocket": lambda: skimage.data.rocket(),  # 427x640 RGB
    "camera": lambda: skimage.data.camera(),  # 512x512 grayscale (H, W)
}
SIZES = [224, 30, 512, {"height": 64, "width": 48}]
RESAMPLES = [0, 2, 3]


def hf_processor(**kw) -> ViTImageProcessorPil:
    return ViTImageProcessorPil(**kw)


def hf_pixels(images, processor: ViTImageProcessorPil | None = None, **kw) -> np.ndarray:
    """transformers' pixel_values as float32 (vitc's dtype; transformers keeps uint8 when no step casts)."""
    processor = hf_processor(**kw) if processor is None else processor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "channel dimension is ambiguous" for tiny arrays
        return np.asarray(processor(images, return_tensors="np")["pixel_values"], dtype=np.float32)


def assert_close(ours: np.ndarray, ref: np.ndarray) -> None:
    """Bit-identical (the name is historical)."""
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape, f"expected {ref.shape}, got {ours.shape}"
    np.testing.assert_array_equal(ours, ref)


def same_as_transformers(ours_fn, ref_fn) -> str:
    """Bit-identical pixels, or an error from both (vitc's a ValueError / TypeError). Returns which."""
    try:
        ref = ref_fn()
    except Exception:
        with pytest.raises((ValueError, TypeError)):
            ours_fn()
        return "both refuse"
    assert_close(ours_fn(), ref)
    return "equal"


def as_pil(a: np.ndarray) -> Image.Image:
    return Image.fromarray(a)


# ---- photographs ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PHOTOS))
@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("resample", RESAMPLES)
def test_photos_match_transformers(name: str, size, resample: int) -> None:
    img = as_pil(PHOTOS[name]())
    kw = {"size": size, "resample": resample, "do_convert_rgb": True}  # "camera" is grayscale
    assert_close(ImageProcessor(**kw)(img), hf_pixels(img, **kw))


def test_array_input_and_batch_match_transformers() -> None:
    photos = [PHOTOS["chelsea"](), PHOTOS["rocket"](), PHOTOS["coffee_crop"]()]
    ref = hf_pixels(photos, size={"height": 224, "width": 224})
    ours = ImageProcessor()(photos)
    assert ours.shape == (3, 3, 224, 224)
    assert_close(ours, ref)


def test_custom_mean_std_rescale_flags_match_transformers() -> None:
    img = as_pil(PHOTOS["astronaut"]())
    for kw in (
        {"size": {"height": 40, "width": 56}, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
        {"size": {"height": 40, "width": 56}, "do_normalize": False},
        {"size": {"height": 40, "width": 56}, "do_rescale": False, "do_normalize": False},
        {"size": {"height": 40, "width": 56}, "do_rescale": False},
    ):
        assert_close(ImageProcessor(**kw)(img), hf_pixels(img, **kw))


def test_no_resize_matches_transformers() -> None:
    img = as_pil(PHOTOS["coffee_crop"]())
    assert_close(ImageProcessor(do_resize=False)(img), hf_pixels(img, do_resize=False))


@pytest.mark.parametrize(
    "size",
    [{"shortest_edge": 64}, {"shortest_edge": 50, "longest_edge": 60}, {"max_height": 50, "max_width": 90}],
    ids=str,
)
@pytest.mark.parametrize("name", ["chelsea", "rocket", "camera"])
def test_aspect_preserving_sizes_match_transformers(size: dict, name: str) -> None:
    img = as_pil(PHOTOS[name]())
    kw = {"size": size, "do_convert_rgb": True}
    assert_close(ImageProcessor(**kw)(img), hf_pixels(img, **kw))


# ---- arrays and tensors -------------------------------------------------------------------------


def _rgba_photo() -> np.ndarray:
    rgb = PHOTOS["coffee_crop"]()
    h, w, _ = rgb.shape
    alpha = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))  # every alpha level
    return np.dstack([rgb, alpha])


def _arrays() -> dict[str, np.ndarray]:
    rgb = PHOTOS["coffee_crop"]()  # 133x207
    rgba = _rgba_photo()
    return {
        "hwc_uint8": rgb,
        "chw_uint8": np.ascontiguousarray(rgb.transpose(2, 0, 1)),
        "hwc_strided": rgb[::2, ::-1],
        "hw1": rgb[..., :1],
        "1hw": np.ascontiguousarray(rgb[..., :1].transpose(2, 0, 1)),
        "hwc4": rgba,
        "chw4": np.ascontiguousarray(rgba.transpose(2, 0, 1)),
        "hwc4_float_unit": rgba.astype(np.float32) / 255,
        "float32_unit": rgb.astype(np.float32) / 255,  # resized via uint8 (truncated), rescaled twice
        "float64_integral": rgb.astype(np.float64),
        "float16_unit": (rgb / 255).astype(np.float16),
        "float32_signed": rgb.astype(np.float32) / 127.5 - 1,  # cannot become uint8: refused to resize
        "int64": rgb.astype(np.int64),
        "uint16_8bit_values": rgb.astype(np.uint16),
        "uint16_16bit_values": rgb.astype(np.uint16) * 257,  # refused to resize, as transformers
        "bool": rgb > 128,
        "tiny_4x4x3": rgb[:4, :4],  # both axes could be channels: transformers reads it as (C=4, 4, 3)
        "two_channels": rgb[..., :2],
    }


ARRAYS = list(_arrays())
ARRAY_STEPS = {
    "default": {},
    "no_resize": {"do_resize": False},
    "no_rescale": {"do_rescale": False},
    "no_resize_rescale": {"do_resize": False, "do_rescale": False},
    "scalar_mean": {"image_mean": 0.5, "image_std": 0.5},
}


@pytest.mark.parametrize("steps", list(ARRAY_STEPS))
@pytest.mark.parametrize("convert_rgb", [True, None])
@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "torch"])
def test_arrays_and_tensors_match_transformers(name: str, convert_rgb, steps: str, as_tensor: bool) -> None:
    a = _arrays()[name]
    x = torch.from_numpy(np.ascontiguousarray(a)) if as_tensor else a
    kw = {"size": {"height": 24, "width": 20}, "do_convert_rgb": convert_rgb, **ARRAY_STEPS[steps]}
    outcome = same_as_transformers(lambda: ImageProcessor(**kw)(x), lambda: hf_pixels(x, **kw))
    if name in ("hwc_uint8", "chw_uint8", "int64", "float64_integral") or (convert_rgb and name.startswith("hw")):
        assert outcome == "equal"


def test_array_refusals_name_what_was_found() -> None:
    arrays = _arrays()
    with pytest.raises(ImageLoadError, match=r"cannot find the channel axis of shape \(133, 207, 2\)"):
        ImageProcessor()(arrays["two_channels"])
    with pytest.raises(ImageLoadError, match=r"cannot resize a uint16 image with values in \[.*\]: integer values"):
        ImageProcessor()(arrays["uint16_16bit_values"])
    with pytest.raises(ImageLoadError, match=r"cannot resize a float32 image .* float values must be in \[0, 1\]"):
        ImageProcessor()(arrays["float32_signed"])
    with pytest.raises(ImageLoadError, match="image_mean has 3 values but the image has 4 channels"):
        ImageProcessor()(arrays["hwc4"])
    with pytest.raises(ImageLoadError, match="expected a bool, integer or float dtype, found dtype complex64"):
        ImageProcessor()(np.zeros((8, 8, 3), np.complex64))
    with pytest.raises(ImageLoadError, match=r"non-empty image, found shape \(0, 8, 3\)"):
        ImageProcessor()(np.zeros((0, 8, 3), np.uint8))
    with pytest.raises(ImageLoadError, match="non-empty image, found a PIL image of mode 'RGB' and size 0x5"):
        ImageProcessor()(Image.new("RGB", (0, 5)))
    with pytest.raises(ImageLoadError, match="float RGBA array must be in"):
        ImageProcessor(do_convert_rgb=True)(arrays["hwc4"].astype(np.float32))


def test_float_unit_arrays_are_rescaled_twice_as_in_transformers() -> None:
    """transformers resizes a [0, 1] float image through uint8 and back to [0, 1], and do_rescale then
    divides by 255 again. vitc reproduces it (a drop-in must), and the values show it."""
    x = ImageProcessor(do_normalize=False)(_arrays()["float32_unit"])
    assert 0 < x.max() <= 1 / 255


def test_batches_lists_and_nesting_match_transformers() -> None:
    a, b = PHOTOS["chelsea"](), PHOTOS["rocket"]()
    kw = {"size": {"height": 32, "width": 24}}
    stacked = np.stack([a[:200, :300], b[:200, :300]])
    cases = [
        [a, b],
        (a, b),
        stacked,
        [stacked, stacked],
        [[a], [b, a]],
        torch.from_numpy(stacked),
        [as_pil(a), b],
    ]
    for images in cases:
        assert_close(ImageProcessor(**kw)(images), hf_pixels(images, **kw))
    assert len(flatten_images([[a], [b, a], stacked])) == 5


def test_tensors_need_no_torch_import_for_other_inputs() -> None:
    """torch is imported only by a caller that made a tensor (it takes seconds to import)."""
    code = (
        "import sys, numpy as np, vitc\n"
        "from vitc.preprocess import ImageProcessor\n"
        "ImageProcessor(size=8)([np.zeros((9, 9, 3), np.uint8)])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tensor_requiring_grad_and_bfloat16() -> None:
    a = PHOTOS["coffee_crop"]().astype(np.float32) / 255
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).requires_grad_(True)
    kw = {"size": 16}
    assert_close(ImageProcessor(**kw)(t), hf_pixels(t.detach(), **kw))  # vitc detaches; transformers refuses
    with pytest.raises(ImageLoadError, match="torch tensor of dtype torch.bfloat16"):
        ImageProcessor(**kw)(t.detach().to(torch.bfloat16))


def test_grayscale_2d_array_is_an_l_image() -> None:
    """vitc addition: transformers refuses (H, W) arrays; vitc reads them as the 'L' image they are."""
    gray = PHOTOS["camera"]()
    for convert_rgb in (True, None):
        kw = {"size": 30, "do_convert_rgb": convert_rgb, "image_mean": 0.5, "image_std": 0.5}
        assert_close(ImageProcessor(**kw)(gray), hf_pixels(Image.fromarray(gray), **kw))
        assert_close(ImageProcessor(**kw)(torch.from_numpy(gray)), hf_pixels(Image.fromarray(gray), **kw))
    ours = ImageProcessor(size=30, do_convert_rgb=True)(gray)
    assert ours.shape == (1, 3, 30, 30) and np.array_equal(ours[0, 0], ours[0, 2])


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_pipeline_image_leaves_arrays_to_the_processor(channels: int) -> None:
    a = {1: PHOTOS["camera"]()[..., None], 3: PHOTOS["rocket"](), 4: _rgba_photo()}[channels]
    assert pipeline_image(a) is a
    kw = {"size": {"height": 50, "width": 70}, "do_convert_rgb": True}
    assert_close(ImageProcessor(**kw)(pipeline_image(a)), hf_pixels(a, **kw))


def test_rgba_is_composited_on_white() -> None:
    transparent = np.zeros((8, 8, 4), np.uint8)  # black, fully transparent
    kw = {"do_resize": False, "do_normalize": False, "do_convert_rgb": True}
    for image in (Image.fromarray(transparent, "RGBA"), transparent):
        np.testing.assert_array_equal(ImageProcessor(**kw)(image), 1.0)


def test_rgb_image_with_a_transparent_colour_matches_transformers(tmp_path: Path) -> None:
    """An RGB PNG with a tRNS colour: with do_convert_rgb, pixels of that colour turn white."""
    rgb = PHOTOS["coffee_crop"]().copy()
    rgb[:40, :60] = (10, 20, 30)
    img = Image.fromarray(rgb)
    img.info["transparency"] = (10, 20, 30)
    path = tmp_path / "trns.png"
    img.save(path, transparency=(10, 20, 30))
    for convert_rgb in (True, None):
        kw = {"size": {"height": 40, "width": 56}, "do_normalize": False, "do_convert_rgb": convert_rgb}
        for source in (img, path):
            ref = hf_pixels(str(source) if source is path else source, **kw)
            assert_close(ImageProcessor(**kw)(source), ref)
    x = ImageProcessor(do_resize=False, do_normalize=False, do_convert_rgb=True)(img)
    np.testing.assert_array_equal(x[0, :, :40, :60], 1.0)  # the transparent colour is now white
    x = ImageProcessor(do_resize=False, do_normalize=False)(img)
    assert x[0, 0, 0, 0] == np.float32(10 / 255)  # without do_convert_rgb it stays (transformers' default)


# ---- files and EXIF -----------------------------------------------------------------------------


def _file_images() -> dict[str, Image.Image]:
    """Photos as they are saved to files: opaque, and with alpha that transformers' load_image drops."""
    rgba = Image.fromarray(_rgba_photo(), "RGBA")
    palette_t = as_pil(PHOTOS["chelsea"]()).quantize(colors=64)
    palette_t.info["transparency"] = 5
    return {
        "png": as_pil(PHOTOS["chelsea"]()),
        "jpeg": as_pil(PHOTOS["chelsea"]()),
        "rgba_png": rgba,
        "la_png": rgba.convert("LA"),
        "p_transparency_png": palette_t,
        "gray_png": as_pil(PHOTOS["camera"]()),
    }


@pytest.mark.parametrize("convert_rgb", [True, None])
@pytest.mark.parametrize("kind", list(_file_images()))
def test_files_match_transformers(tmp_path: Path, kind: str, convert_rgb) -> None:
    img = _file_images()[kind]
    path = tmp_path / f"chelsea.{'jpeg' if kind == 'jpeg' else 'png'}"
    img.save(path)
    with Image.open(path) as f:
        assert f.mode == img.mode  # the file really has alpha / a transparency entry
    # transformers opens the path itself (image_utils.load_image), as a str only
    kw = {"do_convert_rgb": convert_rgb}
    ref = hf_pixels(str(path), **kw)
    assert_close(ImageProcessor(**kw)(path), ref)
    assert_close(ImageProcessor(**kw)(str(path)), ref)
    assert_close(ImageProcessor(**kw)([str(path), path]), np.concatenate([ref, ref]))


@pytest.mark.parametrize("kind", ["rgba_png", "la_png"])
def test_files_drop_alpha_but_pil_images_composite_it(tmp_path: Path, kind: str) -> None:
    """The same pixels give different results by input kind, in transformers and in vitc alike."""
    path = tmp_path / "alpha.png"
    _file_images()[kind].save(path)
    kw = {"do_convert_rgb": True}
    with Image.open(path) as f:
        f.load()
        from_pil = ImageProcessor(**kw)(f)
        assert_close(from_pil, hf_pixels(f, **kw))
    from_file = ImageProcessor(**kw)(path)
    # the difference is real (the test above cannot pass by both sides ignoring the input kind)
    assert np.abs(from_pil - from_file).max() > 0.5


ORIENTATION_TAG = 0x0112


@pytest.mark.parametrize(("orientation", "rot90_k"), [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied_to_files_only(tmp_path: Path, orientation: int, rot90_k: int) -> None:
    rgb = PHOTOS["coffee_crop"]()  # 133x207: rotation changes the shape
    img = as_pil(rgb)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    img.save(path, exif=exif, quality=95)
    with Image.open(path) as f:
        assert f.getexif()[ORIENTATION_TAG] == orientation
        stored = np.asarray(f.convert("RGB"))  # pixels as stored, before orientation
    # Orientation 6 means "rotate 90 degrees clockwise to display" (rot90 k=-1), 8 counter-clockwise.
    upright = np.ascontiguousarray(np.rot90(stored, k=rot90_k))
    kw = {"size": {"height": 40, "width": 72}}
    ref = hf_pixels(upright, **kw)
    assert_close(ImageProcessor(**kw)(path), ref)
    with Image.open(path) as f:
        # ViTImageProcessor does not read EXIF for PIL images; the pipeline (load_image) does
        assert_close(ImageProcessor(**kw)(f), hf_pixels(stored, **kw))
        assert_close(ImageProcessor(**kw)(pipeline_image(f)), ref)
    if orientation != 1:
        assert np.abs(ImageProcessor(**kw)(path) - hf_pixels(stored, **kw)).max() > 0.1


# ---- errors -------------------------------------------------------------------------------------


def test_not_an_image_file(tmp_path: Path) -> None:
    path = tmp_path / "foo.txt"
    path.write_text("hello")
    with pytest.raises(ImageLoadError, match=r"cannot read image '.*foo\.txt': not an image file") as info:
        ImageProcessor()(path)
    assert info.value.kind == "not_an_image"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.png") as info:
        ImageProcessor()(tmp_path / "nope.png")
    assert info.value.kind == "missing"


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="directory"):
        ImageProcessor()(tmp_path)


def test_truncated_file(tmp_path: Path) -> None:
    full = tmp_path / "full.png"
    as_pil(PHOTOS["astronaut"]()).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:5000])
    with pytest.raises(ImageLoadError, match=r"cannot read image '.*cut\.png'") as info:
        ImageProcessor()(cut)
    assert info.value.kind == "corrupt"


def test_decompression_bomb_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(path)
    # Pillow refuses images over 2 * MAX_IMAGE_PIXELS; lower the limit instead of writing a huge file.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ImageLoadError, match=r"big\.png.*decompression-bomb limit") as info:
        ImageProcessor()(path)
    assert info.value.kind == "too_large"


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((8,), np.uint8), r"found shape \(8,\)"),
        (np.zeros((2, 3, 8, 8, 3), np.uint8), r"found shape \(2, 3, 8, 8, 3\)"),
        (np.zeros((8, 8, 3), object), "found dtype object"),
    ],
)
def test_bad_arrays(array: np.ndarray, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ImageProcessor()(array)


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="expected a file path.*found int"):
        ImageProcessor()(42)
    with pytest.raises(TypeError, match="found dict"):
        ImageProcessor()([np.zeros((8, 8, 3), np.uint8), {"a": 1}])
    with pytest.raises(ValueError, match="empty list"):
        ImageProcessor()([])
    with pytest.raises(ValueError, match="return_tensors"):
        ImageProcessor()(PHOTOS["camera"](), return_tensors="tf")
    with pytest.raises(ValueError, match="different shapes"):
        ImageProcessor(size={"shortest_edge": 20})([PHOTOS["chelsea"](), PHOTOS["rocket"]()])
    with pytest.raises(TypeError, match="expected one image"):
        ImageProcessor().preprocess_one(np.zeros((2, 8, 8, 3), np.uint8))


# ---- preprocessor_config.json: every key as transformers reads it ----------------------------------


# Each dict is a whole preprocessor_config.json: absent keys take the default, null disables a step
# (transformers >= 5 keeps a null as the attribute, which is falsy), and a step that is on but whose
# value is null is refused by both.
CONFIGS = {
    "defaults": {},
    "legacy_feature_extractor": {"feature_extractor_type": "ViTFeatureExtractor", "size": 40, "resample": 3},
    "do_resize_null": {"do_resize": None},
    "do_resize_false": {"do_resize": False},
    "do_rescale_null": {"do_rescale": None},
    "do_normalize_null": {"do_normalize": None},
    "rescale_normalize_null": {"do_rescale": None, "do_normalize": None},
    "everything_null": {"do_resize": None, "do_rescale": None, "do_normalize": None, "size": None},
    "size_null_resize_on": {"size": None},
    "resample_null_resize_on": {"resample": None},
    "resample_null_resize_off": {"resample": None, "do_resize": False},
    **{f"resample_{r}": {"resample": r, "size": 37} for r in range(6)},
    "size_int": {"size": 30},
    "size_int_not_square": {"size": 30, "default_to_square": False},
    "size_int_default_to_square_null": {"size": 30, "default_to_square": None},
    "size_list": {"size": [20, 30]},
    "size_shortest_edge": {"size": {"shortest_edge": 20}},
    "size_shortest_longest": {"size": {"shortest_edge": 20, "longest_edge": 25}},
    "size_max_height_width": {"size": {"max_height": 20, "max_width": 50}},
    "size_longest_edge_only": {"size": {"longest_edge": 30}},
    "size_longest_edge_only_no_resize": {"size": {"longest_edge": 30}, "do_resize": False},
    "size_pixels": {"size": {"min_pixels": 10, "max_pixels": 1000}},
    "rescale_factor_null": {"rescale_factor": None},
    "rescale_factor_null_no_rescale": {"rescale_factor": None, "do_rescale": False},
    "rescale_factor_127": {"rescale_factor": 1 / 127.5, "size": 30},
    "rescale_factor_int": {"rescale_factor": 1, "size": 30},
    "image_mean_null": {"image_mean": None},
    "image_mean_null_no_normalize": {"image_mean": None, "image_std": None, "do_normalize": False},
    "mean_std_scalar": {"image_mean": 0.3, "image_std": 0.2, "size": 30},
    "mean_std_imagenet": {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "size": 30},
    "mean_std_ints": {"image_mean": [0, 0, 0], "image_std": [1, 1, 1], "size": 30},
    "mean_one_value": {"image_mean": [0.5], "size": 30},
    "center_crop_no_size": {"do_center_crop": True},
    "center_crop": {"do_center_crop": True, "crop_size": 16, "size": 30},
    "center_crop_resize_256_crop_224": {"do_center_crop": True, "crop_size": 224, "size": {"shortest_edge": 256}},
    "center_crop_larger_than_image": {"do_center_crop": True, "crop_size": {"height": 40, "width": 10}, "size": 30},
    "center_crop_null": {"do_center_crop": None, "crop_size": 16, "size": 30},
    "pad": {"do_pad": True, "pad_size": 40, "size": 30},
    "pad_rectangle": {"do_pad": True, "pad_size": {"height": 30, "width": 50}, "size": {"shortest_edge": 20}},
    "pad_too_small": {"do_pad": True, "pad_size": 10, "size": 30},
    "convert_rgb_true": {"do_convert_rgb": True, "size": 30},
    "convert_rgb_false": {"do_convert_rgb": False, "size": 30},
    "input_channels_last": {"input_data_format": "channels_last", "size": 30},
    "input_channels_first": {"input_data_format": "channels_first", "size": 30},
    "ignored_keys": {
        "data_format": "channels_last",
        "do_reduce_labels": True,
        "processor_class": "ViTProcessor",
        "device": "cpu",
        "disable_grouping": True,
        "image_seq_length": 5,
        "return_tensors": "pt",
        "unknown_future_key": {"a": [1, 2]},
        "size": 30,
    },
}
# Refused by both for an RGB image: a step on with its value null, a size spelling the PIL backend
# cannot resize to, a mean for one channel, a pad size smaller than the image.
REFUSED_CONFIGS = {
    "size_null_resize_on",
    "resample_null_resize_on",
    "size_longest_edge_only",
    "size_pixels",
    "rescale_factor_null",
    "image_mean_null",
    "mean_one_value",
    "center_crop_no_size",
    "pad_too_small",
}
CONFIG_INPUTS = {
    "pil_rgb": lambda: as_pil(PHOTOS["coffee_crop"]()),
    "pil_rgba": lambda: Image.fromarray(_rgba_photo(), "RGBA"),
    "array_hwc": lambda: PHOTOS["chelsea"](),
    "array_gray_hw1": lambda: PHOTOS["camera"]()[..., None],
}


@pytest.mark.parametrize("image", list(CONFIG_INPUTS))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_preprocessor_config_keys_match_transformers(name: str, image: str) -> None:
    config = {"image_processor_type": "ViTImageProcessor", **CONFIGS[name]}
    img = CONFIG_INPUTS[image]()
    try:
        hf = ViTImageProcessorPil.from_dict(json.loads(json.dumps(config)))
    except Exception:
        with pytest.raises(ValueError):
            ImageProcessor.from_dict(config)
        return

    def ours():
        return ImageProcessor.from_dict(config)(img)

    outcome = same_as_transformers(ours, lambda: hf_pixels(img, processor=hf))
    if image == "pil_rgb":  # the test must not pass by both sides refusing everything
        assert outcome == ("both refuse" if name in REFUSED_CONFIGS else "equal"), name


def test_null_disables_a_step_and_absent_takes_the_default() -> None:
    img = as_pil(PHOTOS["coffee_crop"]())
    skipped = ImageProcessor.from_dict({"do_resize": None, "do_rescale": None, "do_normalize": None})(img)
    np.testing.assert_array_equal(skipped[0], np.asarray(img, dtype=np.float32).transpose(2, 0, 1))
    assert ImageProcessor.from_dict({})(img).shape == (1, 3, 224, 224)
    with pytest.raises(ValueError, match="do_resize is true but size is null"):
        ImageProcessor.from_dict({"size": None})
    with pytest.raises(ValueError, match="do_normalize is true but image_mean and image_std are null"):
        ImageProcessor.from_dict({"image_mean": None, "image_std": None})


def test_pad_without_pad_size_pads_to_the_largest_image_of_the_call() -> None:
    images = [PHOTOS["chelsea"](), PHOTOS["rocket"](), PHOTOS["coffee_crop"]()]
    config = {"do_pad": True, "size": {"shortest_edge": 20}}
    ours = ImageProcessor.from_dict(config)(images)
    assert_close(ours, hf_pixels(images, processor=ViTImageProcessorPil.from_dict(config)))
    assert ours.shape == (3, 3, 20, 31)
    one = ImageProcessor.from_dict(config).preprocess_one(images[0])
    assert one.shape == (3, 20, 30)  # alone, nothing to pad to


def test_config_files_with_nulls_load_as_in_transformers(tmp_path: Path) -> None:
    config = {"image_processor_type": "ViTImageProcessor", "do_rescale": None, "size": {"height": 30, "width": 20}}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    img = as_pil(PHOTOS["rocket"]())
    hf = ViTImageProcessorPil.from_pretrained(tmp_path)
    assert_close(ImageProcessor.from_pretrained(tmp_path)(img), hf_pixels(img, processor=hf))


def test_to_dict_keeps_the_meaning_for_transformers() -> None:
    for name, config in CONFIGS.items():
        try:
            ours = ImageProcessor.from_dict(config)
        except ValueError:
            continue
        again = ImageProcessor.from_dict(json.loads(json.dumps(ours.to_dict())))
        assert again == ours, name
        img = as_pil(PHOTOS["coffee_crop"]())
        hf = ViTImageProcessorPil.from_dict(ours.to_dict())
        same_as_transformers(lambda: ours(img), lambda: hf_pixels(img, processor=hf))  # noqa: B023


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="resample"):
        ImageProcessor(resample=9)
    with pytest.raises(ValueError, match="size"):
        ImageProcessor(size={"height": 3})
    with pytest.raises(ValueError, match="do_center_crop is true but crop_size is null"):
        ImageProcessor.from_dict({"do_center_crop": True})
    with pytest.raises(ValueError, match="crop_size: expected 'height' and 'width'"):
        ImageProcessor.from_dict({"do_center_crop": True, "crop_size": {"shortest_edge": 5}})


# Values a hostile or broken preprocessor_config.json (or the preprocessor block of a .vitc file) may
# hold: each must be a ValueError naming the key and what was expected, before any allocation. Some
# are accepted by transformers with useless results (a zero std divides by zero, "false" is truthy).
BAD_PREPROCESSOR_VALUES = [
    ({"image_mean": "x"}, r"image_mean: expected a number or one number per channel"),
    ({"image_mean": []}, r"image_mean: expected 1, 3 or 4 values \(one per channel\), found 0"),
    ({"image_mean": [0.5, 0.5]}, r"image_mean: expected 1, 3 or 4 values \(one per channel\), found 2"),
    ({"image_std": [0.5] * 5}, r"image_std: expected 1, 3 or 4 values \(one per channel\), found 5"),
    ({"image_mean": [0.5, "a", 0.5]}, r"image_mean: expected finite numbers"),
    ({"image_mean": [np.complex128(0.5), 0.5, 0.5]}, r"image_mean: expected finite numbers"),
    ({"rescale_factor": np.complex128(1 / 255)}, r"rescale_factor: expected"),
    ({"image_std": [0.5, float("nan"), 0.5]}, r"image_std: expected finite numbers"),
    ({"image_std": float("inf")}, r"image_std: expected finite numbers"),
    ({"image_std": {"r": 1}}, r"image_std: expected a number or one number per channel"),
    ({"image_std": [0, 1, 1]}, r"image_std: expected non-zero"),
    ({"image_std": 0}, r"image_std: expected non-zero"),
    ({"size": "224"}, r"size: expected an int, \(height, width\) or a dict"),
    ({"size": {"height": "224", "width": 224}}, r"size height: expected an int in 1\.\.8192, found '224'"),
    ({"size": {"height": 224, "width": 22.5}}, r"size width: expected an int in 1\.\.8192, found 22\.5"),
    ({"size": {"height": -224, "width": 224}}, r"size height: expected an int in 1\.\.8192, found -224"),
    ({"size": {"height": 0, "width": 0}}, r"size height: expected an int in 1\.\.8192, found 0"),
    ({"size": {"height": 10**6, "width": 10**6}}, r"size height: expected an int in 1\.\.8192, found 1000000"),
    ({"size": 10**6}, r"size: expected an int in 1\.\.8192, found 1000000"),
    ({"size": [224, 10**12]}, r"size width: expected an int in 1\.\.8192"),
    ({"size": [224]}, r"size: expected \(height, width\)"),
    ({"size": [224, 224, 3]}, r"size: expected \(height, width\)"),
    ({"size": {"shortest_edge": 10**9}}, r"size shortest_edge: expected an int in 1\.\.8192"),
    ({"size": {"shortest_edge": 224, "longest_edge": True}}, r"size longest_edge: expected an int"),
    ({"size": {"height": 224, "depth": 3}}, r"size: expected keys"),
    ({"size": {"height": 224, "width": 224, "shortest_edge": None}}, r"size: expected keys"),
    ({"size": {"min_pixels": 0, "max_pixels": 10}}, r"size min_pixels: expected a positive int"),
    ({"size": True}, r"size: expected an int"),
    ({"crop_size": [10**5, 3]}, r"crop_size height: expected an int in 1\.\.8192"),
    ({"pad_size": -1}, r"pad_size: expected an int in 1\.\.8192"),
    ({"resample": "bilinear"}, r"resample: expected a Pillow filter code"),
    ({"resample": 2.5}, r"resample: expected a Pillow filter code"),
    ({"rescale_factor": "1/255"}, r"rescale_factor: expected a finite number"),
    ({"rescale_factor": float("inf")}, r"rescale_factor: expected a finite number"),
    ({"do_resize": "false"}, r"do_resize: expected true, false or null, found 'false'"),
    ({"do_normalize": 1}, r"do_normalize: expected true, false or null"),
    ({"do_convert_rgb": "yes"}, r"do_convert_rgb: expected true, false or null"),
    ({"do_center_crop": "no"}, r"do_center_crop: expected true, false or null"),
    ({"default_to_square": 0}, r"default_to_square: expected true, false or null"),
    ({"input_data_format": "hwc"}, r"input_data_format: expected 'channels_first', 'channels_last' or null"),
]


@pytest.mark.parametrize(("values", "message"), BAD_PREPROCESSOR_VALUES, ids=lambda v: str(v)[:40])
def test_invalid_preprocessor_values_are_value_errors(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageProcessor.from_dict({**ImageProcessor().to_dict(), **values})
    with pytest.raises(ValueError, match=message):
        ImageProcessor(**values)


def test_non_dict_preprocessor_config_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="preprocessor config: expected a JSON object"):
        ImageProcessor.from_dict([1, 2])


def test_size_limits_and_accepted_spellings() -> None:
    assert ImageProcessor(size=8192).size == {"height": 8192, "width": 8192}
    assert ImageProcessor(size=224.0).size == {"height": 224, "width": 224}  # JSON may write 224.0
    assert ImageProcessor(size=np.int64(30)).size == {"height": 30, "width": 30}
    assert ImageProcessor(size=(30, 40)).size == {"height": 30, "width": 40}
    assert ImageProcessor(size=30, default_to_square=False).size == {"shortest_edge": 30}
    assert ImageProcessor(resample=3.0).resample == 3
    assert ImageProcessor(image_mean=np.array([0.1, 0.2, 0.3])).image_mean == pytest.approx([0.1, 0.2, 0.3])
    assert ImageProcessor(image_std=0.25).image_std == 0.25
    assert ImageProcessor(crop_size=20).crop_size == {"height": 20, "width": 20}
    with pytest.raises(ValueError, match="8193"):
        ImageProcessor(size=8193)


def test_shortest_edge_output_is_bounded() -> None:
    """A sliver image resized by its short side would otherwise become gigapixels wide."""
    processor = ImageProcessor(size={"shortest_edge": 224})
    assert processor.output_size(36, 1000) == (224, 6222)
    with pytest.raises(ImageLoadError, match=r"1000x2 pixels would be resized to 112000x224") as info:
        processor.output_size(2, 1000)
    assert info.value.kind == "too_large"
    with pytest.raises(ImageLoadError, match=r"2x1000 pixels"):
        processor(np.zeros((1000, 2, 3), np.uint8))


def test_output_size_follows_resize_crop_and_pad() -> None:
    assert ImageProcessor(size={"shortest_edge": 256}, do_center_crop=True, crop_size=224).output_size(300, 400) == (
        224,
        224,
    )
    assert ImageProcessor(size=30, do_pad=True, pad_size=40).output_size(5, 7) == (40, 40)
    assert ImageProcessor(do_resize=False).output_size(5, 7) == (5, 7)
    assert ImageProcessor(size={"max_height": 20, "max_width": 50}).output_size(100, 200) == (20, 40)


# ---- sizes against the model ------------------------------------------------------------------------


def test_check_for_model_refuses_implausible_sizes() -> None:
    ImageProcessor(size=512).check_for_model((512, 512))
    ImageProcessor(size={"shortest_edge": 256}, do_center_crop=True, crop_size=224).check_for_model((224, 224))
    ImageProcessor(size=MAX_SIZE_RATIO * 512).check_for_model((512, 512))  # the limit itself is allowed
    ImageProcessor(size=8192, do_resize=False).check_for_model((512, 512))  # no resize: size unused
    with pytest.raises(ValueError, match=r"size height 8192 is implausibly large for a model of 512x512 images"):
        ImageProcessor(size=8192).check_for_model((512, 512))
    with pytest.raises(ValueError, match=r"size shortest_edge 4096"):
        ImageProcessor(size={"shortest_edge": 4096}).check_for_model((224, 224))
    with pytest.raises(ValueError, match=r"crop_size width 2000"):
        ImageProcessor(size=224, do_center_crop=True, crop_size=[224, 2000]).check_for_model((224, 224))
    with pytest.raises(ValueError, match=r"pad_size height 8000"):
        ImageProcessor(size=224, do_pad=True, pad_size=8000).check_for_model((224, 224))
    with pytest.raises(ValueError, match="image_hw"):
        ImageProcessor().check_for_model((0, 224))
    with pytest.raises(ValueError, match="image_mean has 1 value for a model of 3 channels"):
        ImageProcessor(image_mean=[0.5]).check_for_model((224, 224))
    ImageProcessor(image_mean=[0.5], image_std=0.5).check_for_model((224, 224), num_channels=1)
    ImageProcessor(image_mean=[0.5], do_normalize=False).check_for_model((224, 224))


# ---- batching and configs -----------------------------------------------------------------------


def test_single_image_is_a_batch_of_one() -> None:
    out = ImageProcessor(size=30)(PHOTOS["chelsea"]())
    assert out.shape == (1, 3, 30, 30) and out.dtype == np.float32 and out.flags.c_contiguous


def test_return_tensors_pt() -> None:
    out = ImageProcessor(size=30)(PHOTOS["chelsea"](), return_tensors="pt")
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 30, 30)


def test_dict_round_trip_and_hf_file(tmp_path: Path) -> None:
    hf = hf_processor(size={"height": 48, "width": 40}, resample=3, image_mean=[0.1, 0.2, 0.3])
    hf.save_pretrained(tmp_path)
    ours = ImageProcessor.from_pretrained(tmp_path)
    assert ours.size == {"height": 48, "width": 40} and ours.resample == 3
    assert ours.image_mean == pytest.approx([0.1, 0.2, 0.3])
    assert ImageProcessor.from_dict(ours.to_dict()) == ours
    assert ImageProcessor.from_pretrained(tmp_path / "preprocessor_config.json") == ours
    img = as_pil(PHOTOS["rocket"]())
    assert_close(ours(img), np.asarray(hf(img, return_tensors="np")["pixel_values"]))


def test_legacy_feature_extractor_config() -> None:
    # The shape of google/vit-base-patch16-224's preprocessor_config.json.
    legacy = {
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "ViTFeatureExtractor",
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "size": 224,
    }
    assert ImageProcessor.from_dict(legacy) == ImageProcessor()


def test_from_pretrained_without_preprocessor_uses_image_size(tmp_path: Path) -> None:
    ViTConfig(image_size=64, patch_size=16).save_pretrained(tmp_path)
    assert not (tmp_path / "preprocessor_config.json").exists()
    assert ImageProcessor.from_pretrained(tmp_path).size == {"height": 64, "width": 64}
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no preprocessor_config.json"):
        ImageProcessor.from_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="missing"):
        ImageProcessor.from_pretrained(tmp_path / "missing")


def test_from_converted_vitc_file(tmp_path: Path) -> None:
    from vitc.convert import convert

    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label={0: "a", 1: "b"},
        label2id={"a": 0, "b": 1},
    )
    hf_dir = tmp_path / "hf"
    ViTForImageClassification(config).save_pretrained(hf_dir)
    no_pre = convert(hf_dir, tmp_path / "no_pre.vitc", progress=False)
    assert ImageProcessor.from_pretrained(no_pre).size == {"height": 32, "width": 32}
    hf_processor(size={"height": 30, "width": 20}, resample=0).save_pretrained(hf_dir)
    with_pre = convert(hf_dir, tmp_path / "with_pre.vitc", progress=False)
    loaded = ImageProcessor.from_pretrained(with_pre)
    assert loaded.size == {"height": 30, "width": 20} and loaded.resample == 0
    assert json.loads((hf_dir / "preprocessor_config.json").read_text())["resample"] == 0


def test_exif_transpose_helper_agrees_with_pillow() -> None:
    # Guard the assumption that ImageOps.exif_transpose leaves an image without EXIF unchanged.
    img = as_pil(PHOTOS["coffee_crop"]())
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(img)), np.asarray(img))
