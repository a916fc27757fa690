"""Reading input files safely and writing output files atomically.

Reading: only regular files are read (a FIFO, a device or a directory is refused without blocking on it),
and never more than a stated limit, so a hostile path cannot hang the analysis or exhaust memory.

Writing: a temporary file in the target folder, then a rename, so a reader sees the old file or the new
one, never a part of one, and a failed or interrupted write leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

MiB = 1 << 20
# protobuf cannot parse a message of 2 GiB or more: a larger ONNX file keeps its weights outside it
ONNX_LIMIT = (2 << 30) - 1
MAPPING_LIMIT = 256 * MiB  # a 100k-node graph's mapping is about 15 MiB
CONFIG_LIMIT = 64 * MiB  # a config of 100k layers is about 40 MiB
SIMPLE_CONFIG_LIMIT = 16 * MiB

_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must not wait for a writer
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _size(count: int) -> str:
    return f"{count / MiB:.0f} MiB" if count >= MiB else f"{count} bytes"


def _no_nul(name: str | bytes) -> None:
    """The OS functions raise ValueError for a NUL in a path; make it the OSError every caller handles."""
    if "\0" in os.fsdecode(name):
        raise OSError(
            errno.EINVAL, "the path contains a NUL character", os.fsdecode(name).replace("\0", "\\0")
        )


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole content of the regular file `path`, at most `limit` bytes.

    Raises:
        OSError: the file cannot be opened or read, is not a regular file (FIFO, device, directory: refused
            without reading from it), or is larger than `limit`; `strerror` says which, `filename` is `path`.
    """
    name = os.fspath(path)
    _no_nul(name)
    try:
        fd = os.open(name, _READ_FLAGS)
    except IsADirectoryError as err:
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file", name) from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"is {_kind(info.st_mode)}, expected a regular file", name)
        if info.st_size > limit:
            raise OSError(
                errno.EFBIG, f"is {_size(info.st_size)}, larger than the limit of {_size(limit)}", name
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after fstat
        raise OSError(errno.EFBIG, f"is larger than the limit of {_size(limit)}", name)
    return data


def write_atomic(path: str | os.PathLike[str], content: str | bytes) -> Path:
    """Write `content` (text as UTF-8 with newlines as given, or bytes) to `path` through a temporary file in
    the same folder and a rename.

    Missing parent folders are created. An existing file keeps its permission bits; a new one gets the
    usual ones (0o666 minus the umask). On any failure, or an interrupt (KeyboardInterrupt), the previous
    file (if any) is left untouched and no temporary file remains. A symlink at `path` is replaced by the
    file, not written through.

    Raises:
        IsADirectoryError: `path` is a directory.
        PermissionError: `path` is a file without write permission (left as it is).
        OSError: the folder or the file cannot be written.
    """
    target = Path(path)
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        mode: int | None = stat.S_IMODE(target.stat().st_mode) if target.is_file() else None
    except OSError:
        mode = None
    fd, tmp_name = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            with contextlib.suppress(OSError):
                os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _sync_folder(target.parent)
    return target


def check_target(target: Path) -> None:
    """Refuse a target a rename would replace but a plain write could not: a directory, or a file without
    write permission (read-only on purpose; a rename would not ask).

    Raises:
        OSError: a NUL character in the path (EINVAL), a directory (IsADirectoryError) or a read-only file
            (PermissionError).
    """
    _no_nul(os.fspath(target))
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(target))
    if target.is_file() and not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, "is read-only (no write permission)", str(target))


def _create_temporary(target: Path) -> tuple[int, str]:
    """A new file beside `target`, opened for writing, with the mode a new `target` would get: created with
    0o666 so that the kernel applies the umask (reading the umask would change it for every thread)."""
    stem = os.fsdecode(os.fsencode(target.name)[:120])  # the temporary name must fit NAME_MAX (255 bytes) too
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = str(target.parent / f".{stem}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(target.parent))


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
