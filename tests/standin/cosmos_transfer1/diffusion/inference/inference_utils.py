"""Stand-in for the parts of ``cosmos_transfer1.diffusion.inference.inference_utils`` on the
upsampler path: control-spec loading/validation and ``generate_control_input``."""

from __future__ import annotations

import json
import os
from typing import Any

import cv2
import numpy as np

from cosmos_transfer1 import _standin
from cosmos_transfer1.checkpoints import (
    DEPTH2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    EDGE2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    EDGE2WORLD_CONTROLNET_7B_DISTILLED_CHECKPOINT_PATH,
    HDMAP2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    KEYPOINT2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    LIDAR2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    SEG2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    UPSCALER_CONTROLNET_7B_CHECKPOINT_PATH,
    VIS2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
)
from cosmos_transfer1.utils import log

valid_hint_keys = {"vis", "seg", "edge", "depth", "keypoint", "upscale", "hdmap", "lidar"}

default_model_names = {
    "vis": VIS2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    "seg": SEG2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    "edge": EDGE2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    "depth": DEPTH2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    "keypoint": KEYPOINT2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    "upscale": UPSCALER_CONTROLNET_7B_CHECKPOINT_PATH,
    "hdmap": HDMAP2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
    "lidar": LIDAR2WORLD_CONTROLNET_7B_CHECKPOINT_PATH,
}
default_distilled_model_names = {"edge": EDGE2WORLD_CONTROLNET_7B_DISTILLED_CHECKPOINT_PATH}

# Canny thresholds (lower, upper) and bilateral-blur strengths by preset name.
CANNY_PRESETS = {
    "none": (20, 50),
    "very_low": (20, 50),
    "low": (50, 100),
    "medium": (100, 200),
    "high": (200, 300),
    "very_high": (300, 400),
}
BLUR_PRESETS = {"very_low": 3, "low": 5, "medium": 9, "high": 13, "very_high": 17}


def load_controlnet_specs(cfg) -> tuple[dict, dict]:
    """Split the JSON spec file into control entries (valid hint keys) and other arguments."""
    with open(cfg.controlnet_specs) as handle:
        specs_in = json.load(handle)
    controls: dict[str, Any] = {}
    args: dict[str, Any] = {}
    for key, value in specs_in.items():
        if key in valid_hint_keys:
            controls[key] = value
        elif isinstance(value, dict):
            raise ValueError(f"Invalid hint_key: {key}. Must be one of {valid_hint_keys}")
        else:
            args[key] = value
    return controls, args


def validate_controlnet_specs(cfg, controlnet_specs) -> dict:
    """Upstream's checks and defaults: an input video or an input_control per control,
    a default ckpt_path and a control_weight (0.5 when missing)."""
    for hint_key, config in controlnet_specs.items():
        if hint_key not in valid_hint_keys:
            raise ValueError(f"Invalid hint_key: {hint_key}. Must be one of {valid_hint_keys}")
        if not cfg.input_video_path and cfg.sigma_max < 80:
            raise ValueError("Must have 'input_video' specified if sigma_max < 80")
        if not cfg.input_video_path and "input_control" not in config:
            raise ValueError(
                f"{hint_key} controlnet must have 'input_control' video specified if no 'input_video' specified."
            )
        if "ckpt_path" not in config:
            log.info(f"No checkpoint path specified for {hint_key}. Using default.")
            ckpt_path = os.path.join(cfg.checkpoint_dir, default_model_names[hint_key])
            if cfg.use_distilled:
                if hint_key not in default_distilled_model_names:
                    raise ValueError(
                        f"No default distilled checkpoint for {hint_key}. Users must specify ckpt_path in config."
                    )
                ckpt_path = os.path.join(cfg.checkpoint_dir, default_distilled_model_names[hint_key])
            config["ckpt_path"] = ckpt_path
        if "control_weight" not in config:
            log.warning(f"No control weight specified for {hint_key}. Setting to 0.5.")
            config["control_weight"] = "0.5"
        else:
            weight = config["control_weight"]
            if not (isinstance(weight, str) and weight.endswith(".pt")):
                try:
                    if float(weight) < 0:
                        raise ValueError(f"Control weight for {hint_key} must be non-negative.")
                except ValueError:
                    raise ValueError(  # noqa: B904 - as upstream raises it
                        f"Control weight for {hint_key} must be a valid non-negative float or a path to a .pt file."
                    )
    return controlnet_specs


def edge_frames(frames: np.ndarray, canny_threshold: str = "medium") -> np.ndarray:
    """Canny edges of RGB frames, as 3-channel uint8 frames of the same size."""
    lower, upper = CANNY_PRESETS[canny_threshold]
    edges = [cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), lower, upper) for frame in frames]
    return np.repeat(np.stack(edges)[..., None], 3, axis=-1)


def blur_frames(frames: np.ndarray, blur_strength: str = "medium") -> np.ndarray:
    """Bilateral-blurred RGB frames (the 'vis' control), same size."""
    diameter = BLUR_PRESETS[blur_strength]
    return np.stack([cv2.bilateralFilter(frame, diameter, 75, 75) for frame in frames])


def generate_control_input(input_file_path, save_folder, hint_key, blur_strength, canny_threshold, num_total_frames=10):
    """Make the upsampler's control video from the input video: its first ``num_total_frames``
    frames turned into edges (``control_input_edge``) or blurred (``control_input_vis``),
    written at the input's size to ``<save_folder>/<hint_key>_upsampler.mp4``; returns that path."""
    log.info(
        f"Generating control input for {hint_key} with blur strength {blur_strength} "
        f"and canny threshold {canny_threshold}"
    )
    frames = _standin.read_frames_rgb(input_file_path, num_total_frames)
    if hint_key.endswith("edge"):
        control = edge_frames(frames, canny_threshold)
    else:
        control = blur_frames(frames, blur_strength)
    output_file_path = f"{save_folder}/{hint_key}_upsampler.mp4"
    log.info(f"Saving control input to {output_file_path}")
    _standin.write_video_rgb(output_file_path, control, fps=24)
    return output_file_path
