"""A tiny random-weight Pixtral checkpoint in Mistral format, for running a real vLLM engine on CPU.

The answers of such a model are nonsense, but every step of vLLM's request path is real:
mistral_common tokenisation of the chat (image tokens included), the Pixtral vision encoder,
the ``max_model_len`` check, ``LLM.chat`` and ``vllm serve``.

Needs only numpy and mistral_common (for its bundled Pixtral-12B ``tekken.json``): no torch, and
the safetensors file is written directly in its documented format (8-byte little-endian header
length, JSON header, raw little-endian data), because the ``safetensors`` package's low-level
``serialize_file`` changed its argument type in 0.8 and numpy has no bfloat16 dtype.
"""

from __future__ import annotations

import json
import shutil
from importlib.resources import files
from pathlib import Path

import numpy as np

#: Where upstream's upsampler looks under its ``checkpoint_dir``.
MODEL_SUBDIR = Path("nvidia") / "Cosmos-UpsamplePrompt1-12B-Transfer"

#: The Pixtral-12B ``params.json`` key set with tiny sizes. The image geometry (``image_size``
#: 1024, ``patch_size`` 16), the image token id and the vocabulary size are the real ones, so
#: requests are tokenised and counted exactly as for the real model.
PARAMS: dict[str, object] = {
    "dim": 128,
    "n_layers": 1,
    "head_dim": 64,
    "hidden_dim": 256,
    "n_heads": 2,
    "n_kv_heads": 1,
    "rope_theta": 1000000000.0,
    "norm_eps": 1e-05,
    "vocab_size": 131072,
    "max_position_embeddings": 131072,
    "vision_encoder": {
        "hidden_size": 64,
        "num_channels": 3,
        "image_size": 1024,
        "patch_size": 16,
        "rope_theta": 10000.0,
        "intermediate_size": 128,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_token_id": 10,
    },
}


def tekken_path() -> Path:
    """Return the path of mistral_common's bundled Pixtral-12B tokenizer (``tekken_240911.json``)."""
    return Path(str(files("mistral_common") / "data" / "tekken_240911.json"))


def weight_shapes(params: dict[str, object] = PARAMS) -> dict[str, tuple[int, ...]]:
    """Return every tensor name and shape vLLM's ``pixtral.py`` loads for ``params``.

    Names are Mistral's consolidated ones: the language model (``tok_embeddings``, ``layers.N.*``,
    ``norm``, ``output``), ``vision_encoder.*`` and ``vision_language_adapter.*``.
    """
    dim, hd, hidden = int(params["dim"]), int(params["head_dim"]), int(params["hidden_dim"])
    nh, nkv, vocab = int(params["n_heads"]), int(params["n_kv_heads"]), int(params["vocab_size"])
    ve = params["vision_encoder"]
    assert isinstance(ve, dict)
    vw, vmlp, ps = int(ve["hidden_size"]), int(ve["intermediate_size"]), int(ve["patch_size"])

    shapes: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (vocab, dim)}
    for i in range(int(params["n_layers"])):
        p = f"layers.{i}."
        shapes |= {
            p + "attention.wq.weight": (nh * hd, dim),
            p + "attention.wk.weight": (nkv * hd, dim),
            p + "attention.wv.weight": (nkv * hd, dim),
            p + "attention.wo.weight": (dim, nh * hd),
            p + "feed_forward.w1.weight": (hidden, dim),
            p + "feed_forward.w2.weight": (dim, hidden),
            p + "feed_forward.w3.weight": (hidden, dim),
            p + "attention_norm.weight": (dim,),
            p + "ffn_norm.weight": (dim,),
        }
    shapes |= {"norm.weight": (dim,), "output.weight": (vocab, dim)}

    v = "vision_encoder."
    shapes |= {v + "patch_conv.weight": (vw, int(ve["num_channels"]), ps, ps), v + "ln_pre.weight": (vw,)}
    for i in range(int(ve["num_hidden_layers"])):
        p = f"{v}transformer.layers.{i}."
        shapes |= {
            p + "attention.wq.weight": (vw, vw),
            p + "attention.wk.weight": (vw, vw),
            p + "attention.wv.weight": (vw, vw),
            p + "attention.wo.weight": (vw, vw),
            p + "feed_forward.w1.weight": (vmlp, vw),
            p + "feed_forward.w2.weight": (vw, vmlp),
            p + "feed_forward.w3.weight": (vmlp, vw),
            p + "attention_norm.weight": (vw,),
            p + "ffn_norm.weight": (vw,),
        }
    a = "vision_language_adapter."
    shapes |= {
        a + "w_in.weight": (dim, vw),
        a + "w_in.bias": (dim,),
        a + "w_out.weight": (dim, dim),
        a + "w_out.bias": (dim,),
    }
    return shapes


def _bf16_bytes(values: np.ndarray) -> bytes:
    """Return float32 ``values`` as little-endian bfloat16 bytes (round to nearest even)."""
    bits = np.ascontiguousarray(values, dtype="<f4").view("<u4")
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def make_checkpoint(folder: Path, *, seed: int = 0) -> Path:
    """Write the tiny Pixtral under ``folder`` in upstream's layout and return the model folder.

    ``folder`` plays upstream's ``checkpoint_dir``; the model is written to
    ``folder/nvidia/Cosmos-UpsamplePrompt1-12B-Transfer/`` as ``params.json``, ``tekken.json`` and
    ``consolidated.safetensors`` (bf16, about 68 MB). The same ``seed`` gives the same bytes.
    """
    model_dir = Path(folder) / MODEL_SUBDIR
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "params.json").write_text(json.dumps(PARAMS, indent=2) + "\n")
    shutil.copyfile(tekken_path(), model_dir / "tekken.json")

    rng = np.random.default_rng(seed)
    blobs: dict[str, bytes] = {}
    for name, shape in weight_shapes().items():
        if name.endswith(("norm.weight", "ln_pre.weight")):
            values = np.ones(shape, dtype=np.float32)
        elif name.endswith(".bias"):
            values = np.zeros(shape, dtype=np.float32)
        else:
            values = rng.normal(0.0, 0.02, size=shape).astype(np.float32)
        blobs[name] = _bf16_bytes(values)
    write_safetensors(model_dir / "consolidated.safetensors", blobs, weight_shapes())
    return model_dir


def write_safetensors(path: Path, blobs: dict[str, bytes], shapes: dict[str, tuple[int, ...]]) -> None:
    """Write bf16 tensors (raw bytes per name, in order) as a safetensors file."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, blob in blobs.items():
        header[name] = {"dtype": "BF16", "shape": list(shapes[name]), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as out:
        out.write(len(head).to_bytes(8, "little"))
        out.write(head)
        for blob in blobs.values():
            out.write(blob)


if __name__ == "__main__":  # python tests/engine/tiny_pixtral.py FOLDER
    import sys

    print(make_checkpoint(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-checkpoint")))
