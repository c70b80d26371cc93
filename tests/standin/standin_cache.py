"""Process-wide cache for the test stand-ins (kept out of the ``vllm`` package on purpose,
so it survives the tests purging ``vllm*`` modules between tests)."""

TOKENIZERS: dict = {}
