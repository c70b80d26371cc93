"""Stand-in ``vllm.LLM``: offline chat with a Mistral-format multimodal model, minus the GPU.

What ``LLM.chat`` reproduces from vLLM 0.9.2 (``tokenizer_mode="mistral"``), in vLLM's order:

1. ``messages`` is one conversation or a list of conversations (a list whose first element
   is a list).
2. Each conversation's content parts are parsed: ``text`` parts, ``image_url`` parts
   (data URLs are decoded; the media type in the URL is not checked, as in vLLM). Each
   image counts against the per-prompt limit; one too many raises vLLM's error
   ``At most N image(s) may be provided in one request. ...``
   (``vllm/entrypoints/chat_utils.py``, ``BaseMultiModalItemTracker.add``).
3. The conversation becomes a mistral_common ``ChatCompletionRequest`` encoded by
   ``encode_chat_completion``: BOS, [INST], image tokens, text tokens, [/INST]. Errors of
   mistral_common become ``ValueError`` (``apply_mistral_chat_template``).
4. The prompt is checked like vLLM's V1 ``Processor._validate_model_input``
   (``vllm/v1/engine/processor.py``): a prompt longer than ``max_model_len`` raises
   ``ValueError("The decoder prompt (length N) is longer than the maximum model length of M. ...")``.
5. The answer is fake but deterministic: ``"Upsampled: <prompt text> [N images, T tokens]"``,
   cut to the tokens vLLM would let the model produce (``max_tokens``, and what is left of
   ``max_model_len``; at least one token).

Every call, failed or not, is appended to ``LLM.calls`` as a :class:`ChatCall`.
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import json
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllm.config import ModelConfig, MultiModalConfig
from vllm.engine.llm_engine import LLMEngine
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams
from vllm.transformers_utils.tokenizers.mistral import MistralTokenizer

MULTIMODAL_SUGGESTION = (
    "Make sure that `max_model_len` is no smaller than the number of text tokens plus "
    "multimodal tokens. For image inputs, the number of image tokens depends on the number "
    "of images, and possibly their aspect ratios as well."
)
TEXT_SUGGESTION = "Make sure that `max_model_len` is no smaller than the number of text tokens."

# EngineArgs fields accepted as extra keyword arguments (vLLM rejects unknown ones).
_ENGINE_KWARGS = {
    "max_model_len",
    "limit_mm_per_prompt",
    "max_num_seqs",
    "max_num_batched_tokens",
    "enable_prefix_caching",
    "enable_chunked_prefill",
    "disable_log_stats",
    "distributed_executor_backend",
    "pipeline_parallel_size",
    "data_parallel_size",
    "kv_cache_dtype",
    "load_format",
    "config_format",
    "max_logprobs",
    "block_size",
    "media_io_kwargs",
    "disable_mm_preprocessor_cache",
    "enable_lora",
    "max_lora_rank",
    "worker_cls",
    "enable_sleep_mode",
}

_CHAT_TEXT_PART_TYPES = {"text", "input_text"}


@dataclass
class ChatCall:
    """What the engine received in one conversation of one ``LLM.chat`` call."""

    instance: int  # serial number of the LLM object (1 = first built since the last reset)
    model: str
    max_model_len: int
    image_limit: int
    prompt_text: str
    num_images: int = 0
    image_sizes: list[tuple[int, int]] = field(default_factory=list)  # (w, h) as decoded
    image_media_types: list[str] = field(default_factory=list)  # as labelled in the data URL
    image_formats: list[str | None] = field(default_factory=list)  # as PIL saw the bytes
    processed_sizes: list[tuple[int, int]] = field(default_factory=list)  # (w, h) fed to the encoder
    image_tokens: list[int] = field(default_factory=list)  # tokens per image
    num_tokens: int | None = None  # whole prompt; None if tokenization never happened
    max_tokens: int | None = None
    temperature: float | None = None
    output_text: str | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None  # str() of the exception raised for this conversation

    @property
    def ok(self) -> bool:
        return self.error is None


def _is_list_of_lists(value: Any) -> bool:
    return isinstance(value, list) and (len(value) == 0 or isinstance(value[0], list))


def _decode_data_url(url: str):
    """``(media_type, PIL image)`` from a ``data:<type>;base64,<payload>`` URL."""
    from PIL import Image

    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise ValueError("Only base64 data URLs are supported for now.")
    media_type = header[len("data:") :].split(";", 1)[0]
    try:
        raw = base64.b64decode(payload, validate=False)
    except binascii.Error as exc:
        raise ValueError(f"Invalid base64 image data: {exc}") from exc
    image = Image.open(io.BytesIO(raw))
    image.load()
    return media_type, image


class LLM:
    """Offline engine stand-in. Build it like ``vllm.LLM``; chat with ``LLM.chat``."""

    calls: list[ChatCall] = []
    instances: int = 0
    _live: weakref.WeakSet[LLM] = weakref.WeakSet()
    _serial = itertools.count(1)

    # --- class-level bookkeeping for tests ------------------------------------------------
    @classmethod
    def reset(cls) -> None:
        """Forget recorded calls and constructions (the test fixture calls this)."""
        cls.calls.clear()
        cls.instances = 0
        cls._serial = itertools.count(1)

    @classmethod
    def live_count(cls) -> int:
        """How many engines are still referenced somewhere (a freed one is gone)."""
        return len(cls._live)

    # --- construction ---------------------------------------------------------------------
    def __init__(
        self,
        model: str,
        *,
        task: str = "auto",
        tokenizer: str | None = None,
        tokenizer_mode: str = "auto",
        skip_tokenizer_init: bool = False,
        trust_remote_code: bool = False,
        allowed_local_media_path: str = "",
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        quantization: str | None = None,
        revision: str | None = None,
        tokenizer_revision: str | None = None,
        seed: int | None = None,
        gpu_memory_utilization: float = 0.9,
        swap_space: float = 4,
        cpu_offload_gb: float = 0,
        enforce_eager: bool = False,
        max_seq_len_to_capture: int = 8192,
        disable_custom_all_reduce: bool = False,
        disable_async_output_proc: bool = False,
        hf_token: bool | str | None = None,
        hf_overrides: dict | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        override_pooler_config: Any | None = None,
        compilation_config: Any | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - _ENGINE_KWARGS)
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument '{unknown[0]}'")
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"GPU memory utilization must be within (0, 1]. Got {gpu_memory_utilization}.")
        model_dir = Path(model)
        if not model_dir.is_dir():
            raise OSError(f"stand-in vllm.LLM: model folder {model} does not exist (no hub downloads in tests)")
        if tokenizer_mode != "mistral":
            raise NotImplementedError(
                f"stand-in vllm.LLM only implements tokenizer_mode='mistral' (got {tokenizer_mode!r}); "
                "a Mistral-format folder has no Hugging Face tokenizer files"
            )
        if skip_tokenizer_init:
            raise NotImplementedError("stand-in vllm.LLM needs the tokenizer")

        params_file = model_dir / "params.json"
        params: dict = json.loads(params_file.read_text()) if params_file.is_file() else {}
        max_model_len = kwargs.get("max_model_len")
        derived = int(params.get("max_position_embeddings") or params.get("max_seq_len") or 128_000)
        if max_model_len is None:
            max_model_len = derived
        elif max_model_len > derived:
            raise ValueError(
                f"User-specified max_model_len ({max_model_len}) is greater than the derived "
                f"max_model_len (max_position_embeddings={derived} or model_max_length=None in model's "
                "config.json). This may lead to incorrect model outputs or CUDA errors. To allow overriding "
                "this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"
            )
        limits = dict(kwargs.get("limit_mm_per_prompt") or {})
        multimodal = (not params_file.is_file()) or params.get("vision_encoder") is not None
        mm_config = (
            MultiModalConfig(limit_per_prompt=limits, mm_processor_kwargs=mm_processor_kwargs) if multimodal else None
        )

        self._tokenizer = MistralTokenizer.from_pretrained(tokenizer or model)
        model_config = ModelConfig(
            model=str(model),
            tokenizer=str(tokenizer or model),
            tokenizer_mode=tokenizer_mode,
            max_model_len=int(max_model_len),
            multimodal_config=mm_config,
            params=params,
            seed=seed,
            dtype=dtype,
        )
        self.llm_engine = LLMEngine(model_config, self._tokenizer)
        self.engine_args = dict(
            model=str(model),
            tokenizer_mode=tokenizer_mode,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            **kwargs,
        )
        self.default_sampling_params: SamplingParams | None = None
        self.request_counter = itertools.count()
        type(self).instances += 1
        self.serial = next(type(self)._serial)
        type(self)._live.add(self)

    # --- vLLM's public helpers -----------------------------------------------------------
    def get_tokenizer(self, lora_request=None) -> MistralTokenizer:
        return self.llm_engine.get_tokenizer(lora_request)

    def get_default_sampling_params(self) -> SamplingParams:
        if self.default_sampling_params is None:
            self.default_sampling_params = SamplingParams()
        return self.default_sampling_params

    # --- chat -----------------------------------------------------------------------------
    def chat(
        self,
        messages,
        sampling_params: SamplingParams | list[SamplingParams] | None = None,
        use_tqdm: bool = True,
        lora_request=None,
        chat_template: str | None = None,
        chat_template_content_format: str = "auto",
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: list[dict[str, Any]] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
    ) -> list[RequestOutput]:
        """Chat like ``vllm.LLM.chat``; see the module docstring for what is checked."""
        conversations = messages if _is_list_of_lists(messages) else [messages]
        if chat_template is not None:
            raise ValueError("'chat_template' cannot be overridden for mistral tokenizer.")

        # Parse and tokenize every conversation first (vLLM builds all prompts, then runs them).
        prepared = [self._prepare(conversation, tools) for conversation in conversations]

        if sampling_params is None:
            sampling_params = self.get_default_sampling_params()
        if isinstance(sampling_params, list):
            if len(sampling_params) != len(prepared):
                raise ValueError("The lengths of prompts and sampling_params must be the same.")
            params_list = sampling_params
        else:
            params_list = [sampling_params] * len(prepared)

        outputs = []
        for (call, tokens), params in zip(prepared, params_list):
            call.max_tokens = params.max_tokens
            call.temperature = params.temperature
            self._validate(call, tokens)
            outputs.append(self._answer(call, tokens, params))
        return outputs

    def generate(self, *args, **kwargs):  # pragma: no cover - not on the upsampler's path
        raise NotImplementedError("the stand-in vllm.LLM only implements chat()")

    # --- internals ------------------------------------------------------------------------
    def _limits(self) -> tuple[int, int]:
        config = self.llm_engine.model_config
        mm = config.multimodal_config
        return config.max_model_len, (mm.get_limit_per_prompt("image") if mm is not None else 0)

    def _record(self, prompt_text: str = "") -> ChatCall:
        max_model_len, image_limit = self._limits()
        call = ChatCall(
            instance=self.serial,
            model=self.llm_engine.model_config.model,
            max_model_len=max_model_len,
            image_limit=image_limit,
            prompt_text=prompt_text,
        )
        type(self).calls.append(call)
        return call

    def _fail(self, call: ChatCall, exc: Exception) -> Exception:
        call.error = str(exc)
        return exc

    def _prepare(self, conversation: list[dict[str, Any]], tools) -> tuple[ChatCall, list[int]]:
        call = self._record()
        texts: list[str] = []
        model_config = self.llm_engine.model_config
        for message in conversation:
            content = message.get("content")
            if content is None or isinstance(content, str):
                if content:
                    texts.append(content)
                continue
            for part in content:
                part_type = part.get("type") if isinstance(part, dict) else None
                if part_type in _CHAT_TEXT_PART_TYPES:
                    texts.append(part.get("text", ""))
                elif part_type == "image_url":
                    if model_config.multimodal_config is None:
                        raise self._fail(call, ValueError("This model does not support multi-modal inputs"))
                    image_url = part.get("image_url")
                    url = image_url.get("url") if isinstance(image_url, dict) else image_url
                    allowed = model_config.multimodal_config.get_limit_per_prompt("image")
                    if call.num_images + 1 > allowed:
                        raise self._fail(
                            call,
                            ValueError(
                                f"At most {allowed} image(s) may be provided in one request. You can set "
                                "`--limit-mm-per-prompt` to increase this limit if the model supports it."
                            ),
                        )
                    call.num_images += 1
                    if not isinstance(url, str) or not url.startswith("data:"):
                        raise self._fail(
                            call, ValueError(f"stand-in vllm.LLM only loads data URLs, got {str(url)[:60]!r}")
                        )
                    try:
                        media_type, image = _decode_data_url(url)
                    except Exception as exc:  # PIL's UnidentifiedImageError and friends
                        raise self._fail(call, exc)  # noqa: B904 - vLLM's traceback shape
                    call.image_media_types.append(media_type)
                    call.image_formats.append(image.format)
                    call.image_sizes.append(tuple(image.size))
                else:
                    raise self._fail(call, NotImplementedError(f"Unknown part type: {part_type}"))
        call.prompt_text = "\n".join(texts)

        from mistral_common.exceptions import MistralCommonException

        try:
            encoded = self._tokenizer.encode_chat(conversation, tools)
        except (AssertionError, MistralCommonException) as exc:
            raise self._fail(call, ValueError(str(exc))) from exc
        except Exception as exc:
            raise self._fail(call, ValueError(str(exc))) from exc
        tokens = list(encoded.tokens)
        call.num_tokens = len(tokens)
        call.processed_sizes = [(int(img.shape[-1]), int(img.shape[-2])) for img in encoded.images]
        call.image_tokens = self._image_token_counts(tokens)
        return call, tokens

    def _image_token_counts(self, tokens: list[int]) -> list[int]:
        encoder = self._tokenizer.instruct.mm_encoder
        if encoder is None:
            return []
        ids = encoder.special_ids
        image_ids = {ids.img, ids.img_break, ids.img_end}
        counts, current = [], 0
        for token in tokens:
            if token in image_ids:
                current += 1
                if token == ids.img_end:
                    counts.append(current)
                    current = 0
        return counts

    def _validate(self, call: ChatCall, tokens: list[int]) -> None:
        model_config = self.llm_engine.model_config
        if not tokens:
            raise self._fail(call, ValueError("The decoder prompt cannot be empty"))
        max_input_id = max(tokens, default=0)
        if max_input_id > self._tokenizer.max_token_id:
            raise self._fail(call, ValueError(f"Token id {max_input_id} is out of vocabulary"))
        max_prompt_len = model_config.max_model_len
        if len(tokens) > max_prompt_len:
            suggestion = MULTIMODAL_SUGGESTION if model_config.is_multimodal_model else TEXT_SUGGESTION
            raise self._fail(
                call,
                ValueError(
                    f"The decoder prompt (length {len(tokens)}) is longer than the maximum model length of "
                    f"{max_prompt_len}. {suggestion}"
                ),
            )

    def _answer(self, call: ChatCall, tokens: list[int], params: SamplingParams) -> RequestOutput:
        raw = self._tokenizer.tokenizer
        text = f"Upsampled: {call.prompt_text} [{call.num_images} images, {len(tokens)} tokens]"
        answer_ids = raw.encode(text, bos=False, eos=False)
        room = max(1, self.llm_engine.model_config.max_model_len - len(tokens))
        budget = room if params.max_tokens is None else min(params.max_tokens, room)
        finish_reason = "stop"
        if len(answer_ids) > budget:
            answer_ids = answer_ids[:budget]
            text = raw.decode(answer_ids)
            finish_reason = "length"
        call.output_text = text
        call.output_tokens = len(answer_ids)
        call.finish_reason = finish_reason
        completion = CompletionOutput(index=0, text=text, token_ids=list(answer_ids), finish_reason=finish_reason)
        return RequestOutput(
            request_id=str(next(self.request_counter)),
            prompt=self._tokenizer.mistral.decode(tokens),
            prompt_token_ids=tokens,
            prompt_logprobs=None,
            outputs=[completion],
            finished=True,
        )
