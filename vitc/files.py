"""Opening the files vitc reads, and parsing their JSON: one policy for every path and every document.

Model files come from users and from the internet, and a path can name anything: a FIFO (opening it
blocks until a writer appears), a device (/dev/zero never ends), a /proc or /sys pseudo-file (size 0,
or not mappable), a directory, a file this user may not read. Every reader in vitc opens files here:

- :func:`file_kind` says what a path names (following symlinks) without opening it;
- :func:`open_regular` opens a regular file only: the type is checked before opening, and again on
  the open descriptor (opened non-blocking, so a FIFO swapped in between cannot block);
- :func:`read_regular` reads at most a given number of bytes; :func:`map_regular` memory-maps;
- :func:`load_json` / :func:`read_json_file` parse untrusted JSON with the limits below, checked
  before parsing (nothing recurses on a hostile document).

Failures are ``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError`` or
:class:`UnreadableFileError` (an ``OSError`` and a ``ValueError``), with messages naming the file,
what was expected and what was found. This module imports nothing else of vitc.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import re
import reprlib
import stat
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_CONTAINERS",
    "MAX_JSON_DEPTH",
    "UnreadableFileError",
    "aligned_empty",
    "file_kind",
    "json_depth",
    "load_json",
    "map_regular",
    "mapped_file",
    "open_regular",
    "read_json_file",
    "read_regular",
    "require_file",
    "same_file",
    "short_repr",
]

# A JSON document this large is not a config, an index or a tensor table; refusing it bounds the
# memory a hostile file can make us allocate before anything is validated. A safetensors header is
# ~100 bytes per tensor; ViT-L's config.json with 1000 labels is 70 kB.
MAX_JSON_BYTES = 16 * 1024 * 1024
# '[' + '{' (and ']' + '}') in one document. Each container costs ~64 bytes of Python for 3 bytes of
# text ("[],"), so a 16 MB document of them would take ~400 MB; a tensor table needs 3 per tensor and
# 131,072 tensors (vitc.io.checkpoint.MAX_TENSORS) are allowed.
MAX_JSON_CONTAINERS = 4 * (1 << 17)
# Nesting depth of any JSON vitc reads. Real documents nest 2-5 deep (a .vitc header: header ->
# tensors -> entry -> shape is 4). Python's parser recurses once per level and fails somewhere below
# the interpreter's recursion limit, at a depth that depends on how deep the caller's stack already
# is; refusing past a fixed depth, measured without recursing, makes the answer the same everywhere.
MAX_JSON_DEPTH = 64


class UnreadableFileError(OSError, ValueError):
    """A path names something vitc cannot read as a file: a FIFO, a device, a socket, a pseudo-file,
    a symlink loop. Both an ``OSError`` and a ``ValueError`` (as ``io.UnsupportedOperation`` is), so
    callers that catch either for "bad file" see it. ``str()`` is the whole message."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 40


def short_repr(v: Any) -> str:
    """Bounded repr for error messages: hostile values may be huge or nested thousands deep."""
    return _REPR.repr(v)


# ---------------------------------------------------------------------------------------------------
# What a path names

_KINDS = (
    (stat.S_ISREG, "regular file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO (named pipe)"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def _kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), f"special file (mode {mode:#o})")


def _os_error(path: str, exc: OSError, what: str) -> OSError:
    """An OSError from stat/open/read as one of ours: the file, the operation's subject, the reason."""
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        return FileNotFoundError(f"{path}: no such {what}")
    if isinstance(exc, PermissionError):
        return PermissionError(f"{path}: cannot read the {what}: permission denied (expected one this user may read)")
    if isinstance(exc, IsADirectoryError):
        return IsADirectoryError(f"{path}: expected a {what}, found a directory")
    if exc.errno == errno.ELOOP:
        return UnreadableFileError(f"{path}: expected a {what}, found a symlink loop ({reason})")
    return UnreadableFileError(f"{path}: cannot read the {what} ({reason})")


def file_kind(path: str | os.PathLike[str], what: str = "file") -> str | None:
    """What ``path`` names, following symlinks: "regular file", "directory", "FIFO (named pipe)",
    "character device", "block device", "socket", ..., or None if nothing (or a dangling symlink).

    Nothing is opened. A path this user may not look up raises ``PermissionError``, a symlink loop
    or an unusable name :class:`UnreadableFileError`; ``what`` names the file in those messages.
    """
    p = os.fspath(path)
    try:
        return _kind_of(os.stat(p).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _os_error(p, exc, what) from None
    except ValueError as exc:  # an embedded NUL
        raise UnreadableFileError(f"{p!r}: expected a path, found an unusable name ({exc})") from None


def _not_regular(path: str, kind: str, what: str) -> OSError:
    if kind == "directory":
        return IsADirectoryError(f"{path}: expected a {what}, found a directory")
    return UnreadableFileError(f"{path}: expected a {what} (a regular file), found a {kind}")


def require_file(path: str | os.PathLike[str], what: str = "file", missing: str | None = None) -> None:
    """Raise unless ``path`` names a regular file (through symlinks); ``missing`` is the
    FileNotFoundError message (default "PATH: no such WHAT")."""
    p = os.fspath(path)
    kind = file_kind(p, what)
    if kind is None:
        raise FileNotFoundError(missing or f"{p}: no such {what}")
    if kind != "regular file":
        raise _not_regular(p, kind, what)


def open_regular(path: str | os.PathLike[str], what: str = "file") -> BinaryIO:
    """Open a regular file for binary reading; refuse anything else before it is opened.

    The descriptor is opened non-blocking and checked again with ``fstat``, so a FIFO or device put
    in the file's place after the check cannot block or be read.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, PermissionError, UnreadableFileError
        With a message naming ``path`` and the ``what`` it was expected to be.
    """
    p = os.fspath(path)
    require_file(p, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise _os_error(p, exc, what) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(p, _kind_of(mode), what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # no effect on regular files; leave the usual mode
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    At most ``max_bytes + 1`` bytes are read whatever size the file reports (a /proc file reports 0).

    Raises
    ------
    ValueError
        If the file holds more than ``max_bytes``.
    FileNotFoundError, IsADirectoryError, PermissionError, UnreadableFileError
        As :func:`open_regular`; read errors (EIO) are UnreadableFileError.
    """
    p = os.fspath(path)
    with open_regular(p, what) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise _os_error(p, exc, what) from None
    if len(data) > max_bytes:
        raise ValueError(f"{p}: expected a {what} of at most {max_bytes} bytes, found more")
    return data


def map_regular(path: str | os.PathLike[str], what: str = "file") -> mmap.mmap:
    """Memory-map a whole regular file read-only.

    Raises
    ------
    ValueError
        For an empty file ("file is empty"), which mmap refuses.
    UnreadableFileError
        For a file that reports size 0 but has contents (a /proc pseudo-file), or one the kernel
        cannot map (a /sys attribute, some FUSE file systems).
    FileNotFoundError, IsADirectoryError, PermissionError
        As :func:`open_regular`.
    """
    p = os.fspath(path)
    with open_regular(p, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            try:
                peek = f.read(1)
            except OSError as exc:
                raise _os_error(p, exc, what) from None
            if peek:
                raise UnreadableFileError(
                    f"{p}: expected a {what} stored on disk, found a file that reports 0 bytes but has "
                    "contents (a /proc or /sys pseudo-file?)"
                )
            raise ValueError(f"{p}: file is empty")
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UnreadableFileError(
                f"{p}: cannot memory-map the {what} ({reason}): expected a regular file on a disk file "
                "system (a /sys attribute or some network/FUSE file systems cannot be mapped; "
                "load with mmap=False to read it into memory instead)"
            ) from None


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """True if two stat results are the same file (device and inode)."""
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def mapped_file(a: np.ndarray) -> mmap.mmap | None:
    """The memory map an array views, if any (ndarray -> ... -> memoryview -> mmap)."""
    base: Any = a
    for _ in range(16):
        if base is None or isinstance(base, mmap.mmap):
            break
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return base if isinstance(base, mmap.mmap) else None


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype, alignment: int = 64) -> np.ndarray:
    """An uninitialised C-order array in process memory whose data starts on an ``alignment`` boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    skip = -raw.ctypes.data % alignment
    return raw[skip : skip + nbytes].view(dtype).reshape(shape)


# ---------------------------------------------------------------------------------------------------
# JSON

# A JSON string (escapes included), or an unterminated one running to the end: removed before the
# brackets are counted. Possessive quantifiers: linear time on any input.
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"|".*', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def json_depth(text: bytes) -> int:
    """The deepest nesting of ``[`` / ``{`` outside strings, found without recursing (exact for valid
    JSON; for invalid text, a depth the parser would reach before failing or more)."""
    brackets = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    a = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((a == ord("[")) | (a == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def _json_object_no_dups(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError(f"duplicate JSON key {short_repr(k)}")
            seen.add(k)
    return out


def load_json(path: str | os.PathLike[str], text: bytes | str, what: str = "header") -> Any:
    """``json.loads`` for untrusted text: every failure is a ValueError naming the file.

    The limits are checked before parsing: at most :data:`MAX_JSON_BYTES` bytes, at most
    :data:`MAX_JSON_CONTAINERS` opening (and closing) brackets (``[[],[],...`` costs ~20x its size in
    Python objects; brackets inside strings count too, an upper bound), nesting at most
    :data:`MAX_JSON_DEPTH` deep. Duplicate keys are refused (they would hide a tensor).
    """
    where = os.fspath(path)
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if len(raw) > MAX_JSON_BYTES:
        raise ValueError(f"{where}: {what} JSON is {len(raw)} bytes: expected at most {MAX_JSON_BYTES}")
    opening, closing = raw.count(b"[") + raw.count(b"{"), raw.count(b"]") + raw.count(b"}")
    for count, brackets in ((opening, "'[' and '{{'"), (closing, "']' and '}}'")):
        if count > MAX_JSON_CONTAINERS:
            raise ValueError(
                f"{where}: {what} JSON has {count} {brackets.format()}: expected at most {MAX_JSON_CONTAINERS} "
                "(a few per tensor)"
            )
    if opening > MAX_JSON_DEPTH:  # fewer brackets cannot nest deeper
        depth = json_depth(raw)
        if depth > MAX_JSON_DEPTH:
            raise ValueError(
                f"{where}: {what} JSON is nested too deeply: expected at most {MAX_JSON_DEPTH} levels of "
                f"[ and {{, found {depth}"
            )
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_json_object_no_dups)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{where}: {what} is not valid UTF-8 JSON ({exc})") from None
    except RecursionError:  # not reachable within MAX_JSON_DEPTH; kept so no parse can escape as one
        raise ValueError(f"{where}: {what} JSON is nested too deeply") from None


def read_json_file(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Read and parse a JSON file under :func:`load_json`'s limits (and :func:`read_regular`'s checks);
    ``what`` names the file in messages ("PATH: file JSON is nested too deeply")."""
    return load_json(path, read_regular(path, MAX_JSON_BYTES, what), what=what)
