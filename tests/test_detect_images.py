"""``tusk detect`` on awkward image files: 16-bit PNGs, decompression bombs, repeated names."""
import json
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from run_fixtures import assert_one_line_error, cli_error, train_tiny
from tusk.cli import main
from tusk.commands.image_files import load_image, output_names


@pytest.fixture(autouse=True)
def _setup(monkeypatch):
    monkeypatch.setenv("TUSK_BACKEND", "reference")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: see test_train.py
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("detect"))


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_greyscale_is_scaled_by_its_bit_depth(tmp_path, mode):
    ramp = np.linspace(0, 65535, 40 * 30).round().astype(np.uint16).reshape(30, 40)
    path = tmp_path / "ramp.png"
    Image.fromarray(ramp).save(path)  # 16-bit PNG (Pillow reads it as I;16)
    if mode == "I;16B":  # big-endian, as a TIFF holds it
        path = tmp_path / "ramp.tiff"
        Image.frombytes("I;16B", (40, 30), ramp.astype(">u2").tobytes()).save(path)
    image = load_image(str(path))
    assert image.shape == (3, 30, 40) and image.dtype == torch.float32
    expected = torch.from_numpy(ramp.astype(np.float32) / 65535)
    for channel in image:
        torch.testing.assert_close(channel, expected, rtol=0, atol=1e-6)


def test_eight_bit_and_palette_images_are_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    torch.testing.assert_close(load_image(str(tmp_path / "rgb.png")),
                               torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    palette = np.array(Image.open(tmp_path / "palette.png").convert("RGB"))
    torch.testing.assert_close(load_image(str(tmp_path / "palette.png")),
                               torch.from_numpy(palette).permute(2, 0, 1).float() / 255)
    grey = rgb[..., 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert torch.equal(load_image(str(tmp_path / "grey.png"))[2], torch.from_numpy(grey).float() / 255)


def test_float_images_outside_the_unit_range_are_refused(tmp_path):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.full((4, 4), 3.5, np.float32)).save(path)
    with pytest.raises(Exception, match="float.tiff: float pixel values must lie in \\[0, 1\\]"):
        load_image(str(path))


def png_header_only(path, width: int, height: int) -> None:
    """A PNG that declares ``width x height`` 8-bit greyscale pixels (with no pixel data: the
    reader refuses it from the header alone)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))


def test_a_decompression_bomb_is_one_clear_error(trained, tmp_path, capsys):
    bomb = tmp_path / "huge.png"
    png_header_only(bomb, 20_000, 10_000)  # 200 megapixels
    status, err = cli_error(capsys, ["detect", trained, str(bomb), "--out", str(tmp_path / "out")])
    assert_one_line_error(status, err, str(bomb), "20000x10000", "200,000,000 pixels")
    assert not (tmp_path / "out").exists()


def test_output_names_are_distinct():
    paths = ["a/x.png", "b/x.png", "c/x.jpg", "x-2.png", "d/X.PNG", "y.png", "y"]
    assert output_names(paths) == ["x.png", "x-3.png", "x-4.png", "x-2.png", "X-5.png", "y.png", "y-2.png"]


def test_detect_writes_one_picture_per_input_even_with_equal_names(trained, tmp_path):
    paths = []
    for folder, value in (("a", 40), ("b", 200)):
        os.makedirs(tmp_path / folder)
        paths.append(str(tmp_path / folder / "scan.png"))
        Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(paths[-1])
    out = tmp_path / "out"
    assert main(["detect", trained, *paths, "--out", str(out)]) == 0
    results = json.loads((out / "detections.json").read_text())
    assert [r["picture"] for r in results] == ["scan.png", "scan-2.png"]
    first, second = (np.asarray(Image.open(out / r["picture"])) for r in results)
    assert first.mean() < second.mean()  # each picture shows its own input
