"""Stand-in for the two helpers of ``cosmos_transfer1.utils.misc`` the upsampler uses."""

from __future__ import annotations

import base64
import os
import random
import tempfile

import cv2
import numpy as np

from cosmos_transfer1 import _standin


def extract_video_frames(video_path, number_of_frames=2):
    """Upstream's behaviour: OpenCV reads the first ``number_of_frames`` frames and writes each,
    at full size, as PNG to the fixed path ``<tempdir>/frame_<i+1>.png`` (shared by every
    process, never removed); returns the paths written. Stops early at the end of the video,
    and returns an empty list for a file OpenCV cannot open.

    Stand-in only: ``STANDIN_TEMPDIR`` replaces ``tempfile.gettempdir()`` when set.
    """
    capture = cv2.VideoCapture(video_path)
    temp_dir = os.environ.get(_standin.TEMPDIR_ENV) or tempfile.gettempdir()
    paths = []
    for index in range(number_of_frames):
        ok, frame = capture.read()
        if not ok:
            break
        path = os.path.join(temp_dir, f"frame_{index + 1}.png")
        cv2.imwrite(path, frame)
        paths.append(path)
    capture.release()
    return paths


def image_to_base64(image_path):
    """The file's bytes, base64-encoded, as str."""
    with open(image_path, "rb") as handle:
        return base64.b64encode(handle.read()).decode("utf-8")


def set_random_seed(seed: int, by_rank: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
