"""The package's shape: layers import only the layers below them; a copy without metadata still fits."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cosmos_upsample_fix

PACKAGE = Path(cosmos_upsample_fix.__file__).resolve().parent
# Each layer may import itself and the layers of a lower rank (errors.py is below every layer).
RANKS = {"errors": 0, "core": 1, "media": 2, "planning": 3, "remote": 4, "cosmos": 5, "patching": 1, "tools": 6}
FACADES = {"__init__", "__main__", "runtime", "launch"}  # public paths: thin re-exports of their layer


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Every cosmos_upsample_fix module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cosmos_upsample_fix"):
            found.add(node.module)
            folder = PACKAGE.parent / node.module.replace(".", "/")
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (folder / a.name).is_dir() or (folder / f"{a.name}.py").exists())
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (the package uses absolute ones)")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("cosmos_upsample_fix"))
    return found


def test_every_module_sits_in_a_known_layer_and_imports_only_lower_ones():
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        layer = _layer(module)
        if layer in FACADES:
            continue
        assert layer in RANKS, f"{module} is in no layer"
        for target in _imports(path):
            other = _layer(target)
            if other in FACADES or other == layer:
                if other in FACADES and target != "cosmos_upsample_fix":
                    broken.append(f"{module} imports the facade {target}")
                continue
            if RANKS[other] >= RANKS[layer]:
                broken.append(f"{module} ({layer}) imports {target} ({other})")
    assert broken == []


def test_no_module_is_over_400_lines():
    lines = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lines.items() if n > 400} == {}


@pytest.fixture
def source_copy(tmp_path):
    """The package copied into a plain folder, as a vendored copy or a PYTHONPATH checkout holds it."""
    shutil.copytree(PACKAGE, tmp_path / "src" / "cosmos_upsample_fix", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "src"


def test_a_copy_without_installed_metadata_still_fits_the_frames(source_copy, video_clip):
    clip = video_clip(1280, 704)
    script = textwrap.dedent(f"""
        import importlib.metadata as md, sys
        ours = "cosmos-upsample-fix"
        real_version, real_eps = md.version, md.entry_points
        def version(name):
            if name == ours:
                raise md.PackageNotFoundError(name)
            return real_version(name)
        md.version = version
        md.entry_points = lambda **kw: [ep for ep in real_eps(**kw) if not ep.value.startswith("cosmos_upsample_fix")]
        sys.path.insert(0, {str(source_copy)!r})
        import cosmos_upsample_fix
        assert cosmos_upsample_fix.__file__.startswith({str(source_copy)!r}), cosmos_upsample_fix.__file__
        from PIL import Image
        from cosmos_upsample_fix.runtime import run_upsampler
        class Upsampler:
            upsampler_model = sampling_params = None
            checkpoint_dir = None
            def _prompt_upsample_with_offload(self, prompt, video_path):
                return ",".join("%dx%d" % Image.open(p).size for p in video_path)
        print(cosmos_upsample_fix.__version__, run_upsampler(Upsampler(), "a prompt", {str(clip)!r}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0+unknown", "928x512,928x512"]
