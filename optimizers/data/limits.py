"""How much a dataset upload may hold. Standard library only: the web can refuse an upload before queueing.

Limits bound what the worker allocates, whatever a file claims about itself. Code reads them as
`limits.NAME` at call time, so tests can lower them.
"""

import os

from optimizers.data.errors import DatasetError

MIB = 1024 * 1024

MAX_SOURCE_BYTES = 512 * MIB  # an uploaded .npz or .zip on disk
MAX_CSV_BYTES = 128 * MIB  # CSV is parsed cell by cell in Python: bigger files take minutes
MAX_UNCOMPRESSED_BYTES = 1024 * MIB  # all the members read from one archive together
MAX_MEMBER_BYTES = 32 * MIB  # one image file inside a zip
MAX_COMPRESSION_RATIO = 200  # images are already compressed; a member inflating more is a bomb
RATIO_CHECK_MIN_BYTES = 1 * MIB  # tiny members may compress well without being dangerous
MAX_ZIP_ENTRIES = 20_000
MAX_IMAGE_PIXELS = 4096 * 4096  # one decoded image, checked from its header before decoding
MAX_IMAGE_SIDE = 512  # the largest image_size a user may ask for
DEFAULT_MAX_IMAGE_SIDE = 64  # the default size: the most common one, scaled down to fit this
MAX_ELEMENTS = 64 * MIB  # values in x: 256 MiB as float32
MAX_CSV_ROWS = 1_000_000
MAX_CSV_COLUMNS = 10_000
MAX_CSV_FIELD_CHARS = 10_000
MAX_CLASSES = 10_000
MIN_SAMPLES = 2  # a train/validation split needs at least one of each
MAX_PREVIEWS = 8
PREVIEW_MIN_SIDE = 64  # 8x8 digits are unreadable at their own size
MAX_TEXT_BYTES = 128 * MIB  # a .txt, .jsonl or .csv of texts, read line by line in Python like a CSV
MAX_TEXTS = 1_000_000
MAX_TEXT_CHARS = 100_000  # one text: a "line" longer than this is a file that is not one text a line
MIN_SEQUENCE_LENGTH = 8
MAX_SEQUENCE_LENGTH = 4096
DEFAULT_SEQUENCE_LENGTH = 128
MAX_TOKENS = MAX_ELEMENTS  # texts x sequence length: the int64 token ids a job may make (512 MiB)
PREVIEW_TEXTS = 5  # the first few texts (or rows of token ids) shown on the dataset page
PREVIEW_TEXT_CHARS = 300
PREVIEW_TOKEN_IDS = 32


def check_file_size(path: str | os.PathLike, limit: int, what: str) -> int:
    """The file's size, or DatasetError when it is past `limit`."""
    size = os.path.getsize(path)
    if size > limit:
        raise DatasetError(f"the {what} is {describe_bytes(size)}; the limit is {describe_bytes(limit)}")
    return size


def describe_bytes(count: int) -> str:
    return f"{count / MIB:.1f} MiB" if count >= MIB // 10 else f"{count:,} bytes"
