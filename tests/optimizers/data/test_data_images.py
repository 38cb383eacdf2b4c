"""Image-folder zips: class folders become labels, sizes are unified, hostile archives and images are refused."""

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from optimizers.data import limits
from optimizers.data.errors import DatasetError
from optimizers.data.job import prepare_dataset
from optimizers.data.safe_zip import ByteBudget, read_member
from optimizers.reporters import ListReporter


def png(size: tuple[int, int], color=(255, 0, 0), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(tmp_path: Path, members: dict, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def prepare(tmp_path: Path, source: Path, report=None, **options) -> dict:
    spec = SimpleNamespace(dataset_kind="images", dataset_source=str(source), dataset_options=options,
                           out_dir=str(tmp_path / "out"))
    return prepare_dataset(spec, report or ListReporter())


def stored(tmp_path: Path) -> dict:
    with np.load(tmp_path / "out" / "dataset.npz", allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


PETS = {
    "cat/001.png": png((20, 10), (255, 0, 0)),
    "cat/002.png": png((20, 10), (255, 0, 0)),
    "cat/003.jpg": png((20, 10), (255, 0, 0)),  # named .jpg but PNG inside: decoders go by content
    "dog/a.png": png((40, 30), (0, 0, 255)),
    "dog/b.png": png((40, 30), (0, 0, 255)),
}


@pytest.mark.parametrize("top", ["", "pets/"])
def test_class_folders_become_labels_and_images_share_the_most_common_size(tmp_path, top):
    clutter = {"README.txt": b"about", "__MACOSX/cat/._001.png": b"junk", "cat/.DS_Store": b"junk"}
    report = ListReporter()
    result = prepare(tmp_path, make_zip(tmp_path, {**{top + k: v for k, v in PETS.items()}, **clutter}), report)
    assert result["classes"] == ["cat", "dog"] and result["class_counts"] == [3, 2]
    assert (result["samples"], result["sample_shape"]) == (5, [3, 10, 20])  # 20 wide, 10 high: [C, H, W]
    assert result["files"] == ["dataset.npz"] + [f"preview_{i}.png" for i in range(5)]
    assert "1 file(s) that are not images were skipped" in result["notes"]
    assert any("2 of 5 were resized" in note for note in result["notes"])
    data = stored(tmp_path)
    assert data["y"].tolist() == [0, 0, 0, 1, 1]
    assert np.allclose(data["x"][0], np.array([1.0, 0.0, 0.0])[:, None, None])  # red stays red, in [0, 1]
    assert np.allclose(data["x"][4], np.array([0.0, 0.0, 1.0])[:, None, None])
    assert {"kind": "stage", "name": "write"} in report.events
    assert any(event.get("stage") == "decode images" for event in report.events)
    with Image.open(tmp_path / "out" / "preview_0.png") as preview:
        assert preview.size == (140, 70)  # nearest-neighbour enlarged until the short side reaches 64


def test_all_grayscale_images_keep_one_channel_and_16_bit_is_scaled_not_clipped(tmp_path):
    wide = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    buffer = io.BytesIO()
    wide.save(buffer, format="PNG")
    members = {"a/1.png": png((8, 8), 255, "L"), "b/2.png": buffer.getvalue()}
    result = prepare(tmp_path, make_zip(tmp_path, members))
    assert result["sample_shape"] == [1, 8, 8]
    x = stored(tmp_path)["x"]
    assert np.allclose(x[0], 1.0) and np.allclose(x[1], 32768 / 65535)


def test_image_size_option_and_images_without_folders_have_no_labels(tmp_path):
    members = {"1.png": png((30, 30)), "2.png": png((10, 10)), "3.bmp": b""}
    members["3.bmp"] = (lambda b: (Image.new("RGB", (5, 5)).save(b, format="BMP"), b.getvalue())[1])(io.BytesIO())
    result = prepare(tmp_path, make_zip(tmp_path, members), image_size=[16, 12])
    assert (result["sample_shape"], result["has_labels"], result["classes"]) == ([3, 16, 12], False, None)
    assert "no class folders: the dataset has no labels" in result["notes"]


def test_mixed_folder_depths_are_refused(tmp_path):
    members = {"cat/1.png": png((4, 4)), "dog/small/2.png": png((4, 4))}
    with pytest.raises(DatasetError, match="must sit in class folders.*'cat/1.png' and 'dog/small/2.png'"):
        prepare(tmp_path, make_zip(tmp_path, members))


@pytest.mark.parametrize(("name", "message"), [
    ("../evil.png", "climbs out of its folder"),
    ("cat/../../evil.png", "climbs out of its folder"),
    ("/etc/evil.png", "absolute path"),
    ("C:/evil.png", "absolute path"),
])
def test_zip_slip_entries_are_refused(tmp_path, name, message):
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cat/1.png", png((4, 4)))
        archive.writestr(zipfile.ZipInfo(name), png((4, 4)))  # ZipInfo keeps the name as given
    with pytest.raises(DatasetError, match=message):
        prepare(tmp_path, path)


def test_symlink_entries_are_refused(tmp_path):
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cat/1.png", png((4, 4)))
        link = zipfile.ZipInfo("cat/2.png")
        link.create_system = 3  # unix: the high 16 bits of external_attr are st_mode
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="'cat/2.png' is a symbolic link"):
        prepare(tmp_path, path)


def test_too_many_files_are_refused_before_the_directory_is_parsed(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ZIP_ENTRIES", 3)
    with pytest.raises(DatasetError, match="lists 5 files; the limit is 3"):
        prepare(tmp_path, make_zip(tmp_path, PETS))


def test_a_total_declared_size_past_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_UNCOMPRESSED_BYTES", 200)
    with pytest.raises(DatasetError, match="declares .* bytes uncompressed; the limit is 200 bytes"):
        prepare(tmp_path, make_zip(tmp_path, PETS))


def test_a_member_with_a_huge_compression_ratio_is_refused_before_reading(tmp_path):
    members = {"cat/1.png": png((4, 4)), "cat/zeros.png": bytes(8 * limits.MIB)}
    with pytest.raises(DatasetError, match="'cat/zeros.png' inflates [0-9]+ times its compressed size"):
        prepare(tmp_path, make_zip(tmp_path, members))


def lying_zip(tmp_path: Path, name: str, content: bytes, declared: int, crc_of_declared: bool) -> Path:
    """A zip whose only member claims `declared` bytes but inflates to len(content)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, content)
    data = bytearray(buffer.getvalue())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 22:local + 26] = data[central + 24:central + 28] = struct.pack("<I", declared)
    if crc_of_declared:  # the CRC matches the first `declared` bytes, so only counting can catch it
        crc = struct.pack("<I", zlib.crc32(content[:declared]))
        data[local + 14:local + 18] = data[central + 16:central + 20] = crc
    path = tmp_path / "bomb.zip"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("crc_of_declared", [False, True])
def test_a_member_that_inflates_past_its_declared_size_is_refused(tmp_path, crc_of_declared):
    path = lying_zip(tmp_path, "cat/big.png", bytes(4 * limits.MIB), 1000, crc_of_declared)
    with pytest.raises(DatasetError, match="'cat/big.png'"):
        prepare(tmp_path, path)


def test_reading_stops_at_the_declared_size_whatever_the_stream_yields():
    class Liar:  # stands in for a zip reader that would not stop at the declared size
        def open(self, info):
            return io.BytesIO(bytes(10 * 1024 * 1024))

    info = zipfile.ZipInfo("cat/1.png")
    info.file_size = 100
    with pytest.raises(DatasetError, match="inflates past its declared size"):
        read_member(Liar(), info, ByteBudget(limits.MAX_UNCOMPRESSED_BYTES))
    info.file_size = 10 * 1024 * 1024
    with pytest.raises(DatasetError, match="inflates past 1.0 MiB"):
        read_member(Liar(), info, ByteBudget(limits.MIB))


def noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


NOISE_PNG = noise_png()  # incompressible: half of it is half an image, not a complete one


def png_declaring(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height (with a valid header CRC): a decompression bomb."""
    data = bytearray(png((1, 1), 0, "L"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(("width", "message"), [
    (30000, "'cat/bomb.png' declares too many pixels .a decompression bomb"),  # past Pillow's own limit
    (5000, r"'cat/bomb.png' is 5000x5000 pixels \(25,000,000\); the limit is 16,777,216"),  # past ours only
])
def test_decompression_bomb_images_are_refused(tmp_path, width, message):
    members = {"cat/1.png": png((4, 4)), "cat/bomb.png": png_declaring(width, width)}
    with pytest.raises(DatasetError, match=message):
        prepare(tmp_path, make_zip(tmp_path, members))


@pytest.mark.parametrize(("members", "message"), [
    ({"cat/1.png": png((4, 4)), "cat/2.png": b"not a png"}, "'cat/2.png' is not a readable image"),
    ({"cat/1.png": png((4, 4)), "cat/2.png": NOISE_PNG[:len(NOISE_PNG) // 2]}, "'cat/2.png' cannot be decoded"),
    ({"notes.txt": b"hello"}, "the zip holds no images"),
])
def test_unreadable_images_are_refused(tmp_path, members, message):
    with pytest.raises(DatasetError, match=message):
        prepare(tmp_path, make_zip(tmp_path, members))


def test_encrypted_entries_are_refused(tmp_path):
    path = tmp_path / "upload.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cat/1.png", png((4, 4)))
    data = bytearray(path.read_bytes())
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 6] |= 0x1  # the "encrypted" bit of the general purpose flags, in both headers
    data[central + 8] |= 0x1
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="is encrypted"):
        prepare(tmp_path, path)


def test_the_output_size_limit_suggests_a_smaller_image_size(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ELEMENTS", 1000)
    with pytest.raises(DatasetError, match="5 images of 3x64x64 make 61,440 values.*smaller image_size"):
        prepare(tmp_path, make_zip(tmp_path, PETS), image_size=64)
