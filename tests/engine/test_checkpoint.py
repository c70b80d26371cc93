"""The tiny checkpoint: upstream's layout, the real image geometry and tokenizer, vLLM-loadable names."""
from __future__ import annotations

import json

from .tiny_pixtral import MODEL_SUBDIR, weight_shapes


def test_checkpoint_has_upstreams_layout_and_pixtrals_image_geometry(tiny_checkpoint):
    folder = tiny_checkpoint / MODEL_SUBDIR
    assert sorted(p.name for p in folder.iterdir()) == ["consolidated.safetensors", "params.json", "tekken.json"]
    params = json.loads((folder / "params.json").read_text())
    assert (params["vision_encoder"]["image_size"], params["vision_encoder"]["patch_size"]) == (1024, 16)
    from safetensors import safe_open

    with safe_open(str(folder / "consolidated.safetensors"), framework="np") as f:
        assert set(f.keys()) == set(weight_shapes())
