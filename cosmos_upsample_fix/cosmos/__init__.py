"""The Cosmos-Transfer1 integration: install(), one upsampler call, method wrapping, live limits, hooks."""
