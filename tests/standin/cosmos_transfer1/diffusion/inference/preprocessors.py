"""Stand-in for ``cosmos_transfer1.diffusion.inference.preprocessors.Preprocessors``.

Runs per batch item before generation and fills a *copy* of the control inputs: for a
control without ``input_control`` it writes ``<output_folder>/<hint>_input_control_<LOCAL_RANK>.mp4``
from the input video (edges for edge, blur for vis, a grey-level stand-in for seg, depth
and keypoint, where upstream runs SAM2, DepthAnything or OpenPose).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from cosmos_transfer1 import _standin
from cosmos_transfer1.diffusion.inference.inference_utils import blur_frames, edge_frames, valid_hint_keys
from cosmos_transfer1.utils import log


class Preprocessors:
    def __call__(
        self,
        input_video,
        input_prompt,
        control_inputs,
        output_folder,
        regional_prompts=None,
        blur_strength="medium",
        canny_threshold="medium",
    ):
        for hint_key in control_inputs:
            if hint_key in valid_hint_keys and hint_key in ("depth", "seg", "keypoint", "vis", "edge"):
                self.gen_input_control(
                    input_video,
                    input_prompt,
                    hint_key,
                    control_inputs[hint_key],
                    output_folder,
                    blur_strength,
                    canny_threshold,
                )
        return control_inputs

    def gen_input_control(
        self,
        in_video,
        in_prompt,
        hint_key,
        control_input,
        output_folder,
        blur_strength="medium",
        canny_threshold="medium",
    ):
        if control_input.get("input_control", None) is not None:
            return
        out_video = os.path.join(output_folder, f"{hint_key}_input_control_{int(os.environ.get('LOCAL_RANK', 0))}.mp4")
        control_input["input_control"] = out_video
        log.info(f"no input_control provided for {hint_key}. generating input control video")
        frames = _standin.read_frames_rgb(in_video)
        if hint_key == "edge":
            control = edge_frames(frames, canny_threshold)
        elif hint_key == "vis":
            control = blur_frames(frames, blur_strength)
        else:
            grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
            control = np.repeat(grey[..., None], 3, axis=-1)
        _standin.write_video_rgb(out_video, control)
