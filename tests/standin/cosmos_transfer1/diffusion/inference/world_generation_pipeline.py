"""Stand-in for ``cosmos_transfer1.diffusion.inference.world_generation_pipeline``: the
prompt-upsampler part of ``DiffusionControl2WorldGenerationPipeline`` and its distilled
subclass. ``generate`` stops after the prompts are final: no guardrail, no diffusion; it
returns ``(videos, final_prompts)`` where each "video" is a 1-frame black placeholder.

Under ``STANDIN_PATCHED=1`` the class behaves as patched by patches/cosmos-transfer1.patch:
``__init__`` takes ``upsampler_policy`` and ``_process_prompt_upsampler`` calls
``cosmos_upsample_fix.runtime.run_upsampler`` when it can be imported.
"""

from __future__ import annotations

import os

import numpy as np

from cosmos_transfer1 import _standin
from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler
from cosmos_transfer1.checkpoints import (
    BASE_7B_CHECKPOINT_AV_SAMPLE_PATH,
    BASE_7B_CHECKPOINT_PATH,
    EDGE2WORLD_CONTROLNET_7B_DISTILLED_CHECKPOINT_PATH,
)
from cosmos_transfer1.diffusion.inference.inference_utils import generate_control_input
from cosmos_transfer1.utils import log
from cosmos_transfer1.utils.base_world_generation_pipeline import BaseWorldGenerationPipeline
from cosmos_transfer1.utils.torchrun_keys import TORCHRUN_KEYS

# The checkpoints the transfer script can pick (upstream maps many more).
MODEL_NAME_DICT = {
    BASE_7B_CHECKPOINT_PATH: "CTRL_7Bv1pt3_lvg_tp_121frames_control_input_edge_block3",
    BASE_7B_CHECKPOINT_AV_SAMPLE_PATH: "CTRL_7Bv1pt3_t2v_121frames_control_input_hdmap_block3",
    EDGE2WORLD_CONTROLNET_7B_DISTILLED_CHECKPOINT_PATH: (
        "CTRL_7Bv1pt3_lvg_fsdp_distilled_121frames_control_input_edge_block3"
    ),
}

_UNSET = object()


class DiffusionControl2WorldGenerationPipeline(BaseWorldGenerationPipeline):
    def __init__(
        self,
        checkpoint_dir: str,
        checkpoint_name: str,
        has_text_input: bool = True,
        offload_network: bool = False,
        offload_tokenizer: bool = False,
        offload_text_encoder_model: bool = False,
        offload_guardrail_models: bool = False,
        guidance: float = 7.0,
        num_steps: int = 35,
        height: int = 704,
        width: int = 1280,
        fps: int = 24,
        num_video_frames: int = 121,
        seed: int = 0,
        num_input_frames: int = 1,
        control_inputs: dict = None,
        sigma_max: float = 70.0,
        blur_strength: str = "medium",
        canny_threshold: str = "medium",
        upsample_prompt: bool = False,
        offload_prompt_upsampler: bool = False,
        upsampler_policy=_UNSET,  # exists only in the patched variant (STANDIN_PATCHED=1)
        upsampler_endpoint=_UNSET,  # likewise
        process_group=None,
        regional_prompts: list[str] = None,
        region_definitions: list[list[float]] | object = None,
        waymo_example: bool = False,
        disable_guardrail: bool = False,
        save_input_noise: bool = False,
    ):
        for name, value in (("upsampler_policy", upsampler_policy), ("upsampler_endpoint", upsampler_endpoint)):
            if value is not _UNSET and not _standin.patched():
                raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument '{name}'")
        self.num_input_frames = num_input_frames
        self.control_inputs = control_inputs
        self.sigma_max = sigma_max
        self.blur_strength = blur_strength
        self.canny_threshold = canny_threshold
        self.upsample_prompt = upsample_prompt
        self.offload_prompt_upsampler = offload_prompt_upsampler
        if _standin.patched():
            self.upsampler_policy = None if upsampler_policy is _UNSET else upsampler_policy
            self.upsampler_endpoint = None if upsampler_endpoint is _UNSET else upsampler_endpoint
        self.prompt_upsampler = None
        self.upsampler_hint_key = None
        self.hint_details = None
        self.process_group = process_group
        self.model_name = MODEL_NAME_DICT[checkpoint_name]
        self.guidance = guidance
        self.num_steps = num_steps
        self.height = height
        self.width = width
        self.fps = fps
        self.num_video_frames = num_video_frames
        self.seed = seed
        self.regional_prompts = regional_prompts
        self.region_definitions = region_definitions
        self.save_input_noise = save_input_noise

        super().__init__(
            checkpoint_dir=checkpoint_dir,
            checkpoint_name=checkpoint_name,
            has_text_input=has_text_input,
            offload_network=offload_network,
            offload_tokenizer=offload_tokenizer,
            offload_text_encoder_model=offload_text_encoder_model,
            offload_guardrail_models=offload_guardrail_models,
            disable_guardrail=disable_guardrail,
        )

        if self.upsample_prompt:
            if int(os.environ["RANK"]) == 0:
                self._push_torchrun_environ_variables()
                self._init_prompt_upsampler()
                self._pop_torchrun_environ_variables()

    def _push_torchrun_environ_variables(self):
        """Take the torchrun variables out of the environment (vLLM would otherwise see them)."""
        self.torchrun_environ_variables = {}
        for key in TORCHRUN_KEYS:
            if key in os.environ:
                self.torchrun_environ_variables[key] = os.environ.pop(key)

    def _pop_torchrun_environ_variables(self):
        """Put them back."""
        for key, value in self.torchrun_environ_variables.items():
            os.environ[key] = value

    def _init_prompt_upsampler(self):
        """Pick the hint key (vis/edge → "vis", else the first of seg/depth) and build the upsampler."""
        self.hint_details = None
        log.info("Initializing prompt upsampler...")
        if any(key in ("vis", "edge") for key in self.control_inputs):
            self.upsampler_hint_key = "vis"
            self.hint_details = "vis" if "vis" in self.control_inputs else "edge"
        elif any(key in ("seg", "depth") for key in self.control_inputs):
            self.upsampler_hint_key = [key for key in self.control_inputs if key in ("seg", "depth")][0]
        else:
            self.upsampler_hint_key = None
        if self.upsampler_hint_key:
            self.prompt_upsampler = PixtralPromptUpsampler(
                checkpoint_dir=self.checkpoint_dir,
                offload_prompt_upsampler=self.offload_prompt_upsampler,
            )
        log.info(
            f"Prompt upsampler initialized with hint key: {self.upsampler_hint_key} "
            f"and hint details: {self.hint_details}"
        )

    def _process_prompt_upsampler(self, prompt, video_path, save_folder):
        """Choose the video the upsampler sees, upsample, return the new prompt."""
        if not self.prompt_upsampler:
            return prompt
        log.info(f"Upsampling prompt with controlnet: {self.upsampler_hint_key}")
        if self.upsampler_hint_key in ["vis"]:
            given = self.control_inputs[self.hint_details].get("input_control", None)
            if given is not None:
                input_control_path = given
            else:
                input_control_path = generate_control_input(
                    input_file_path=video_path,
                    save_folder=save_folder,
                    hint_key=f"control_input_{self.hint_details}",
                    blur_strength=self.blur_strength,
                    canny_threshold=self.canny_threshold,
                )
        else:
            input_control_path = self.control_inputs[self.upsampler_hint_key].get("input_control", None)

        if not _standin.patched():
            return self.prompt_upsampler._prompt_upsample_with_offload(prompt=prompt, video_path=input_control_path)

        # Patched: the plugin-aware call that replaces upstream's single line.
        try:
            from cosmos_upsample_fix.runtime import run_upsampler
        except ImportError:
            run_upsampler = None
        if run_upsampler is not None:
            return run_upsampler(
                self.prompt_upsampler,
                prompt,
                input_control_path,
                policy=getattr(self, "upsampler_policy", None),
                endpoint=getattr(self, "upsampler_endpoint", None),
            )
        if getattr(self, "upsampler_policy", None):
            log.warning("--upsampler_policy is ignored: cosmos-upsample-fix is not installed")
        return self.prompt_upsampler._prompt_upsample_with_offload(prompt=prompt, video_path=input_control_path)

    def generate(
        self,
        prompt: str | list[str],
        video_path: str | list[str],
        negative_prompt: str | list[str] | None = None,
        control_inputs: dict | list[dict] = None,
        save_folder: str = "outputs/",
        batch_size: int = 1,
    ):
        """Upstream's prompt handling up to the final prompts; returns ``(videos, final_prompts)``."""
        prompts = [prompt] if isinstance(prompt, str) else prompt
        video_paths = [video_path] if isinstance(video_path, str) else video_path
        control_inputs_list = [control_inputs] if not isinstance(control_inputs, list) else control_inputs
        assert len(video_paths) == batch_size, "Number of prompts and videos must match"
        assert len(control_inputs_list) == batch_size, "Number of control inputs must match batch size"
        log.info(f"Running batch generation with batch_size={batch_size}")

        if self.prompt_upsampler and int(os.environ["RANK"]) == 0:
            self._push_torchrun_environ_variables()
            upsampled = []
            for i, (single_prompt, single_video_path) in enumerate(zip(prompts, video_paths)):
                log.info(f"Upsampling prompt {i + 1}/{batch_size}: {single_prompt[:50]}...")
                subfolder = os.path.join(save_folder, f"video_{i}")
                os.makedirs(subfolder, exist_ok=True)
                new_prompt = self._process_prompt_upsampler(single_prompt, single_video_path, subfolder)
                upsampled.append(new_prompt)
                log.info(f"Upsampled prompt {i + 1}: {new_prompt[:50]}...")
            self._pop_torchrun_environ_variables()
            prompts = upsampled

        log.info("Stand-in: skipping guardrails and diffusion")
        videos = [np.zeros((1, 8, 8, 3), dtype=np.uint8) for _ in prompts]
        if self.save_input_noise:
            return videos, list(prompts), [None] * len(prompts)
        return videos, list(prompts)


class DistilledControl2WorldGenerationPipeline(DiffusionControl2WorldGenerationPipeline):
    """Distilled variant: same upsampler path; the network takes exactly one control."""

    def _load_network(self):
        assert len(self.control_inputs) == 1, "Distilled model only supports single control input"
