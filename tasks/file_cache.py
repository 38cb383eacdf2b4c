"""The worker's local cache of stored files: a model or dataset read from an object store is downloaded once per
machine, not once per job.

Entries are named by the sha256 the file's row recorded at upload, so a name says what the bytes must be: each use
checks the size and the hash while copying into the job's folder, and an entry that fails (a partial write, a bad
disk, a hand edit) is discarded and downloaded again. A download goes to a temporary file of the cache's folder and
is renamed into place only once its size and hash match, so no other job (another pool process, another worker on
the machine) ever reads a half-written entry. The cache holds at most `max_bytes`: after each download the entries
used least recently (by modification time, refreshed on every hit) go first. The job always gets its own copy, never
the entry itself: the sandbox may write to its folder.
"""
import errno
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
PARTIAL_PREFIX = ".partial-"
STALE_PARTIAL_S = 3600  # a download this old was left by a worker that died mid-way
_BLOCK = 1 << 20


class StoredFileCache:
    def __init__(self, folder: Path, max_bytes: int):
        self.folder = Path(folder)
        self.max_bytes = max_bytes

    def copy(self, open_source: Callable[[], BinaryIO], target: Path, *, sha256: str, size: int) -> bool:
        """Write the stored file (`open_source()` reads it from storage) to `target`: from the cache when it holds a
        sound copy (True), else from storage (False), keeping a copy when the bytes match the recorded hash."""
        if not (self.max_bytes > 0 and _SHA256.fullmatch(sha256 or "") and 0 < size <= self.max_bytes):
            _copy_straight(open_source, target)  # nothing to key it by, or larger than the whole cache
            return False
        entry = self.folder / sha256
        if self._copy_entry(entry, target, sha256, size):
            log.info("storage cache: %s came from the worker's cache", sha256)
            return True
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=self.folder, prefix=PARTIAL_PREFIX, delete=False)
        except OSError as exc:  # the cache saves downloads; a folder it cannot write in must not fail the job
            log.warning("storage cache: cannot write in %s (%s); copying without the cache", self.folder, exc)
            _copy_straight(open_source, target)
            return False
        partial = Path(handle.name)
        try:
            try:
                with handle, open_source() as source:
                    digest, written = _pipe(source, handle)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                log.warning("storage cache: %s is full (%s); copying without the cache", self.folder, exc)
                partial.unlink(missing_ok=True)
                _copy_straight(open_source, target)
                return False
            shutil.copyfile(partial, target)
            if (digest, written) != (sha256, size):
                # The stored bytes differ from what the row recorded: the job gets them as before, the cache not.
                log.warning("storage cache: the stored file of %s has %d bytes and sha256 %s; not kept", sha256,
                            written, digest)
                return False
            os.replace(partial, entry)
        finally:
            partial.unlink(missing_ok=True)
        log.info("storage cache: %s downloaded and kept", sha256)
        self._evict(keep=entry)
        return False

    def _copy_entry(self, entry: Path, target: Path, sha256: str, size: int) -> bool:
        """Copy the entry to `target` if it is sound; discard it if it is not. False when there is none to use."""
        try:
            source = open(entry, "rb")
        except OSError:  # none yet, evicted by another process a moment ago, or no cache folder at all
            return False
        with source:
            if os.fstat(source.fileno()).st_size == size:
                with open(target, "wb") as sink:
                    digest, _ = _pipe(source, sink)
                if digest == sha256:
                    os.utime(source.fileno())  # used now: the last to be evicted (even if renamed over meanwhile)
                    return True
        log.warning("storage cache: discarding %s, its size or sha256 is wrong; downloading it again", sha256)
        entry.unlink(missing_ok=True)
        return False

    def _evict(self, keep: Path) -> None:
        """The least recently used entries go until the cache fits, never `keep` (just downloaded for a job)."""
        entries, total, now = [], 0, time.time()
        for path in self.folder.iterdir():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path.name.startswith(PARTIAL_PREFIX):
                if now - stat.st_mtime > STALE_PARTIAL_S:
                    path.unlink(missing_ok=True)
            elif _SHA256.fullmatch(path.name):
                entries.append((stat.st_mtime, stat.st_size, path))
                total += stat.st_size
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            if path != keep:
                path.unlink(missing_ok=True)
                total -= size


def _copy_straight(open_source: Callable[[], BinaryIO], target: Path) -> None:
    with open_source() as source, open(target, "wb") as sink:
        _pipe(source, sink)


def _pipe(source: BinaryIO, sink: BinaryIO) -> tuple[str, int]:
    """Copy `source` to `sink` block by block; the sha256 and length of what went through."""
    digest, written = hashlib.sha256(), 0
    while block := source.read(_BLOCK):
        digest.update(block)
        sink.write(block)
        written += len(block)
    return digest.hexdigest(), written
