"""Stand-in for ``cosmos_transfer1.utils.base_world_generation_pipeline`` (attributes only)."""

from __future__ import annotations


class BaseWorldGenerationPipeline:
    def __init__(
        self,
        checkpoint_dir: str,
        checkpoint_name: str,
        has_text_input: bool = True,
        offload_network: bool = False,
        offload_tokenizer: bool = False,
        offload_text_encoder_model: bool = False,
        offload_guardrail_models: bool = False,
        disable_guardrail: bool = False,
    ):
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_name = checkpoint_name
        self.has_text_input = has_text_input
        self.offload_network = offload_network
        self.offload_tokenizer = offload_tokenizer
        self.offload_text_encoder_model = offload_text_encoder_model
        self.offload_guardrail_models = offload_guardrail_models
        self.disable_guardrail = disable_guardrail
        if not self.offload_network:
            self._load_network()

    def _load_network(self):
        """No diffusion network in the stand-in."""
