"""Run an upstream Cosmos script with the budget fitter installed, without changing its source.

    python -m cosmos_upsample_fix.launch SCRIPT [--upsampler_policy SPEC] [--upsampler_endpoint URL] ARGS...
    python -m cosmos_upsample_fix.launch -m MODULE [--upsampler_policy SPEC] ARGS...
    torchrun --nproc_per_node=N -m cosmos_upsample_fix.launch SCRIPT ARGS...

It installs the hooks on ``PixtralPromptUpsampler``, removes its own flags, and runs SCRIPT
as ``__main__`` with the remaining arguments, the way ``python SCRIPT ARGS...`` would
(``sys.argv`` and ``sys.path[0]`` set alike). Without the flags the policy is
``$COSMOS_UPSAMPLE_FIX_POLICY`` or ``fit`` and the endpoint ``$COSMOS_UPSAMPLE_FIX_ENDPOINT`` (none:
the local engine); ``$COSMOS_UPSAMPLE_FIX_ON_ERROR`` (``raise``, ``fallback`` or ``skip``)
sets what a failure does. A missing script or module, or a script whose environment lacks
torch or Cosmos, ends in one line on stderr (status 2 and 1), not a traceback.
"""
from __future__ import annotations

import importlib.util
import os
import runpy
import sys
from collections.abc import Sequence

from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.cosmos.runtime import install
from cosmos_upsample_fix.errors import UpsampleFixError

FLAG = "--upsampler_policy"
ENDPOINT_FLAG = "--upsampler_endpoint"
FLAGS = {FLAG: "policy", ENDPOINT_FLAG: "endpoint"}
USAGE = (
    "usage: python -m cosmos_upsample_fix.launch (SCRIPT | -m MODULE) "
    "[--upsampler_policy SPEC] [--upsampler_endpoint URL] ARGS..."
)
PROG = "cosmos_upsample_fix.launch"
ENVIRONMENT_MODULES = ("torch", "vllm", "cosmos_transfer1", "transformers", "mistral_common", "av", "cv2")
"""Top-level packages whose absence means the script runs in the wrong Python environment."""


def split_args(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Take the launcher's flags (``FLAG VALUE`` or ``FLAG=VALUE``) out of ``argv``; returns (values, rest).

    ``values`` maps ``policy`` / ``endpoint`` to the last value given (as argparse does).
    """
    values: dict[str, str] = {}
    rest: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        name, eq, value = arg.partition("=")
        if name in FLAGS and not eq:
            if i + 1 >= len(items):
                raise UpsampleFixError(f"{name} needs a value, e.g. {name} {'fit' if name == FLAG else 'http://HOST:8000/v1'}")
            values[FLAGS[name]], i = items[i + 1], i + 2
            continue
        if name in FLAGS:
            values[FLAGS[name]] = value
        else:
            rest.append(arg)
        i += 1
    return values, rest


def _check_target(target: str, as_module: bool) -> None:
    """A one-line error for a script or module that is not there."""
    if not as_module:
        if not os.path.isfile(target):
            raise UpsampleFixError(f"script not found: {target}")
        return
    try:
        found = importlib.util.find_spec(target) is not None
    except ModuleNotFoundError as exc:  # the parent package is missing
        raise UpsampleFixError(f"module not found: {target} (no module named {exc.name!r})") from None
    except (ImportError, ValueError) as exc:
        raise UpsampleFixError(f"module {target} cannot be imported: {exc}") from None
    if not found:
        raise UpsampleFixError(f"module not found: {target} (is PYTHONPATH set to the Cosmos checkout?)")


def _missing_environment(exc: ModuleNotFoundError) -> str | None:
    """The package name when ``exc`` says torch/Cosmos/vLLM (etc.) is not importable here."""
    top = (exc.name or "").split(".")[0]
    return top if top in ENVIRONMENT_MODULES else None


def main(argv: Sequence[str] | None = None) -> int:
    """Install the hook, then run the script or module; returns an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0] in ("-h", "--help"):
            print(USAGE, file=sys.stderr if not args else sys.stdout)
            return 2 if not args else 0
        as_module = args[0] == "-m"
        if as_module and len(args) < 2:
            raise UpsampleFixError("-m needs a module name")
        target = args[1] if as_module else args[0]
        flags, rest = split_args(args[2:] if as_module else args[1:])
        if not as_module:
            _check_target(target, as_module)
        install(policy=flags.get("policy"), endpoint=flags.get("endpoint"))  # the environment fills in the rest
        if as_module:
            _check_target(target, as_module)
    except UpsampleFixError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        sys.argv = [target, *rest]
        if as_module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.path[0] = os.path.dirname(os.path.abspath(target))
            runpy.run_path(target, run_name="__main__")
    except UpsampleFixError as exc:
        print(f"cosmos-upsample-fix: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        missing = _missing_environment(exc)
        if missing is None or env.DEBUG.get():
            raise
        print(
            f"{PROG}: error: {target} needs {missing!r}, which this Python ({sys.executable}) cannot import; "
            f"run the launcher in Cosmos-Transfer1's environment (and its checkout on PYTHONPATH)",
            file=sys.stderr,
        )
        return 1
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
