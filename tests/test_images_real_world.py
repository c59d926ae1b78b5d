"""Images as they come: every file gives transformers' pixels or one ImageLoadError, never a stray exception.

The corpus (tests/image_corpus.py) holds every mode and format a photo collection meets, animated
files, damaged EXIF blocks, truncated and empty files, decompression bombs and things that are not
images at all. Readable files are compared bit for bit with transformers' own image processor
(``ViTImageProcessorPil``, which opens paths with ``transformers.image_utils.load_image``), with and
without ``do_convert_rgb``, through the processor route and the pipeline route.
"""

from __future__ import annotations

import io
import os
import pickle
import stat
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from image_corpus import (
    BAD_EXIF,
    BROKEN,
    READABLE,
    UNREADABLE_EXIF,
    dpi_breaking_exif,
    orientation_exif,
    palette_with_rgba_palette,
    palette_with_transparent_index,
    photo,
    rgba_photo,
    strip_jfif,
    write_corpus,
)
from PIL import Image, ImageFile, ImageOps
from transformers import pipeline
from transformers.image_utils import load_image as hf_load_image
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

import vitc.preprocess as ip
from vitc.preprocess import (
    IMAGE_ERROR_KINDS,
    ImageLoadError,
    ImageMissingError,
    ImageProcessor,
    load_image,
    open_image,
    pipeline_image,
    try_load_image,
)

# A small output size keeps the many cases fast; 24x20 from 80x60 shrinks (antialiasing) unevenly.
SIZE = {"height": 24, "width": 20}
CONVERT_RGB = [True, None, False]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def hf_pixels(images, **kw) -> np.ndarray:
    """transformers' pixel_values (PIL backend) as float32, the dtype vitc returns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ViTImageProcessorPil(**kw)(images, return_tensors="np")["pixel_values"]
    return np.asarray(out, dtype=np.float32)


def same_as_transformers(ours_fn, ref_fn) -> str:
    """Bit-identical pixels, or an error from both (vitc's a ValueError / TypeError). Returns which."""
    try:
        ref = ref_fn()
    except Exception:
        with pytest.raises((ValueError, TypeError)):
            ours_fn()
        return "both refuse"
    ours = ours_fn()
    assert ours.dtype == np.float32 and ours.shape == ref.shape, f"expected {ref.shape}, got {ours.shape}"
    np.testing.assert_array_equal(ours, ref)
    return "equal"


# ---- readable files: transformers' pixels -----------------------------------------------------


@pytest.mark.parametrize("convert_rgb", CONVERT_RGB)
@pytest.mark.parametrize("name", READABLE)
def test_readable_files_match_transformers(corpus, name: str, convert_rgb) -> None:
    path = corpus[name]
    kw = {"size": SIZE, "do_convert_rgb": convert_rgb}
    # a path goes through load_image in both (RGB), so every file gives pixels whatever do_convert_rgb
    assert same_as_transformers(lambda: ImageProcessor(**kw)(path), lambda: hf_pixels(str(path), **kw)) == "equal"
    ref_rgb = np.asarray(hf_load_image(str(path)))
    ours_rgb = load_image(path)
    assert ours_rgb.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(ours_rgb), ref_rgb)
    assert ours_rgb.info.get("transparency") == hf_load_image(str(path)).info.get("transparency")


@pytest.mark.parametrize("convert_rgb", CONVERT_RGB)
@pytest.mark.parametrize("name", READABLE)
def test_opened_files_match_transformers(corpus, name: str, convert_rgb) -> None:
    """The same files opened by the user: the processor route (PIL image as is) and the pipeline route."""
    kw = {"size": SIZE, "do_convert_rgb": convert_rgb}
    with Image.open(corpus[name]) as img:
        img.load()
        same_as_transformers(lambda: ImageProcessor(**kw)(img), lambda: hf_pixels(img, **kw))
        route = same_as_transformers(
            lambda: ImageProcessor(**kw)(pipeline_image(img)), lambda: hf_pixels(hf_load_image(img), **kw)
        )
        assert route == "equal"  # the pipeline route always gives RGB pixels


def test_corpus_covers_every_mode(corpus) -> None:
    """The corpus really holds the modes the tests claim (a writer change would silently drop one)."""
    modes = {}
    for name in READABLE:
        with Image.open(corpus[name]) as img:
            modes[name] = (img.mode, getattr(img, "n_frames", 1), "transparency" in img.info)
    expected = {
        "one_bit.png": "1", "gray_L.png": "L", "la.png": "LA", "rgba.png": "RGBA", "p.png": "P", "cmyk.jpg": "CMYK",
        "i16.png": "I;16", "i32.tiff": "I", "f32.tiff": "F", "rgba.webp": "RGBA", "p_trns.png": "P",
    }  # fmt: skip
    for name, mode in expected.items():
        assert modes[name][0] == mode, (name, modes[name])
    assert modes["p_trns.png"][2] and modes["p_rgba_palette.png"][2] and modes["rgb_trns.png"][2]
    assert all(modes[f"animated.{ext}"][1] == 3 for ext in ("gif", "webp", "png"))


def test_animated_files_give_the_first_frame(corpus) -> None:
    first = photo()
    for ext in ("gif", "webp", "png"):
        img = np.asarray(load_image(corpus[f"animated.{ext}"])).astype(int)
        if ext == "gif":  # 256-colour quantized: close to the first frame, far from the second
            assert np.abs(img - first).mean() < 8
            assert np.abs(img - np.roll(first, 20, axis=1)).mean() > 20
        else:
            np.testing.assert_array_equal(img, first)


def test_16bit_files_are_clipped_as_transformers_clips_them(corpus) -> None:
    """Pillow's convert("RGB") clips 16-bit values at 255, so a 16-bit photo is mostly white in
    transformers; vitc gives the same pixels (it used to rescale by 1/257, which differed)."""
    rgb = np.asarray(load_image(corpus["i16.png"]))
    gray = np.asarray(Image.fromarray(photo()).convert("L")).astype(np.int64)
    np.testing.assert_array_equal(rgb[..., 0], np.minimum(gray * 257, 255))
    np.testing.assert_array_equal(np.asarray(load_image(corpus["i16_small_values.png"]))[..., 0], gray)


# ---- EXIF -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "k"), [("exif_orientation_6.jpg", -1), ("exif_orientation_3.webp", 2),
                                          ("exif_orientation_8.png", 1), ("exif_orientation_9.jpg", 0)])  # fmt: skip
def test_exif_orientation_is_applied_to_files(corpus, name: str, k: int) -> None:
    with Image.open(corpus[name]) as f:
        stored = np.asarray(f.convert("RGB"))
    np.testing.assert_array_equal(np.asarray(load_image(corpus[name])), np.rot90(stored, k=k))


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
@pytest.mark.parametrize("name", list(BAD_EXIF))
def test_damaged_exif_keeps_the_pixels_and_the_orientation(tmp_path, name: str, fmt: str) -> None:
    """Pillow's exif_transpose raises (AttributeError, struct.error, ...) on these blocks, and so does
    transformers' load_image; vitc decodes the pixels and applies the orientation (6) it can still read."""
    path = tmp_path / f"{name}.{fmt.lower()}"
    Image.fromarray(photo()).save(path, fmt, exif=b"Exif\x00\x00" + BAD_EXIF[name], lossless=True)
    with Image.open(path) as f:
        stored = f.convert("RGB")
        with pytest.raises(Exception):  # noqa: B017 - the point: Pillow raises something arbitrary
            ImageOps.exif_transpose(f)
    upright = np.asarray(stored.transpose(Image.Transpose.ROTATE_270))
    np.testing.assert_array_equal(np.asarray(load_image(path)), upright)
    ref = hf_pixels(np.ascontiguousarray(upright), size=SIZE, do_convert_rgb=True)
    np.testing.assert_array_equal(ImageProcessor(size=SIZE, do_convert_rgb=True)(path), ref)
    with Image.open(path) as f:  # the pipeline route for a PIL image with that EXIF
        np.testing.assert_array_equal(np.asarray(pipeline_image(f)), upright)


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
@pytest.mark.parametrize("name", list(UNREADABLE_EXIF))
def test_unreadable_exif_leaves_the_image_as_stored(tmp_path, name: str, fmt: str) -> None:
    path = tmp_path / f"{name}.{fmt.lower()}"
    Image.fromarray(photo()).save(path, fmt, exif=b"Exif\x00\x00" + UNREADABLE_EXIF[name], lossless=True)
    with Image.open(path) as f:
        with pytest.raises(SyntaxError):
            ImageOps.exif_transpose(f)
    np.testing.assert_array_equal(np.asarray(load_image(path)), photo())


@pytest.mark.parametrize(("orientation", "k"), [(None, 0), (6, -1)])
def test_exif_that_breaks_opening_a_jpeg(tmp_path, orientation, k: int) -> None:
    """Without a JFIF segment Pillow reads the dpi from EXIF while opening; this block makes that raise,
    and Image.open reports "cannot identify image file". vitc decodes the JPEG without the block,
    applying an orientation the block holds."""
    buf = io.BytesIO()
    exif = b"Exif\x00\x00" + dpi_breaking_exif(orientation)
    Image.fromarray(photo()).save(buf, "JPEG", quality=95, exif=exif)
    path = tmp_path / "dpi.jpg"
    path.write_bytes(strip_jfif(buf.getvalue()))
    with pytest.raises(Exception):  # noqa: B017 - the point: Pillow cannot open it
        Image.open(path)
    plain = io.BytesIO()
    Image.fromarray(photo()).save(plain, "JPEG", quality=95)  # the same encoder output, without EXIF
    with Image.open(plain) as f:
        decoded = np.asarray(f.convert("RGB"))
    np.testing.assert_array_equal(np.asarray(load_image(path)), np.rot90(decoded, k=k))


# ---- files that cannot be used: one ImageLoadError each -----------------------------------------


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_give_one_error_with_a_kind(corpus, name: str) -> None:
    path = corpus[name]
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    e = info.value
    assert e.kind == BROKEN[name] and e.path == str(path)
    assert str(e).startswith(f"cannot read image '{path}': ") and "\n" not in str(e)
    # the same error through every entry point
    for call in (lambda: ImageProcessor()(path), lambda: ImageProcessor().preprocess_one(str(path))):
        with pytest.raises(ImageLoadError) as again:
            call()
        assert again.value.kind == e.kind
    pixels, error = ImageProcessor().try_preprocess_one(path)
    assert pixels is None and error.kind == e.kind
    image, error = try_load_image(path)
    assert image is None and error.kind == e.kind


def test_readable_files_through_the_try_helpers(corpus) -> None:
    image, error = try_load_image(corpus["rgb.png"])
    assert error is None and image.mode == "RGB"
    pixels, error = ImageProcessor(size=SIZE).try_preprocess_one(corpus["rgb.png"])
    assert error is None and pixels.shape == (3, 24, 20)


def test_bombs_are_refused_from_the_header(corpus, monkeypatch) -> None:
    """Refused by Image.open's size check (2 * MAX_IMAGE_PIXELS), before any pixel buffer exists."""
    for name in ("bomb.png", "bomb.gif", "bomb.jpg"):
        with pytest.raises(ImageLoadError, match="decompression-bomb limit") as info:
            open_image(corpus[name])
        assert info.value.kind == "too_large"
    # an ordinary file under a lowered limit: the same rule
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError) as info:
        load_image(corpus["rgb.png"])
    assert info.value.kind == "too_large"


def test_missing_file_is_missing_and_a_file_not_found_error(tmp_path) -> None:
    for path in (tmp_path / "nope.png", tmp_path / "nope" / "deeper.png"):
        with pytest.raises(FileNotFoundError) as info:
            ImageProcessor()(path)
        e = info.value
        assert isinstance(e, ImageMissingError) and isinstance(e, ImageLoadError) and isinstance(e, ValueError)
        assert e.kind == "missing" and str(e) == f"cannot read image '{path}': file not found"
        assert e.strerror == str(e) and e.filename is None  # the CLI prints strerror for OSErrors
    a_file = tmp_path / "file.png"
    Image.fromarray(photo()).save(a_file)
    with pytest.raises(ImageMissingError):
        load_image(a_file / "child.png")  # a file used as a folder


def test_symlinks(tmp_path) -> None:
    target = tmp_path / "real.png"
    Image.fromarray(photo()).save(target)
    (tmp_path / "link.png").symlink_to(target)
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "link.png")), photo())
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(ImageMissingError):
        load_image(tmp_path / "dangling.png")
    (tmp_path / "loop_a.png").symlink_to(tmp_path / "loop_b.png")
    (tmp_path / "loop_b.png").symlink_to(tmp_path / "loop_a.png")
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "loop_a.png")
    assert info.value.kind == "unreadable"


def test_fifo_is_refused_without_blocking(tmp_path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    result = []
    worker = threading.Thread(target=lambda: result.append(try_load_image(fifo)), daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # unblock the reader so that the process can exit, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("load_image blocked on a FIFO")
    image, error = result[0]
    assert image is None and error.kind == "unreadable" and "FIFO" in str(error)


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero"])
def test_devices_are_refused(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist on this system")
    with pytest.raises(ImageLoadError) as info:
        load_image(device)
    assert info.value.kind == "unreadable" and "character device" in str(info.value)


def test_permission_denied_is_unreadable(tmp_path, monkeypatch) -> None:
    path = tmp_path / "secret.png"
    Image.fromarray(photo()).save(path)
    real_open = os.open

    def deny(name, *args, **kwargs):
        if os.fspath(name) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(ip.os, "open", deny)  # tests run as root, where chmod 000 does not deny
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert info.value.kind == "unreadable" and "Permission denied" in str(info.value)


def test_a_file_swapped_for_a_fifo_after_the_check_is_refused(tmp_path, monkeypatch) -> None:
    """Between stat and open the path may change; the opened descriptor is checked again."""
    path = tmp_path / "swap.png"
    Image.fromarray(photo()).save(path)
    real_open = os.open

    def swap(name, flags, *args):
        if os.fspath(name) == str(path):
            path.unlink()
            os.mkfifo(path)
            assert flags & os.O_NONBLOCK  # or this open would wait for a writer forever
        return real_open(name, flags, *args)

    monkeypatch.setattr(ip.os, "open", swap)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert info.value.kind == "unreadable"


def test_any_pillow_exception_while_decoding_becomes_an_image_load_error(tmp_path, monkeypatch) -> None:
    """Whatever Pillow raises inside (it raises many types on damaged data), one ImageLoadError comes out."""
    path = tmp_path / "ok.png"
    Image.fromarray(photo()).save(path)
    cases = [
        (AttributeError("x"), "corrupt"),
        (IndexError("y"), "corrupt"),
        (struct.error("z"), "corrupt"),
        (MemoryError(), "too_large"),
        (OSError("decoder zip not available"), "unsupported"),
    ]
    for exc, kind in cases:

        def boom(self, exc=exc):
            raise exc

        with monkeypatch.context() as m:
            m.setattr(ImageFile.ImageFile, "load", boom)
            with pytest.raises(ImageLoadError) as info:
                load_image(path)
        assert info.value.kind == kind, (exc, info.value)


def test_errors_pickle_and_kinds_are_checked() -> None:
    for kind in IMAGE_ERROR_KINDS:
        e = ip._make_image_error("/x/y.png", kind, "detail")
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is type(e) and (again.path, again.kind, str(again)) == (e.path, e.kind, str(e))
    assert isinstance(ip._make_image_error(None, "missing", "file not found"), FileNotFoundError)
    with pytest.raises(ValueError, match="kind"):
        ImageLoadError("x", "weird", "detail")


# ---- in-memory images: every PIL mode, both routes -------------------------------------------


def _pil_modes() -> dict[str, Image.Image]:
    rgb = Image.fromarray(photo())
    rgba = rgba_photo()
    gray = np.asarray(rgb.convert("L"))
    rgb_trns = rgb.copy()
    rgb_trns.info["transparency"] = tuple(int(v) for v in photo()[0, 0])
    return {
        "1": rgb.convert("1"),
        "L": rgb.convert("L"),
        "LA": rgba.convert("LA"),
        "La": rgba.convert("La"),
        "P": rgb.quantize(64),
        "P_transparent_index": palette_with_transparent_index(),
        "P_rgba_palette": palette_with_rgba_palette(),
        "PA": rgba.convert("PA"),
        "RGB": rgb,
        "RGB_transparent_colour": rgb_trns,
        "RGBA": rgba,
        "RGBa": rgba.convert("RGBa"),
        "RGBX": rgb.convert("RGBX"),
        "CMYK": rgb.convert("CMYK"),
        "YCbCr": rgb.convert("YCbCr"),
        "LAB": rgb.convert("LAB"),
        "HSV": rgb.convert("HSV"),
        "I": rgb.convert("I"),
        "I;16": Image.fromarray(gray.astype(np.uint16) * 257),
        "I;16_small": Image.fromarray(gray.astype(np.uint16)),
        "I;16B": Image.frombytes("I;16B", rgb.size, gray.astype(">u2").tobytes()),
        "F": rgb.convert("F"),
        "F_unit": Image.fromarray(gray.astype(np.float32) / 255),
    }


PIL_MODES = list(_pil_modes())
STEP_VARIANTS = {
    "default": {},
    "no_normalize": {"do_normalize": False},
    "scalar_mean": {"image_mean": 0.5, "image_std": 0.25},
    "no_resize": {"do_resize": False},
}


@pytest.mark.parametrize("steps", list(STEP_VARIANTS))
@pytest.mark.parametrize("convert_rgb", CONVERT_RGB)
@pytest.mark.parametrize("mode", PIL_MODES)
def test_pil_modes_match_transformers(mode: str, convert_rgb, steps: str) -> None:
    """ViTImageProcessorPil(images=PIL image): pixels, or a refusal where transformers refuses too
    (without do_convert_rgb an RGBA image has 4 channels for 3 means, a palette image gives indices)."""
    img = _pil_modes()[mode]
    kw = {"size": SIZE, "do_convert_rgb": convert_rgb, **STEP_VARIANTS[steps]}
    outcome = same_as_transformers(lambda: ImageProcessor(**kw)(img), lambda: hf_pixels(img, **kw))
    if convert_rgb and mode not in ("La", "PA"):  # Pillow converts every other mode to RGB
        assert outcome == "equal"
    pipe = same_as_transformers(
        lambda: ImageProcessor(**kw)(pipeline_image(img)), lambda: hf_pixels(hf_load_image(img), **kw)
    )
    if mode not in ("La",):  # Pillow has no La -> RGB conversion: both refuse
        assert pipe == "equal"


def test_mode_differences_are_real() -> None:
    """The routes differ, in transformers and in vitc alike: a test passing by ignoring them cannot."""
    rgba = rgba_photo()
    kw = {"size": SIZE, "do_convert_rgb": True}
    composited = ImageProcessor(**kw)(rgba)
    dropped = ImageProcessor(**kw)(pipeline_image(rgba))  # load_image drops alpha without compositing
    assert np.abs(composited - dropped).max() > 1
    p = palette_with_transparent_index()
    with_trns = ImageProcessor(**kw)(pipeline_image(p))  # the transparent colour turns white
    without = ImageProcessor(size=SIZE, do_convert_rgb=None)(pipeline_image(p))
    assert np.abs(with_trns - without).max() > 0.3
    with pytest.raises(ImageLoadError, match="image_mean has 3 values but the image has 4 channels"):
        ImageProcessor(size=SIZE)(rgba)


def test_real_pipeline_preprocessing_matches(tmp_path) -> None:
    """``processor(pipeline_image(x))`` is what pipeline("image-classification") computes for x."""
    from factories import make_checkpoint

    model = make_checkpoint(tmp_path)
    for convert_rgb in (True, None):
        kw = {"size": {"height": 30, "width": 30}, "do_convert_rgb": convert_rgb}
        pipe = pipeline("image-classification", model=model, image_processor=ViTImageProcessorPil(**kw))
        path = tmp_path / "p_trns.png"
        palette_with_transparent_index().save(path)
        inputs = {
            "path": str(path),
            "rgba": rgba_photo(),
            "palette": palette_with_transparent_index(),
            "cmyk": Image.fromarray(photo()).convert("CMYK"),
            "array": photo(),
            "tensor": torch.from_numpy(np.ascontiguousarray(photo().transpose(2, 0, 1))),
        }
        for name, x in inputs.items():
            ref = pipe.preprocess(x)["pixel_values"].numpy()
            ours = ImageProcessor(**kw)(pipeline_image(x))
            np.testing.assert_array_equal(ours, ref, err_msg=name)
            np.testing.assert_array_equal(ImageProcessor(**kw).preprocess_one(x, pipeline=True), ref[0], err_msg=name)
            pixels, error = ImageProcessor(**kw).try_preprocess_one(x, pipeline=True)
            assert error is None
            np.testing.assert_array_equal(pixels, ref[0], err_msg=name)


def test_transformers_skips_exif_for_pil_images_in_the_processor_route(tmp_path) -> None:
    path = tmp_path / "o6.jpg"
    Image.fromarray(photo()).save(path, quality=95, exif=b"Exif\x00\x00" + orientation_exif(6))
    kw = {"size": SIZE, "do_convert_rgb": True}
    with Image.open(path) as f:
        as_stored = ImageProcessor(**kw)(f)
        np.testing.assert_array_equal(as_stored, hf_pixels(f, **kw))
        upright = ImageProcessor(**kw)(pipeline_image(f))
        np.testing.assert_array_equal(upright, hf_pixels(hf_load_image(f), **kw))
    np.testing.assert_array_equal(upright, ImageProcessor(**kw)(path))
    assert np.abs(upright - as_stored).max() > 0.1


def test_truncated_pil_image_passed_in_gives_an_image_load_error(corpus) -> None:
    img = Image.open(corpus["jpeg_half.jpg"])  # opens lazily: decoding fails later
    try:
        calls = [
            lambda: ImageProcessor()(img),
            lambda: ImageProcessor(do_convert_rgb=True)(img),
            lambda: pipeline_image(img),
            lambda: ImageProcessor().preprocess_one(img, pipeline=True),
        ]
        for call in calls:
            with pytest.raises(ImageLoadError) as info:
                call()
            assert info.value.kind == "corrupt" and info.value.path is None
    finally:
        img.close()


def test_special_file_names_in_messages(tmp_path) -> None:
    assert stat.S_ISDIR(os.stat(tmp_path).st_mode)
    with pytest.raises(ImageLoadError, match="it is a directory") as info:
        load_image(tmp_path)
    assert info.value.kind == "unreadable"
