"""Read a zip of images in class folders (cat/001.png, dog/x.jpg) into float32 [N, C, H, W] in [0, 1].

Layouts: class folders, optionally under one top folder (pets/cat/001.png); or images with no folder, or
all in one folder, which gives a dataset without labels (one class is no classification task). Files that
are not images by their extension (README.txt) are skipped and counted in a note; system clutter
(__MACOSX/, dot files, Thumbs.db) is skipped silently. A file named as an image that does not decode is
refused: silently dropping samples would bias the dataset.
Pixels are what torchvision's ImageFolder loader sees (no EXIF rotation, alpha dropped), converted to RGB,
or to L when every image is grayscale, and resized bilinearly to one size.
Two passes: the first opens headers only, so bombs are refused and the common size is known before any
pixels are decoded; the second decodes one image at a time. Nothing is written to disk.
"""

import io
import os
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from optimizers.data import limits
from optimizers.data.arrays import LoadedDataset, checked_features
from optimizers.data.errors import DatasetError
from optimizers.data.safe_zip import ByteBudget, check_declared_sizes, open_archive, read_member
from optimizers.errors import Cancelled, first_line
from optimizers.reporters import Reporter

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")  # uploads get no exotic decoders
GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_WIDE_GRAY_MODES = {"I": 65535.0, "I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0, "F": 1.0}
_CLUTTER_NAMES = ("__MACOSX", "Thumbs.db", "desktop.ini")
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, UnidentifiedImageError)


@dataclass(frozen=True)
class _Member:
    info: zipfile.ZipInfo
    class_name: str | None


def read_image_zip(path: str | os.PathLike, options: dict[str, Any], report: Reporter) -> LoadedDataset:
    with open_archive(path, "image zip") as archive:
        members, skipped = _members(archive.infolist())
        check_declared_sizes([member.info for member in members], limits.MAX_MEMBER_BYTES, ratio_check=True)
        sizes, gray = _scan(archive, members, report)
        height, width = options.get("image_size") or _common_size(sizes)
        channels = 1 if gray else 3
        values = len(members) * channels * height * width
        if values > limits.MAX_ELEMENTS:
            raise DatasetError(f"{len(members):,} images of {channels}x{height}x{width} make {values:,} values; "
                               f"the limit is {limits.MAX_ELEMENTS:,} (ask for a smaller image_size)")
        x = checked_features(_decode_all(archive, members, (width, height), gray, report), what="the image zip")
    notes = [_size_note(sizes, height, width, "image_size" in options)]
    notes += ["every image is grayscale: stored with 1 channel"] if gray else []
    notes += [f"{skipped} file(s) that are not images were skipped"] if skipped else []
    if members[0].class_name is None:
        return LoadedDataset(x, images=True, notes=[*notes, "no class folders: the dataset has no labels"])
    class_names = sorted({member.class_name for member in members})
    number = {name: index for index, name in enumerate(class_names)}
    y = np.array([number[member.class_name] for member in members], dtype=np.int64)
    return LoadedDataset(x, y, class_names, images=True, notes=notes)


def _members(infos: list[zipfile.ZipInfo]) -> tuple[list[_Member], int]:
    """The image files with their class folder (or None), sorted; and how many other files were skipped."""
    files, skipped = [], 0
    for info in infos:
        parts = [part for part in info.filename.replace("\\", "/").split("/") if part not in ("", ".")]
        if info.is_dir() or not parts or parts[0] in _CLUTTER_NAMES or parts[-1] in _CLUTTER_NAMES:
            continue
        if any(part.startswith(".") for part in parts):
            continue  # .DS_Store, ._resource forks, .git/
        if not parts[-1].lower().endswith(IMAGE_SUFFIXES):
            skipped += 1
            continue
        files.append((parts, info))
    if not files:
        raise DatasetError(f"the zip holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if all(len(parts) >= 2 for parts, _ in files) and len({parts[0] for parts, _ in files}) == 1:
        files = [(parts[1:], info) for parts, info in files]  # one top folder around everything
    depths = {len(parts) for parts, _ in files}
    if depths not in ({1}, {2}):
        shallow = min(files, key=lambda file: len(file[0]))[1].filename
        deep = max(files, key=lambda file: len(file[0]))[1].filename
        raise DatasetError("images must sit in class folders (cat/001.png), optionally under one top folder "
                           f"(pets/cat/001.png), or all at one level; found {shallow!r} and {deep!r}")
    members = [_Member(info, parts[0] if len(parts) == 2 else None) for parts, info in files]
    return sorted(members, key=lambda member: (member.class_name or "", member.info.filename)), skipped


def _scan(archive: zipfile.ZipFile, members: list[_Member], report: Reporter) -> tuple[list[tuple], bool]:
    """Each image's (width, height) from its header, and whether all of them are grayscale."""
    budget, sizes, gray = ByteBudget(limits.MAX_UNCOMPRESSED_BYTES), [], True
    for index, member in enumerate(members):
        _tick(report, index, 2 * len(members), "scan images")
        with _open(read_member(archive, member.info, budget), member.info.filename) as image:
            sizes.append(image.size)
            gray = gray and image.mode in GRAY_MODES
    return sizes, gray


def _decode_all(archive: zipfile.ZipFile, members: list[_Member], size: tuple[int, int], gray: bool,
                report: Reporter) -> np.ndarray:
    width, height = size
    x = np.empty((len(members), 1 if gray else 3, height, width), dtype=np.float32)
    budget = ByteBudget(limits.MAX_UNCOMPRESSED_BYTES)
    for index, member in enumerate(members):
        _tick(report, len(members) + index, 2 * len(members), "decode images")
        with _open(read_member(archive, member.info, budget), member.info.filename) as image:
            x[index] = _pixels(image, size, gray, member.info.filename)
    return x


def _open(data: bytes, name: str) -> Image.Image:
    """The image with only its header read, or DatasetError when it is no image or declares too many pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except _BOMB_ERRORS as error:
        raise DatasetError(f"the image {name!r} declares too many pixels (a decompression bomb?): "
                           f"{first_line(error)}") from error
    except UnidentifiedImageError as error:  # its message names a BytesIO object, of no use to anyone
        raise DatasetError(f"the file {name!r} is not a readable image ({', '.join(PIL_FORMATS)})") from error
    except _DECODE_ERRORS as error:
        raise DatasetError(f"the file {name!r} is not a readable image: {first_line(error)}") from error
    width, height = image.size
    if width * height > limits.MAX_IMAGE_PIXELS:
        image.close()
        raise DatasetError(f"the image {name!r} is {width}x{height} pixels ({width * height:,}); the limit is "
                           f"{limits.MAX_IMAGE_PIXELS:,} per image (a decompression bomb, or a far too big photo)")
    return image


def _pixels(image: Image.Image, size: tuple[int, int], gray: bool, name: str) -> np.ndarray:
    """[C, H, W] float32 in [0, 1]."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if gray and image.mode in _WIDE_GRAY_MODES:
                # 16-bit grayscale: converting to L would clip at 255; scale to [0, 1] as float ("F") instead.
                image, scale = Image.fromarray(np.asarray(image, np.float32) / _WIDE_GRAY_MODES[image.mode]), 1.0
            else:
                image, scale = image.convert("L" if gray else "RGB"), 255.0
            if image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            values = np.asarray(image, dtype=np.float32) / scale
    except (*_BOMB_ERRORS, *_DECODE_ERRORS) as error:
        raise DatasetError(f"the image {name!r} cannot be decoded: {first_line(error)}") from error
    values = np.clip(values, 0.0, 1.0)
    return values[None] if values.ndim == 2 else values.transpose(2, 0, 1)


def _common_size(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """(height, width): the most common size, scaled down (keeping its shape) to fit the default side."""
    width, height = Counter(sizes).most_common(1)[0][0]
    scale = min(1.0, limits.DEFAULT_MAX_IMAGE_SIDE / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _size_note(sizes: list[tuple[int, int]], height: int, width: int, asked: bool) -> str:
    resized = sum(1 for size in sizes if size != (width, height))
    why = "as asked" if asked else f"the most common size, at most {limits.DEFAULT_MAX_IMAGE_SIDE} px a side"
    return f"images stored at {height}x{width} (height x width, {why}); {resized} of {len(sizes)} were resized"


def _tick(report: Reporter, done: int, total: int, stage: str) -> None:
    """Progress about 50 times per pass, and a cancellation check with each (a pass can take minutes)."""
    if done % max(1, total // 100) == 0:
        if report.cancelled():
            raise Cancelled()
        report.progress(done, total, stage)
