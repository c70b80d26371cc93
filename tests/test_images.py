"""The PNG writer and the resize: lossless, exact sizes, antialiased."""
from __future__ import annotations

import io
import multiprocessing
import threading

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from cosmos_upsample_fix.media import images
from cosmos_upsample_fix.media.images import encode_png, resize, write_png


# (771, 28, 3) and (1542, 28, 3): the stored rows fill exactly one and two 65535-byte deflate blocks
@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 4000, 3), (512, 928, 3), (37, 23, 3), (771, 28, 3), (1542, 28, 3)])
def test_png_round_trips_exactly(shape):
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(image)
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    assert decoded.mode == "RGB" and decoded.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(decoded), image)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[..., ::-1], image)


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


@pytest.mark.parametrize("level", [1, 6, 9])
def test_compressed_png_round_trips_and_is_smaller_on_flat_frames(level):
    flat = np.zeros((512, 928, 3), dtype=np.uint8)
    flat[100:300, 200:700] = (30, 200, 90)  # a segmentation-like frame: few flat regions
    noisy = np.random.default_rng(level).integers(0, 256, (37, 23, 3), dtype=np.uint8)
    for image in (flat, noisy):
        decoded = np.asarray(Image.open(io.BytesIO(encode_png(image, level))).convert("RGB"))
        assert np.array_equal(decoded, image)
    assert len(encode_png(flat, level)) < len(encode_png(flat)) / 50


def test_png_level_out_of_range():
    for level in (-1, 10):
        with pytest.raises(ValueError):
            encode_png(np.zeros((2, 2, 3), dtype=np.uint8), level)


def test_write_png_level(tmp_path):
    image = np.full((64, 64, 3), 7, dtype=np.uint8)
    path = write_png(image, tmp_path / "c.png", level=1)
    assert np.array_equal(np.asarray(Image.open(path)), image)
    assert path.stat().st_size < 64 * 64 * 3 / 10


@pytest.mark.parametrize(
    "source, target, share",
    [((720, 720), (672, 672), 0.0714), ((1280, 704), (928, 512), 0.3793), ((1280, 800), (864, 544), 0.4815),
     ((1920, 1080), (912, 512), 1.0), ((3840, 2160), (912, 512), 1.0), ((1280, 704), (640, 352), 1.0),
     ((301, 203), (611, 97), 1.0)],
)
def test_filter_by_shrink_factor(source, target, share):
    pytest.importorskip("cv2")
    assert images.antialiased_share(source, target) == pytest.approx(share, abs=1e-4)
    name = images.filter_for(source, target)
    if share == 1.0:
        assert name == images.SWSCALE_LANCZOS
    else:
        assert name.startswith(images.BLEND if share < 0.25 else images.BLEND_CUBIC)


@pytest.mark.parametrize(("source", "target", "sharp_filter"), [((1280, 704), (928, 512), cv2.INTER_CUBIC),
                                                                ((720, 720), (672, 672), cv2.INTER_LANCZOS4)])
def test_a_mild_shrink_mixes_a_sharp_and_the_antialiased_lanczos(source, target, sharp_filter):
    image = np.random.default_rng(3).integers(0, 256, (source[1], source[0], 3), dtype=np.uint8)
    share = images.antialiased_share(source, target)
    sharp = cv2.resize(image, target, interpolation=sharp_filter)
    smooth = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
        width=target[0], height=target[1], interpolation="LANCZOS").to_ndarray()
    expected = cv2.addWeighted(sharp, 1 - share, smooth, share, 0.0)
    np.testing.assert_array_equal(images.resize(image, target), expected)


@pytest.mark.parametrize("size", [(1100, 600), (928, 512)])
def test_mild_shrink_keeps_detail_and_does_not_point_sample(size):
    # a smooth ramp must stay a ramp (no nearest-neighbour steps): every output is an interpolation
    ramp = np.repeat(np.linspace(0, 255, 1280)[None, :, None], 704, axis=0).repeat(3, axis=2).astype(np.uint8)
    out = resize(ramp, size).astype(int)
    assert out.shape == (size[1], size[0], 3)
    steps = np.diff(out[0, 8:-8, 0])
    assert steps.min() >= 0 and steps.max() <= 2



@pytest.mark.parametrize(("source", "target"), [((1280, 800), (640, 400)), ((1921, 1079), (913, 511)),
                                                 ((640, 480), (160, 120)), ((301, 203), (611, 97))])
def test_swscale_path_gives_the_packed_rgb_lanczos_pixels(source: tuple[int, int], target: tuple[int, int]) -> None:
    # the planar (gbrp) output is a speed choice only: same pixels as scaling rgb24 -> rgb24
    image = np.random.default_rng(7).integers(0, 256, (source[1], source[0], 3), dtype=np.uint8)
    assert images.filter_for(source, target) == images.SWSCALE_LANCZOS
    packed = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
        width=target[0], height=target[1], interpolation="LANCZOS").to_ndarray()
    np.testing.assert_array_equal(images.resize(image, target), packed)


def _resize_in_child(queue) -> None:
    image = np.random.default_rng(1).integers(0, 256, (800, 1280, 3), dtype=np.uint8)
    queue.put(resize(image, (864, 544)).shape)


def _forked_child_resize(timeout: float) -> tuple[int, ...]:
    """The shape a forked child's 1280x800 -> 864x544 resize gives; the test fails if the child hangs or dies."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_resize_in_child, args=(queue,))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in swscale")
    assert child.exitcode == 0
    return queue.get(timeout=5)


needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork here")


@needs_fork
def test_a_forked_child_resizes_without_the_parents_kept_context():
    """The parent's kept swscale context has slice threads a forked child lacks (scan's workers fork)."""
    image = np.random.default_rng(0).integers(0, 256, (800, 1280, 3), dtype=np.uint8)
    resize(image, (864, 544))  # the parent now keeps a context
    assert _forked_child_resize(60) == (544, 864, 3)


@needs_fork
def test_a_fork_while_another_thread_keeps_a_context_neither_hangs_nor_crashes():
    """At a fork CPython drops the other threads' state in the child; their kept contexts must not
    be freed there (freeing joins slice threads the child lacks: a hang here, a crash elsewhere)."""
    image = np.random.default_rng(0).integers(0, 256, (800, 1280, 3), dtype=np.uint8)
    resized, release = threading.Event(), threading.Event()

    def keep_a_context() -> None:
        resize(image, (640, 400))
        resized.set()
        release.wait(120)

    other = threading.Thread(target=keep_a_context)
    other.start()
    try:
        assert resized.wait(30)
        assert _forked_child_resize(30) == (544, 864, 3)
    finally:
        release.set()
        other.join(30)


def test_a_finished_threads_kept_contexts_are_freed():
    image = np.random.default_rng(2).integers(0, 256, (80, 128, 3), dtype=np.uint8)
    finished = [threading.Thread(target=resize, args=(image, (64, 40))) for _ in range(3)]
    for thread in finished:
        thread.start()
        thread.join()
    assert finished[-1] in images._kept and finished[0] not in images._kept  # pruned by the next thread
    last = threading.Thread(target=resize, args=(image, (64, 40)))
    last.start()
    last.join()  # its first context freed the finished threads' contexts
    assert last in images._kept and not any(thread in images._kept for thread in finished)
