"""The one way vitc replaces a file: write a temporary file beside it, fsync, rename it over it.

``atomic_write(dst)`` yields an open file whose content becomes ``dst`` only once it is complete and on
disk: a reader, or a crash, sees the old ``dst`` (or none) or the whole new one, never a part. The
temporary file is ``.NAME.<pid>.<random>.tmp`` in ``dst``'s folder (a rename within one file system is
atomic); one left behind by a killed writer is removed by the next write to the same ``dst`` once its
process no longer runs. Used by :func:`vitc.convert` and for evaluation outputs (vitc/eval/output.py).

Because the new file is renamed over ``dst``, the old file's inode is never written: a model that
memory-maps the old file keeps its weights (the inode lives until the last map is gone). A writer whose
output is derived from input files first calls :func:`refuse_overwriting_inputs`, so that ``dst`` is
never one of them (by path, symlink, hard link or relative spelling).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["TMP_SUFFIX", "atomic_write", "fsync_dir", "output_path", "refuse_overwriting_inputs", "remove_stale_temps"]

TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_write(dst: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``dst`` for writing; on a clean exit, make it ``dst``.

    The file is flushed to disk (fsync) and renamed over ``dst`` (``os.replace``), then the folder is
    fsynced so the rename itself persists. If the body raises, the temporary file is removed and
    ``dst`` is left as it was. The folder of ``dst`` must exist. Temporary files of earlier writes to
    ``dst`` whose process is gone are removed first (POSIX only; on a folder shared between machines or
    pid namespaces a writer running elsewhere can look dead, so do not write one ``dst`` from two).

    Parameters
    ----------
    dst : str or PathLike
        The file to replace.
    mode : {"wb", "w"}
        Binary or text.
    encoding : str, optional
        For text mode.

    Yields
    ------
    file object
    """
    dst = Path(dst)
    remove_stale_temps(dst)
    # O_EXCL on a random name: unique, and created with the umask's permissions (mkstemp's are 0600).
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{secrets.token_hex(6)}{TMP_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:  # a read-only or missing folder: say which file could not be written
        raise type(exc)(f"{dst}: cannot write a file in {dst.parent} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(dst.parent)


def _pid_alive(pid: int) -> bool:
    """False only if no process ``pid`` exists (a zombie still exists until its parent reaps it)."""
    if os.name != "posix" or pid <= 0:
        return True  # cannot tell safely: Windows' os.kill terminates the process it names
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: another user's process
        return True
    return True


def remove_stale_temps(dst: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of writes to ``dst`` whose process no longer runs.

    Parameters
    ----------
    dst : str or PathLike
        The destination file of :func:`atomic_write`.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    dst = Path(dst)
    pattern = re.compile(rf"\.{re.escape(dst.name)}\.(\d+)\.[a-z0-9_]+{re.escape(TMP_SUFFIX)}")
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        try:
            os.unlink(dst.parent / name)
        except OSError:  # another writer removed it first, or it is not ours to remove
            continue
        removed.append(dst.parent / name)
    return removed


def fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder``; not every platform lets a directory be opened, hence best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _identities(path: Path) -> tuple[tuple[int, int] | None, set[tuple[int, int, str]]]:
    """(device and inode of the file ``path`` names, or None; the directory entries that name it:
    (device, inode of the folder, name) of ``path`` itself and of its symlink target)."""
    try:
        st = os.stat(path)
        inode = (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        inode = None
    try:
        names = {path, path.resolve()}
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13) names no file
        names = {path}
    entries = set()
    for p in names:
        try:
            parent = os.stat(p.parent)
        except (OSError, ValueError):
            continue
        entries.add((parent.st_dev, parent.st_ino, p.name))
    return inode, entries


def refuse_overwriting_inputs(dst: str | os.PathLike[str], inputs: dict[Path, str], action: str) -> None:
    """Raise ValueError if writing ``dst`` (by rename, or in place) would replace one of ``inputs``.

    ``dst`` is refused if it is the same file as an input (the same inode: the path itself, a symlink
    to it, a hard link, another spelling of the path) or if it is a directory entry that names an
    input (a symlink in a Hugging Face cache snapshot, which a rename would replace).

    Parameters
    ----------
    dst : str or PathLike
        The file about to be written.
    inputs : dict of pathlib.Path to str
        The files (and folders) the output is derived from, each with the role named in the message
        ("weights file", "config.json", ...).
    action : str
        What is being written, for the message (e.g. "convert: output").

    Raises
    ------
    ValueError
        Naming ``dst``, the input it would replace and its role.
    """
    dst = Path(dst)
    dst_inode, dst_entries = _identities(dst)
    for path, role in inputs.items():
        inode, entries = _identities(Path(path))
        same = dst_inode is not None and dst_inode == inode
        if same or dst_entries & entries:
            how = "the same file" if same else "a link to it"
            raise ValueError(
                f"{action} {dst} is the {role} {path} ({how}): expected a destination that is none of the "
                "input files, which would be destroyed"
            )


def output_path(dst: str | os.PathLike[str], default_name: str) -> Path:
    """``dst``, or ``dst/default_name`` if ``dst`` is an existing folder."""
    dst = Path(dst)
    return dst / default_name if os.path.isdir(dst) else dst  # isdir: False for a loop or an unusable name
