"""One atomic file writer: a reader (or a crash) never sees a half-written file.

The data goes to a temporary file beside the target (same folder, so the same file system),
is flushed and ``fsync``-ed, then ``os.replace``-d over the target in one step. On any error the
temporary file is removed and the target keeps its old content (or stays absent).
Temporary names start with ``.`` and end with ``.tmp``, so listings that skip hidden files skip them.

This small I/O helper sits outside the layered packages so that every layer that writes files
(reports, caches, stores, CLI) shares it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_output", "write_text_atomic"]


@contextmanager
def atomic_output(path: str | Path, *, binary: bool = False, fsync: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file to write ``path``; on a clean exit it replaces ``path`` atomically.

    Text mode is UTF-8 with no newline translation. The parent folder is created when missing. With
    ``fsync`` (the default) the data is on disk before the rename, so a power cut leaves either the
    old or the new file. An exception inside the block removes the temporary file and re-raises.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see ``atomic_output``); returns ``path``."""
    with atomic_output(path) as f:
        f.write(text)
    return Path(path)
