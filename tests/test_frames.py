"""Tests of cosmos_upsample_fix.media.frames with real PyAV decoding of synthetic, index-marked clips."""
from __future__ import annotations

import gc
import hashlib
import logging
import multiprocessing
import os
import weakref
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter
from clips import (
    SHARED_VIDEOS,
    frame_marker,
    make_audio,
    make_clip,
    make_faststart,
    make_image,
    needs_shared_videos,
    remux,
)
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from cosmos_upsample_fix.errors import InputError, PolicySpecError, UpsampleFixError
from cosmos_upsample_fix.media.frames import SELECTIONS, Frame, VideoInfo, probe, read_frames, select_indices
from cosmos_upsample_fix.media.frames.container import Decoder, count_slices, demux, open_av, to_rgb, video_stream

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clipdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One temporary folder for all clips of this module."""
    return tmp_path_factory.mktemp("clips")


# name -> (file name, make_clip keyword arguments)
CLIPS = {
    "h264_bframes_longgop": ("h264.mp4", dict(width=160, height=120, frames=90, gop=30, bframes=3)),
    "mpeg4_bframes": ("mpeg4.mp4", dict(codec="mpeg4", width=160, height=120, frames=60, gop=12, bframes=2)),
    "hevc": ("hevc.mp4", dict(codec="hevc", width=128, height=96, frames=24, gop=8, bframes=3)),
    "vp9_webm": ("vp9.webm", dict(codec="vp9", width=128, height=96, frames=24, gop=8)),
    "ffv1_mkv": ("ffv1.mkv", dict(codec="ffv1", width=128, height=96, frames=24, gop=8)),
    "h264_mkv": ("h264.mkv", dict(width=128, height=96, frames=24, gop=8, bframes=3)),
    "mjpeg_avi": ("mjpeg.avi", dict(codec="mjpeg", width=128, height=96, frames=24)),
    "h264_opengop_ts": ("opengop.ts", dict(width=128, height=96, frames=40, gop=8, bframes=3, open_gop=True)),
    "h264_opengop_mkv": (
        "opengop.mkv", dict(width=128, height=96, frames=40, gop=8, bframes=3, open_gop=True)
    ),
    "h264_10bit": ("h264_10bit.mp4", dict(width=128, height=96, frames=24, gop=8, pix_fmt="yuv420p10le")),
    "h264_yuv444": ("h264_444.mp4", dict(width=128, height=96, frames=24, gop=8, pix_fmt="yuv444p")),
}


@pytest.fixture(scope="module")
def clip(clipdir: Path, request: pytest.FixtureRequest) -> Path:
    """A marked clip from CLIPS, made once per module (indirect parametrisation)."""
    name, kwargs = CLIPS[request.param]
    path = clipdir / name
    if not path.exists():
        make_clip(path, **kwargs)
    return path


@pytest.fixture(scope="module")
def h264(clipdir: Path) -> Path:
    """90-frame h264 clip, GOP 30, 3 B-frames."""
    path = clipdir / "h264.mp4"
    if not path.exists():
        make_clip(path, **CLIPS["h264_bframes_longgop"][1])
    return path


@pytest.fixture(scope="module")
def long_clip(clipdir: Path) -> Path:
    """600-frame h264 clip, GOP 50, 3 B-frames (tiny frames, so fast)."""
    return make_clip(clipdir / "long600.mp4", width=64, height=48, frames=600, gop=50, bframes=3)


@pytest.fixture(scope="module")
def raw_h264(h264: Path, clipdir: Path) -> Path:
    """The h264 clip as a raw Annex B stream: packets carry no timestamps."""
    return remux(h264, clipdir / "raw.h264", format="h264")


def markers(frames: list[Frame]) -> list[int]:
    """Index markers read back from decoded frames."""
    return [frame_marker(f.image) for f in frames]


def check_frames(frames: list[Frame], width: int, height: int) -> None:
    """Every frame is an H x W x 3 uint8 C-contiguous RGB array."""
    for f in frames:
        assert isinstance(f, Frame)
        assert f.image.dtype == np.uint8
        assert f.image.shape == (height, width, 3)
        assert f.image.flags["C_CONTIGUOUS"]


# --------------------------------------------------------------------------- select_indices


@pytest.mark.parametrize(
    "total, count, select, expected",
    [
        (121, 2, "first", [0, 1]),
        (121, 1, "first", [0]),
        (5, 5, "first", [0, 1, 2, 3, 4]),
        (121, 2, "uniform", [0, 120]),
        (121, 3, "uniform", [0, 60, 120]),
        (121, 1, "uniform", [0]),
        (10, 4, "uniform", [0, 3, 6, 9]),
        (100, 5, "uniform", [0, 25, 50, 74, 99]),
        (3, 3, "uniform", [0, 1, 2]),
        (2, 2, "uniform", [0, 1]),
        (121, 2, "ends", [0, 120]),
        (121, 1, "ends", [0]),
        (2, 2, "ends", [0, 1]),
        (1, 1, "ends", [0]),
    ],
)
def test_select_indices_table(total: int, count: int, select: str, expected: list[int]) -> None:
    assert select_indices(total, count, select) == expected


@pytest.mark.parametrize(
    "total, count, select",
    [
        (10, 3, "ends"),
        (10, 2, "middle"),
        (10, 2, "First"),
        (10, 0, "first"),
        (10, -1, "uniform"),
        (10, 2.0, "first"),
    ],
)
def test_select_indices_policy_errors(total: int, count: int, select: str) -> None:
    with pytest.raises(PolicySpecError):
        select_indices(total, count, select)


@pytest.mark.parametrize("select", SELECTIONS)
def test_select_indices_too_few_frames(select: str) -> None:
    with pytest.raises(InputError, match="has 1 frame; 2 asked"):
        select_indices(1, 2, select)


@given(total=st.integers(1, 5000), count=st.integers(1, 64), select=st.sampled_from(SELECTIONS))
def test_select_indices_properties(total: int, count: int, select: str) -> None:
    if select == "ends":
        count = min(count, 2)
    if total < count:
        with pytest.raises(InputError):
            select_indices(total, count, select)
        return
    got = select_indices(total, count, select)
    assert len(got) == count
    assert all(a < b for a, b in zip(got, got[1:]))
    assert got[0] == 0 and 0 <= got[-1] < total
    if select != "first" and count > 1:
        assert got[-1] == total - 1


# --------------------------------------------------------------------------- selections on real clips


@pytest.mark.parametrize("clip", list(CLIPS), indirect=True)
@pytest.mark.parametrize(
    "select, count", [("first", 1), ("first", 3), ("uniform", 2), ("uniform", 5), ("ends", 2)]
)
def test_selection_gets_the_right_frames(clip: Path, select: str, count: int) -> None:
    info, frames = read_frames(clip, count=count, select=select)
    total = {name: kw["frames"] for name, kw in CLIPS.values()}[clip.name]
    assert info.kind == "video" and info.path == str(clip)
    if select != "first":
        assert info.frame_count == total
    expected = select_indices(total, count, select)
    assert [f.index for f in frames] == expected
    assert markers(frames) == expected
    check_frames(frames, info.width, info.height)


def _decoded(container: av.container.InputContainer) -> list[tuple[int | None, str]]:
    stream = container.streams.video[0]
    return [(f.pts, hashlib.sha1(f.to_ndarray(format="rgb24").tobytes()).hexdigest()) for f in container.decode(stream)]


@pytest.mark.parametrize("clip", list(CLIPS), indirect=True)
def test_open_without_probe_decoding_decodes_the_same(clip: Path) -> None:
    """open_av tells FFmpeg's probing to decode no picture: every frame, pts and count stay the same."""
    with av.open(str(clip)) as plain, open_av(str(clip)) as quick:
        assert _decoded(quick) == _decoded(plain)
        assert quick.streams.video[0].frames == plain.streams.video[0].frames
        assert quick.streams.video[0].codec_context.width == plain.streams.video[0].codec_context.width


def _codec_contexts() -> set[int]:
    return {id(o) for o in gc.get_objects() if isinstance(o, av.codec.context.CodecContext)}


def test_reading_leaves_no_decoder_for_the_garbage_collector(long_clip: Path, h264: Path) -> None:
    """Every decoder is freed when reading returns, not at a later garbage collection.

    A decoder left in a reference cycle keeps its threads until a collection; after a fork
    (scan's workers) that collection runs in the child, which lacks the threads: it hangs.
    """
    gc.collect()
    gc.disable()
    try:
        before = _codec_contexts()
        for path in (long_clip, h264):
            for select in SELECTIONS:
                read_frames(path, 2, select)
            probe(path)
        with open_av(str(long_clip)) as container:
            decoder = Decoder(container, video_stream(container, str(long_clip)))
            next(iter(decoder))  # abandoned mid-stream
            freed = weakref.ref(decoder)
            del decoder
            assert freed() is None
        left = _codec_contexts() - before
    finally:
        gc.enable()
    assert not left


def _collect_and_read_in_child(path: str, queue) -> None:
    gc.enable()
    gc.collect()  # frees what the parent left for the collector
    queue.put([frame.index for frame in read_frames(path, 2, "ends")[1]])


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_a_process_forked_after_reading_collects_and_reads_again(long_clip: Path) -> None:
    """What a caller forks after reading (e.g. data-loader workers) can collect its garbage and read."""
    gc.collect()
    gc.disable()  # nothing is collected in the parent before the fork
    try:
        for select in SELECTIONS:
            read_frames(long_clip, 2, select)
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_collect_and_read_in_child, args=(str(long_clip), queue))
        child.start()
    finally:
        gc.enable()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung collecting the parent's garbage")
    assert child.exitcode == 0 and queue.get(timeout=5) == [0, 599]


@pytest.mark.parametrize("clip", list(CLIPS), indirect=True)
def test_probe_clip(clip: Path) -> None:
    name, kwargs = next((n, kw) for n, kw in CLIPS.values() if n == clip.name)
    info = probe(clip)
    size = (kwargs["width"], kwargs["height"])
    assert info == VideoInfo(str(clip), *size, kwargs["frames"], "video", size)
    read_info, _ = read_frames(clip, count=1)
    assert read_info == info


def test_clip_really_has_bframes_and_long_gop(h264: Path) -> None:
    """Guard for the tests above: the h264 clip reorders frames and has few keyframes."""
    with av.open(str(h264)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    assert sum(p.is_keyframe for p in packets) == 3
    assert any(p.pts != p.dts for p in packets)


@pytest.mark.parametrize("count", [2, 3, 5, 7, 10])
def test_uniform_on_600_frames(long_clip: Path, count: int) -> None:
    info, frames = read_frames(long_clip, count=count, select="uniform")
    assert info.frame_count == 600
    expected = [round(i * 599 / (count - 1)) for i in range(count)]
    assert [f.index for f in frames] == expected
    assert markers(frames) == expected


def test_ends_seeks_instead_of_decoding_everything(long_clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cosmos_upsample_fix.media.frames")
    _, frames = read_frames(long_clip, count=2, select="ends")
    assert markers(frames) == [0, 599]
    (record,) = [r for r in caplog.records if r.getMessage().startswith("seek read:")]
    decoded, total, seeks = record.args
    assert total == 600 and seeks == 2
    assert decoded <= 120, f"decoded {decoded} frames to get 2"


def test_seeking_skips_pictures_nothing_refers_to(long_clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    """From the last keyframe (550) to frame 599, the B-frames no picture refers to are not decoded."""
    caplog.set_level(logging.DEBUG, logger="cosmos_upsample_fix.media.frames")
    read_frames(long_clip, count=2, select="ends")
    (record,) = [r for r in caplog.records if r.getMessage().startswith("seek read:")]
    assert record.args[0] <= 35, f"decoded {record.args[0]} frames; 51 without skipping"


@pytest.mark.parametrize(
    "clip", ["h264_bframes_longgop", "hevc", "mpeg4_bframes", "h264_opengop_ts", "h264_opengop_mkv", "vp9_webm"],
    indirect=True,
)
def test_seeking_gives_the_decoders_exact_pixels(clip: Path) -> None:
    """Frames fetched by seeking (and skipping unreferenced pictures) equal a plain decode, pixel for pixel."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        plain = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    for count in (2, 5, len(plain)):
        _, frames = read_frames(clip, count=count, select="uniform")
        for frame in frames:
            assert np.array_equal(frame.image, plain[frame.index]), f"frame {frame.index} of {count}"


@pytest.mark.parametrize("clip", ["h264_bframes_longgop", "h264_opengop_ts", "mpeg4_bframes"], indirect=True)
def test_uniform_every_frame_through_seeking(clip: Path) -> None:
    """Asking every frame with 'uniform' walks all GOPs through the seek path."""
    total = probe(clip).frame_count
    assert total is not None
    _, frames = read_frames(clip, count=total, select="uniform")
    assert [f.index for f in frames] == markers(frames) == list(range(total))


@pytest.mark.parametrize("select", ["uniform", "ends"])
def test_sequential_fallback_when_seeking_fails(
    h264: Path, monkeypatch: pytest.MonkeyPatch, select: str
) -> None:
    from cosmos_upsample_fix.media.frames import video

    def refuse(*args: object, **kwargs: object) -> None:
        raise video.SeekFailed("refused for the test")

    monkeypatch.setattr(video, "read_seeking", refuse)
    _, frames = read_frames(h264, count=4 if select == "uniform" else 2, select=select)
    assert [f.index for f in frames] == markers(frames) == select_indices(90, len(frames), select)


def test_first_stops_early(long_clip: Path) -> None:
    info, frames = read_frames(long_clip, count=2, select="first")
    assert markers(frames) == [0, 1]
    assert info.frame_count == 600  # from the mp4 index, without demuxing


def test_no_timestamps_falls_back_to_sequential(raw_h264: Path) -> None:
    info, frames = read_frames(raw_h264, count=4, select="uniform")
    assert info.frame_count == 90
    assert [f.index for f in frames] == markers(frames) == [0, 30, 59, 89]
    info, frames = read_frames(raw_h264, count=2, select="first")
    assert markers(frames) == [0, 1]


def test_variable_frame_rate(clipdir: Path) -> None:
    path = make_clip(clipdir / "vfr.mp4", width=128, height=96, frames=30, gop=10, bframes=2, vfr=True)
    with av.open(str(path)) as container:
        pts = sorted(p.pts for p in container.demux(video=0) if p.size)
    assert len({b - a for a, b in zip(pts, pts[1:])}) > 1, "clip is not VFR"
    for count, select in [(2, "ends"), (4, "uniform"), (7, "uniform"), (3, "first")]:
        info, frames = read_frames(path, count=count, select=select)
        expected = select_indices(30, count, select)
        assert [f.index for f in frames] == markers(frames) == expected
    assert probe(path).frame_count == 30


# --------------------------------------------------------------------------- rotation


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata(clipdir: Path, rotation: int) -> None:
    cv2 = pytest.importorskip("cv2")
    path = make_clip(clipdir / f"rot{rotation}.mp4", width=160, height=96, frames=6, rotation=rotation)
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).rotation % 360 == -rotation % 360  # PyAV: counter-clockwise
    turned = rotation in (90, 270)
    width, height = (96, 160) if turned else (160, 96)
    assert probe(path) == VideoInfo(str(path), width, height, 6, "video", (160, 96))
    for select in SELECTIONS:
        info, frames = read_frames(path, count=2, select=select)
        assert (info.width, info.height) == (width, height)
        check_frames(frames, width, height)
        # Undo the clockwise display rotation to read the markers.
        assert [frame_marker(np.rot90(f.image, rotation // 90)) for f in frames] == [f.index for f in frames]
    # Same pixels as OpenCV, which also applies the display matrix.
    _, frames = read_frames(path, count=2, select="first")
    capture = cv2.VideoCapture(str(path))
    try:
        for f in frames:
            ok, bgr = capture.read()
            assert ok
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            assert rgb.shape == f.image.shape
            assert np.abs(rgb.astype(int) - f.image).max() <= 8
    finally:
        capture.release()


def test_1280x720_rotated_90_is_720x1280(clipdir: Path) -> None:
    path = make_clip(clipdir / "hd_rot90.mp4", width=1280, height=720, frames=2, rotation=90)
    assert (probe(path).width, probe(path).height) == (720, 1280)
    info, frames = read_frames(path, count=2)
    assert (info.width, info.height) == (720, 1280)
    assert frames[0].image.shape == (1280, 720, 3)
    assert markers([Frame(0, np.rot90(frames[1].image, 1))]) == [1]


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_single_image(clipdir: Path, suffix: str) -> None:
    path = make_image(clipdir / f"still{suffix}", 200, 100, index=37)
    info, frames = read_frames(path, count=1)
    assert info == VideoInfo(str(path), 200, 100, 1, "image", (200, 100))
    assert probe(path) == info
    assert [f.index for f in frames] == [0]
    assert markers(frames) == [37]
    check_frames(frames, 200, 100)
    for select in SELECTIONS:
        assert read_frames(str(path), count=1, select=select)[0].kind == "image"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ""])
def test_still_image_with_more_than_one_frame_asked(clipdir: Path, suffix: str) -> None:
    path = make_image(clipdir / f"still2{suffix or '.png'}", 64, 48)
    if not suffix:  # a PNG without suffix: PyAV opens it as a one-frame png_pipe "video"
        path = path.rename(clipdir / "still2_nosuffix")
    with pytest.raises(InputError) as err:
        read_frames(path, count=2)
    assert str(err.value) == f"{path} is a still image with 1 frame; 2 asked (use 1 frame)"
    info, frames = read_frames(path, count=1, select="uniform")
    assert info.kind == "image" and info.frame_count == 1 and markers(frames) == [0]
    assert probe(path).kind == "image"


def test_image_exif_orientation_is_applied(clipdir: Path) -> None:
    path = clipdir / "exif6.jpg"
    img = Image.fromarray(np.asarray(Image.open(make_image(clipdir / "exif_src.png", 120, 80, index=5))))
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    img.save(path, exif=exif, quality=95)
    info, frames = read_frames(path, count=1)
    assert (info.width, info.height) == (80, 120) and info.stored_size == (120, 80)
    assert probe(path) == info
    assert frame_marker(np.rot90(frames[0].image, 1)) == 5


def test_16bit_png(clipdir: Path) -> None:
    path = clipdir / "grey16.png"
    Image.fromarray(np.full((20, 30), 65535, np.uint16)).save(path)
    info, frames = read_frames(path, count=1)
    assert (info.width, info.height) == (30, 20)
    assert frames[0].image.shape == (20, 30, 3) and frames[0].image.min() == 255


def test_image_list_of_different_sizes(clipdir: Path) -> None:
    paths = [
        make_image(clipdir / "list0.png", 160, 120, index=3),
        make_image(clipdir / "list1.jpg", 100, 200, index=9),
        str(make_image(clipdir / "list2.png", 64, 64, index=1)),
    ]
    info, frames = read_frames(paths, count=99, select="ends")  # count/select do not apply
    assert info == VideoInfo(str(paths[0]), 160, 120, 3, "images", (160, 120))
    assert probe(paths) == info
    assert probe(tuple(paths)) == info
    assert [f.index for f in frames] == [0, 1, 2]
    assert markers(frames) == [3, 9, 1]
    assert [f.image.shape for f in frames] == [(120, 160, 3), (200, 100, 3), (64, 64, 3)]
    _, single = read_frames(paths[:1])
    assert markers(single) == [3]


def test_image_list_errors(clipdir: Path, h264: Path) -> None:
    good = make_image(clipdir / "ok.png", 32, 32)
    with pytest.raises(InputError, match="empty"):
        read_frames([])
    with pytest.raises(InputError, match="empty"):
        probe(())
    missing = clipdir / "nope.png"
    for source in ([good, missing], (missing,)):
        with pytest.raises(InputError) as err:
            read_frames(source)
        assert str(missing) in str(err.value)
    with pytest.raises(InputError) as err:
        read_frames([good, h264])
    assert str(h264) in str(err.value) and "video" in str(err.value)
    with pytest.raises(InputError) as err:
        probe([good, h264])
    assert str(h264) in str(err.value)


# --------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def bad_inputs(clipdir: Path, h264: Path) -> dict[str, tuple[Path, str, dict]]:
    """name -> (path, expected message fragment, read_frames kwargs)."""
    bad = clipdir / "bad"
    bad.mkdir()
    rng = np.random.default_rng(0)
    (bad / "random.mp4").write_bytes(rng.bytes(20000))
    (bad / "random.bin").write_bytes(rng.bytes(20000))
    (bad / "random.png").write_bytes(rng.bytes(20000))
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "a_directory.mp4").mkdir()
    os.symlink(bad / "gone.mp4", bad / "dangling.mp4")
    make_audio(bad / "audio.wav")
    make_audio(bad / "audio.m4a")
    data = h264.read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov atom is at the end: lost
    faststart = make_faststart(h264, bad / "faststart.mp4")
    data = faststart.read_bytes()
    truncated_faststart = bad / "truncated_faststart.mp4"
    truncated_faststart.write_bytes(data[: len(data) // 2])  # moov kept, frames lost
    short = make_clip(bad / "short.mp4", width=64, height=48, frames=3)
    return {
        "missing": (bad / "does_not_exist.mp4", "does not exist", {}),
        "directory": (bad / "a_directory.mp4", "directory", {}),
        "dangling_symlink": (bad / "dangling.mp4", "broken symbolic link", {}),
        "random_mp4": (bad / "random.mp4", "not a readable video or image", {}),
        "random_bin": (bad / "random.bin", "not a readable video or image", {}),
        "random_png": (bad / "random.png", "not a readable image", {}),
        "empty": (bad / "empty.mp4", "empty", {}),
        "audio_wav": (bad / "audio.wav", "no decodable video frames", {}),
        "audio_m4a": (bad / "audio.m4a", "no decodable video frames", {}),
        "truncated": (bad / "truncated.mp4", "corrupt", {}),
        "truncated_faststart_uniform": (truncated_faststart, "corrupt or truncated", {"select": "uniform"}),
        "truncated_faststart_ends": (truncated_faststart, "corrupt or truncated", {"select": "ends"}),
        "too_few_first": (short, "has 3 frames; 5 asked", {"count": 5}),
        "too_few_uniform": (short, "has 3 frames; 4 asked", {"count": 4, "select": "uniform"}),
    }


ERROR_CASES = [
    "missing",
    "directory",
    "dangling_symlink",
    "random_mp4",
    "random_bin",
    "random_png",
    "empty",
    "audio_wav",
    "audio_m4a",
    "truncated",
    "truncated_faststart_uniform",
    "truncated_faststart_ends",
    "too_few_first",
    "too_few_uniform",
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_read_errors_are_one_line_input_errors(bad_inputs: dict, case: str) -> None:
    path, fragment, kwargs = bad_inputs[case]
    with pytest.raises(InputError) as err:
        read_frames(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message
    assert fragment in message
    assert isinstance(err.value, UpsampleFixError)
    # No av/PIL/OSError chained into the traceback.
    assert err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__


# probe() takes no count or selection: the cases that fail whatever is asked
PROBE_ERROR_CASES = ERROR_CASES[: ERROR_CASES.index("truncated") + 1]


@pytest.mark.parametrize("case", PROBE_ERROR_CASES)
def test_probe_errors_are_one_line_input_errors(bad_inputs: dict, case: str) -> None:
    path, _fragment, _kwargs = bad_inputs[case]
    with pytest.raises(InputError) as err:
        probe(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_fewer_frames_than_asked_says_how_many(clipdir: Path) -> None:
    path = make_clip(clipdir / "five.mkv", codec="ffv1", width=64, height=48, frames=5)  # no count in header
    for select, count in [("first", 6), ("uniform", 8)]:
        with pytest.raises(InputError, match=r"has 5 frames; \d asked") as err:
            read_frames(path, count=count, select=select)
        assert str(path) in str(err.value) and f"{count} asked" in str(err.value)


@pytest.mark.parametrize("kwargs", [{"select": "middle"}, {"count": 0}, {"count": 3, "select": "ends"}])
def test_bad_policy_is_policy_spec_error(h264: Path, kwargs: dict) -> None:
    with pytest.raises(PolicySpecError):
        read_frames(h264, **kwargs)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(clipdir: Path, h264: Path) -> None:
    path = clipdir / "locked.mp4"
    path.write_bytes(h264.read_bytes())
    path.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        read_frames(path)


# --------------------------------------------------------------------------- input left alone


def test_input_files_are_not_modified(clipdir: Path) -> None:
    video = make_clip(clipdir / "untouched.mp4", width=96, height=64, frames=20, gop=5, bframes=2)
    image = make_image(clipdir / "untouched.png", 40, 30)
    for path in (video, image):
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
        path.chmod(0o444)  # reading must work on a read-only file
    before = {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in (video, image)}
    for select in SELECTIONS:
        read_frames(video, count=2, select=select)
    probe(video)
    read_frames(image, count=1)
    read_frames([image, image])
    probe(image)
    after = {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in (video, image)}
    assert after == before


def test_dataclasses_are_frozen(h264: Path) -> None:
    info, frames = read_frames(h264, count=1)
    with pytest.raises(AttributeError):
        info.width = 1  # type: ignore[misc]
    with pytest.raises(AttributeError):
        frames[0].index = 5  # type: ignore[misc]


# --------------------------------------------------------------------------- the shared sample clips

SHARED_TABLE = {
    "example1_edge.mp4": (640, 480, 121),
    "example1_input_video.mp4": (640, 480, 121),
    "example1_uniform_weights.mp4": (960, 704, 121),
    "robot_sample_input.mp4": (1280, 704, 121),
    "sample_av_multi_control_input_hdmap.mp4": (1280, 704, 121),
    "robot_augmentation_segmentation.mp4": (1280, 800, 100),
    "regional_prompt_depth_1080p.mp4": (1920, 1080, 121),
}

needs_shared = needs_shared_videos


@needs_shared
@pytest.mark.parametrize("name", list(SHARED_TABLE))
def test_shared_clip(name: str) -> None:
    path = SHARED_VIDEOS / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    width, height, total = SHARED_TABLE[name]
    assert probe(path) == VideoInfo(str(path), width, height, total, "video", (width, height))
    for select, count in [("first", 2), ("uniform", 2), ("uniform", 5), ("ends", 2)]:
        info, frames = read_frames(path, count=count, select=select)
        assert (info.width, info.height, info.frame_count, info.kind) == (width, height, total, "video")
        assert [f.index for f in frames] == select_indices(total, count, select)
        check_frames(frames, width, height)


def _opencv_frames(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    """Frames at ``wanted`` indices, read sequentially by OpenCV and turned to RGB."""
    cv2 = pytest.importorskip("cv2")
    capture = cv2.VideoCapture(str(path))
    out: dict[int, np.ndarray] = {}
    try:
        index = 0
        while len(out) < len(wanted):
            ok, bgr = capture.read()
            if not ok:
                break
            if index in wanted:
                out[index] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    return out


@needs_shared
def test_robot_first_two_frames_match_opencv() -> None:
    path = SHARED_VIDEOS / "robot_sample_input.mp4"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    _, frames = read_frames(path, count=2, select="first")
    reference = _opencv_frames(path, {0, 1})
    # The two reference frames differ a lot somewhere, so the bound below catches a wrong frame.
    assert np.abs(reference[0].astype(int) - reference[1]).max() > 64
    for f in frames:
        diff = np.abs(reference[f.index].astype(int) - f.image)
        assert diff.max() <= 8, f"frame {f.index}: max abs difference {diff.max()} vs OpenCV"


@needs_shared
@pytest.mark.parametrize(
    "name", ["robot_sample_input.mp4", "example1_input_video.mp4", "robot_augmentation_segmentation.mp4"]
)
def test_shared_uniform_frames_match_opencv_sequential_read(name: str) -> None:
    """Seeking lands on the same frames a plain sequential decode numbers 0, 1, 2, ..."""
    path = SHARED_VIDEOS / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    _, frames = read_frames(path, count=5, select="uniform")
    reference = _opencv_frames(path, {f.index for f in frames})
    for f in frames:
        assert np.abs(reference[f.index].astype(int) - f.image).max() <= 8, f"frame {f.index}"


# --------------------------------------------------------------------------- up to count frames (exact=False)


def test_not_exact_gives_what_a_short_source_has(clipdir: Path) -> None:
    one = make_clip(clipdir / "one.mp4", width=64, height=48, frames=1)
    five = make_clip(clipdir / "five_ffv1.mkv", codec="ffv1", width=64, height=48, frames=5)  # no count in header
    still = make_image(clipdir / "one_still.png", 40, 30, index=4)
    for select in SELECTIONS:
        info, frames = read_frames(one, count=2, select=select, exact=False)
        assert info.frame_count == 1 and markers(frames) == [0]
        info, frames = read_frames(still, count=2, select=select, exact=False)
        assert info.kind == "image" and markers(frames) == [4]
    _, frames = read_frames(five, count=8, select="uniform", exact=False)
    assert [f.index for f in frames] == markers(frames) == [0, 1, 2, 3, 4]
    info, frames = read_frames(five, count=6, select="first", exact=False)
    assert info.frame_count == 5 and markers(frames) == [0, 1, 2, 3, 4]
    for select in SELECTIONS:  # enough frames: the same as exact
        loose, strict = read_frames(five, 2, select, exact=False), read_frames(five, 2, select)
        assert loose[0] == strict[0] and markers(loose[1]) == markers(strict[1]) == select_indices(5, 2, select)
    with pytest.raises(InputError, match="has 1 frame; 2 asked"):
        read_frames(one, count=2)


def test_not_exact_still_refuses_a_truncated_clip(bad_inputs: dict) -> None:
    path, fragment, _ = bad_inputs["truncated_faststart_uniform"]
    for select in ("uniform", "ends"):
        with pytest.raises(InputError, match=fragment):
            read_frames(path, count=2, select=select, exact=False)


def test_frame_count_is_the_same_whatever_the_selection(clipdir: Path) -> None:
    """read_frames reports one frame count per clip, and probe agrees, with or without a header count."""
    for name in ("ffv1_mkv", "vp9_webm", "h264_opengop_ts", "h264_bframes_longgop"):
        file_name, kwargs = CLIPS[name]
        path = clipdir / file_name
        if not path.exists():
            make_clip(path, **kwargs)
        counts = {read_frames(path, 2, select)[0].frame_count for select in SELECTIONS}
        assert counts == {probe(path).frame_count} == {kwargs["frames"]}, name


def _sliced_clip(path: Path, encoder: str, slices: int) -> Path:
    """Three 128x96 pictures, each coded as ``slices`` slices (raw Annex B for .h264/.hevc)."""
    muxer = {".h264": "h264", ".hevc": "hevc"}.get(path.suffix)
    with av.open(str(path), "w", format=muxer) as container:
        stream = container.add_stream(encoder, rate=24)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.thread_type = "FRAME"  # PyAV's default (slice threads) would make x264 cut slices itself
        params = f"slices={slices}" + (":log-level=error" if encoder == "libx265" else "")
        stream.options = {f"{encoder[3:]}-params": params}
        for i in range(3):
            picture = av.VideoFrame.from_ndarray(np.full((96, 128, 3), 40 * i, np.uint8), format="rgb24")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.mark.parametrize("name, encoder, slices", [
    ("one.mp4", "libx264", 1), ("four.mp4", "libx264", 4), ("two.mkv", "libx264", 2), ("three.h264", "libx264", 3),
    ("one_hevc.mp4", "libx265", 1), ("two_hevc.mkv", "libx265", 2), ("two.hevc", "libx265", 2),
])
def test_demux_counts_the_slices_of_a_picture(clipdir: Path, name: str, encoder: str, slices: int) -> None:
    """Slices per picture decide the decoder's threads for long seeks (MP4/MKV and Annex B packets)."""
    path = _sliced_clip(clipdir / f"sliced_{name}", encoder, slices)
    with open_av(str(path)) as container:
        assert demux(container, video_stream(container, str(path))).slices == slices


def test_count_slices_on_hand_made_packets() -> None:
    """VCL NAL units are counted in length-prefixed and Annex B packets; 1 for other codecs or bad lengths."""
    assert count_slices(b"\x00\x00\x00\x05\x65\x88\x84\x00\x10", "vp9") == 1
    assert count_slices(b"\x00\x00\x00\x09\x65\x88", "h264") == 1  # a length running past the end
    assert count_slices(b"\x00\x00\x00\x02\x65\x88\x00\x00\x00\x02\x41\x9a", "h264") == 2
    assert count_slices(b"\x00\x00\x00\x01\x65\x88\x00\x00\x01\x41\x9a", "h264") == 2


def test_kept_conversions_follow_each_sources_colours(clipdir: Path) -> None:
    """Converting frames of several kinds in turn gives what a fresh context gives each one.

    A kept swscale context reused for a new kind of source (another pixel format, range or
    colour space) kept the last one's colour details under PyAV 16 and older.
    """
    kinds = [("mjpeg", "yuvj420p", ".avi"), ("h264", "yuv420p", ".mp4"), ("h264", "yuv420p10le", ".mp4"),
             ("h264", "yuv444p", ".mp4")]
    frames = []
    for codec, pix_fmt, suffix in kinds:
        path = make_clip(clipdir / f"colours_{pix_fmt}{suffix}", codec=codec, width=64, height=48, frames=2,
                         pix_fmt=pix_fmt)
        with av.open(str(path)) as container:
            frames.append(next(container.decode(video=0)))
    for frame in frames + frames[::-1]:
        fresh = VideoReformatter().reformat(frame, format="rgb24").to_ndarray()
        np.testing.assert_array_equal(to_rgb(frame, "clip"), fresh, err_msg=frame.format.name)
