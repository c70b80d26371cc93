"""Test stand-in for the parts of vLLM 0.9.2 the Cosmos prompt upsampler touches.

Written from scratch for the tests (see ``tests/standin/README.md``). It has no GPU code:
``LLM.chat`` tokenizes exactly as vLLM does for ``tokenizer_mode="mistral"``, applies
vLLM's checks with vLLM's error texts, records the call, and answers with a fake text.
"""

from vllm.config import ModelConfig, MultiModalConfig
from vllm.entrypoints.llm import LLM, ChatCall
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams

__version__ = "0.9.2+standin"

__all__ = [
    "LLM",
    "ChatCall",
    "CompletionOutput",
    "ModelConfig",
    "MultiModalConfig",
    "RequestOutput",
    "SamplingParams",
]
