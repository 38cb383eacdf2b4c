"""Open an uploaded zip (an image folder, or an .npz) without trusting anything it says about itself.

Nothing is extracted to disk, so a path cannot escape; such paths are still refused because only a
hostile or broken tool writes them. Sizes are checked twice: the declared ones before reading, and the
bytes actually inflated while reading, against the same limits.
"""

import os
import re
import stat
import zipfile
import zlib

from optimizers.data import limits
from optimizers.data.errors import DatasetError
from optimizers.data.limits import describe_bytes
from optimizers.errors import first_line

_END_OF_DIRECTORY = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
_CHUNK = 256 * 1024


def open_archive(path: str | os.PathLike, what: str) -> zipfile.ZipFile:
    """The opened zip, after its entry count, entry names and entry types were found safe."""
    limits.check_file_size(path, limits.MAX_SOURCE_BYTES, what)
    entries = declared_entry_count(path)
    if entries is not None and entries > limits.MAX_ZIP_ENTRIES:
        raise DatasetError(f"the {what} lists {entries:,} files; the limit is {limits.MAX_ZIP_ENTRIES:,}")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise DatasetError(f"the {what} is not a readable zip archive: {first_line(error)}") from error
    try:
        if len(archive.infolist()) > limits.MAX_ZIP_ENTRIES:  # the end record can understate
            raise DatasetError(f"the {what} holds {len(archive.infolist()):,} files; "
                               f"the limit is {limits.MAX_ZIP_ENTRIES:,}")
        for info in archive.infolist():
            check_entry(info)
    except DatasetError:
        archive.close()
        raise
    return archive


def declared_entry_count(path: str | os.PathLike) -> int | None:
    """The entry count from the end records, read before zipfile builds an object per entry (a zip may list
    millions). None when the records are missing; zipfile then says what is wrong."""
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        tail_start = max(0, size - 22 - 65535 - 20)  # end record, its comment, the zip64 locator before it
        file.seek(tail_start)
        tail = file.read()
        at = tail.rfind(_END_OF_DIRECTORY)
        if at < 0 or len(tail) - at < 22:
            return None
        count = int.from_bytes(tail[at + 10:at + 12], "little")
        locator = tail[at - 20:at] if at >= 20 else b""
        if count != 0xFFFF or not locator.startswith(_ZIP64_LOCATOR):
            return count
        file.seek(int.from_bytes(locator[8:16], "little"))
        record = file.read(56)  # zip64 keeps the real count in its own end record
        if len(record) < 40 or not record.startswith(_ZIP64_END):
            return None
        return int.from_bytes(record[32:40], "little")


def check_entry(info: zipfile.ZipInfo) -> None:
    name = info.filename
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"[A-Za-z]:", normalized):
        raise DatasetError(f"the zip entry {name!r} has an absolute path; only relative paths are accepted")
    if ".." in normalized.split("/"):
        raise DatasetError(f"the zip entry {name!r} climbs out of its folder ('..'); refused")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise DatasetError(f"the zip entry {name!r} is a symbolic link; only plain files are accepted")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise DatasetError(f"the zip entry {name!r} is not a plain file (a device or pipe); refused")
    if info.flag_bits & 0x1:
        raise DatasetError(f"the zip entry {name!r} is encrypted; upload an archive without a password")


def check_declared_sizes(infos: list[zipfile.ZipInfo], member_limit: int, ratio_check: bool) -> None:
    total = 0
    for info in infos:
        if info.file_size > member_limit:
            raise DatasetError(f"the zip entry {info.filename!r} is {describe_bytes(info.file_size)} uncompressed; "
                               f"the limit for one file is {describe_bytes(member_limit)}")
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio_check and info.file_size > limits.RATIO_CHECK_MIN_BYTES and ratio > limits.MAX_COMPRESSION_RATIO:
            raise DatasetError(f"the zip entry {info.filename!r} inflates {ratio:.0f} times its compressed size "
                               f"(limit {limits.MAX_COMPRESSION_RATIO}): a zip bomb?")
        total += info.file_size
    if total > limits.MAX_UNCOMPRESSED_BYTES:
        raise DatasetError(f"the archive declares {describe_bytes(total)} uncompressed; "
                           f"the limit is {describe_bytes(limits.MAX_UNCOMPRESSED_BYTES)}")


class ByteBudget:
    """Counts the bytes really inflated across members: declared sizes can lie."""

    def __init__(self, limit: int) -> None:
        self.limit, self.spent = limit, 0

    def spend(self, count: int) -> None:
        self.spent += count
        if self.spent > self.limit:
            raise DatasetError(f"the archive inflates past {describe_bytes(self.limit)}; refused")


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: ByteBudget) -> bytes:
    """The member's bytes, read in chunks that stop at its declared size, the per-file limit and the budget."""
    chunks, got = [], 0
    cap = min(info.file_size, limits.MAX_MEMBER_BYTES)
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                got += len(chunk)
                if got > cap:
                    raise DatasetError(f"the zip entry {info.filename!r} inflates past its declared size "
                                       f"({info.file_size:,} bytes): a zip bomb?")
                budget.spend(len(chunk))
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as error:
        raise DatasetError(f"the zip entry {info.filename!r} is corrupt or lies about its size: "
                           f"{first_line(error)}") from error
    return b"".join(chunks)
