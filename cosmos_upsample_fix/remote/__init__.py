"""The shared upsampler server: planned requests sent to ``vllm serve`` through its OpenAI API."""
