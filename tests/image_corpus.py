"""Image files as found in the wild, written with Pillow (and by hand) into a folder, for the image tests.

``write_corpus(folder)`` returns ``{name: path}``; ``READABLE`` lists the files that decode (their pixels
must match transformers), ``BROKEN`` maps the others to the ``ImageLoadError.kind`` they must give.
``BAD_EXIF`` holds EXIF blocks (TIFF bytes) that make Pillow 13 raise in ``ImageOps.exif_transpose`` or
in ``Image.open``, found by fuzzing random IFD entries (tags, types, counts and offsets).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

ORIENTATION_TAG = 0x0112


def photo(h: int = 60, w: int = 80) -> np.ndarray:
    """A real photograph crop (uint8 RGB), odd-sized so that resizing does work."""
    return np.ascontiguousarray(skimage.data.chelsea()[40 : 40 + h, 120 : 120 + w])


def rgba_photo() -> Image.Image:
    rgb = photo()
    h, w, _ = rgb.shape
    alpha = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))  # every alpha level
    alpha[:10] = 0  # a fully transparent band
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def palette_with_transparent_index() -> Image.Image:
    p = Image.fromarray(photo()).quantize(colors=32)
    # the colour of the top-left pixel is transparent: a real region, not a lone pixel
    p.info["transparency"] = int(np.asarray(p)[0, 0])
    return p


def palette_with_rgba_palette() -> Image.Image:
    p = Image.fromarray(photo()).quantize(colors=16)
    rgb = p.getpalette()[: 16 * 3]
    rgba = []
    for i in range(16):
        rgba += rgb[3 * i : 3 * i + 3] + [i * 17]  # entry i has alpha 17 * i
    p.putpalette(rgba, rawmode="RGBA")
    return p


def exif_block(entries: list[tuple[int, int, int, bytes]], extra: bytes = b"") -> bytes:
    """A little-endian TIFF block with one IFD of (tag, type, count, 4-byte value or offset) entries."""
    body = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        body += struct.pack("<HHI", tag, typ, count) + value
    return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", 0) + extra


def orientation_exif(orientation: int) -> bytes:
    return exif_block([(ORIENTATION_TAG, 3, 1, struct.pack("<HH", orientation, 0))])


# Each breaks ImageOps.exif_transpose (or Image.open) in Pillow 13; the comment says where. The pixels
# are intact; the orientation (6 where present) can still be read, except where noted.
BAD_EXIF = {
    # exif.tobytes() after the rotation: struct.error "'L' format requires 0 <= number <= 4294967295"
    "tobytes_long_range": bytes.fromhex(
        "49492a0008000000030002021000020000001a00000069870d00ffffff7f662f7fc912010300010000000600000000"
        "000000379ae9aa40137ddc8e0d0bd732bc64e08bb37f4f4b13cf788e290f9e020928462e32"
    ),
    # struct.error "required argument is not an integer"
    "tobytes_not_integer": bytes.fromhex(
        "49492a0008000000020012010300010000000600000002020700010000000000000000000000c48aa7488fad4d2d38146b5034b7e6b6"
    ),
    # AttributeError "'IFDRational' object has no attribute 'encode'"
    "tobytes_rational_as_text": bytes.fromhex(
        "49492a000800000003000f010a00050000000800000012010300010000000600000086920200ffffffff28000000000000"
        "0039e1d0aff7ff0bad03171cd1"
    ),
    # TypeError "bad operand type for abs(): 'bytes'"
    "tobytes_abs_bytes": bytes.fromhex(
        "49492a000800000004000f010900ffffff7ff0ffffff1201030001000000060000001a01010001000000f0ffffff2788"
        "0e00ffffffff1a00000000000000be9df411e85cce"
    ),
    # ValueError "negative seek value"
    "negative_seek": bytes.fromhex(
        "49492a0008000000040012010300010000000600000069870800050000002800000025880500ffffffff28000000000102"
        "00010000000800000000000000f97b63c92185289e2492cec3"
    ),
    # OverflowError "Python int too large to convert to C ssize_t"
    "overflow": bytes.fromhex(
        "49492a0008000000040069871000020000001a00000003900000ffff0000f0ffffff7c9209006400000000000000120103"
        "00010000000600000000000000be6be51b099a0f"
    ),
}
# Not a TIFF block at all: Image.getexif raises SyntaxError for WebP and PNG files (each time), so the
# orientation cannot be read and the image stays as stored. (Pillow ignores it in JPEGs.)
UNREADABLE_EXIF = {"garbage": b"\xff" * 50, "not_tiff": b"XXXX" + b"\x00" * 20}


def dpi_breaking_exif(orientation: int | None = None) -> bytes:
    """Breaks Image.open of a JPEG without a JFIF segment: Pillow then reads the dpi from EXIF while
    opening, and a one-character XResolution string raises IndexError there ("cannot identify image
    file"). With ``orientation``, the block also carries that orientation."""
    entries = [(0x0128, 8, 1, bytes.fromhex("f0ffffff")), (0x011A, 2, 1, b"\x00" * 4)]
    if orientation is not None:
        entries.append((ORIENTATION_TAG, 3, 1, struct.pack("<HH", orientation, 0)))
    return exif_block(entries)


def strip_jfif(jpeg: bytes) -> bytes:
    """The JPEG without its JFIF APP0 segment (Pillow then reads the dpi from EXIF while opening)."""
    assert jpeg[2:4] == b"\xff\xe0"
    n = struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:2] + jpeg[4 + n :]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height pixels, with a tiny IDAT: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def gif_bomb() -> bytes:
    """A GIF whose logical screen and image are 65535 x 65535."""
    head = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00"
    return head + image + b"\x3b"


def jpeg_bomb() -> bytes:
    """A JPEG whose frame header (SOF0) claims 65500 x 65500 pixels."""
    buf = io.BytesIO()
    Image.fromarray(photo(16, 16)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65500, 65500)
    return bytes(data)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _animated(fmt: str) -> bytes:
    frames = [Image.fromarray(np.roll(photo(), 20 * i, axis=1)) for i in range(3)]
    kw = {"save_all": True, "append_images": frames[1:], "duration": 100, "loop": 0}
    if fmt == "WEBP":
        kw["lossless"] = True
    return _save(frames[0], fmt, **kw)


def _readable() -> dict[str, bytes]:
    rgb = Image.fromarray(photo())
    gray = rgb.convert("L")
    rgba = rgba_photo()
    rotated = _save(rgb, "JPEG", quality=95, exif=b"Exif\x00\x00" + orientation_exif(6))
    files = {
        "rgb.jpg": _save(rgb, "JPEG", quality=90),
        "progressive.jpg": _save(rgb, "JPEG", quality=90, progressive=True),
        "rgb.png": _save(rgb, "PNG"),
        "rgb.webp": _save(rgb, "WEBP", lossless=True),
        "rgb_lossy.webp": _save(rgb, "WEBP", quality=80),
        "rgb.bmp": _save(rgb, "BMP"),
        "rgb.tiff": _save(rgb, "TIFF"),
        "rgb.gif": _save(rgb, "GIF"),
        "gray_L.png": _save(gray, "PNG"),
        "gray_L.jpg": _save(gray, "JPEG"),
        "one_bit.png": _save(rgb.convert("1"), "PNG"),
        "la.png": _save(rgba.convert("LA"), "PNG"),
        "rgba.png": _save(rgba, "PNG"),
        "rgba.webp": _save(rgba, "WEBP", lossless=True),
        "rgba.tiff": _save(rgba, "TIFF"),
        "p.png": _save(rgb.quantize(64), "PNG"),
        "p_trns.png": _save(palette_with_transparent_index(), "PNG"),
        "p_trns.gif": _save(palette_with_transparent_index(), "GIF"),
        "p_rgba_palette.png": _save(palette_with_rgba_palette(), "PNG"),
        "rgb_trns.png": _save(rgb, "PNG", transparency=tuple(int(v) for v in photo()[0, 0])),
        "cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG", quality=95),
        "cmyk.tiff": _save(rgb.convert("CMYK"), "TIFF"),
        "i16.png": _save(Image.fromarray(np.asarray(gray).astype(np.uint16) * 257), "PNG"),
        "i16_small_values.png": _save(Image.fromarray(np.asarray(gray).astype(np.uint16)), "PNG"),
        "i16.tiff": _save(Image.fromarray(np.asarray(gray).astype(np.uint16) * 257), "TIFF"),
        "i32.tiff": _save(gray.convert("I"), "TIFF"),
        "f32.tiff": _save(gray.convert("F"), "TIFF"),
        "f32_unit.tiff": _save(Image.fromarray(np.asarray(gray, dtype=np.float32) / 255), "TIFF"),
        "animated.gif": _animated("GIF"),
        "animated.webp": _animated("WEBP"),
        "animated.png": _animated("PNG"),
        "exif_orientation_6.jpg": rotated,
        "exif_orientation_3.webp": _save(rgb, "WEBP", lossless=True, exif=b"Exif\x00\x00" + orientation_exif(3)),
        "exif_orientation_8.png": _save(rgb, "PNG", exif=b"Exif\x00\x00" + orientation_exif(8)),
        "exif_orientation_9.jpg": _save(rgb, "JPEG", exif=b"Exif\x00\x00" + orientation_exif(9)),
        # cut inside the trailing chunks: Pillow (and so transformers) still decodes every row
        "png_cut_tail.png": _save(rgb, "PNG")[:-20],
    }
    return files


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write every readable and broken file into ``folder``; return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in _readable().items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    rgb = Image.fromarray(photo())
    jpg, png, webp, gif = (_save(rgb, f) for f in ("JPEG", "PNG", "WEBP", "GIF"))
    broken = {
        "empty.jpg": b"",
        "text.jpg": b"this is not a jpeg\n" * 20,
        "html.png": b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
        "jpeg_header_only.jpg": jpg[:20],
        "jpeg_half.jpg": jpg[: len(jpg) // 2],
        "jpeg_no_end.jpg": jpg[:-200],
        "png_header_only.png": png[:30],
        "png_half.png": png[: len(png) // 2],
        "webp_header_only.webp": webp[:20],
        "webp_half.webp": webp[: len(webp) // 2],
        "gif_header_only.gif": gif[:12],
        "bomb.png": png_bomb(100_000, 100_000),
        "bomb.gif": gif_bomb(),
        "bomb.jpg": jpeg_bomb(),
    }
    for name, data in broken.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    (folder / "x.png").mkdir(exist_ok=True)
    paths["x.png"] = folder / "x.png"
    return paths


READABLE = sorted(_readable())
# kind of the ImageLoadError each broken file gives
BROKEN = {
    "empty.jpg": "corrupt",
    "text.jpg": "not_an_image",
    "html.png": "not_an_image",
    "jpeg_header_only.jpg": "corrupt",
    "jpeg_half.jpg": "corrupt",
    "jpeg_no_end.jpg": "corrupt",
    "png_header_only.png": "corrupt",
    "png_half.png": "corrupt",
    "webp_header_only.webp": "corrupt",
    "webp_half.webp": "corrupt",
    "gif_header_only.gif": "corrupt",
    "bomb.png": "too_large",
    "bomb.gif": "too_large",
    "bomb.jpg": "too_large",
    "x.png": "unreadable",
}
