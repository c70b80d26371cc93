"""Stand-in for the engine object behind ``LLM.llm_engine`` (vLLM 0.9.2 runs the V1 engine)."""

from __future__ import annotations

from types import SimpleNamespace

from vllm.config import ModelConfig


class LLMEngine:
    """Holds the model config and the tokenizer; ``LLM`` does the rest."""

    def __init__(self, model_config: ModelConfig, tokenizer) -> None:
        self.model_config = model_config
        self.vllm_config = SimpleNamespace(model_config=model_config)
        self.tokenizer = SimpleNamespace(get_lora_tokenizer=lambda lora_request=None: tokenizer, tokenizer=tokenizer)

    def get_model_config(self) -> ModelConfig:
        return self.model_config

    def get_vllm_config(self):
        return self.vllm_config

    def get_tokenizer_group(self):
        return self.tokenizer

    def get_tokenizer(self, lora_request=None):
        return self.tokenizer.get_lora_tokenizer(lora_request)
