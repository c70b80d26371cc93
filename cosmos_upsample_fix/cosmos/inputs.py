"""Which file Cosmos-Transfer1's prompt upsampler reads for each item of a run.

Follows upstream's ``transfer.py`` (``--controlnet_specs`` JSON, ``--batch_input_path``
JSONL, ``--prompt`` / ``--input_video_path``) and ``_init_prompt_upsampler`` /
``_process_prompt_upsampler`` of its pipeline:

* the hint key: ``vis`` or ``edge`` in the specs (``vis`` first), else the first of
  ``seg`` / ``depth`` in the file's order, else no upsampler at all;
* vis/edge: the specs' ``input_control`` when given, else a control video that upstream
  generates from the item's input video (its first 10 frames, at the input's size);
* seg/depth: the specs' ``input_control``.

Upstream reads these from the pipeline's own copy of the specs, so a JSONL line's
``control_overrides`` change what the diffusion model gets but not what the upsampler
reads; an item notes such an override. Pure apart from reading the two files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosmos_upsample_fix.errors import InputError

VALID_HINT_KEYS = ("vis", "seg", "edge", "depth", "keypoint", "upscale", "hdmap", "lidar")
"""The control keys upstream accepts in a specs file (other keys are arguments such as ``prompt``)."""

GENERATED_FRAMES = 10
"""How many leading frames of the input video upstream turns into the generated vis/edge control."""


@dataclass(frozen=True)
class Item:
    """One upsampler call of a run: where it came from, the file it reads, and the prompt.

    ``input`` is the file the upsampler reads, or for a ``generated`` control the input
    video it is made from (the control has that video's size). ``hint`` is the control
    key (None for a plain file); ``runs`` is False when the run builds no upsampler;
    ``error`` says why upstream's upsampler could not run.
    """

    source: str
    prompt: str | None
    input: str | None
    hint: str | None = None
    generated: bool = False
    error: str | None = None
    note: str | None = None
    runs: bool = True

    @property
    def plannable(self) -> bool:
        """True when there is a file to plan (an upsampler runs and nothing failed yet)."""
        return self.runs and self.error is None and self.input is not None


def _hint_key(controls: dict[str, Any]) -> tuple[str | None, str | None]:
    """(upsampler hint key, its detail key) as ``_init_prompt_upsampler`` picks them."""
    if "vis" in controls or "edge" in controls:
        return "vis", ("vis" if "vis" in controls else "edge")
    others = [key for key in controls if key in ("seg", "depth")]
    return (others[0], others[0]) if others else (None, None)


def load_specs(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(controls, arguments) of a ``--controlnet_specs`` file, split as upstream splits them."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--controlnet_specs {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--controlnet_specs {path} cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--controlnet_specs {path} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"--controlnet_specs {path} must hold a JSON object")
    controls: dict[str, Any] = {}
    arguments: dict[str, Any] = {}
    for key, value in data.items():
        if key in VALID_HINT_KEYS:
            if not isinstance(value, dict):
                raise InputError(f"--controlnet_specs {path}: {key} must be an object")
            controls[key] = value
        elif isinstance(value, dict):
            raise InputError(
                f"--controlnet_specs {path}: invalid hint key {key!r} (one of {', '.join(VALID_HINT_KEYS)})")
        else:
            arguments[key] = value
    return controls, arguments


def resolve(controls: dict[str, Any], source: str, prompt: str | None, video: str | None,
            overrides: Any = None) -> Item:
    """The item for one (prompt, input video) pair under the specs' ``controls``."""
    hint, detail = _hint_key(controls)
    if hint is None:
        return Item(source, prompt, None, note="no vis, edge, seg or depth control: upstream runs no upsampler",
                    runs=False)
    assert detail is not None
    given = controls[detail].get("input_control")
    note = None
    if isinstance(overrides, dict) and isinstance(overrides.get(detail), dict) and "input_control" in overrides[detail]:
        note = f"control_overrides.{detail}.input_control is not what the upsampler reads (upstream uses the specs')"
    if given is not None:
        return Item(source, prompt, str(given), detail, note=note)
    if hint == "vis":
        if not video:
            return Item(source, prompt, None, detail, True, f"no input video to generate the {detail} control from")
        return Item(source, prompt, str(video), detail, True, note=note)
    return Item(source, prompt, None, detail, error=(
        f"the {detail} control has no input_control in the specs; upstream's upsampler then gets no video "
        "(the control its preprocessor makes is not passed to it)"))


def specs_items(specs: str, batch: str | None = None, prompt: str | None = None,
                input_video: str | None = None) -> list[Item]:
    """The items of a run: one per ``--batch_input_path`` line, else the single specs item.

    ``prompt`` / ``input_video`` are ``--prompt`` / ``--input_video_path`` given on the
    command line; as in upstream they win over the specs file's ``prompt`` /
    ``input_video_path`` (and a batch line carries its own).
    """
    controls, arguments = load_specs(specs)
    if batch is None:
        the_prompt = prompt if prompt is not None else arguments.get("prompt")
        video = input_video if input_video is not None else arguments.get("input_video_path")
        return [resolve(controls, specs, _text(the_prompt), _text(video))]
    return [resolve(controls, source, _text(line.get("prompt")), _text(line.get("visual_input")),
                    line.get("control_overrides")) if error is None else Item(source, None, None, error=error)
            for source, line, error in read_batch(batch)]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def read_batch(path: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """Each line of a ``--batch_input_path`` JSONL file as (``FILE:LINE``, object, error).

    A line upstream's reader would choke on (not a JSON object) is kept as an error.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"--batch_input_path {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--batch_input_path {path} cannot be read ({exc})") from None
    out: list[tuple[str, dict[str, Any], str | None]] = []
    for number, line in enumerate(lines, start=1):
        source = f"{path}:{number}"
        try:
            data = json.loads(line.strip())
        except json.JSONDecodeError as exc:
            out.append((source, {}, f"line {number} is not JSON ({exc.msg})"))
            continue
        if not isinstance(data, dict):
            out.append((source, {}, f"line {number} is not a JSON object"))
            continue
        out.append((source, data, None))
    return out

