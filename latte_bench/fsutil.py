"""Atomic file writes and file hashing: nothing a user produced is ever half-written.

Every writer in the package goes through :func:`atomic_path`: the data is written to a
temporary file in the destination folder, flushed, then moved into place with
``os.replace`` (atomic on POSIX), so a crash leaves either the old file or the new one.

The naming rule for what a crash can leave behind: a temporary file of ``atomic_path`` is
named ``.NAME.XXXXXXXX.tmp.EXT`` — hidden (leading dot) and recognised by
:func:`is_temporary`. Every reader of data skips hidden names (:func:`is_data_name`), so a
half-written file is never read as data; :func:`clean_temporaries` removes leftovers.
Finished files get the permissions ``open()`` would give them (``0o666`` less the umask).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator
from latte_bench.errors import NAME_ONLY, UserError, literal


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    The temporary name keeps the suffix of ``path`` so that libraries which pick a
    format from the extension (numpy, safetensors, PyAV) behave the same.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{TEMP_MARK}{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp creates 0600; a finished file gets what open() would give it, so colleagues
        # on a shared server (and a shared cache) can read it when the umask allows.
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


TEMP_MARK = ".tmp"
_TEMPORARY = re.compile(r"^\..+\.tmp(\.[^.]+)?$")
_UMASK_LOCK = threading.Lock()


def is_temporary(name: str) -> bool:
    """True for a file name :func:`atomic_path` gives its temporary files (``.NAME.XXXXXXXX.tmp.EXT``)."""
    return bool(_TEMPORARY.match(name))


def is_data_name(name: str) -> bool:
    """False for names readers must skip: hidden names, which include every temporary file.

    One filter for every reader and every "already done?" check. Other hidden files
    (``.DS_Store``, macOS ``._NAME`` resource forks, ``.parts/``) are not data either.
    """
    return not name.startswith(".")


def clean_temporaries(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Remove the temporary files an interrupted :func:`atomic_path` left in ``folder``; return them.

    Only names matching :func:`is_temporary` are touched. Call it when no other process
    writes into ``folder`` (at the start of a run, on one rank).
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames:
            if is_temporary(name):
                p = Path(dirpath) / name
                try:
                    p.unlink()
                    removed.append(p)
                except FileNotFoundError:
                    pass
        if not recursive:
            break
    return removed


def check_writable(folder: str | os.PathLike, flag: str = "--out", *, setting: str | None = None) -> Path:
    """Check, before any work, that files can be written in ``folder``; create nothing.

    A folder that does not exist yet is checked at its nearest existing parent: its writer makes it
    with the first file, so a command that fails before writing leaves no empty folder behind.
    Raises :class:`latte_bench.errors.UserError` naming the folder, the flag it came from (or the
    evaluation ``setting``, named as its reader passes it) and the fix, instead of a traceback after
    the work is done.
    """
    import errno


    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=TEMP_MARK, dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        where = f"{literal(folder)}: cannot write there ({literal(e.strerror or type(e).__name__)}); choose another "
        if setting is not None:
            raise UserError(where + f"{{{setting}}} or make it writable", **{setting: NAME_ONLY}) from None
        raise UserError(f"{folder}: cannot write there ({e.strerror or type(e).__name__}); "
                        f"choose another {flag} or make it writable") from None
    return folder


@contextlib.contextmanager
def write_errors(path: str | os.PathLike, way_out: str = "free some space or make it writable",
                 **settings) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` (a full disk, a folder in its place, no permission)
    into a one-line :class:`latte_bench.errors.UserError` naming ``path``, the cause and ``way_out``
    (a template naming ``settings``, as :class:`~latte_bench.errors.UserError` takes them, when given)."""

    try:
        yield
    except OSError as e:
        if settings:
            raise UserError(f"{literal(path)}: cannot write ({literal(e.strerror or type(e).__name__)}); {way_out}",
                            **settings) from None
        raise UserError(f"{path}: cannot write ({e.strerror or type(e).__name__}); {way_out}") from None


def current_umask() -> int:
    """The process umask (read from /proc on Linux, else set-and-restore under a lock)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (with a trailing newline)."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    write_bytes(path, text.encode("utf-8"))


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    """Atomically ``torch.save`` ``obj`` to ``path``.

    Written through a Python file object, so that a full disk raises the ``OSError`` of the failed write
    (``No space left on device``), not the ``RuntimeError: unexpected pos`` torch raises on closing the archive.
    """
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as e:
            if isinstance(e.__context__, OSError):
                raise e.__context__ from None
            raise


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in provenance records.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (flat memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()
