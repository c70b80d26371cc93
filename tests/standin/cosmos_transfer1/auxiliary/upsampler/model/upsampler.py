"""Stand-in for ``cosmos_transfer1.auxiliary.upsampler.model.upsampler``.

``PixtralPromptUpsampler`` with upstream's signature, attributes and call order. The engine
is the stand-in ``vllm.LLM``. Stand-in only: the engine's ``max_model_len`` and per-prompt
image limit, hard-coded upstream (4096 and 2), can be changed for tests through the class
attributes ``standin_max_model_len`` / ``standin_image_limit`` or the variables
``STANDIN_MAX_MODEL_LEN`` / ``STANDIN_IMAGE_LIMIT`` (attributes win); unset means upstream's values.
"""

from __future__ import annotations

import gc
import os

from vllm import LLM, SamplingParams

from cosmos_transfer1 import _standin
from cosmos_transfer1.checkpoints import COSMOS_UPSAMPLER_CHECKPOINT
from cosmos_transfer1.utils.misc import extract_video_frames, image_to_base64

UPSTREAM_MAX_MODEL_LEN = 4096
UPSTREAM_IMAGE_LIMIT = 2


class PixtralPromptUpsampler:
    standin_max_model_len: int | None = None
    standin_image_limit: int | None = None

    def __init__(self, checkpoint_dir: str, offload_prompt_upsampler: bool = False):
        self.offload_prompt_upsampler = offload_prompt_upsampler
        self.checkpoint_dir = checkpoint_dir
        if not self.offload_prompt_upsampler:
            self._load_upsampler_model()

    @classmethod
    def _engine_limits(cls) -> tuple[int, int]:
        max_len = cls.standin_max_model_len or _standin.int_env(_standin.MAX_MODEL_LEN_ENV) or UPSTREAM_MAX_MODEL_LEN
        images = cls.standin_image_limit
        if images is None:
            images = _standin.int_env(_standin.IMAGE_LIMIT_ENV)
        if images is None:
            images = UPSTREAM_IMAGE_LIMIT
        return int(max_len), int(images)

    def _load_upsampler_model(self):
        """Build the engine and the sampling settings (upstream's arguments)."""
        max_model_len, image_limit = self._engine_limits()
        self.upsampler_model = LLM(
            model=os.path.join(self.checkpoint_dir, COSMOS_UPSAMPLER_CHECKPOINT),
            tensor_parallel_size=1,
            tokenizer_mode="mistral",
            gpu_memory_utilization=0.98,
            max_model_len=max_model_len,
            max_num_seqs=2,
            limit_mm_per_prompt={"image": image_limit},
            enable_prefix_caching=True,
        )
        self.sampling_params = SamplingParams(temperature=0.6, max_tokens=300)

    def _prompt_upsample_with_offload(self, prompt: str, video_path: list | str):
        """Load (when offloading), upsample, free (when offloading)."""
        if self.offload_prompt_upsampler:
            self._load_upsampler_model()
        result = self._prompt_upsample(prompt, video_path)
        if self.offload_prompt_upsampler:
            self._offload_upsampler_model()
        return result

    def _prompt_upsample(self, prompt: str, video_path: list | str):
        """One chat turn: every frame as an image_url item, then the text."""
        text = prompt if prompt else "describe the following images"
        frames = extract_video_frames(video_path) if isinstance(video_path, str) else video_path
        content = [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + image_to_base64(frame)}}
            for frame in frames
        ]
        content.append({"type": "text", "text": text})
        message = [{"role": "user", "content": content}]
        outputs = self.upsampler_model.chat([message], sampling_params=self.sampling_params)
        answer = outputs[0].outputs[0].text or ""
        return str(answer).strip()

    def _offload_upsampler_model(self):
        """Drop the engine so it can be freed (upstream also empties the CUDA cache)."""
        if self.upsampler_model:
            del self.upsampler_model
            self.upsampler_model = None
            gc.collect()
