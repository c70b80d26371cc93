"""The runtime integration (cosmos_upsample_fix.cosmos.runtime): install/uninstall, run_upsampler,
limits, policy precedence, on_error, logging and the hook registry, against the stand-ins
for vLLM and Cosmos-Transfer1 (tests/standin).

Expected sizes and token counts are computed with the package's planner and mistral_common
(through the stand-in engine's records), never written down by hand.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

import cosmos_upsample_fix
from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.core.budget import Limits
from cosmos_upsample_fix.core.options import Options
from cosmos_upsample_fix.cosmos import hooks, runtime, wrapping
from cosmos_upsample_fix.cosmos.logbridge import CosmosLogHandler
from cosmos_upsample_fix.cosmos.runtime import (
    budget_fit_preprocessor,
    limits_for,
    run_upsampler,
)
from cosmos_upsample_fix.errors import BudgetError, InputError, UpsampleFixError
from cosmos_upsample_fix.planning.planner import plan_frames
from cosmos_upsample_fix.planning.tokenizer import load_model

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
METHOD = runtime.TARGET_METHOD
UPSAMPLER_MODULE = runtime.TARGET_MODULE


# ----------------------------------------------------------------------------- fixtures


pytestmark = pytest.mark.usefixtures("clean_plugin")  # no outside settings; uninstalled before and after


@pytest.fixture
def add_hook(clean_plugin):
    """``add_hook(name, func, order)``: register an in-process preprocessor for this test."""

    def add(name, func, order=None):
        hooks.register(name, func, order)
        clean_plugin.append(name)
        return func

    return add


@pytest.fixture
def spy(add_hook):
    """A preprocessor (order 10, before budget_fit) that records what it saw and changes nothing."""
    seen = []

    def record(call):
        seen.append(
            SimpleNamespace(
                video=list(call.video) if isinstance(call.video, list) else call.video,
                prompt=call.prompt,
                upsampler=call.upsampler,
                workdir=call.workdir,
                workdir_existed=call.workdir.is_dir(),
                policy=getattr(call.settings, "policy", None),
            )
        )
        return None

    add_hook("test_spy", record, order=10)
    return seen


@pytest.fixture
def upstream_inputs(standin, monkeypatch):
    """What upstream's ``_prompt_upsample`` received (after the plugin), per call."""
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler

    received = []
    original = PixtralPromptUpsampler._prompt_upsample

    def record(self, prompt, video_path):
        entry = {"prompt": prompt, "video": video_path}
        if isinstance(video_path, list):
            entry["sizes"] = [Image.open(p).size for p in video_path]
        received.append(entry)
        return original(self, prompt, video_path)

    monkeypatch.setattr(PixtralPromptUpsampler, "_prompt_upsample", record)
    return received


def upsampler_class():
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler

    return PixtralPromptUpsampler


def make_upsampler(ckpt, offload=True, max_model_len=None, image_limit=None):
    klass = upsampler_class()
    klass.standin_max_model_len = max_model_len
    klass.standin_image_limit = image_limit
    return klass(str(ckpt), offload_prompt_upsampler=offload)


def Settings(**kwargs):  # noqa: N802 - reads like the options it builds
    return Options.build(**kwargs)


def plan(source, ckpt, prompt=PROMPT, policy="fit", limits=None, frames=None):
    """The package's own plan for ``source`` (what the engine should receive)."""
    options = Options.build(policy=policy, frames=frames)
    return plan_frames(source, prompt, options, limits=limits or Limits(), model=load_model(ckpt)).plan


def upstream_tokens(size, ckpt, prompt=PROMPT, frames=2):
    """Tokens of upstream's request: ``frames`` full-size frames and the prompt."""
    return load_model(ckpt).count([size] * frames, prompt, Limits()).prompt_tokens


class FakeUpsampler:
    """Upstream's attribute names without an engine; records what upstream's method got."""

    def __init__(self, checkpoint_dir, engine=None, sampling_params=None, on_call=None):
        self.checkpoint_dir = str(checkpoint_dir)
        self.upsampler_model = engine
        self.sampling_params = sampling_params
        self.received = []
        self.on_call = on_call

    def _prompt_upsample_with_offload(self, prompt, video_path):
        sizes = [Image.open(p).size for p in video_path] if isinstance(video_path, list) else None
        self.received.append((prompt, video_path, sizes))
        if self.on_call:
            self.on_call(video_path)
        return "answer"


def meta_path_finders():
    return [f for f in sys.meta_path if isinstance(f, wrapping.PatchOnImport)]


def is_wrapper(func) -> bool:
    return bool(getattr(func, "_cosmos_upsample_fix", False))


# ----------------------------------------------------------------------------- install / uninstall
def test_install_before_import_hooks_the_class_when_its_module_loads(standin, ckpt, clips, private_tmpdir):
    assert UPSAMPLER_MODULE not in sys.modules
    cosmos_upsample_fix.install()
    assert runtime.is_installed() and len(meta_path_finders()) == 1
    klass = upsampler_class()  # first import of upstream's module, after install()
    wrapper = klass.__dict__[METHOD]
    assert is_wrapper(wrapper)
    original = wrapper.__wrapped__
    assert not is_wrapper(original) and original.__qualname__ == f"PixtralPromptUpsampler.{METHOD}"
    # Only the target module goes through the hook.
    assert isinstance(sys.modules[UPSAMPLER_MODULE].__spec__.loader, wrapping.PatchingLoader)
    assert not isinstance(sys.modules["cosmos_transfer1.utils.misc"].__spec__.loader, wrapping.PatchingLoader)

    # The hooked method fits a 1280x704 clip that upstream cannot send.
    upsampler = make_upsampler(ckpt)
    answer = upsampler._prompt_upsample_with_offload(PROMPT, str(clips[1280, 704]))
    [call] = standin.calls
    expected = plan(clips[1280, 704], ckpt)
    assert call.ok and call.image_sizes == list(expected.planned.frame_sizes)
    assert call.num_tokens == expected.planned.prompt_tokens <= Limits().prompt_budget
    assert answer == call.output_text

    cosmos_upsample_fix.uninstall()
    assert klass.__dict__[METHOD] is original
    assert not runtime.is_installed() and meta_path_finders() == []


def test_install_after_import_and_uninstall_restores_the_same_function_object(standin):
    klass = upsampler_class()  # imported first
    original = klass.__dict__[METHOD]
    assert not is_wrapper(original)
    cosmos_upsample_fix.install()
    assert is_wrapper(klass.__dict__[METHOD]) and klass.__dict__[METHOD].__wrapped__ is original
    cosmos_upsample_fix.uninstall()
    assert klass.__dict__[METHOD] is original


def test_install_and_uninstall_are_idempotent_and_a_second_install_replaces_the_settings(standin):
    klass = upsampler_class()
    original = klass.__dict__[METHOD]
    cosmos_upsample_fix.install(policy="max-side:640", frames=1)
    first_wrapper = klass.__dict__[METHOD]
    cosmos_upsample_fix.install(policy="scale:0.5", on_error="fallback")
    assert klass.__dict__[METHOD] is first_wrapper  # not wrapped twice
    assert first_wrapper.__wrapped__ is original
    assert len(meta_path_finders()) == 1
    assert runtime.current_settings() == Settings(policy="scale:0.5", on_error="fallback")  # replaced, not merged
    cosmos_upsample_fix.uninstall()
    cosmos_upsample_fix.uninstall()
    assert klass.__dict__[METHOD] is original and meta_path_finders() == [] and not runtime.is_installed()
    assert runtime.current_settings() == Settings()  # back to the defaults (environment empty)


def test_after_uninstall_a_fresh_import_is_not_hooked(standin):
    cosmos_upsample_fix.install()
    assert is_wrapper(upsampler_class().__dict__[METHOD])
    cosmos_upsample_fix.uninstall()
    for name in [n for n in sys.modules if n.startswith("cosmos_transfer1")]:
        del sys.modules[name]
    assert not is_wrapper(upsampler_class().__dict__[METHOD])


def test_install_rejects_bad_settings_without_installing():
    for kwargs in ({"policy": "biggest"}, {"on_error": "ignore"}, {"select": "random"}, {"frames": 0}):
        with pytest.raises(UpsampleFixError):
            cosmos_upsample_fix.install(**kwargs)
        assert not runtime.is_installed() and meta_path_finders() == []


def test_install_and_uninstall_from_many_threads_leave_a_consistent_state(standin):
    klass = upsampler_class()
    original = klass.__dict__[METHOD]
    threads_count, rounds = 12, 40
    barrier = threading.Barrier(threads_count)
    errors = []

    def worker(i):
        try:
            barrier.wait(timeout=10)
            for k in range(rounds):
                cosmos_upsample_fix.install(policy=f"max-side:{320 + i}")
                if (k + i) % 3:
                    cosmos_upsample_fix.uninstall()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)

    # Whatever came last, the three views of "installed" agree, and nothing is doubled.
    method = klass.__dict__[METHOD]
    finders = meta_path_finders()
    assert len(finders) <= 1
    assert runtime.is_installed() == (len(finders) == 1) == is_wrapper(method)
    if is_wrapper(method):
        assert method.__wrapped__ is original
        assert runtime.current_settings().policy.spec in {f"max-side:{320 + i}" for i in range(threads_count)}

    cosmos_upsample_fix.install(policy="fit")
    assert is_wrapper(klass.__dict__[METHOD]) and klass.__dict__[METHOD].__wrapped__ is original
    assert len(meta_path_finders()) == 1
    cosmos_upsample_fix.uninstall()
    assert klass.__dict__[METHOD] is original and meta_path_finders() == []


# ----------------------------------------------------------------------------- private temp folders
def test_each_call_works_in_a_private_folder_removed_afterwards(ckpt, clips, private_tmpdir, spy):
    fake = FakeUpsampler(ckpt, on_call=lambda video: seen_at_upstream.append([Path(p).is_file() for p in video]))
    seen_at_upstream = []
    run_upsampler(fake, PROMPT, str(clips[640, 480]))
    run_upsampler(fake, PROMPT, str(clips[640, 480]))
    first, second = spy
    for record in (first, second):
        assert record.workdir_existed and record.workdir.parent == private_tmpdir
        assert record.workdir.name.startswith("cosmos-upsample-fix-")
    assert first.workdir != second.workdir
    # Upstream got the frames from the call's folder while it existed ...
    for (_, video, _), record in zip(fake.received, spy):
        assert [Path(p).parent for p in video] == [record.workdir] * 2
    assert seen_at_upstream == [[True, True], [True, True]]
    # ... and nothing is left afterwards.
    assert list(private_tmpdir.iterdir()) == []


@pytest.mark.parametrize("where", ["preprocessor", "upstream"])
def test_the_private_folder_is_removed_when_the_call_fails(ckpt, clips, private_tmpdir, spy, add_hook, where):
    def explode(_):
        raise RuntimeError("boom")

    if where == "preprocessor":
        add_hook("explode", explode, order=20)
        fake = FakeUpsampler(ckpt)
        expected = UpsampleFixError
    else:
        fake = FakeUpsampler(ckpt, on_call=explode)
        expected = RuntimeError
    with pytest.raises(expected):
        run_upsampler(fake, PROMPT, str(clips[640, 480]))
    [record] = spy
    assert record.workdir_existed
    assert list(private_tmpdir.iterdir()) == []


def test_concurrent_calls_never_share_a_folder(ckpt, clips, private_tmpdir, add_hook):
    both_inside = threading.Barrier(2, timeout=20)
    folders, files = [], []

    def meet(call):
        folders.append(call.workdir)
        both_inside.wait()  # both calls are in flight at the same time
        return None

    add_hook("meet", meet, order=10)
    fake = FakeUpsampler(ckpt, on_call=lambda video: files.append(list(video)))
    results, errors = [], []

    def one(size):
        try:
            results.append(run_upsampler(fake, PROMPT, str(clips[size])))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(size,)) for size in [(640, 480), (320, 240)]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and results == ["answer", "answer"]
    assert len(set(folders)) == 2
    assert {Path(p).parent for p in files[0]}.isdisjoint({Path(p).parent for p in files[1]})
    assert list(private_tmpdir.iterdir()) == []


def test_nothing_is_written_beside_the_users_files(standin, ckpt, clips, private_tmpdir, tmp_path, upstream_inputs):
    folder = tmp_path / "user"
    folder.mkdir()
    video = folder / "input.mp4"
    shutil.copyfile(clips[1280, 704], video)
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    cosmos_upsample_fix.install()
    make_upsampler(ckpt)._prompt_upsample_with_offload(PROMPT, str(video))
    assert [p.name for p in folder.iterdir()] == ["input.mp4"]
    assert hashlib.sha256(video.read_bytes()).hexdigest() == digest
    # Upstream got the plugin's frames, so it wrote no shared <tmp>/frame_N.png either.
    [received] = upstream_inputs
    assert isinstance(received["video"], list)
    assert list(private_tmpdir.iterdir()) == []


# ----------------------------------------------------------------------------- logging
def test_one_info_line_per_call_through_logging_and_the_cosmos_log(standin, ckpt, clips, private_tmpdir, caplog):
    cosmos_log = standin.log  # upstream's log module is loaded, as it is in a Cosmos run
    cosmos_upsample_fix.install()
    upsampler = make_upsampler(ckpt)
    caplog.set_level(logging.INFO)
    for size in [(1280, 704), (640, 480)]:
        upsampler._prompt_upsample_with_offload(PROMPT, str(clips[size]))

    ours = [r for r in caplog.records if r.name.startswith("cosmos_upsample_fix")]
    expected = [f"cosmos-upsample-fix: {plan(clips[size], ckpt).summary()}" for size in [(1280, 704), (640, 480)]]
    assert [r.getMessage() for r in ours] == expected
    assert all(r.levelno == logging.INFO for r in ours)
    big = upstream_tokens((1280, 704), ckpt)
    assert f"1280x704 ({big} tokens, over by {big - Limits().prompt_budget})" in expected[0]
    assert [m for m in cosmos_log.messages("INFO") if m.startswith("cosmos-upsample-fix")] == expected
    # The bridge to Cosmos's log is attached once, however often the plugin is installed.
    cosmos_upsample_fix.install()
    bridges = [h for h in logging.getLogger("cosmos_upsample_fix").handlers if isinstance(h, CosmosLogHandler)]
    assert len(bridges) == 1


# ----------------------------------------------------------------------------- limits
def test_limits_come_from_the_loaded_engine_and_sampling_params(standin, ckpt):
    upsampler = make_upsampler(ckpt, offload=False, max_model_len=8192, image_limit=1)
    user = Settings(max_model_len=2048, reserve_output=100, max_images=2)
    assert limits_for(upsampler, Settings()) == Limits(8192, 300, 1)
    assert limits_for(upsampler, user) == Limits(8192, 300, 1)  # live values win over settings
    upsampler.sampling_params.max_tokens = 512
    assert limits_for(upsampler, Settings()) == Limits(8192, 512, 1)
    upsampler.upsampler_model.llm_engine.model_config.max_model_len = 5000  # read live, not cached
    assert limits_for(upsampler, Settings()).max_model_len == 5000


def test_limits_fall_back_to_settings_then_upstream_when_offloaded(standin, ckpt):
    upsampler = make_upsampler(ckpt, offload=True, max_model_len=8192, image_limit=1)
    assert getattr(upsampler, "upsampler_model", None) is None  # not loaded at hook time
    assert limits_for(upsampler, Settings()) == runtime.UPSTREAM_LIMITS == Limits(4096, 300, 2)
    assert limits_for(upsampler, Settings(max_model_len=6000, reserve_output=200, max_images=1)) == Limits(6000, 200, 1)
    assert limits_for(upsampler, Settings(max_model_len=6000)) == Limits(6000, 300, 2)
    # After an offloaded call the engine is gone again: the same fallback applies.
    upsampler._load_upsampler_model()
    assert limits_for(upsampler, Settings()) == Limits(8192, 300, 1)
    upsampler._offload_upsampler_model()
    assert limits_for(upsampler, Settings(max_images=1)) == Limits(4096, 300, 1)


def test_limits_from_an_engine_with_only_a_limit_dict_or_odd_attributes(ckpt):
    config = SimpleNamespace(max_model_len=6144, multimodal_config=SimpleNamespace(limit_per_prompt={"image": 3}))
    engine = SimpleNamespace(llm_engine=SimpleNamespace(model_config=config))
    upsampler = FakeUpsampler(ckpt, engine=engine, sampling_params=SimpleNamespace(max_tokens=None))
    assert limits_for(upsampler, Settings(reserve_output=250)) == Limits(6144, 250, 3)
    odd = FakeUpsampler(ckpt, engine=SimpleNamespace(), sampling_params=SimpleNamespace(max_tokens=128))
    assert limits_for(odd, Settings(max_model_len=5000, max_images=1)) == Limits(5000, 128, 1)


def _engine_class(name: str) -> type:
    """A fresh engine type per test: the missing-path warning is given once per engine type."""
    return type(name, (SimpleNamespace,), {})


class ImageOptions:
    """vLLM 0.32's ``limit_per_prompt`` value: an options object with ``count`` (not an int)."""

    def __init__(self, count):
        self.count, self.width, self.height = count, None, None


@pytest.mark.parametrize("layout", ["llm_engine.model_config", "model_config", "llm_engine.vllm_config.model_config"])
@pytest.mark.parametrize("form", ["getter", "int dict", "options dict"])
def test_limits_read_every_public_vllm_layout(ckpt, layout, form, caplog):
    """0.9's ``llm_engine.model_config``, newer ``LLM.model_config`` and V1's ``vllm_config``, each alone;
    the image limit from ``get_limit_per_prompt`` or the ``limit_per_prompt`` dict (int or 0.32's object)."""
    caplog.set_level(logging.WARNING, logger="cosmos_upsample_fix")
    if form == "getter":
        mm = SimpleNamespace(get_limit_per_prompt=lambda modality: {"image": 3}[modality])
    else:
        mm = SimpleNamespace(limit_per_prompt={"image": 3 if form == "int dict" else ImageOptions(3)})
    node = SimpleNamespace(max_model_len=6144, multimodal_config=mm)
    for part in reversed(layout.split(".")):
        node = SimpleNamespace(**{part: node})
    engine = _engine_class(f"Engine_{layout}_{form}".replace(".", "_").replace(" ", "_"))(**vars(node))
    upsampler = FakeUpsampler(ckpt, engine=engine, sampling_params=SimpleNamespace(max_tokens=400))
    assert limits_for(upsampler, Settings(max_model_len=2048, reserve_output=100, max_images=1)) == Limits(6144, 400, 3)
    assert not caplog.records


def test_a_loaded_engine_without_known_paths_is_reported_not_silently_planned_for(ckpt, caplog):
    caplog.set_level(logging.WARNING, logger="cosmos_upsample_fix")
    engine = _engine_class("UnknownLayoutEngine")(llm_engine=SimpleNamespace(config=None))
    upsampler = FakeUpsampler(ckpt, engine=engine, sampling_params=SimpleNamespace(max_tokens=None))
    assert limits_for(upsampler, Settings(max_images=1)) == Limits(4096, 300, 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "shows no max_model_len at llm_engine.model_config, model_config, llm_engine.vllm_config" in warnings[0]
    assert warnings[0].endswith("planning for max_model_len = 4096 (upstream's value)")
    assert warnings[1].endswith("planning for max_tokens = 300 (upstream's value)")
    assert warnings[2].endswith("planning for image limit = 1 (the value given to the plugin)")
    caplog.clear()
    limits_for(upsampler, Settings())  # once per engine type, not on every call
    assert not caplog.records
    # an offloaded upsampler (no engine loaded yet) is not a missing path: nothing is reported
    limits_for(FakeUpsampler(ckpt), Settings())
    assert not caplog.records


def test_a_checkpoint_without_a_tokenizer_falls_back_to_the_embedded_one(ckpt, clips, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    fake = FakeUpsampler(tmp_path / "empty_checkpoint")
    run_upsampler(fake, PROMPT, str(clips[1280, 704]))
    [(_, _, sizes)] = fake.received
    embedded = plan_frames(clips[1280, 704], PROMPT, Options(), limits=Limits(), model=load_model()).plan
    assert sizes == list(embedded.planned.frame_sizes)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "embedded Pixtral-12B tokenizer" in warnings[0]
    # install(checkpoint_dir=...) names the folder when the upsampler object does not.
    cosmos_upsample_fix.install(checkpoint_dir=str(ckpt))
    caplog.clear()
    run_upsampler(fake, PROMPT, str(clips[1280, 704]))
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
    assert runtime.model_for(fake, runtime.current_settings()) is load_model(ckpt)


# ----------------------------------------------------------------------------- policy precedence
def test_policy_precedence_argument_then_install_then_environment_then_fit(
    standin, ckpt, clips, private_tmpdir, monkeypatch
):
    video = clips[1280, 704]
    sizes = {
        p: list(plan(video, ckpt, policy=p).planned.frame_sizes)
        for p in ["fit", "max-side:480", "max-side:320", "max-side:640"]
    }
    assert len({tuple(s) for s in sizes.values()}) == 4  # each policy is told apart by its result
    upsampler = make_upsampler(ckpt, offload=False)

    def sent(**kwargs):
        standin.calls.clear()
        run_upsampler(upsampler, PROMPT, str(video), **kwargs)
        [call] = standin.calls
        return call.image_sizes

    assert sent() == sizes["fit"]  # nothing set
    monkeypatch.setenv(env.POLICY.name, "max-side:480")
    assert sent() == sizes["max-side:480"]  # environment
    cosmos_upsample_fix.install(policy="max-side:320")
    assert sent() == sizes["max-side:320"]  # install() beats the environment
    assert sent(policy="max-side:640") == sizes["max-side:640"]  # the argument beats install()
    standin.calls.clear()
    upsampler._prompt_upsample_with_offload(PROMPT, str(video))  # the hooked method: install()'s policy
    assert standin.calls[0].image_sizes == sizes["max-side:320"]


# ----------------------------------------------------------------------------- on_error
@pytest.mark.parametrize("case", ["policy-none", "corrupt-video", "preprocessor-crash"])
def test_raise_fails_before_the_offloaded_model_is_loaded(
    standin, ckpt, clips, private_tmpdir, tmp_path, add_hook, case
):
    video = str(clips[1280, 704])
    expected_type = UpsampleFixError
    if case == "policy-none":
        cosmos_upsample_fix.install(policy="none")
        expected_type = BudgetError
    elif case == "corrupt-video":
        bad = tmp_path / "broken.mp4"
        bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
        video = str(bad)
        cosmos_upsample_fix.install()
        expected_type = InputError
    else:

        def crash(call):
            raise RuntimeError("unexpected\nfailure")

        add_hook("crash", crash, order=20)
        cosmos_upsample_fix.install()
    upsampler = make_upsampler(ckpt, offload=True)
    with pytest.raises(expected_type) as info:
        upsampler._prompt_upsample_with_offload(PROMPT, video)
    message = str(info.value)
    assert "\n" not in message
    if case == "policy-none":
        tokens = upstream_tokens((1280, 704), ckpt)
        assert str(tokens) in message and str(Limits().prompt_budget) in message
    if case == "preprocessor-crash":
        assert "RuntimeError: unexpected failure" in message and isinstance(info.value.__cause__, RuntimeError)
    assert standin.LLM.instances == 0 and standin.calls == []  # the 12B model was never loaded
    assert list(private_tmpdir.iterdir()) == []


def test_fallback_warns_and_gives_upstream_the_original_input(
    standin, ckpt, clips, private_tmpdir, add_hook, caplog, upstream_inputs
):
    def crash(call):
        raise RuntimeError("boom")

    add_hook("crash", crash, order=20)
    cosmos_upsample_fix.install(on_error="fallback")
    upsampler = make_upsampler(ckpt, offload=True)
    caplog.set_level(logging.INFO)
    small = str(clips[640, 480])
    answer = upsampler._prompt_upsample_with_offload(PROMPT, small)
    assert upstream_inputs[-1]["video"] == small  # the original input, untouched
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("cosmos_upsample_fix")]
    assert (
        len(warnings) == 1
        and "on_error=fallback" in warnings[0].getMessage()
        and "RuntimeError: boom" in warnings[0].getMessage()
    )
    [call] = standin.calls
    assert call.image_sizes == [(640, 480)] * 2 and answer == call.output_text
    assert sorted(p.name for p in private_tmpdir.iterdir()) == ["frame_1.png", "frame_2.png"]  # upstream's own files

    # With a clip that does not fit, upstream then fails in vLLM exactly as without the plugin.
    big = str(clips[1280, 704])
    with pytest.raises(
        ValueError, match=rf"^The decoder prompt \(length {upstream_tokens((1280, 704), ckpt)}\) is longer"
    ):
        upsampler._prompt_upsample_with_offload(PROMPT, big)
    assert upstream_inputs[-1]["video"] == big


def test_fallback_from_the_environment_when_not_installed(
    standin, ckpt, clips, private_tmpdir, monkeypatch, upstream_inputs
):
    monkeypatch.setenv(env.ON_ERROR.name, "fallback")
    monkeypatch.setenv(env.POLICY.name, "none")  # refused for 1280x704 ...
    upsampler = make_upsampler(ckpt, offload=True)
    with pytest.raises(ValueError, match=r"^The decoder prompt"):  # ... so upstream gets the original
        run_upsampler(upsampler, PROMPT, str(clips[1280, 704]))
    assert upstream_inputs[-1]["video"] == str(clips[1280, 704])
    monkeypatch.setenv(env.ON_ERROR.name, "raise")
    with pytest.raises(BudgetError):
        run_upsampler(upsampler, PROMPT, str(clips[1280, 704]))
    assert standin.LLM.instances == 1  # only the fallback call loaded the model


# ----------------------------------------------------------------------------- hook registry
def test_disable_all_gives_upstream_its_input_untouched(
    standin, ckpt, clips, private_tmpdir, monkeypatch, upstream_inputs
):
    cosmos_upsample_fix.install()
    monkeypatch.setenv(env.DISABLE.name, "all")
    upsampler = make_upsampler(ckpt, offload=True)
    big = str(clips[1280, 704])
    with pytest.raises(ValueError, match=rf"^The decoder prompt \(length {upstream_tokens((1280, 704), ckpt)}\)"):
        upsampler._prompt_upsample_with_offload(PROMPT, big)
    assert upstream_inputs == [{"prompt": PROMPT, "video": big}]
    assert standin.calls[0].image_sizes == [(1280, 704)] * 2


def test_disable_budget_fit_by_name_keeps_other_hooks(
    standin, ckpt, clips, private_tmpdir, monkeypatch, spy, upstream_inputs
):
    cosmos_upsample_fix.install()
    monkeypatch.setenv(env.DISABLE.name, "budget_fit")
    small = str(clips[640, 480])
    make_upsampler(ckpt)._prompt_upsample_with_offload(PROMPT, small)
    assert [r.video for r in spy] == [small] and upstream_inputs[0]["video"] == small


def test_a_custom_preprocessor_runs_first_and_its_output_is_what_gets_fitted(
    standin, ckpt, clips, private_tmpdir, add_hook, spy, upstream_inputs
):
    order = []

    def square_frames(call):
        # Replace the input by two square stills (another size than the clip's).
        order.append(("square", call.video))
        paths = []
        for i in range(2):
            path = call.workdir / f"square_{i}.png"
            Image.new("RGB", (1200, 1200), (40 * i, 80, 120)).save(path)
            paths.append(str(path))
        return paths

    add_hook("square", square_frames, order=50)
    original_fit = budget_fit_preprocessor

    def fit_spy(call):
        order.append(("budget_fit", list(call.video)))
        # The plan of the custom hook's frames (they exist only during the call).
        square_plans.append(plan_frames(call.video, PROMPT, Options(), limits=Limits(), model=load_model(ckpt)).plan)
        return original_fit(call)

    square_plans = []

    add_hook("budget_fit", fit_spy, order=1000)  # replaces the entry point of that name, same order
    cosmos_upsample_fix.install()
    big = str(clips[1280, 704])
    make_upsampler(ckpt)._prompt_upsample_with_offload(PROMPT, big)

    assert [name for name, _ in order] == ["square", "budget_fit"]
    assert order[0][1] == big and [Path(p).name for p in order[1][1]] == ["square_0.png", "square_1.png"]
    [record] = spy
    assert all(Path(p).parent == record.workdir for p in order[1][1])  # the call's private folder
    [call] = standin.calls
    [square_plan] = square_plans
    assert square_plan.original.frame_sizes == ((1200, 1200), (1200, 1200))
    assert call.image_sizes == list(square_plan.planned.frame_sizes) == upstream_inputs[0]["sizes"]
    assert call.image_sizes != list(plan(big, ckpt).planned.frame_sizes)
    assert call.num_tokens == square_plan.planned.prompt_tokens <= Limits().prompt_budget


def test_patched_call_under_install_is_planned_once(standin, ckpt, clips, private_tmpdir, caplog, upstream_inputs):
    """The patch calls run_upsampler; with install() too, the wrapper must not plan again."""
    cosmos_upsample_fix.install()
    caplog.set_level(logging.INFO)
    run_upsampler(make_upsampler(ckpt), PROMPT, str(clips[1280, 704]), policy="max-side:640")
    lines = [r for r in caplog.records if r.getMessage().startswith("cosmos-upsample-fix:")]
    assert len(lines) == 1 and len(upstream_inputs) == 1
    assert upstream_inputs[0]["sizes"] == list(plan(clips[1280, 704], ckpt, policy="max-side:640").planned.frame_sizes)


# ----------------------------------------------------------------------------- the preprocessor itself
def test_budget_fit_preprocessor_writes_planned_frames_and_leaves_its_plan(ckpt, clips, tmp_path):
    call = hooks.UpsamplerCall(
        video=str(clips[1280, 704]),
        prompt=PROMPT,
        upsampler=FakeUpsampler(ckpt),
        workdir=tmp_path,
        settings=Settings(policy="max-side:512"),
    )
    paths = budget_fit_preprocessor(call)
    expected = plan(clips[1280, 704], ckpt, policy="max-side:512")
    assert [Path(p).name for p in paths] == ["frame_1.png", "frame_2.png"]
    assert [Image.open(p).size for p in paths] == list(expected.planned.frame_sizes)
    assert call.notes["plan"] == expected


def test_engine_image_limit_caps_the_frames(standin, ckpt, clips, private_tmpdir, tmp_path):
    """An engine that takes one image gets one frame, from a video or from a frame list."""
    upsampler = make_upsampler(ckpt, offload=False, image_limit=1)
    cosmos_upsample_fix.install()
    upsampler._prompt_upsample_with_offload(PROMPT, str(clips[1280, 704]))
    one = plan(clips[1280, 704], ckpt, limits=Limits(max_images=1), frames=1)
    listed = []
    for i in range(2):
        path = tmp_path / f"frame_{i}.png"
        Image.new("RGB", (1280, 704)).save(path)
        listed.append(str(path))
    upsampler._prompt_upsample_with_offload(PROMPT, listed)
    for call in standin.calls:
        assert call.ok and call.num_images == 1
        assert call.image_sizes == list(one.planned.frame_sizes)
        assert call.num_tokens == one.planned.prompt_tokens


# ----------------------------------------------------------------------------- every caller
@pytest.fixture
def fit_count(add_hook):
    """The budget fitter under its own name, counting how often it plans."""
    counted = []

    def fit(call):
        counted.append(call.notes.get("limits"))
        return budget_fit_preprocessor(call)

    add_hook(hooks.BUDGET_FIT, fit, order=1000)
    return counted


def test_a_direct_prompt_upsample_caller_is_fitted(standin, ckpt, clips, private_tmpdir, spy, fit_count, caplog):
    """Third-party pipelines load the model themselves and call _prompt_upsample directly."""
    cosmos_upsample_fix.install()
    caplog.set_level(logging.INFO)
    upsampler = make_upsampler(ckpt, offload=False)
    big = str(clips[1280, 704])
    answer = upsampler._prompt_upsample(PROMPT, big)
    [call] = standin.calls
    expected = plan(big, ckpt)
    assert call.ok and call.image_sizes == list(expected.planned.frame_sizes) and answer == call.output_text
    assert len(spy) == 1 and len(fit_count) == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cosmos-upsample-fix:")]
    assert lines == [f"cosmos-upsample-fix: {expected.summary()}"]
    assert list(private_tmpdir.iterdir()) == []
    cosmos_upsample_fix.uninstall()  # upstream's own method again: vLLM refuses the full frames
    with pytest.raises(ValueError, match=r"^The decoder prompt"):
        upsampler._prompt_upsample(PROMPT, big)


@pytest.mark.parametrize("offload", [True, False])
def test_both_methods_process_the_input_once(
    standin, ckpt, clips, private_tmpdir, spy, fit_count, upstream_inputs, offload
):
    """_prompt_upsample_with_offload calls _prompt_upsample: the preprocessors and the plan run once."""
    cosmos_upsample_fix.install()
    make_upsampler(ckpt, offload=offload)._prompt_upsample_with_offload(PROMPT, str(clips[1280, 704]))
    assert len(spy) == 1 and len(fit_count) == 1 and len(standin.calls) == 1
    assert upstream_inputs[0]["sizes"] == list(plan(clips[1280, 704], ckpt).planned.frame_sizes)


@pytest.mark.parametrize("way", ["install", "patch"])
@pytest.mark.parametrize("max_model_len", [8192, 3000])
def test_offloaded_call_plans_finally_for_the_engine_that_was_loaded(
    standin, ckpt, clips, private_tmpdir, spy, way, max_model_len
):
    """With offload, the engine exists only inside upstream's call; the frames sent fit that engine."""
    big = str(clips[1280, 704])
    upsampler = make_upsampler(ckpt, offload=True, max_model_len=max_model_len)
    if way == "install":
        cosmos_upsample_fix.install()
        upsampler._prompt_upsample_with_offload(PROMPT, big)
    else:  # the patch's call, no install(): _prompt_upsample is not wrapped on the class
        run_upsampler(upsampler, PROMPT, big)
        assert not wrapping.is_wrapped(type(upsampler), "_prompt_upsample")
        assert "_prompt_upsample" not in vars(upsampler)  # the per-call route is gone afterwards
    [call] = standin.calls
    live = Limits(max_model_len=max_model_len)
    expected = plan(big, ckpt, limits=live)
    assert call.ok and call.max_model_len == max_model_len
    assert call.image_sizes == list(expected.planned.frame_sizes) != list(plan(big, ckpt).planned.frame_sizes)
    assert call.num_tokens == expected.planned.prompt_tokens <= live.prompt_budget
    assert len(spy) == 1  # the other preprocessors ran once; only the fit was redone for the engine
    assert getattr(upsampler, "upsampler_model", None) is None  # offloaded again
    assert list(private_tmpdir.iterdir()) == []


@pytest.mark.parametrize("way", ["install", "patch"])
def test_refusals_come_before_the_offloaded_load_and_name_the_cosmos_flag(standin, ckpt, clips, private_tmpdir, way):
    upsampler = make_upsampler(ckpt, offload=True)
    big = str(clips[1280, 704])
    with pytest.raises(BudgetError) as info:
        if way == "install":
            cosmos_upsample_fix.install(policy="fixed:1280x704")
            upsampler._prompt_upsample_with_offload(PROMPT, big)
        else:
            run_upsampler(upsampler, PROMPT, big, policy="none")
    assert "--upsampler_policy fit" in str(info.value) and "--policy" not in str(info.value).replace(
        "--upsampler_policy", ""
    )
    assert standin.LLM.instances == 0 and standin.calls == []


# ----------------------------------------------------------------------------- settings and on_error=skip
def test_install_without_arguments_reads_the_environment_and_arguments_win(monkeypatch):
    monkeypatch.setenv(env.POLICY.name, "max-side:480")
    monkeypatch.setenv(env.ON_ERROR.name, "skip")
    monkeypatch.setenv(env.ENDPOINT.name, "http://127.0.0.1:9/v1/")
    cosmos_upsample_fix.install()
    assert runtime.current_settings() == Settings(
        policy="max-side:480", on_error="skip", endpoint="http://127.0.0.1:9/v1"
    )
    cosmos_upsample_fix.install(policy="fit", on_error="raise", endpoint="http://server:8000/v1")
    assert runtime.current_settings() == Settings(policy="fit", on_error="raise", endpoint="http://server:8000/v1")
    monkeypatch.setenv(env.ON_ERROR.name, "sometimes")
    with pytest.raises(UpsampleFixError, match="on_error must be one of raise, fallback, skip"):
        cosmos_upsample_fix.install()


@pytest.mark.parametrize("where", ["install", "environment"])
def test_skip_keeps_the_users_prompt_and_loads_nothing(
    standin, ckpt, clips, private_tmpdir, add_hook, caplog, monkeypatch, where
):
    def crash(call):
        raise RuntimeError("boom")

    add_hook("crash", crash, order=20)
    if where == "install":
        cosmos_upsample_fix.install(on_error="skip")
    else:
        monkeypatch.setenv(env.ON_ERROR.name, "skip")
        cosmos_upsample_fix.install()  # no arguments: the environment's value
    caplog.set_level(logging.INFO)
    upsampler = make_upsampler(ckpt, offload=True)
    for answer in (
        upsampler._prompt_upsample_with_offload(PROMPT, str(clips[640, 480])),
        run_upsampler(upsampler, PROMPT, str(clips[640, 480])),
    ):
        assert answer == PROMPT
    assert standin.LLM.instances == 0 and standin.calls == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("on_error=skip, so the prompt is kept unchanged" in w for w in warnings)
    assert "RuntimeError: boom" in warnings[0]
    assert list(private_tmpdir.iterdir()) == []


def test_skip_after_the_load_when_the_engine_cannot_take_the_fixed_size(standin, ckpt, clips, private_tmpdir, caplog):
    """The pre-load plan fits upstream's 4096; the loaded engine is smaller: the final plan is refused."""
    cosmos_upsample_fix.install(policy="fixed:928x512", on_error="skip")
    upsampler = make_upsampler(ckpt, offload=True, max_model_len=3000)
    assert upsampler._prompt_upsample_with_offload(PROMPT, str(clips[1280, 704])) == PROMPT
    assert standin.LLM.instances == 1 and standin.calls == []  # loaded (to learn its limits), never asked
    assert getattr(upsampler, "upsampler_model", None) is None  # and freed as upstream does
    assert any("--upsampler_policy" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


# ----------------------------------------------------------------------------- endpoint mode


@pytest.mark.parametrize("offload", [True, False])
@pytest.mark.parametrize("method", [METHOD, "_prompt_upsample"])
def test_install_endpoint_builds_no_engine_and_sends_the_fitted_request(
    standin, ckpt, clips, private_tmpdir, server, spy, offload, method
):
    cosmos_upsample_fix.install(endpoint=server.url)
    upsampler = make_upsampler(ckpt, offload=offload)  # without offload upstream would load here
    assert getattr(upsampler, "upsampler_model", None) is None and standin.LLM.instances == 0
    big = str(clips[1280, 704])
    answer = getattr(upsampler, method)(PROMPT, big)
    [chat] = server.chats()
    expected = plan(big, ckpt)
    assert (
        chat.image_sizes == list(expected.planned.frame_sizes) and chat.prompt_tokens == expected.planned.prompt_tokens
    )
    assert chat.body["max_tokens"] == 300 and chat.body["temperature"] == 0.6
    assert chat.content_types == ["image_url", "image_url", "text"]
    assert answer == answer.strip() and answer.startswith(PROMPT) and f"{chat.prompt_tokens} prompt tokens" in answer
    assert standin.LLM.instances == 0 and standin.calls == [] and len(spy) == 1
    assert list(private_tmpdir.iterdir()) == []


def test_run_upsampler_endpoint_plans_with_the_servers_limits(standin, ckpt, clips, private_tmpdir):
    from openai_server import StandInServer

    with StandInServer(max_model_len=8192) as large:
        upsampler = make_upsampler(ckpt, offload=True)
        answer = run_upsampler(upsampler, "", str(clips[1280, 704]), endpoint=large.url)
        [chat] = large.chats()
    expected = plan(clips[1280, 704], ckpt, prompt="", limits=Limits(max_model_len=8192))
    assert (
        chat.image_sizes == list(expected.planned.frame_sizes) and chat.prompt_tokens == expected.planned.prompt_tokens
    )
    assert answer.startswith("describe the following images")  # upstream's empty-prompt text was sent
    assert standin.LLM.instances == 0 and standin.calls == []


@pytest.mark.parametrize("on_error", ["raise", "fallback", "skip"])
def test_endpoint_failures_follow_on_error(standin, ckpt, clips, private_tmpdir, monkeypatch, caplog, on_error):
    from cosmos_upsample_fix.remote import endpoint
    from cosmos_upsample_fix.remote.endpoint import EndpointError

    def down(source, prompt, options, **kwargs):
        raise EndpointError(f"upsampler endpoint {options.endpoint} cannot be reached: connection refused")

    monkeypatch.setattr(endpoint, "upsample_remote", down)
    cosmos_upsample_fix.install(endpoint="http://127.0.0.1:9/v1", on_error=on_error)
    upsampler = make_upsampler(ckpt, offload=False)
    if on_error == "raise":
        with pytest.raises(EndpointError, match="127.0.0.1:9/v1 cannot be reached"):
            upsampler._prompt_upsample_with_offload(PROMPT, str(clips[640, 480]))
    else:  # no local engine to fall back to: the prompt is kept
        assert upsampler._prompt_upsample_with_offload(PROMPT, str(clips[640, 480])) == PROMPT
        [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert f"on_error={on_error}, so the prompt is kept unchanged" in warning and "127.0.0.1:9" in warning
    assert standin.LLM.instances == 0 and standin.calls == []


# ----------------------------------------------------------------------------- warnings with no logging set up
def test_warnings_reach_stderr_when_nothing_else_logs(ckpt, clips, tmp_path, add_hook, monkeypatch, capsys):
    def crash(call):
        raise RuntimeError("boom")

    add_hook("crash", crash, order=20)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # no handler anywhere (pytest's removed)
    monkeypatch.delitem(sys.modules, "cosmos_transfer1.utils.log", raising=False)
    monkeypatch.delitem(sys.modules, "loguru", raising=False)
    cosmos_upsample_fix.install(on_error="fallback")
    fake = FakeUpsampler(ckpt)
    assert run_upsampler(fake, PROMPT, str(clips[640, 480])) == "answer"
    err = capsys.readouterr().err
    assert "on_error=fallback, so upstream gets the original input" in err and len(err.splitlines()) == 1
