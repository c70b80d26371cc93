"""Stand-in ``vllm.outputs``: the shapes of ``RequestOutput`` and ``CompletionOutput``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CompletionOutput:
    """One generated sequence."""

    index: int
    text: str
    token_ids: list[int] = field(default_factory=list)
    cumulative_logprob: float | None = None
    logprobs: list | None = None
    finish_reason: str | None = None
    stop_reason: str | None = None

    def finished(self) -> bool:
        return self.finish_reason is not None


class RequestOutput:
    """What ``LLM.chat`` returns per conversation: ``prompt``, ``prompt_token_ids``, ``outputs``."""

    def __init__(
        self,
        request_id: str,
        prompt: str | None,
        prompt_token_ids: list[int] | None,
        prompt_logprobs,
        outputs: list[CompletionOutput],
        finished: bool,
        **kwargs,
    ) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.prompt_logprobs = prompt_logprobs
        self.outputs = outputs
        self.finished = finished
        self.metrics = kwargs.get("metrics")
        self.lora_request = kwargs.get("lora_request")
        self.encoder_prompt = None
        self.encoder_prompt_token_ids = None
        self.num_cached_tokens = kwargs.get("num_cached_tokens", 0)
        self.multi_modal_placeholders = kwargs.get("multi_modal_placeholders") or {}

    def __repr__(self) -> str:
        n = len(self.prompt_token_ids or [])
        return f"RequestOutput(request_id={self.request_id!r}, prompt_tokens={n}, outputs={self.outputs!r})"
