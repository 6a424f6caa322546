"""Files only their owner may read: the kubeconfig with the API's token, the record of a
running runtime, the object store's Secrets, the token Prometheus scrapes with.

Each is written whole to a new temporary file, created owner-only (mode 0600, never
wider, whatever the umask) before a byte goes in, then renamed over the old one: a reader
sees the old file or the new one, and nobody else ever sees either.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

OWNER_ONLY: Final = 0o600


def write_owner_only(path: Path, data: bytes) -> None:
    """Replace `path` by `data`, readable and writable by its owner alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # left by a crash: O_EXCL below must create a new file
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
    try:
        with open(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
