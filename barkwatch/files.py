"""Writing files whole or not at all: a reader (or a power cut) sees the old file or the new one, never half.

The new content goes to a hidden file in the same folder, which is then renamed over the target: a rename
within one file system is atomic. On any error the hidden file is removed and the error raised, so a full disk
leaves the old file in place and no debris beside it. No fsync: what barkwatch rewrites (the status file,
clips, model and config files) is either rewritten again soon or written once by a person who is watching.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path``; write it inside the ``with``. When the block ends
    without an exception it replaces ``path``; otherwise it is removed and the exception goes on. The process
    id in its name keeps two writers of the same file apart. A symbolic link is followed: its target is
    replaced and the link stays (``models/default.pt`` links into the package)."""
    path = Path(os.path.realpath(path))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_atomic(path: str | os.PathLike, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically, making its folder if needed. The file is created 0644 less the
    process's umask (a service's clips stay group-only), or gets exactly ``mode`` when it is given (the
    status file must stay readable by ``barkwatch status`` run as another user)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    return path
