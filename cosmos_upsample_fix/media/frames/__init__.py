"""Read the few frames the prompt upsampler needs from a control video, image, or image list.

Cosmos-Transfer1's upsampler sends frames of the control video to Pixtral; to fit its
context we read only the frames a selection asks for (the first ``count``, a uniform
spread, or the two ends) and nothing more. Frames come out as RGB ``uint8`` arrays
already turned per the display matrix (phone videos) or EXIF orientation (stills). A
failure to read the input is a one-line :class:`~cosmos_upsample_fix.errors.InputError`
naming the path; only errors from PyAV, Pillow and the OS are taken to mean that.

Modules: :mod:`.selection` (which indices), :mod:`.files` (path checks),
:mod:`.orientation` (display matrix), :mod:`.stills` (Pillow), :mod:`.container` (PyAV
access), :mod:`.video` (first/seeking readers), :mod:`.reading` (the entry points).
"""
from __future__ import annotations

from cosmos_upsample_fix.core.options import SELECTIONS
from cosmos_upsample_fix.media.frames.info import Frame, PathLike, VideoInfo
from cosmos_upsample_fix.media.frames.reading import probe, read_frames
from cosmos_upsample_fix.media.frames.selection import select_indices

__all__ = ["SELECTIONS", "Frame", "PathLike", "VideoInfo", "probe", "read_frames", "select_indices"]
