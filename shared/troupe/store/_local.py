"""The file:// backend: atomic replace, create-if-absent and locked read-modify-write.

Writes go to a temporary file beside the target and are moved into place with
`os.replace`, so a reader sees the old bytes or the new ones, never half. Read-modify-write
holds an exclusive `fcntl.flock` on a lock file, which serialises writers across threads
(each takes its own open file) and processes alike.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator

from .errors import ConflictError, NotFoundError, StoreError

# Lock files live here, under the root; names starting with "." are the store's own.
LOCK_DIR = ".locks"
_TEMP_PREFIX = ".tmp-"


class LocalBackend:
    def __init__(self, root: str, lock_timeout: float = 60.0) -> None:
        self.root = root
        self.lock_timeout = lock_timeout

    def read(self, path: str, limit: int | None = None) -> bytes:
        """The file's bytes; with `limit`, no more than limit + 1 of them, so that a caller
        can tell a file over its limit without holding all of it."""
        try:
            with open(path, "rb") as file:
                return file.read() if limit is None else file.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"nothing is stored at file://{path}") from None
        except IsADirectoryError:
            raise NotFoundError(f"file://{path} is a folder, not a stored object") from None

    def exists(self, path: str) -> bool:
        return os.path.isfile(path)

    def write(self, path: str, data: bytes) -> None:
        temp = self._write_temp(path, data)
        try:
            os.replace(temp, path)
        except BaseException:
            _unlink_quietly(temp)
            raise
        _sync_folder(os.path.dirname(path))

    def create(self, path: str, data: bytes, *, durable: bool = True) -> bool:
        """Write `data` at `path` unless something is there already; True if written.
        `durable=False` skips the fsyncs: the create is as atomic, but an operating-system
        crash may forget it (for records whose loss costs a repeat, never a loss)."""
        temp = self._write_temp(path, data, durable=durable)
        try:
            # A hard link fails if the target exists, and makes the complete file appear
            # at once: the create-if-absent that os.replace cannot give.
            os.link(temp, path)
        except FileExistsError:
            return False
        finally:
            _unlink_quietly(temp)
        if durable:
            _sync_folder(os.path.dirname(path))
        return True

    def update(self, path: str, change: Callable[[bytes | None], bytes]) -> bytes:
        with self._locked(path):
            try:
                current: bytes | None = self.read(path)
            except NotFoundError:
                current = None
            new = change(current)
            self.write(path, new)
            return new

    def delete_if(self, path: str, condition: Callable[[bytes], bool]) -> bool:
        """Remove the file if `condition(its bytes)` holds; True if it was removed.

        Holds the same lock as `update`, so an update can never land between the check and
        the removal (a plain `write` does not take it: keys deleted this way are changed
        through `create` and `update` only)."""
        with self._locked(path):
            try:
                current = self.read(path)
            except NotFoundError:
                return False
            if not condition(current):
                return False
            _unlink_quietly(path)
        _sync_folder(os.path.dirname(path))
        return True

    def list(self, folder: str) -> list[str]:
        """Absolute paths of the files under `folder` (not following links to folders)."""
        if os.path.isfile(folder):
            return [folder]
        found: list[str] = []
        for parent, folders, files in os.walk(folder):
            folders[:] = [name for name in folders if not name.startswith(".")]
            found.extend(os.path.join(parent, name) for name in files if not name.startswith("."))
        return found

    def _write_temp(self, path: str, data: bytes, *, durable: bool = True) -> str:
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StoreError(
                f"cannot store file://{path}: a part of its folder is a file; choose another key"
            ) from None
        descriptor, temp = tempfile.mkstemp(dir=folder, prefix=_TEMP_PREFIX)
        try:
            # mkstemp makes the file private to its owner; stored objects are readable
            # by the other processes of the deployment, like any file they would write.
            os.fchmod(descriptor, 0o644)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                if durable:
                    file.flush()
                    os.fsync(file.fileno())
        except BaseException:
            _unlink_quietly(temp)
            raise
        return temp

    @contextlib.contextmanager
    def _locked(self, path: str) -> Iterator[None]:
        relative = os.path.relpath(path, self.root)
        name = hashlib.sha256(relative.encode()).hexdigest() + ".lock"
        folder = os.path.join(self.root, LOCK_DIR)
        os.makedirs(folder, exist_ok=True)
        # Lock files are never deleted: removing one while another writer waits on it
        # would let two writers hold "the" lock at once.
        with open(os.path.join(folder, name), "a+b") as lock:
            deadline = time.monotonic() + self.lock_timeout
            pause = 0.0005
            while True:
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as error:
                    if error.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() > deadline:
                    raise ConflictError(
                        f"file://{path} stayed locked by another writer for "
                        f"{self.lock_timeout:.0f} s; retry later"
                    )
                time.sleep(pause)
                pause = min(pause * 2, 0.005)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _sync_folder(folder: str) -> None:
    # The rename is durable only once the folder's entry is on disk.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
