"""vLLM's own request path on a CPU machine, for tests/test_vllm_path.py (needs the real vLLM).

What runs is vLLM's code: ``EngineArgs.create_model_config`` on a folder holding a
Pixtral-12B ``params.json`` and ``tekken.json`` (no weights), vLLM's mistral tokenizer
wrapper, ``LLM.chat`` (message parsing, ``apply_mistral_chat_template``), the V1
``LLMEngine.add_request`` and ``Processor.process_inputs`` (the Pixtral multimodal
processor and the ``max_model_len`` check), and V0's ``LLMEngine._validate_model_input``.

Three things stand in, because a CPU machine without vLLM's CPU build cannot make them:
``VllmConfig`` (its ``__post_init__`` asks the platform, which is vLLM's
``UnspecifiedPlatform`` here and raises ``NotImplementedError``) is a namespace holding the
real ModelConfig, CacheConfig, ParallelConfig, DecodingConfig and SchedulerConfig; the
engine core (the GPU worker) is a recorder that stops the call with :class:`Reached`
once a request has passed every check; ``LLM.__init__`` (which builds that engine) is
skipped and the real V1 ``LLMEngine`` is made without its ``__init__``.
"""
from __future__ import annotations

import base64
import itertools
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PIXTRAL_PARAMS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "pixtral-12b-params.json"
EMPTY_PROMPT = "describe the following images"  # upstream's text for an empty prompt


class Reached(Exception):
    """Raised by the stand-in engine core: the request passed vLLM's checks and reached the core."""

    def __init__(self, request: Any) -> None:
        super().__init__(request.request_id)
        self.request = request


class _Core:
    """The engine core's place: records the request and stops there."""

    def add_request(self, request: Any) -> None:
        raise Reached(request)


class _Outputs:
    """The output processor's place (nothing is generated)."""

    def add_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def model_folder(folder: Path, params: Path | None = None) -> Path:
    """A model folder in Mistral format: params.json (Pixtral-12B's) and mistral_common's bundled tekken.json."""
    import mistral_common

    folder.mkdir(parents=True, exist_ok=True)
    source = params or PIXTRAL_PARAMS
    if not source.is_file():
        import json

        from conftest import PIXTRAL_PARAMS as fallback  # the same vision settings, kept in the tests

        (folder / "params.json").write_text(json.dumps(fallback))
    else:
        shutil.copyfile(source, folder / "params.json")
    shutil.copyfile(Path(mistral_common.__file__).parent / "data" / "tekken_240911.json", folder / "tekken.json")
    return folder


@dataclass
class Engine:
    """vLLM's pieces around one model folder, built as upstream's ``LLM(...)`` would build them."""

    model_config: Any
    tokenizer_group: Any
    processor: Any
    llm: Any
    sampling_params: Any

    def chat(self, message: dict[str, Any]) -> Any:
        """``LLM.chat([message])`` as upstream calls it; returns the request that reached the core.

        Raises vLLM's ValueError when vLLM refuses the request.
        """
        try:
            self.llm.chat([message], sampling_params=self.sampling_params)  # upstream's call
        except Reached as reached:
            return reached.request
        raise AssertionError("LLM.chat returned without sending a request")

    def template_tokens(self, message: dict[str, Any]) -> list[int]:
        """vLLM's ``apply_mistral_chat_template`` on the raw message (what ``LLM.chat`` calls)."""
        from vllm.entrypoints.chat_utils import apply_mistral_chat_template

        return list(apply_mistral_chat_template(
            self.tokenizer_group.tokenizer, messages=[message], chat_template=None, tools=None,
            add_generation_prompt=True, continue_final_message=False,
        ))

    def validate_v0(self, message: dict[str, Any]) -> None:
        """V0's ``LLMEngine._validate_model_input`` on the preprocessed request (raises like V0 does)."""
        from vllm.engine.llm_engine import LLMEngine as V0Engine
        from vllm.inputs import TokensPrompt
        from vllm.inputs.parse import split_enc_dec_inputs

        ids = self.template_tokens(message)
        _, mm_data = self._parse(message)
        prompt = TokensPrompt(prompt_token_ids=ids)
        if mm_data is not None:
            prompt["multi_modal_data"] = mm_data
        inputs = self.processor.input_preprocessor.preprocess(prompt)
        _, decoder = split_enc_dec_inputs(inputs)
        host = SimpleNamespace(model_config=self.model_config, tokenizer=self.tokenizer_group,
                               input_preprocessor=self.processor.input_preprocessor)
        V0Engine._validate_model_input(host, decoder, None, prompt_type="decoder")

    def _parse(self, message: dict[str, Any]) -> tuple[Any, Any]:
        from vllm.entrypoints.chat_utils import parse_chat_messages

        return parse_chat_messages([message], self.model_config, self.tokenizer_group.tokenizer,
                                   content_format="string")


def build_engine(folder: Path, *, max_model_len: int = 4096, image_limit: int = 2, max_tokens: int = 300) -> Engine:
    """vLLM's config, tokenizer, processor and ``LLM`` for ``folder`` with upstream's engine arguments."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: nothing to fetch
    from vllm import LLM, SamplingParams
    from vllm.config import CacheConfig, DecodingConfig, ParallelConfig, SchedulerConfig
    from vllm.engine.arg_utils import EngineArgs
    from vllm.transformers_utils.tokenizer_group import init_tokenizer_from_configs
    from vllm.v1.engine.llm_engine import LLMEngine
    from vllm.v1.engine.processor import Processor

    args = EngineArgs(  # upstream's PixtralPromptUpsampler._load_upsampler_model arguments
        model=str(folder), tensor_parallel_size=1, tokenizer_mode="mistral", gpu_memory_utilization=0.98,
        max_model_len=max_model_len, max_num_seqs=2, limit_mm_per_prompt={"image": image_limit},
        enable_prefix_caching=True,
    )
    model_config = args.create_model_config()
    scheduler_config = SchedulerConfig(max_model_len=model_config.max_model_len, max_num_seqs=2,
                                       is_multimodal_model=model_config.is_multimodal_model)
    config = SimpleNamespace(
        model_config=model_config,
        cache_config=CacheConfig(block_size=16, gpu_memory_utilization=0.98, swap_space=0, cache_dtype="auto",
                                 enable_prefix_caching=True),
        lora_config=None, decoding_config=DecodingConfig(), parallel_config=ParallelConfig(),
        scheduler_config=scheduler_config,
    )
    tokenizer_group = init_tokenizer_from_configs(model_config=model_config, scheduler_config=scheduler_config,
                                                  lora_config=None)
    processor = Processor(config, tokenizer_group)
    engine = object.__new__(LLMEngine)
    engine.model_config = model_config
    engine.tokenizer = tokenizer_group
    engine.processor = processor
    engine.output_processor = _Outputs()
    engine.engine_core = _Core()
    llm = object.__new__(LLM)
    llm.llm_engine = engine
    llm.engine_class = LLMEngine
    llm.request_counter = itertools.count()
    llm.default_sampling_params = None
    sampling = SamplingParams(temperature=0.6, max_tokens=max_tokens)  # upstream's
    return Engine(model_config, tokenizer_group, processor, llm, sampling)


def upstream_message(image_paths: Sequence[str | os.PathLike[str]], prompt: str | None) -> dict[str, Any]:
    """The message upstream's ``_prompt_upsample`` builds: one user message, each image file's bytes
    in base64 as a data URL labelled ``image/jpeg`` (whatever the format), then the text."""
    content: list[dict[str, Any]] = []
    for path in image_paths:
        data = base64.b64encode(Path(path).read_bytes()).decode("utf-8")
        content.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}})
    content.append({"type": "text", "text": prompt if prompt else EMPTY_PROMPT})
    return {"role": "user", "content": content}


def upstream_frames(video: str | os.PathLike[str], folder: Path, count: int = 2) -> list[Path]:
    """What upstream's ``extract_video_frames`` writes: OpenCV's first ``count`` frames as full-size PNGs."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(video))
    paths: list[Path] = []
    try:
        for i in range(count):
            ok, frame = capture.read()
            if not ok:
                break
            path = folder / f"frame_{i + 1}.png"
            cv2.imwrite(str(path), frame)
            paths.append(path)
    finally:
        capture.release()
    return paths
