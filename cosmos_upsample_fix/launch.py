"""Run an upstream Cosmos script with the budget fitter installed, without changing its source.

    python -m cosmos_upsample_fix.launch SCRIPT [--upsampler_policy SPEC] ARGS...
    python -m cosmos_upsample_fix.launch -m MODULE [--upsampler_policy SPEC] ARGS...
    torchrun --nproc_per_node=N -m cosmos_upsample_fix.launch SCRIPT ARGS...

It installs the hook around ``PixtralPromptUpsampler._prompt_upsample_with_offload``,
removes its own flag, and runs SCRIPT as ``__main__`` with the remaining arguments, the
way ``python SCRIPT ARGS...`` would (``sys.argv`` and ``sys.path[0]`` set alike).
Without ``--upsampler_policy`` the policy is ``$COSMOS_UPSAMPLER_POLICY`` or ``fit``;
``$COSMOS_UPSAMPLE_FIX_ON_ERROR`` (``raise`` or ``fallback``) sets what a failure does.
"""
from __future__ import annotations

import os
import runpy
import sys
from typing import Sequence

from .errors import UpsampleFixError
from .runtime import install

FLAG = "--upsampler_policy"
USAGE = "usage: python -m cosmos_upsample_fix.launch (SCRIPT | -m MODULE) [--upsampler_policy SPEC] ARGS..."


def split_args(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """Take ``--upsampler_policy SPEC`` (or ``=SPEC``) out of ``argv``; returns (policy, rest)."""
    policy, rest, items = None, [], list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg == FLAG:
            if i + 1 >= len(items):
                raise UpsampleFixError(f"{FLAG} needs a value, e.g. {FLAG} fit")
            policy, i = items[i + 1], i + 2
            continue
        if arg.startswith(FLAG + "="):
            policy = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return policy, rest


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
        policy, rest = split_args(args[2:] if as_module else args[1:])
        if not as_module and not os.path.isfile(target):
            raise UpsampleFixError(f"script not found: {target}")
        install(policy=policy)  # the environment fills in what the flag leaves out
    except UpsampleFixError as exc:
        print(f"cosmos_upsample_fix.launch: error: {exc}", file=sys.stderr)
        return 2
    try:
        if as_module:
            sys.argv = [target, *rest]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = [target, *rest]
            sys.path[0] = os.path.dirname(os.path.abspath(target))
            runpy.run_path(target, run_name="__main__")
    except UpsampleFixError as exc:
        print(f"cosmos-upsample-fix: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
