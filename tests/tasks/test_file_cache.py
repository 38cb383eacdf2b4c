"""The worker's cache of stored files: one download per file and machine, every use checked against the recorded
size and sha256, written atomically, bounded, least recently used out first."""
import hashlib
import io
import os
import time

import pytest

from tasks.file_cache import PARTIAL_PREFIX, STALE_PARTIAL_S, StoredFileCache


class Stored:
    """A file as storage holds it; counts how often it is read (each read is a download from an object store)."""

    def __init__(self, data: bytes, *, fail_after: int | None = None):
        self.data, self.reads, self.fail_after = data, 0, fail_after
        self.sha256, self.size = hashlib.sha256(data).hexdigest(), len(data)

    def open(self):
        self.reads += 1
        if self.fail_after is not None:
            return _Breaking(self.data[:self.fail_after])
        return io.BytesIO(self.data)

    def copy(self, cache: StoredFileCache, target):
        return cache.copy(self.open, target, sha256=self.sha256, size=self.size)


class _Breaking(io.BytesIO):
    """A download that breaks off: the connection drops after some bytes."""

    def read(self, size=-1):
        block = super().read(size)
        if not block:
            raise ConnectionError("the connection was reset")
        return block


def _leftovers(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_the_second_use_reads_the_cache_not_storage(tmp_path):
    cache, stored = StoredFileCache(tmp_path / "cache", 1 << 20), Stored(b"model bytes" * 100)
    assert stored.copy(cache, tmp_path / "job1.bin") is False
    assert stored.copy(cache, tmp_path / "job2.bin") is True
    assert stored.reads == 1
    assert (tmp_path / "job1.bin").read_bytes() == (tmp_path / "job2.bin").read_bytes() == stored.data
    assert _leftovers(tmp_path / "cache") == [stored.sha256]  # no temporary file left behind


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_a_damaged_entry_is_discarded_and_downloaded_again(tmp_path, damage):
    cache, stored = StoredFileCache(tmp_path / "cache", 1 << 20), Stored(bytes(range(256)) * 40)
    stored.copy(cache, tmp_path / "job1.bin")
    entry = tmp_path / "cache" / stored.sha256
    broken = bytearray(entry.read_bytes())
    if damage == "flipped byte":
        broken[100] ^= 0xFF
    else:
        del broken[5000:]
    entry.write_bytes(bytes(broken))
    assert stored.copy(cache, tmp_path / "job2.bin") is False
    assert stored.reads == 2
    assert (tmp_path / "job2.bin").read_bytes() == stored.data and entry.read_bytes() == stored.data
    assert stored.copy(cache, tmp_path / "job3.bin") is True


def test_stored_bytes_that_differ_from_the_record_reach_the_job_but_not_the_cache(tmp_path):
    cache, stored = StoredFileCache(tmp_path / "cache", 1 << 20), Stored(b"what storage holds")
    stored.sha256 = hashlib.sha256(b"what the upload recorded").hexdigest()
    assert stored.copy(cache, tmp_path / "job.bin") is False
    assert (tmp_path / "job.bin").read_bytes() == b"what storage holds"
    assert _leftovers(tmp_path / "cache") == []
    stored.copy(cache, tmp_path / "job.bin")
    assert stored.reads == 2


def test_a_download_that_breaks_off_leaves_no_entry_and_no_partial_file(tmp_path):
    cache, stored = StoredFileCache(tmp_path / "cache", 1 << 20), Stored(b"x" * 5000, fail_after=3000)
    with pytest.raises(ConnectionError):
        stored.copy(cache, tmp_path / "job.bin")
    assert _leftovers(tmp_path / "cache") == []
    stored.fail_after = None
    assert stored.copy(cache, tmp_path / "job.bin") is False and (tmp_path / "job.bin").read_bytes() == b"x" * 5000


def test_the_least_recently_used_entries_go_when_the_cache_is_full(tmp_path):
    cache = StoredFileCache(tmp_path / "cache", 2500)
    first, second, third = Stored(b"a" * 1000), Stored(b"b" * 1000), Stored(b"c" * 1000)
    first.copy(cache, tmp_path / "job.bin")
    second.copy(cache, tmp_path / "job.bin")
    long_ago = time.time() - 100
    os.utime(tmp_path / "cache" / first.sha256, (long_ago, long_ago))
    os.utime(tmp_path / "cache" / second.sha256, (long_ago + 1, long_ago + 1))
    assert first.copy(cache, tmp_path / "job.bin") is True  # used again: now the most recent of the two
    third.copy(cache, tmp_path / "job.bin")
    assert _leftovers(tmp_path / "cache") == sorted([first.sha256, third.sha256])
    assert second.copy(cache, tmp_path / "job.bin") is False  # downloaded again, and `first` is now the oldest
    assert _leftovers(tmp_path / "cache") == sorted([second.sha256, third.sha256])


def test_a_partial_file_a_dead_worker_left_is_cleaned_up_a_fresh_one_is_not(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    stale, fresh = folder / f"{PARTIAL_PREFIX}dead", folder / f"{PARTIAL_PREFIX}busy"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    long_ago = time.time() - STALE_PARTIAL_S - 60
    os.utime(stale, (long_ago, long_ago))
    stored = Stored(b"model")
    stored.copy(StoredFileCache(folder, 1 << 20), tmp_path / "job.bin")
    assert _leftovers(folder) == sorted([fresh.name, stored.sha256])


@pytest.mark.parametrize(("sha256", "max_bytes"), [("", 1 << 20), ("not-a-hash", 1 << 20), (None, 0), (None, 10)])
def test_files_without_a_usable_hash_or_too_big_or_a_cache_turned_off_are_copied_straight(tmp_path, sha256,
                                                                                           max_bytes):
    stored = Stored(b"prepared dataset bytes")
    if sha256 is not None:
        stored.sha256 = sha256
    cache = StoredFileCache(tmp_path / "cache", max_bytes)
    assert stored.copy(cache, tmp_path / "job.bin") is False and stored.copy(cache, tmp_path / "job.bin") is False
    assert stored.reads == 2 and (tmp_path / "job.bin").read_bytes() == stored.data
    assert _leftovers(tmp_path / "cache") == []


def test_a_cache_folder_that_cannot_be_written_costs_a_download_not_the_job(tmp_path):
    (tmp_path / "not-a-folder").write_bytes(b"")
    cache, stored = StoredFileCache(tmp_path / "not-a-folder" / "cache", 1 << 20), Stored(b"model")
    assert stored.copy(cache, tmp_path / "job.bin") is False
    assert (tmp_path / "job.bin").read_bytes() == b"model"
