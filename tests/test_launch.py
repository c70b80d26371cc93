"""The launcher (``python -m cosmos_upsample_fix.launch SCRIPT [--upsampler_policy SPEC] ARGS``):
flag handling, how it runs the script, exit codes, and what it installs.

Runs with the real stand-in scripts (transfer.py, upsampler_pipeline.py) are in
test_integration.py; here the scripts are tiny probes that report what they saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.cosmos import hooks, runtime
from cosmos_upsample_fix.errors import UpsampleFixError
from cosmos_upsample_fix.tools.launch import ENDPOINT_FLAG, FLAG, main, split_args

REPO_ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent(
    """
    import json, os, sys
    from cosmos_upsample_fix.cosmos import runtime
    report = {
        "name": __name__,
        "argv": sys.argv,
        "path0": sys.path[0],
        "installed": runtime.is_installed(),
        "settings": (
            dict(vars(runtime.current_settings()), policy=runtime.current_settings().policy.spec)
            if runtime.is_installed() else None
        ),
    }
    with open(os.environ["PROBE_REPORT"], "w") as handle:
        json.dump(report, handle)
    code = os.environ.get("PROBE_EXIT")
    if code == "upsample-fix-error":
        from cosmos_upsample_fix.errors import BudgetError
        raise BudgetError("too big")
    if code == "value-error":
        raise ValueError("upstream failed")
    if code is not None:
        sys.exit(int(code) if code.lstrip("-").isdigit() else code)
    """
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """The launcher changes sys.argv and sys.path[0] and installs the plugin: undo all three."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in (
        env.POLICY.name,
        env.ON_ERROR.name,
        env.ENDPOINT.name,
        "PROBE_EXIT",
        "COSMOS_UPSAMPLE_FIX_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROBE_REPORT", str(tmp_path / "report.json"))
    runtime.uninstall()
    yield
    runtime.uninstall()


@pytest.fixture
def probe(tmp_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    script = folder / "probe.py"
    script.write_text(PROBE)
    return script


def report(tmp_path):
    path = tmp_path / "report.json"
    return json.loads(path.read_text()) if path.exists() else None


# ----------------------------------------------------------------------------- split_args
@pytest.mark.parametrize(
    "argv, policy, rest",
    [
        (["--a", "1", FLAG, "max-side:640", "--b"], "max-side:640", ["--a", "1", "--b"]),
        ([f"{FLAG}=fixed:640x360", "x"], "fixed:640x360", ["x"]),
        (["--prompt", "hello world", "--num_gpus", "8"], None, ["--prompt", "hello world", "--num_gpus", "8"]),
        ([FLAG, "fit", "y", FLAG, "none"], "none", ["y"]),  # the last one wins, like argparse
        (["--upsampler_policy_other", "1"], None, ["--upsampler_policy_other", "1"]),  # only the exact flag
        ([], None, []),
        ([ENDPOINT_FLAG + "x", "1"], None, [ENDPOINT_FLAG + "x", "1"]),
    ],
)
def test_split_args(argv, policy, rest):
    assert split_args(argv) == ({} if policy is None else {"policy": policy}, rest)


def test_split_args_needs_a_value():
    with pytest.raises(UpsampleFixError, match="needs a value"):
        split_args(["--x", FLAG])


# ----------------------------------------------------------------------------- running a script
def test_runs_the_script_as_main_without_the_flag(probe, tmp_path):
    assert main([str(probe), "--checkpoint_dir", "ck", FLAG, "max-side:640", "--upsample_prompt"]) == 0
    seen = report(tmp_path)
    assert seen["name"] == "__main__"
    assert seen["argv"] == [str(probe), "--checkpoint_dir", "ck", "--upsample_prompt"]
    assert seen["path0"] == str(probe.parent)  # as `python SCRIPT` sets it
    assert seen["installed"] and seen["settings"] == dict(
        vars(Options.build(policy="max-side:640")), policy="max-side:640"
    )


def test_runs_a_module_with_dash_m(tmp_path, monkeypatch):
    package = tmp_path / "pkg_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tool.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["-m", "pkg_probe.tool", "--x", "1", f"{FLAG}=scale:0.5"]) == 0
    seen = report(tmp_path)
    assert seen["name"] == "__main__" and seen["installed"]
    assert seen["argv"][1:] == ["--x", "1"] and seen["argv"][0] == str(package / "tool.py")
    assert seen["settings"]["policy"] == "scale:0.5"


@pytest.mark.parametrize(
    "env, argv_policy, expected",
    [
        ({}, None, "fit"),
        ({env.POLICY.name: "max-pixels:200000"}, None, "max-pixels:200000"),
        ({env.POLICY.name: "max-pixels:200000"}, "max-side:512", "max-side:512"),  # the flag wins
    ],
)
def test_policy_from_flag_then_environment_then_fit(probe, tmp_path, monkeypatch, env, argv_policy, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    argv = [str(probe)] + ([FLAG, argv_policy] if argv_policy else [])
    assert main(argv) == 0
    assert report(tmp_path)["settings"]["policy"] == expected


@pytest.mark.parametrize(
    "value, expected", [(None, "raise"), ("fallback", "fallback"), ("raise", "raise"), ("skip", "skip")]
)
def test_on_error_from_the_environment(probe, tmp_path, monkeypatch, value, expected):
    """README: on_error comes from install(on_error=...) or $COSMOS_UPSAMPLE_FIX_ON_ERROR; the
    launcher has no other way to set it."""
    if value is not None:
        monkeypatch.setenv(env.ON_ERROR.name, value)
    assert main([str(probe)]) == 0
    assert report(tmp_path)["settings"]["on_error"] == expected


# ----------------------------------------------------------------------------- errors and exit codes
@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing_script.py"], "script not found: missing_script.py"),
        (["-m"], "-m needs a module name"),
        (["{probe}", FLAG], f"{FLAG} needs a value"),
        (["{probe}", FLAG, "biggest"], "biggest"),
        (["{probe}", ENDPOINT_FLAG], f"{ENDPOINT_FLAG} needs a value"),
        (["{probe}", ENDPOINT_FLAG, "ftp://x"], "endpoint must be an http:// or https:// URL"),
        (["-m", "no_such_module_here"], "module not found: no_such_module_here"),
        (["-m", "no_such_package_here.transfer"], "module not found: no_such_package_here.transfer"),
    ],
)
def test_usage_errors_exit_2_before_anything_runs(probe, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv(env.ON_ERROR.name, "raise")
    argv = [a.format(probe=probe) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cosmos_upsample_fix.launch: error: ") and message in err and err.count("\n") == 1
    assert report(tmp_path) is None
    if argv[0] != "-m" or len(argv) == 1:  # a module is looked up once the hook is in (its parents may import Cosmos)
        assert not runtime.is_installed()


def test_endpoint_flag_and_environment(probe, tmp_path, monkeypatch):
    """--upsampler_endpoint is taken out of the script's arguments and installed; else the environment's."""
    assert main([str(probe), "--x", f"{ENDPOINT_FLAG}=http://host:8000/v1/", FLAG, "max-side:640"]) == 0
    seen = report(tmp_path)
    assert seen["argv"] == [str(probe), "--x"]
    assert seen["settings"]["endpoint"] == "http://host:8000/v1" and seen["settings"]["policy"] == "max-side:640"
    monkeypatch.setenv(env.ENDPOINT.name, "http://other:9000/v1")
    assert main([str(probe)]) == 0
    assert report(tmp_path)["settings"]["endpoint"] == "http://other:9000/v1"


@pytest.mark.parametrize("missing", ["torch", "cosmos_transfer1.diffusion.inference"])
def test_a_script_without_torch_or_cosmos_is_one_line(tmp_path, capsys, monkeypatch, missing):
    """The launcher started from a Python without Cosmos's packages: one line, exit 1, no traceback."""
    script = tmp_path / "needs.py"
    script.write_text(f"import {missing}\n")
    monkeypatch.setitem(sys.modules, missing.split(".")[0], None)  # not importable, whatever is installed
    assert main([str(script)]) == 1
    err = capsys.readouterr().err
    top = missing.split(".")[0]
    assert err.startswith(f"cosmos_upsample_fix.launch: error: {script} needs '{top}'") and err.count("\n") == 1
    assert "Traceback" not in err
    monkeypatch.setenv("COSMOS_UPSAMPLE_FIX_DEBUG", "1")  # the traceback on request
    with pytest.raises(ModuleNotFoundError):
        main([str(script)])


def test_other_missing_modules_keep_their_traceback(tmp_path):
    script = tmp_path / "typo.py"
    script.write_text("import no_such_helper_module_xyz\n")
    with pytest.raises(ModuleNotFoundError, match="no_such_helper_module_xyz"):
        main([str(script)])


def test_bad_on_error_in_the_environment_is_a_usage_error(probe, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(env.ON_ERROR.name, "ignore")
    assert main([str(probe)]) == 2
    assert "on_error" in capsys.readouterr().err and report(tmp_path) is None


def test_no_arguments_prints_usage_and_help_exits_0(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: python -m cosmos_upsample_fix.launch")
    assert main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: python -m cosmos_upsample_fix.launch")
    assert not runtime.is_installed()


@pytest.mark.parametrize(
    "exit_value, code, stderr",
    [
        ("0", 0, ""),
        ("3", 3, ""),
        ("stop here", 1, "stop here\n"),
        ("upsample-fix-error", 2, "cosmos-upsample-fix: error: too big\n"),
    ],
)
def test_exit_status_of_the_script(probe, tmp_path, capsys, monkeypatch, exit_value, code, stderr):
    monkeypatch.setenv("PROBE_EXIT", exit_value)
    assert main([str(probe)]) == code
    assert capsys.readouterr().err == stderr
    assert report(tmp_path) is not None


def test_other_exceptions_of_the_script_propagate(probe, monkeypatch):
    """Like `python SCRIPT`: a traceback and exit status 1 (e.g. vLLM's ValueError)."""
    monkeypatch.setenv("PROBE_EXIT", "value-error")
    with pytest.raises(ValueError, match="upstream failed"):
        main([str(probe)])


def test_installed_hooks_include_the_budget_fitter(probe, tmp_path, monkeypatch):
    """What the launcher installs routes through the registry, budget_fit last."""
    assert main([str(probe)]) == 0
    names = [h.name for h in hooks.active_hooks()]
    assert names[-1] == "budget_fit" and hooks.active_hooks()[-1].func is runtime.budget_fit_preprocessor


# ----------------------------------------------------------------------------- as a real process
def test_command_line_entry_point(probe, tmp_path):
    environ = {k: v for k, v in os.environ.items() if k not in (env.POLICY.name, env.ON_ERROR.name)}
    environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    environ["PROBE_REPORT"] = str(tmp_path / "report.json")
    environ["PROBE_EXIT"] = "7"
    result = subprocess.run(
        [sys.executable, "-m", "cosmos_upsample_fix.launch", str(probe), "--k", "v", FLAG, "max-side:400"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert result.returncode == 7, result.stderr
    seen = report(tmp_path)
    assert seen["argv"] == [str(probe), "--k", "v"] and seen["path0"] == str(probe.parent)
    assert seen["settings"]["policy"] == "max-side:400"
    usage = subprocess.run(
        [sys.executable, "-m", "cosmos_upsample_fix.launch"], env=environ, capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2 and usage.stderr.startswith("usage:")
