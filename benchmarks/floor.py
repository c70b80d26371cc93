"""The decode floor of a frame selection: the least work that yields those frames, to time ``read_frames`` against.

For the frames a selection picks (``first``: 0 and 1; ``uniform`` and ``ends``: the first and
the last), the floor knows the clip's packets beforehand (demuxed outside the timed region)
and does only this, timed: open the file (FFmpeg's stream probing told to decode nothing, as
the package opens), seek to the keyframe each wanted frame depends on (none for the
start), decode from there skipping every picture no other picture refers to except the
wanted ones (FFmpeg's ``skip_frame = NONREF`` per packet), and convert the wanted pictures to
RGB (with a swscale context kept across runs). Each thread setting FFmpeg offers is timed
(interleaved with the package's reads) and the fastest is the floor. Nothing of the package
runs in the timed region.
"""
from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from cosmos_upsample_fix.media.frames.container import _PROBE_WITHOUT_DECODING
from cosmos_upsample_fix.media.frames.selection import select_indices

THREAD_SETTINGS = (("SLICE", 0), ("FRAME", 0), ("AUTO", 0))
"""(thread type, thread count; 0 = one per core) tried for the floor."""


@dataclass(frozen=True)
class Needed:
    """What the floor decodes: per stretch, the keyframe pts to seek to (None: the start) and the wanted pts."""

    indices: tuple[int, ...]
    stretches: tuple[tuple[int | None, tuple[int, ...]], ...]
    decoded: int  # pictures from each stretch's keyframe to its last wanted frame, in decode order


def needed(path: Path, count: int, select: str) -> Needed:
    """Demux ``path`` (not timed) and work out the stretches to decode for ``select``'s ``count`` frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, bool(p.is_keyframe)) for p in container.demux(stream) if p.size]
    pts = [p for p, _ in packets]
    order = sorted(range(len(pts)), key=lambda k: pts[k])  # presentation order -> decode position
    keys = [k for k, (_, key) in enumerate(packets) if key] or [0]
    indices = select_indices(len(pts), min(count, len(pts)), select)
    stretches: list[tuple[int, list[int], int]] = []  # (keyframe position, wanted pts, last position)
    for index in indices:
        position = order[index]
        at = max(0, bisect.bisect_right(keys, position) - 1)
        while at > 0 and pts[position] < pts[keys[at]]:  # an open GOP's leading picture: one GOP earlier
            at -= 1
        if stretches and keys[at] <= stretches[-1][2]:  # reached by decoding on from the last one
            key, wanted, last = stretches[-1]
            stretches[-1] = (key, wanted + [pts[position]], max(last, position))
        else:
            stretches.append((keys[at], [pts[position]], position))
    return Needed(
        tuple(indices),
        tuple((None if key == 0 else pts[key], tuple(wanted)) for key, wanted, _ in stretches),
        sum(last - key + 1 for key, _, last in stretches),
    )


class Floor:
    """The floor decode of one clip's wanted frames with one thread setting (a kept RGB converter)."""

    def __init__(self, path: Path, need: Needed, threads: tuple[str, int]) -> None:
        self.path, self.need, self.threads = str(path), need, threads
        self.rgb = VideoReformatter()

    def __call__(self) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        with av.open(self.path, **_PROBE_WITHOUT_DECODING) as container:
            stream = container.streams.video[0]
            stream.thread_type = self.threads[0]
            stream.codec_context.thread_count = self.threads[1]
            context = stream.codec_context
            for seek, wanted in self.need.stretches:
                if seek is not None:
                    container.seek(seek, stream=stream, backward=True, any_frame=False)
                    context.flush_buffers()
                left, skipping = len(wanted), False
                for packet in container.demux(stream):
                    if packet.size:
                        skip = packet.pts not in wanted
                        if skip != skipping:
                            context.skip_frame = "NONREF" if skip else "DEFAULT"
                            skipping = skip
                    for frame in stream.decode(packet):
                        if frame.pts in wanted:
                            out.append(self.rgb.reformat(frame, format="rgb24").to_ndarray())
                            left -= 1
                    if not left:
                        break
                context.skip_frame = "DEFAULT"
                skipping = False
        return out


def _once(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def interleaved(jobs: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    """Each job ``runs`` times, interleaved round by round after one warm-up each; ms per run."""
    for job in jobs.values():
        job()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(runs):
        for name, job in jobs.items():
            times[name].append(_once(job))
    return times
