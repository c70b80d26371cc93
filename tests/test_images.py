"""The PNG writer and the resize: lossless, exact sizes, antialiased."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cosmos_upsample_fix.images import encode_png, resize, write_png


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 4000, 3), (512, 928, 3), (37, 23, 3)])
def test_png_round_trips_exactly(shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png(image)))
    decoded.load()
    assert decoded.mode == "RGB" and decoded.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(decoded), image)


def test_png_rejects_other_arrays():
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 3), dtype=np.float32))


def test_write_png_never_overwrites(tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        write_png(np.zeros((2, 2, 3), dtype=np.uint8), path)
    assert path.read_bytes() == b"mine"


def test_resize_sizes_and_identity():
    image = np.random.default_rng(0).integers(0, 256, (704, 1280, 3), dtype=np.uint8)
    assert resize(image, (1280, 704)) is image
    out = resize(image, (928, 512))
    assert out.shape == (512, 928, 3) and out.dtype == np.uint8


def test_resize_antialiases():
    # one-pixel stripes: an antialiased 4x reduction averages them to mid grey; point sampling would not
    stripes = np.zeros((64, 256, 3), dtype=np.uint8)
    stripes[:, ::2] = 255
    out = resize(stripes, (64, 16)).astype(int)
    assert abs(out.mean() - 127.5) < 3 and out.std() < 8
