"""Test stand-in for NVIDIA Cosmos-Transfer1's prompt-upsampler path (see tests/standin/README.md).

Same module paths, names, signatures and call order as upstream; written from scratch,
without torch, diffusion or guardrails.
"""
