"""Stand-in for ``cosmos_transfer1.utils.io``: the batch-file reader."""

from __future__ import annotations

import json


def read_prompts_from_file(prompt_file: str) -> list[dict]:
    """One JSON object per line (keys ``prompt``, ``visual_input``, optional ``control_overrides``)."""
    entries = []
    with open(prompt_file) as handle:
        for line in handle:
            entries.append(json.loads(line.strip()))
    return entries
