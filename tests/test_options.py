"""Options: building at each edge, precedence, validation, and the policy's string form."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.core.budget import UPSTREAM_LIMITS, Limits
from cosmos_upsample_fix.core.options import (
    SELECTIONS,
    Fit,
    Fixed,
    Options,
    Original,
    parse_policy,
    parse_size,
)
from cosmos_upsample_fix.errors import PolicySpecError


def test_defaults_are_upstreams():
    options = Options()
    assert options == Options.build() == Options.from_env({})
    assert (options.policy, options.select, options.frames, options.on_error) == (Fit(), "first", None, "raise")
    assert options.limits() == UPSTREAM_LIMITS == Limits(4096, 300, 2)
    assert SELECTIONS == ("first", "uniform", "ends")


def test_build_parses_loose_values():
    options = Options.build(
        policy="max-side:640", select="uniform", frames=1, on_error="skip", max_model_len=8192, reserve_output=0,
        max_images=3, checkpoint_dir=__import__("pathlib").Path("/ckpt"), endpoint=" http://host:8000/v1/ ",
    )
    assert options.policy == Fit(max_side=640)
    assert (options.select, options.frames, options.on_error) == ("uniform", 1, "skip")
    assert options.checkpoint_dir == "/ckpt" and options.endpoint == "http://host:8000/v1"
    assert options.limits() == Limits(8192, 0, 3)
    live = Limits(2048, 100, 1)
    assert options.limits(live) is live  # a live engine's values win


def test_limits_fall_back_one_by_one():
    assert Options.build(max_model_len=8192).limits() == Limits(8192, 300, 2)
    assert Options.build(reserve_output=10).limits() == Limits(4096, 10, 2)
    assert Options.build(max_images=1).limits() == Limits(4096, 300, 1)


def test_from_env_explicit_wins_over_environment_over_default():
    environ = {env.POLICY.name: " fixed:640x352 ", env.ON_ERROR.name: "fallback", env.ENDPOINT.name: "http://env:1"}
    from_env = Options.from_env(environ)
    assert from_env.policy == Fixed(640, 352) and from_env.on_error == "fallback"
    assert from_env.endpoint == "http://env:1"
    explicit = Options.from_env(environ, policy="none", on_error="skip", endpoint="https://mine:2")
    assert (explicit.policy, explicit.on_error, explicit.endpoint) == (Original(), "skip", "https://mine:2")
    # None and empty values do not count as given
    assert Options.from_env({env.POLICY.name: "", env.ON_ERROR.name: ""}, policy=None) == Options()
    assert Options.from_env({env.POLICY.name: "scale:0.5"}, frames=1) == Options(policy=Fit(scale=0.5), frames=1)


def test_from_env_reads_os_environ(monkeypatch):
    monkeypatch.setenv(env.POLICY.name, "max-pixels:1000")
    monkeypatch.delenv(env.ON_ERROR.name, raising=False)
    monkeypatch.delenv(env.ENDPOINT.name, raising=False)
    assert Options.from_env().policy == Fit(max_pixels=1000)
    with pytest.raises(PolicySpecError):
        monkeypatch.setenv(env.ON_ERROR.name, "explode")
        Options.from_env()


def test_with_flags_wins_only_when_given():
    base = Options.build(policy="none", endpoint="http://a:1", frames=1)
    assert base.with_flags() is base
    assert base.with_flags(policy="", endpoint="") is base
    flagged = base.with_flags(policy="fit", endpoint="http://b:2/")
    assert (flagged.policy, flagged.endpoint, flagged.frames) == (Fit(), "http://b:2", 1)
    assert base.with_flags(endpoint="http://c:3").policy == Original()
    with pytest.raises(PolicySpecError):
        base.with_flags(policy="bogus")
    with pytest.raises(PolicySpecError):
        base.with_flags(endpoint="ftp://x")


@pytest.mark.parametrize(
    "kwargs",
    [dict(select="last"), dict(on_error="ignore"), dict(frames=0), dict(frames=-1), dict(frames=1.5),
     dict(frames=True), dict(max_model_len=0), dict(reserve_output=-1), dict(max_images=0),
     dict(max_model_len=300), dict(max_model_len=100, reserve_output=100), dict(endpoint="localhost:8000"),
     dict(endpoint="http://"), dict(policy="scale:2")],
)
def test_bad_options_are_one_line_spec_errors(kwargs):
    with pytest.raises(PolicySpecError) as info:
        Options.build(**kwargs)
    assert str(info.value) and "\n" not in str(info.value)


def test_options_take_only_parsed_policies():
    with pytest.raises(PolicySpecError, match="parse_policy"):
        Options(policy="fit")  # type: ignore[arg-type]
    assert Options.build(policy=Fixed(8, 8)).policy == Fixed(8, 8)
    assert Options.build(endpoint="  ").endpoint is None


@pytest.mark.parametrize(
    "policy",
    [Fit(), Fit(max_side=640), Fit(max_pixels=300000), Fit(scale=0.5), Fit(scale=1.0), Fit(scale=0.125),
     Fixed(640, 352), Original()],
)
def test_spec_round_trips(policy):
    assert parse_policy(policy.spec) == policy
    assert str(policy) == policy.spec
    assert parse_policy(policy) is policy


def test_specs_are_canonical():
    assert [p.spec for p in (Fit(), Original(), Fit(max_side=8), Fit(max_pixels=9), Fit(scale=0.25), Fixed(3, 4))] == [
        "fit", "none", "max-side:8", "max-pixels:9", "scale:0.25", "fixed:3x4"
    ]
    assert Fit(max_side=8, max_pixels=9, scale=0.5).spec == "max-side:8,max-pixels:9,scale:0.5"
    assert parse_policy(" Max-Side : 640 ") == Fit(max_side=640)
    assert parse_policy(None) == Fit()


@pytest.mark.parametrize(
    "kwargs", [dict(max_side=0), dict(max_pixels=-2), dict(max_side=True), dict(max_side=2.0), dict(scale=0),
               dict(scale=1.01), dict(scale=math.nan), dict(scale=True), dict(scale="0.5")]
)
def test_fit_bounds_are_validated(kwargs):
    with pytest.raises(PolicySpecError):
        Fit(**kwargs)


@pytest.mark.parametrize("width, height", [(0, 1), (1, 0), (-1, 5), (True, 5), (2.0, 3)])
def test_fixed_is_validated(width, height):
    with pytest.raises(PolicySpecError):
        Fixed(width, height)


def test_fit_bounds_allow():
    assert Fit().allows((5000, 5000), (5000, 5000))
    assert Fit(max_side=640).allows((640, 100), (1280, 200)) and not Fit(max_side=640).allows((641, 1), (2000, 2))
    assert Fit(max_side=640).allows((100, 640), (200, 1280)) and not Fit(max_side=640).allows((1, 641), (2, 2000))
    assert Fit(max_pixels=100).allows((10, 10), (20, 20)) and not Fit(max_pixels=99).allows((10, 10), (20, 20))
    assert Fit(scale=0.5).allows((640, 352), (1280, 704))
    assert not Fit(scale=0.5).allows((641, 352), (1280, 704))
    assert not Fit(scale=0.5).allows((640, 353), (1280, 704))


@pytest.mark.parametrize(
    "text, size", [("640x352", (640, 352)), (" 640X352 ", (640, 352)), ("1×2", (1, 2)), ("0010x0020", (10, 20))]
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "640", "640x", "x352", "0x10", "10x0", "6.5x2", "-1x2", "axb", "1x2x3"])
def test_parse_size_rejects(text):
    with pytest.raises(PolicySpecError, match="frame size") as info:
        parse_size(text, "frame size")
    assert "WxH" in str(info.value)


def test_documented_names_and_help():
    # the environment variables and choices the README documents
    from cosmos_upsample_fix.core.options import ON_ERROR_CHOICES, POLICY_HELP

    assert [var.name for var in env.ALL] == [
        "COSMOS_UPSAMPLE_FIX_POLICY", "COSMOS_UPSAMPLE_FIX_ON_ERROR", "COSMOS_UPSAMPLE_FIX_ENDPOINT",
        "COSMOS_UPSAMPLE_FIX_API_KEY", "COSMOS_UPSAMPLE_FIX_DISABLE", "COSMOS_UPSAMPLE_FIX_ORDER",
        "COSMOS_UPSAMPLE_FIX_DEBUG",
    ]
    assert all(var.name.startswith(env.PREFIX) for var in env.ALL)
    assert ON_ERROR_CHOICES == ("raise", "fallback", "skip")
    assert POLICY_HELP == "fit, none, max-side:N, max-pixels:N, scale:F or fixed:WxH"
    with pytest.raises(PolicySpecError) as info:
        parse_policy("biggest")
    assert POLICY_HELP in str(info.value) and "'biggest'" in str(info.value)


def test_environment_values_are_stripped():
    environ = {env.ON_ERROR.name: "  skip\n", env.POLICY.name: "\tnone ", env.ENDPOINT.name: " http://h:1 "}
    options = Options.from_env(environ)
    assert (options.on_error, options.policy, options.endpoint) == ("skip", Original(), "http://h:1")


@pytest.mark.parametrize(
    "kwargs, words",
    [(dict(select="last"), ["select", "first, uniform, ends", "'last'"]),
     (dict(on_error="ignore"), ["on_error", "raise, fallback, skip", "'ignore'"]),
     (dict(frames=0), ["frames", ">= 1", "0"]),
     (dict(max_model_len=0), ["max_model_len", ">= 1"]),
     (dict(reserve_output=-1), ["reserve_output", ">= 0", "-1"]),
     (dict(max_images=0), ["max_images", ">= 1"]),
     (dict(max_model_len=300), ["max_model_len (300)", "(300)"]),
     (dict(endpoint="localhost:8000"), ["endpoint", "http://", "'localhost:8000'"])],
)
def test_option_errors_name_the_option_and_the_value(kwargs, words):
    with pytest.raises(PolicySpecError) as info:
        Options.build(**kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(
    "text, words",
    [("fit:3", ["'fit:3'", "takes no argument", "fit, none"]), ("max-side", ["needs an argument", "fit, none"]),
     ("max-side:6.5", ["'max-side:6.5'", "positive whole number"]), ("max-side:0", ["max-side", "got 0"]),
     ("max-pixels:0", ["max-pixels", "got 0"]), ("scale:x", ["'scale:x'", "(0, 1]"]),
     ("scale:2", ["scale:2", "never upscales"]), ("fixed:0x4", ["fixed:", "'0x4'", "WxH"])],
)
def test_policy_errors_say_what_is_wrong(text, words):
    with pytest.raises(PolicySpecError) as info:
        parse_policy(text)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    with pytest.raises(PolicySpecError, match="got 'fit'"):
        Options(policy="fit")  # type: ignore[arg-type]
    with pytest.raises(PolicySpecError, match="'scale:nan'|got nan"):
        parse_policy("scale:nan")
    with pytest.raises(PolicySpecError, match="must be a string"):
        parse_policy(3)  # type: ignore[arg-type]


def test_endpoint_is_normalised():
    assert Options.build(endpoint=" https://h:9/v1// ").endpoint == "https://h:9/v1"
    assert Options.build(endpoint="http://h/").endpoint == "http://h"


@pytest.mark.parametrize(
    "make, words",
    [(lambda: Fit(max_side=0), ["max-side", "got 0"]), (lambda: Fit(max_pixels=-1), ["max-pixels", "got -1"]),
     (lambda: Fit(scale=math.nan), ["scale", "got nan"]), (lambda: Fit(scale=2.0), ["scale:2", "never upscales"]),
     (lambda: Fixed(0, 5), ["fixed:0x5", "positive whole numbers"])],
)
def test_policy_type_errors_say_what_is_wrong(make, words):
    with pytest.raises(PolicySpecError) as info:
        make()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("old, new", [("COSMOS_UPSAMPLER_POLICY", env.POLICY),
                                      ("COSMOS_UPSAMPLER_ENDPOINT", env.ENDPOINT),
                                      ("COSMOS_UPSAMPLER_API_KEY", env.API_KEY)])
def test_older_names_are_still_read_and_the_new_name_wins(old, new):
    assert old in new.old
    assert new.get({old: " a "}) == "a"
    assert new.get({old: "a", new.name: "b"}) == "b"
    assert new.get({old: "  ", new.name: ""}) is None


def test_install_edge_reads_the_older_policy_and_endpoint_names():
    options = Options.from_env({"COSMOS_UPSAMPLER_POLICY": "max-side:400", "COSMOS_UPSAMPLER_ENDPOINT": "http://h:1"})
    assert (options.policy, options.endpoint) == (Fit(max_side=400), "http://h:1")


def test_build_takes_the_fields_by_name_and_refuses_unknown_ones():
    assert Options.build(select="ends", frames=1, checkpoint_dir=Path("/x")) == Options(
        select="ends", frames=1, checkpoint_dir="/x")
    assert Options.build(select="", endpoint="", policy=None) == Options()
    with pytest.raises(PolicySpecError, match="unknown option 'polcy'"):
        Options.build(polcy="fit")
