"""A bug in the package is reported as the package's (exit 1, "internal error"), never as bad input.

Each function the package defines on the ``prepare`` path (the frames readers, images,
planner, policies, budget, model; found by tracing real ``prepare`` runs, not listed by hand)
is made to raise ``ValueError`` and then ``RuntimeError``, the types PyAV and Pillow also
raise for broken files, and ``prepare`` runs again in-process. The exit status must never be
2 ("... cannot be read, corrupt or truncated"): when the planted error fires it is 1, with
the one-line internal-error message that points to ``COSMOS_UPSAMPLE_FIX_DEBUG``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import threading
import types
from pathlib import Path

import pytest
from PIL import Image

try:  # tests/ is on sys.path in pytest's default (prepend) import mode
    from clips import make_clip, make_image
except ImportError:  # pragma: no cover
    from tests.clips import make_clip, make_image

from cosmos_upsample_fix.media import frames
from cosmos_upsample_fix.tools import cli

MODULES = ["cosmos_upsample_fix.media.images", "cosmos_upsample_fix.planning.planner",
           "cosmos_upsample_fix.core.policies", "cosmos_upsample_fix.core.budget",
           "cosmos_upsample_fix.planning.tokenizer"] + sorted(
    f"cosmos_upsample_fix.media.frames.{m.name}" for m in pkgutil.iter_modules(frames.__path__))
PLANTED = (ValueError, RuntimeError)
# a small context, so the tiny clips are downscaled (the resize path runs too)
SMALL = ["--max-model-len", "700", "--reserve-output", "100"]


def _functions() -> dict[types.CodeType, tuple[str, types.FunctionType]]:
    """code object -> (qualified name, function) of every function and method the modules define."""
    found: dict[types.CodeType, tuple[str, types.FunctionType]] = {}

    def add(name: str, value: object, filename: str) -> None:
        value = inspect.unwrap(value) if callable(value) else value  # type: ignore[arg-type]
        if isinstance(value, property):
            for part, accessor in (("fget", value.fget), ("fset", value.fset)):
                if accessor is not None:
                    add(f"{name}.{part}", accessor, filename)
        elif isinstance(value, (staticmethod, classmethod)):
            add(name, value.__func__, filename)
        elif isinstance(value, types.FunctionType) and value.__code__.co_filename == filename:
            if not value.__code__.co_freevars:  # closures cannot take another code object
                found[value.__code__] = (name, value)

    for module_name in MODULES:
        module = importlib.import_module(module_name)
        filename = module.__file__
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module_name:
                for attr, member in vars(value).items():
                    add(f"{module_name}.{name}.{attr}", member, filename)
            else:
                add(f"{module_name}.{name}", value, filename)
    return found


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> list[list[str]]:
    """``prepare`` argument lists that together walk the readers: first, seeking, rotation, stills, lists."""
    folder = tmp_path_factory.mktemp("contract")
    clip = make_clip(folder / "clip.mp4", 320, 240, frames=12, gop=4, bframes=2)
    rotated = make_clip(folder / "rotated.mp4", 320, 192, frames=3, rotation=90)
    still = make_image(folder / "still.jpg", 320, 240)
    exif = folder / "exif.jpg"
    exif_data = Image.Exif()
    exif_data[0x0112] = 6
    Image.open(still).save(exif, exif=exif_data)
    grey16 = folder / "grey16.png"
    Image.new("I;16", (200, 120), 4000).save(grey16)
    return [
        [str(clip)],
        [str(clip), "--select", "uniform"],
        [str(rotated), "--select", "ends"],
        [str(exif), "--frames", "1"],
        [str(still), str(grey16)],
    ]


def _prepare(argv: list[str], out: Path, capsys) -> tuple[int, str]:
    code = cli.main(["prepare", *argv, "--out-dir", str(out), *SMALL])
    return code, capsys.readouterr().err


def _traced(argv: list[str], out: Path, candidates, capsys) -> list[types.CodeType]:
    """Run ``prepare`` once for real and return the package functions it called, in first-call order."""
    called: dict[types.CodeType, None] = {}

    def profile(frame, event, _arg):
        if event == "call" and frame.f_code in candidates:
            called.setdefault(frame.f_code, None)

    threading.setprofile(profile)  # resize_all uses worker threads
    sys.setprofile(profile)
    try:
        code, err = _prepare(argv, out, capsys)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    assert code == 0, err
    return list(called)


def _raiser(kind: type[Exception], name: str) -> types.CodeType:
    namespace: dict[str, object] = {}
    exec(f"def planted(*args, **kwargs):\n    raise {kind.__name__}('planted in {name}')\n", namespace)
    return namespace["planted"].__code__  # type: ignore[attr-defined]


def test_package_errors_are_internal_errors(scenarios, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COSMOS_UPSAMPLE_FIX_DEBUG", raising=False)
    candidates = _functions()
    planted: dict[str, set[str]] = {}
    wrong: list[str] = []
    runs = 0
    for n, argv in enumerate(scenarios):
        for code_object in _traced(argv, tmp_path / f"trace{n}", candidates, capsys):
            name, function = candidates[code_object]
            if name in planted:
                continue  # each function once, in the first scenario that reaches it
            planted[name] = set()
            for kind in PLANTED:
                runs += 1
                with monkeypatch.context() as patch:
                    patch.setattr(function, "__code__", _raiser(kind, name))
                    status, err = _prepare(argv, tmp_path / f"run{runs}", capsys)
                if status == 2 or (f"planted in {name}" in err and status != 1):
                    wrong.append(f"{name} raising {kind.__name__}: exit {status}: {err.strip()}")
                elif f"planted in {name}" in err:
                    lines = err.strip().splitlines()
                    assert lines[-1].startswith("cosmos-upsample-fix: internal error: "), err
                    assert "COSMOS_UPSAMPLE_FIX_DEBUG=1" in lines[-1]
                    planted[name].add(kind.__name__)
    assert not wrong, "\n".join(wrong)
    fired = {name for name, kinds in planted.items() if kinds}
    # the trace really covered the readers and the resize, and the plantings really fired
    for must in ("frames.reading.read_frames", "frames.video.read_seeking", "frames.orientation.turn",
                 "frames.stills.read_still", "frames.container.Decoder.__iter__", "images.resize",
                 "planner.plan_frames", "policies.plan_sizes", "budget.count_request"):
        assert any(name.endswith(must) for name in fired), f"{must} was not planted"
    assert len(fired) >= 40, sorted(planted)
