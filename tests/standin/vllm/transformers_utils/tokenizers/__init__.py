from vllm.transformers_utils.tokenizers.mistral import MistralTokenizer

__all__ = ["MistralTokenizer"]
