"""Writing output files (report, calibration, copies): whole or not at all, and only ever
over a regular file.

Every writer goes through :func:`write_atomic`: the content goes to a temporary file
``.<name>.<random>.tmp`` beside the target, is flushed to disk, then renamed over the
target, so a reader never sees half a file and a crash leaves the previous one. A target
that exists but is not a regular file (a device such as ``/dev/full``, a directory, a
FIFO) or is a symbolic link is refused: renaming over it would replace the device or the
link. Temporary files left by an interrupted write are removed by the next write.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gammaride.errors import OutputError

# a temporary file older than this was left by a write that died (a write takes milliseconds)
LEFTOVER_AGE_SECONDS = 60.0


def check_target(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` when a file may be written there; :class:`OutputError` naming the fix when
    it is a symbolic link, exists as anything but a regular file, or sits under a file."""
    path = Path(path)
    if str(path) == "":
        raise OutputError(f"{what} path is empty; give a file name such as report.html")
    for parent in reversed(path.parents):  # outermost first: the first one that is a file
        if parent.is_file():
            raise OutputError(f"{what} {path}: {parent} is a file, not a directory; choose another path")
    try:
        st = path.lstat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"{what} {path} cannot be written ({exc.strerror}); choose another path") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise OutputError(
            f"{what} {path} is a symbolic link; give the real file's path (a write would replace the link)"
        )
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, pipe or socket)"
        raise OutputError(f"{what} {path} is {kind}; give the path of a regular file to write")
    return path


def remove_leftovers(path: str | os.PathLike, older_than: float = LEFTOVER_AGE_SECONDS) -> list[Path]:
    """Remove the ``.<name>.*.tmp`` files interrupted writes of ``path`` left behind."""
    path = Path(path)
    removed = []
    now = time.time()
    try:
        candidates = list(path.parent.glob(f".{_glob_escape(path.name)}.*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        try:
            st = tmp.lstat()
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= older_than:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue  # another process took it, or no permission: leave it
    return removed


def write_atomic(
    path: str | os.PathLike,
    content: str | bytes | None = None,
    *,
    copy_of: str | os.PathLike | None = None,
    write_with: Callable[[str], object] | None = None,
    what: str = "output",
) -> Path:
    """Write ``content`` (text as UTF-8, or bytes), a copy of the file ``copy_of``, or what
    ``write_with(temporary_path)`` writes, to ``path`` atomically. Raises
    :class:`OutputError` (nothing changed) on a refused target or a failed write
    (read-only directory, full disk)."""
    if sum(x is not None for x in (content, copy_of, write_with)) != 1:
        raise TypeError("write_atomic needs exactly one of content, copy_of and write_with")
    path = check_target(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot create its folder ({exc.strerror}); choose another path") from None
    remove_leftovers(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        mode = path.stat().st_mode if path.exists() else 0o644
        os.fchmod(fd, stat.S_IMODE(mode))
        with os.fdopen(fd, "wb") as fh:
            if copy_of is not None:
                with open(copy_of, "rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 20)
            elif content is not None:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            fh.flush()
            os.fsync(fh.fileno())
        if write_with is not None:  # a writer that wants a path (DuckDB COPY, Parquet)
            write_with(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        check_target(path, what)  # not replaced by a link or device meanwhile
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError(
            f"{what} {path} could not be written ({exc.strerror or exc}); nothing was changed, "
            "free some space or choose a writable folder"
        ) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
