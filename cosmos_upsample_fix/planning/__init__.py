"""The tokenizer adapter (mistral_common) and the planner that turns an input into frames that fit."""
