"""vitc.preprocess (ImageProcessor) against transformers' PIL image processor on real photographs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageOps
from transformers import ViTConfig, ViTForImageClassification
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from vitc.preprocess import ImageProcessor

# Same arithmetic in the same order: any difference is a bug, not rounding.
PIXEL_ATOL = 1e-6

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
    kw.setdefault("do_convert_rgb", True)
    return ViTImageProcessorPil(**kw)


def hf_pixels(images, **kw) -> np.ndarray:
    return np.asarray(hf_processor(**kw)(images, return_tensors="np")["pixel_values"])


def assert_close(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape, f"expected {ref.shape}, got {ours.shape}"
    assert np.abs(ours - ref).max() <= PIXEL_ATOL


def as_pil(a: np.ndarray) -> Image.Image:
    return Image.fromarray(a)


# ---- parity with transformers -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PHOTOS))
@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("resample", RESAMPLES)
def test_photos_match_transformers(name: str, size, resample: int) -> None:
    img = as_pil(PHOTOS[name]())
    size_dict = {"height": size, "width": size} if isinstance(size, int) else size
    ref = hf_pixels(img, size=size_dict, resample=resample)
    ours = ImageProcessor(size=size, resample=resample)(img)
    assert_close(ours, ref)


def test_array_input_and_batch_match_transformers() -> None:
    photos = [PHOTOS["chelsea"](), PHOTOS["rocket"](), PHOTOS["coffee_crop"]()]
    ref = hf_pixels(photos, size={"height": 224, "width": 224})
    ours = ImageProcessor()(photos)
    assert ours.shape == (3, 3, 224, 224)
    assert_close(ours, ref)


def test_custom_mean_std_rescale_flags_match_transformers() -> None:
    img = as_pil(PHOTOS["astronaut"]())
    kw = {
        "size": {"height": 40, "width": 56},
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
    }
    assert_close(ImageProcessor(**kw)(img), hf_pixels(img, **kw))
    kw2 = {"size": {"height": 40, "width": 56}, "do_normalize": False}
    assert_close(ImageProcessor(**kw2)(img), hf_pixels(img, **kw2))
    kw3 = {"size": {"height": 40, "width": 56}, "do_rescale": False, "do_normalize": False}
    assert_close(ImageProcessor(**kw3)(img), hf_pixels(img, **kw3).astype(np.float32))


def test_no_resize_matches_transformers() -> None:
    img = as_pil(PHOTOS["coffee_crop"]())
    assert_close(ImageProcessor(do_resize=False)(img), hf_pixels(img, do_resize=False))


@pytest.mark.parametrize("size", [{"shortest_edge": 64}, {"shortest_edge": 50, "longest_edge": 60}], ids=str)
@pytest.mark.parametrize("name", ["chelsea", "rocket", "camera"])
def test_shortest_edge_matches_transformers(size: dict, name: str) -> None:
    img = as_pil(PHOTOS[name]())
    assert_close(ImageProcessor(size=size)(img), hf_pixels(img, size=size))


# ---- colour modes -------------------------------------------------------------------------------


def _rgba_photo() -> Image.Image:
    rgb = PHOTOS["chelsea"]()
    h, w, _ = rgb.shape
    alpha = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))  # every alpha level
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def _mode_images() -> dict[str, Image.Image]:
    photo = as_pil(PHOTOS["chelsea"]())
    palette = photo.quantize(colors=64)
    palette_t = palette.copy()
    palette_t.info["transparency"] = 5  # one palette entry transparent -> composited on white
    rgba = _rgba_photo()
    return {
        "L": as_pil(PHOTOS["camera"]()),
        "1": as_pil(PHOTOS["camera"]()).convert("1"),
        "LA": rgba.convert("LA"),
        "RGBA": rgba,
        "P": palette,
        "P_transparency": palette_t,
        "CMYK": photo.convert("CMYK"),
        "I": as_pil(PHOTOS["camera"]()).convert("I"),
        "F": as_pil(PHOTOS["camera"]()).convert("F"),
    }


@pytest.mark.parametrize("mode", list(_mode_images()))
def test_modes_match_transformers_convert_rgb(mode: str) -> None:
    img = _mode_images()[mode]
    kw = {"size": {"height": 96, "width": 80}}
    ref = hf_pixels(img, **kw)
    assert_close(ImageProcessor(**kw)(img), ref)


def test_rgba_is_composited_on_white() -> None:
    transparent = np.zeros((8, 8, 4), np.uint8)  # black, fully transparent
    x = ImageProcessor(do_resize=False, do_normalize=False)(Image.fromarray(transparent, "RGBA"))
    np.testing.assert_array_equal(x, 1.0)


def test_rgb_image_with_a_transparent_colour_matches_transformers(tmp_path: Path) -> None:
    """An RGB PNG with a tRNS colour: transformers composites it (pixels of that colour turn white)."""
    rgb = PHOTOS["coffee_crop"]().copy()
    rgb[:40, :60] = (10, 20, 30)
    img = Image.fromarray(rgb)
    img.info["transparency"] = (10, 20, 30)
    path = tmp_path / "trns.png"
    img.save(path, transparency=(10, 20, 30))
    kw = {"size": {"height": 40, "width": 56}, "do_normalize": False}
    for source in (img, path):
        ref = hf_pixels(str(source) if source is path else source, **kw)
        assert_close(ImageProcessor(**kw)(source), ref)
    x = ImageProcessor(do_resize=False, do_normalize=False)(img)
    np.testing.assert_array_equal(x[0, :, :40, :60], 1.0)  # the transparent colour is now white


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_array_channels_match_transformers(channels: int) -> None:
    if channels == 4:
        a = np.asarray(_rgba_photo())
    elif channels == 1:
        a = PHOTOS["camera"]()[..., None]
    else:
        a = PHOTOS["rocket"]()
    kw = {"size": {"height": 50, "width": 70}}
    # transformers treats an (H, W, 1) array like the 'L' PIL image it is.
    ref_input = Image.fromarray(a[..., 0]) if channels == 1 else a
    assert_close(ImageProcessor(**kw)(a), hf_pixels(ref_input, **kw))


def test_grayscale_2d_array_equals_l_image() -> None:
    gray = PHOTOS["camera"]()
    ours = ImageProcessor(size=30)(gray)
    assert_close(ours, hf_pixels(Image.fromarray(gray), size={"height": 30, "width": 30}))
    # every channel identical
    assert np.array_equal(ours[0, 0], ours[0, 1]) and np.array_equal(ours[0, 0], ours[0, 2])


def test_16bit_is_scaled_to_8bit(tmp_path: Path) -> None:
    gray8 = PHOTOS["camera"]()
    # v * 257 is how 8-bit values expand to 16 bits; the rule must invert it exactly.
    img16 = Image.fromarray(gray8.astype(np.uint16) * 257)
    assert img16.mode == "I;16"
    kw = {"size": {"height": 64, "width": 64}}
    ref = hf_pixels(Image.fromarray(gray8), **kw)
    assert_close(ImageProcessor(**kw)(img16), ref)
    # through a 16-bit PNG file too
    path = tmp_path / "gray16.png"
    img16.save(path)
    assert Image.open(path).mode.startswith("I")
    assert_close(ImageProcessor(**kw)(path), ref)
    # rounding: 128 -> 0 (128/257 < 0.5), 129 -> 1, 65535 -> 255
    small = Image.fromarray(np.array([[128, 129, 65535]], dtype=np.uint16))
    x = ImageProcessor(do_resize=False, do_rescale=False, do_normalize=False)(small)
    np.testing.assert_array_equal(x[0, 0, 0], [0, 1, 255])


# ---- files and EXIF -----------------------------------------------------------------------------


def _file_images() -> dict[str, Image.Image]:
    """Photos as they are saved to files: opaque, and with alpha that transformers' load_image drops."""
    modes = _mode_images()
    return {
        "png": as_pil(PHOTOS["chelsea"]()),
        "jpeg": as_pil(PHOTOS["chelsea"]()),
        "rgba_png": modes["RGBA"],
        "la_png": modes["LA"],
        "p_transparency_png": modes["P_transparency"],
        "gray_png": modes["L"],
    }


@pytest.mark.parametrize("kind", list(_file_images()))
def test_files_match_transformers(tmp_path: Path, kind: str) -> None:
    img = _file_images()[kind]
    path = tmp_path / f"chelsea.{'jpeg' if kind == 'jpeg' else 'png'}"
    img.save(path)
    with Image.open(path) as f:
        assert f.mode == img.mode  # the file really has alpha / a transparency entry
    # transformers opens the path itself (image_utils.load_image), as a str only
    ref = hf_pixels(str(path))
    assert_close(ImageProcessor()(path), ref)
    assert_close(ImageProcessor()(str(path)), ref)
    assert_close(ImageProcessor()([str(path), path]), np.concatenate([ref, ref]))


@pytest.mark.parametrize("kind", ["rgba_png", "la_png"])
def test_files_drop_alpha_but_pil_images_composite_it(tmp_path: Path, kind: str) -> None:
    """The same pixels give different results by input kind, in transformers and in vitc alike."""
    path = tmp_path / "alpha.png"
    _file_images()[kind].save(path)
    with Image.open(path) as f:
        f.load()
        from_pil = ImageProcessor()(f)
        assert_close(from_pil, hf_pixels(f))
    from_file = ImageProcessor()(path)
    # the difference is real (the test above cannot pass by both sides ignoring the input kind)
    assert np.abs(from_pil - from_file).max() > 0.5


ORIENTATION_TAG = 0x0112


@pytest.mark.parametrize(("orientation", "rot90_k"), [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, rot90_k: int) -> None:
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
        assert_close(ImageProcessor(**kw)(f), ref)  # also for PIL images passed in
    if orientation != 1:
        assert np.abs(ImageProcessor(**kw)(path) - hf_pixels(stored, **kw)).max() > 0.1


# ---- errors -------------------------------------------------------------------------------------


def test_not_an_image_file(tmp_path: Path) -> None:
    path = tmp_path / "foo.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"cannot read image '.*foo\.txt': not an image file"):
        ImageProcessor()(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.png"):
        ImageProcessor()(tmp_path / "nope.png")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory"):
        ImageProcessor()(tmp_path)


def test_truncated_file(tmp_path: Path) -> None:
    full = tmp_path / "full.png"
    as_pil(PHOTOS["astronaut"]()).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cannot read image '.*cut\.png'"):
        ImageProcessor()(cut)


def test_decompression_bomb_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(path)
    # Pillow refuses images over 2 * MAX_IMAGE_PIXELS; lower the limit instead of writing a huge file.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ValueError, match=r"big\.png.*decompression-bomb limit"):
        ImageProcessor()(path)


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((8, 8, 3), np.float32), "expected dtype uint8.*found dtype float32"),
        (np.zeros((8, 8, 3), np.uint16), "found dtype uint16"),
        (np.zeros((8, 8, 2), np.uint8), r"found \(8, 8, 2\)"),
        (np.zeros((3, 8, 8, 3), np.uint8), r"found \(3, 8, 8, 3\)"),
        (np.zeros((8,), np.uint8), r"found \(8,\)"),
    ],
)
def test_bad_arrays(array: np.ndarray, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ImageProcessor()(array)


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="expected a file path"):
        ImageProcessor()(42)
    with pytest.raises(ValueError, match="empty list"):
        ImageProcessor()([])
    with pytest.raises(ValueError, match="return_tensors"):
        ImageProcessor()(PHOTOS["camera"](), return_tensors="tf")
    with pytest.raises(ValueError, match="different shapes"):
        ImageProcessor(size={"shortest_edge": 20})([PHOTOS["chelsea"](), PHOTOS["camera"]()])


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="resample"):
        ImageProcessor(resample=9)
    with pytest.raises(ValueError, match="size"):
        ImageProcessor(size={"height": 3})
    with pytest.raises(ValueError, match="image_mean: expected 3 values"):
        ImageProcessor(image_mean=[0.5, 0.5])
    with pytest.raises(ValueError, match="do_center_crop"):
        ImageProcessor.from_dict({"do_center_crop": True, "crop_size": 224})


# Values a hostile or broken preprocessor_config.json (or the preprocessor block of a .vitc file) may
# hold: each must be a ValueError naming the key and what was expected, before any allocation.
BAD_PREPROCESSOR_VALUES = [
    ({"image_mean": "x"}, r"image_mean: expected a number or 3 numbers"),
    ({"image_mean": [0.5, 0.5]}, r"image_mean: expected 3 values \(R, G, B\), found 2"),
    ({"image_std": [0.5, 0.5, 0.5, 0.5]}, r"image_std: expected 3 values \(R, G, B\), found 4"),
    ({"image_mean": [0.5, "a", 0.5]}, r"image_mean: expected 3 finite numbers"),
    ({"image_mean": [np.complex128(0.5), 0.5, 0.5]}, r"image_mean: expected 3 finite numbers"),
    ({"rescale_factor": np.complex128(1 / 255)}, r"rescale_factor: expected"),
    ({"image_std": [0.5, float("nan"), 0.5]}, r"image_std: expected 3 finite numbers"),
    ({"image_std": {"r": 1}}, r"image_std: expected a number or 3 numbers"),
    ({"image_std": [0, 1, 1]}, r"image_std: expected non-zero"),
    ({"size": "224"}, r"size: expected an int, \(height, width\) or a dict"),
    ({"size": {"height": "224", "width": 224}}, r"size height: expected an int in 1\.\.8192, found '224'"),
    ({"size": {"height": 224, "width": 22.5}}, r"size width: expected an int in 1\.\.8192, found 22\.5"),
    ({"size": {"height": -224, "width": 224}}, r"size height: expected an int in 1\.\.8192, found -224"),
    ({"size": {"height": 0, "width": 0}}, r"size height: expected an int in 1\.\.8192, found 0"),
    ({"size": {"height": 10**6, "width": 10**6}}, r"size height: expected an int in 1\.\.8192, found 1000000"),
    ({"size": 10**6}, r"size: expected an int in 1\.\.8192, found 1000000"),
    ({"size": [224, 10**12]}, r"size width: expected an int in 1\.\.8192"),
    ({"size": {"shortest_edge": 10**9}}, r"size shortest_edge: expected an int in 1\.\.8192"),
    ({"size": {"shortest_edge": 224, "longest_edge": True}}, r"size longest_edge: expected an int"),
    ({"size": {"height": 224, "depth": 3}}, r"size: expected keys"),
    ({"size": True}, r"size: expected an int"),
    ({"resample": "bilinear"}, r"resample: expected a Pillow filter code"),
    ({"resample": 2.5}, r"resample: expected a Pillow filter code"),
    ({"rescale_factor": "1/255"}, r"rescale_factor: expected a finite number"),
    ({"rescale_factor": float("inf")}, r"rescale_factor: expected a finite number"),
    ({"do_resize": "false"}, r"do_resize: expected true or false, found 'false'"),
    ({"do_normalize": 1}, r"do_normalize: expected true or false"),
    ({"do_convert_rgb": "yes"}, r"do_convert_rgb: expected true or false or null"),
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
    assert ImageProcessor(resample=3.0).resample == 3
    assert ImageProcessor(image_mean=np.array([0.1, 0.2, 0.3])).image_mean == pytest.approx([0.1, 0.2, 0.3])
    assert ImageProcessor(image_std=0.25).image_std == [0.25] * 3
    with pytest.raises(ValueError, match="8193"):
        ImageProcessor(size=8193)


def test_shortest_edge_output_is_bounded() -> None:
    """A sliver image resized by its short side would otherwise become gigapixels wide."""
    processor = ImageProcessor(size={"shortest_edge": 224})
    assert processor.output_size(36, 1000) == (224, 6222)
    with pytest.raises(ValueError, match=r"1000x2 pixels.*long side 112000 > 8192"):
        processor.output_size(2, 1000)
    with pytest.raises(ValueError, match=r"2x1000 pixels"):
        processor(np.zeros((1000, 2, 3), np.uint8))


# ---- batching and configs -----------------------------------------------------------------------


def test_single_image_is_a_batch_of_one() -> None:
    out = ImageProcessor(size=30)(PHOTOS["camera"]())
    assert out.shape == (1, 3, 30, 30) and out.dtype == np.float32 and out.flags.c_contiguous


def test_return_tensors_pt() -> None:
    import torch

    out = ImageProcessor(size=30)(PHOTOS["camera"](), return_tensors="pt")
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
