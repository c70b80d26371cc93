"""cosmos-upsample-fix: make Cosmos-Transfer1's prompt upsampler fit its context window."""
