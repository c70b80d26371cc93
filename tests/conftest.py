"""Shared fixtures: the vLLM / Cosmos-Transfer1 stand-ins, a fake checkpoint folder,
a private temp dir, clips, and a runner for the stand-in scripts (see tests/standin/README.md).

Nothing here is autouse: tests that do not ask for these fixtures are not affected.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from types import SimpleNamespace

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
STANDIN_DIR = TESTS_DIR / "standin"
UPSAMPLER_SUBDIR = Path("nvidia") / "Cosmos-UpsamplePrompt1-12B-Transfer"
STANDIN_PACKAGES = ("vllm", "cosmos_transfer1")
STANDIN_SWITCHES = ("STANDIN_PATCHED", "STANDIN_MAX_MODEL_LEN", "STANDIN_IMAGE_LIMIT", "STANDIN_TEMPDIR")

# Pixtral-12B's vision encoder settings (its public params.json); the image tokenization the
# stand-in engine does comes from tekken.json, which carries the same patch and image size.
PIXTRAL_PARAMS = {
    "dim": 5120,
    "n_layers": 40,
    "head_dim": 128,
    "hidden_dim": 14336,
    "n_heads": 32,
    "n_kv_heads": 8,
    "rope_theta": 1000000000.0,
    "norm_eps": 1e-05,
    "vocab_size": 131072,
    "vision_encoder": {
        "hidden_size": 1024,
        "num_channels": 3,
        "image_size": 1024,
        "patch_size": 16,
        "rope_theta": 10000.0,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_token_id": 10,
        "image_break_token_id": 12,
        "image_end_token_id": 13,
        "adapter_bias": True,
    },
}


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The versions the counting, decoding and engine tests depend on, printed above the run."""
    from importlib import metadata

    found = []
    for label, dist in (("mistral_common", "mistral_common"), ("PyAV", "av"),
                        ("OpenCV", "opencv-python-headless"), ("vLLM", "vllm")):
        try:
            found.append(f"{label} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{label} absent")
    return ["cosmos-upsample-fix tests with " + ", ".join(found)]


# What `torchrun --nproc_per_node=1` puts in a worker's environment (the keys upstream's
# scripts remove; upsampler_pipeline.py deletes each one unconditionally).
def torchrun_environ(rank: int = 0, world_size: int = 1) -> dict[str, str]:
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size),
        "GROUP_RANK": "0",
        "ROLE_RANK": str(rank),
        "ROLE_NAME": "default",
        "OMP_NUM_THREADS": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
        "TORCHELASTIC_USE_AGENT_STORE": "False",
        "TORCHELASTIC_MAX_RESTARTS": "0",
        "TORCHELASTIC_RUN_ID": "none",
        "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
        "TORCHELASTIC_ERROR_FILE": "/dev/null",
    }


def bundled_tekken() -> Path:
    """mistral_common's copy of Pixtral-12B's tokenizer file."""
    import mistral_common

    return Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"


def _purge_standin_modules() -> None:
    for name in list(sys.modules):
        if any(name == pkg or name.startswith(pkg + ".") for pkg in STANDIN_PACKAGES):
            del sys.modules[name]


class Standin:
    """Handle given by the ``standin`` fixture."""

    root = STANDIN_DIR

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    @property
    def LLM(self):
        from vllm import LLM

        return LLM

    @property
    def calls(self):
        """Conversations the stand-in engine received (``vllm.LLM.calls``)."""
        return self.LLM.calls

    @property
    def log(self):
        from cosmos_transfer1.utils import log

        return log

    def set_patched(self, patched: bool = True) -> None:
        """Make cosmos_transfer1 behave as patched by patches/cosmos-transfer1.patch (or not)."""
        if patched:
            self._monkeypatch.setenv("STANDIN_PATCHED", "1")
        else:
            self._monkeypatch.delenv("STANDIN_PATCHED", raising=False)

    def set_engine_limits(self, max_model_len: int | None = None, image_limit: int | None = None) -> None:
        """Engine limits used by PixtralPromptUpsampler._load_upsampler_model (None: upstream's)."""
        for name, value in (("STANDIN_MAX_MODEL_LEN", max_model_len), ("STANDIN_IMAGE_LIMIT", image_limit)):
            if value is None:
                self._monkeypatch.delenv(name, raising=False)
            else:
                self._monkeypatch.setenv(name, str(value))


@pytest.fixture
def standin(monkeypatch):
    """Put tests/standin first on sys.path for this test (``import vllm``, ``import cosmos_transfer1``);
    afterwards remove it, purge the stand-in modules and forget the recorded engine calls."""
    for name in STANDIN_SWITCHES:
        monkeypatch.delenv(name, raising=False)
    _purge_standin_modules()
    sys.path.insert(0, str(STANDIN_DIR))
    handle = Standin(monkeypatch)
    handle.LLM.reset()
    try:
        yield handle
    finally:
        try:
            sys.modules["vllm"].LLM.reset()
        except (KeyError, AttributeError):
            pass
        while str(STANDIN_DIR) in sys.path:
            sys.path.remove(str(STANDIN_DIR))
        _purge_standin_modules()


def make_checkpoint(checkpoint_dir: Path) -> Path:
    """Lay out a ``--checkpoint_dir`` holding the upsampler's folder with Pixtral-12B's tekken.json
    (copied from mistral_common) and a params.json with its vision encoder settings."""
    model_dir = checkpoint_dir / UPSAMPLER_SUBDIR
    model_dir.mkdir(parents=True)
    shutil.copyfile(bundled_tekken(), model_dir / "tekken.json")
    (model_dir / "params.json").write_text(json.dumps(PIXTRAL_PARAMS, indent=2))
    return checkpoint_dir


@pytest.fixture
def cosmos_checkpoint(tmp_path) -> Path:
    """A fresh checkpoint folder for this test (see :func:`make_checkpoint`)."""
    return make_checkpoint(tmp_path / "checkpoints")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """One checkpoint folder per test module (the plugin caches its tokenizer per file)."""
    return make_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="session")
def model():
    """The embedded Pixtral-12B tokenizer, loaded once (what vLLM counts with)."""
    from cosmos_upsample_fix.planning.tokenizer import load_model

    return load_model()


@pytest.fixture
def clean_plugin(monkeypatch):
    """No plugin variables from the outside; uninstalled before and after, and the hooks named in
    the yielded list unregistered afterwards."""
    from cosmos_upsample_fix.core import env
    from cosmos_upsample_fix.cosmos import hooks, runtime

    for var in env.ALL:
        for name in (var.name, *var.old):
            monkeypatch.delenv(name, raising=False)
    runtime.uninstall()
    registered: list[str] = []
    yield registered
    runtime.uninstall()
    for name in registered:
        hooks.unregister(name)


@pytest.fixture
def server():
    """The stand-in ``vllm serve`` (real HTTP on 127.0.0.1, mistral_common counts, vLLM's 400 text)."""
    from openai_server import StandInServer

    with StandInServer() as running:
        yield running


@pytest.fixture
def private_tmpdir(tmp_path, monkeypatch) -> Path:
    """A per-test temp folder as TMPDIR and tempfile.tempdir (subprocesses inherit TMPDIR)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def torchrun_env(monkeypatch):
    """Set torchrun's worker variables in os.environ (rank 0 by default); returns a setter
    ``torchrun_env(rank=1)`` for other ranks."""

    def apply(rank: int = 0, world_size: int = 1) -> dict[str, str]:
        env = torchrun_environ(rank, world_size)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env

    apply()
    return apply


# ----------------------------------------------------------------------------- clips
from clips import make_clip as _make_clip  # noqa: E402  # tests/clips.py (pytest puts tests/ on sys.path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[tuple[int, int], Path]:
    """3-frame clips shared by a module, in a folder of their own: {(w, h): path}."""
    folder = tmp_path_factory.mktemp("clips")
    sizes = [(1280, 704), (640, 480), (320, 240)]
    return {size: Path(_make_clip(folder / f"clip_{size[0]}x{size[1]}.mp4", *size, frames=3)) for size in sizes}


@pytest.fixture
def video_clip(tmp_path):
    """``video_clip(width, height, frames=3, name=None, **kw)`` → path of a new H.264 clip in tmp_path."""
    folder = tmp_path / "clips"
    folder.mkdir(exist_ok=True)

    def make(width: int, height: int, frames: int = 3, name: str | None = None, **kwargs) -> Path:
        path = folder / (name or f"clip_{width}x{height}_{frames}f.mp4")
        return Path(_make_clip(path, width, height, frames=frames, codec=kwargs.pop("codec", "h264"), **kwargs))

    return make


# ----------------------------------------------------------------------------- scripts
SCRIPTS = {
    "transfer": STANDIN_DIR / "cosmos_transfer1" / "diffusion" / "inference" / "transfer.py",
    "upsampler_pipeline": STANDIN_DIR
    / "cosmos_transfer1"
    / "auxiliary"
    / "upsampler"
    / "inference"
    / "upsampler_pipeline.py",
}

_BLOCK_PLUGIN_BOOT = (
    "import runpy, sys; sys.modules['cosmos_upsample_fix.runtime'] = None; "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def standin_env(
    rank: int | None = 0,
    world_size: int = 1,
    patched: bool = False,
    max_model_len: int | None = None,
    image_limit: int | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a stand-in script: the current one, torchrun's variables (unless
    ``rank`` is None), PYTHONPATH = tests/standin + repo root, and the stand-in switches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    for key in torchrun_environ():
        env.pop(key, None)
    if rank is not None:
        env.update(torchrun_environ(rank, world_size))
    paths = [str(STANDIN_DIR), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if patched:
        env["STANDIN_PATCHED"] = "1"
    if max_model_len is not None:
        env["STANDIN_MAX_MODEL_LEN"] = str(max_model_len)
    if image_limit is not None:
        env["STANDIN_IMAGE_LIMIT"] = str(image_limit)
    env.update(extra or {})
    return env


def run_standin_script(
    script: str,
    *args: str,
    cwd: str | os.PathLike | None = None,
    block_plugin: bool = False,
    timeout: float = 120,
    **env_kwargs,
) -> subprocess.CompletedProcess:
    """Run ``transfer`` or ``upsampler_pipeline`` (the stand-in file, as upstream's docs run
    the real one) in a subprocess; keyword arguments go to :func:`standin_env`.
    ``block_plugin=True`` makes ``import cosmos_upsample_fix.cosmos.runtime`` fail inside it."""
    path = str(SCRIPTS.get(script, script))
    argv = [sys.executable]
    argv += ["-c", _BLOCK_PLUGIN_BOOT, path] if block_plugin else [path]
    argv += [str(a) for a in args]
    return subprocess.run(
        argv,
        cwd=str(cwd) if cwd else None,
        env=standin_env(**env_kwargs),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def run_standin():
    """The :func:`run_standin_script` helper as a fixture."""
    return run_standin_script


@pytest.fixture
def run_standin_here(standin, monkeypatch):
    """:func:`run_standin_script` in this process (runpy), for tests that need no fresh interpreter.

    Same arguments; returns an object with ``returncode``, ``stdout`` and ``stderr`` as a
    subprocess would give them (an uncaught exception: its traceback on stderr, status 1;
    ``SystemExit``: its code). Environment, ``sys.argv``/``sys.path`` and the working folder
    are restored after the test; ``block_plugin=True`` makes importing the runtime fail.
    """

    def run(script: str, *args: str, cwd=None, block_plugin: bool = False, **env_kwargs) -> SimpleNamespace:
        path = str(SCRIPTS.get(script, script))
        env = standin_env(**env_kwargs)
        monkeypatch.setenv("TOKENIZERS_PARALLELISM", os.environ.get("TOKENIZERS_PARALLELISM", "false"))
        for key in (*torchrun_environ(), *STANDIN_SWITCHES):
            if key in env:
                monkeypatch.setenv(key, env[key])
            else:
                monkeypatch.delenv(key, raising=False)
        for key, value in (env_kwargs.get("extra") or {}).items():
            monkeypatch.setenv(key, value)
        if block_plugin:
            monkeypatch.setitem(sys.modules, "cosmos_upsample_fix.runtime", None)
        monkeypatch.setattr(sys, "argv", [path, *map(str, args)])
        monkeypatch.setattr(sys, "path", [os.path.dirname(path), *sys.path])
        if cwd:
            monkeypatch.chdir(cwd)
        out, err, code = io.StringIO(), io.StringIO(), 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(path, run_name="__main__")
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
                    code = 1
            except Exception:
                traceback.print_exc()
                code = 1
        return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())

    return run


@pytest.fixture
def standin_helpers():
    """Module-level helpers for tests that want them without importing conftest."""
    return SimpleNamespace(
        torchrun_environ=torchrun_environ,
        standin_env=standin_env,
        run_standin_script=run_standin_script,
        bundled_tekken=bundled_tekken,
        upsampler_subdir=UPSAMPLER_SUBDIR,
        pixtral_params=PIXTRAL_PARAMS,
        standin_dir=STANDIN_DIR,
    )
