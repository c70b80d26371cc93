"""The stand-ins (tests/standin) behave like upstream Cosmos-Transfer1 + vLLM 0.9.2, without the plugin.

These tests pin the behaviour the plugin's tests rely on: the exact token count of a
request, vLLM's error when it is too long, when the engine is built and freed, which video
each control path hands to the upsampler, and the patched variant's switch.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import types
from pathlib import Path

import av
import pytest

PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
TOO_LONG_4699 = "The decoder prompt (length 4699) is longer than the maximum model length of 4096."
VLLM_SUGGESTION = (
    "Make sure that `max_model_len` is no smaller than the number of text tokens plus multimodal tokens. "
    "For image inputs, the number of image tokens depends on the number of images, and possibly their "
    "aspect ratios as well."
)


# ----------------------------------------------------------------------------- helpers
def first_frames(path, count=2):
    """The first frames of a clip as PIL images, decoded with PyAV (not the stand-in's OpenCV)."""
    images = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            images.append(frame.to_image())
            if len(images) == count:
                break
    return images


@functools.cache
def _tokenizer(tokenizer_file: str):
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    return MistralTokenizer.from_file(tokenizer_file)


def mistral_count(images, text, tokenizer_file):
    """Prompt tokens of one user turn (images, then text), straight from mistral_common."""
    from mistral_common.protocol.instruct.messages import ImageChunk, TextChunk, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    tokenizer = _tokenizer(str(tokenizer_file))
    chunks = [ImageChunk(image=img) for img in images] + [TextChunk(text=text)]
    request = ChatCompletionRequest(messages=[UserMessage(content=chunks)])
    return len(tokenizer.encode_chat_completion(request).tokens)


def video_info(path):
    """(frames, width, height) of a video file."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return len(frames), frames[0].width, frames[0].height


def edge_spec(tmp_path, input_video, input_control=None, prompt=PROMPT, **extra):
    spec = {"prompt": prompt, "input_video_path": str(input_video), "edge": {"control_weight": 0.5}}
    if input_control is not None:
        spec["edge"]["input_control"] = str(input_control)
    spec.update(extra)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def make_pipeline(checkpoint_dir, control_inputs, **kwargs):
    from cosmos_transfer1.checkpoints import BASE_7B_CHECKPOINT_PATH
    from cosmos_transfer1.diffusion.inference.world_generation_pipeline import (
        DiffusionControl2WorldGenerationPipeline,
    )

    kwargs.setdefault("upsample_prompt", True)
    kwargs.setdefault("offload_prompt_upsampler", True)
    return DiffusionControl2WorldGenerationPipeline(
        checkpoint_dir=str(checkpoint_dir),
        checkpoint_name=BASE_7B_CHECKPOINT_PATH,
        control_inputs=control_inputs,
        **kwargs,
    )


# ----------------------------------------------------------------------------- the engine
def test_640x480_request_fits_with_mistral_commons_token_count(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, standin_helpers
):
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler

    video = video_clip(640, 480)
    upsampler = PixtralPromptUpsampler(str(cosmos_checkpoint), offload_prompt_upsampler=True)
    result = upsampler._prompt_upsample_with_offload(PROMPT, str(video))

    [call] = standin.calls
    expected = mistral_count(first_frames(video), PROMPT, standin_helpers.bundled_tekken())
    assert call.num_tokens == expected == 2479  # the documented figure
    assert call.ok and call.num_images == 2
    assert call.image_sizes == [(640, 480), (640, 480)]
    assert call.image_tokens == [1230, 1230]
    assert call.image_media_types == ["image/jpeg", "image/jpeg"] and call.image_formats == ["PNG", "PNG"]
    assert (call.max_model_len, call.image_limit, call.max_tokens, call.temperature) == (4096, 2, 300, 0.6)
    assert call.prompt_text == PROMPT
    assert result == f"Upsampled: {PROMPT} [2 images, 2479 tokens]"
    # Upstream's frame files: fixed names in the temp dir, left behind.
    assert sorted(p.name for p in private_tmpdir.iterdir()) == ["frame_1.png", "frame_2.png"]


def test_1280x704_request_is_rejected_with_vllms_error(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, standin_helpers
):
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler

    video = video_clip(1280, 704)
    upsampler = PixtralPromptUpsampler(str(cosmos_checkpoint), offload_prompt_upsampler=True)
    with pytest.raises(ValueError) as info:
        upsampler._prompt_upsample_with_offload(PROMPT, str(video))

    message = str(info.value)
    assert message.startswith(TOO_LONG_4699)
    assert message == f"{TOO_LONG_4699} {VLLM_SUGGESTION}"
    [call] = standin.calls
    assert call.num_tokens == mistral_count(first_frames(video), PROMPT, standin_helpers.bundled_tekken()) == 4699
    assert call.image_sizes == [(1280, 704)] * 2 and call.processed_sizes == [(1024, 576)] * 2
    assert call.image_tokens == [2340, 2340]
    assert call.error == message and call.output_text is None


def test_offload_builds_the_engine_inside_each_call_and_frees_it(
    standin, cosmos_checkpoint, private_tmpdir, video_clip
):
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler

    LLM = standin.LLM
    video = str(video_clip(320, 240))
    upsampler = PixtralPromptUpsampler(str(cosmos_checkpoint), offload_prompt_upsampler=True)
    assert LLM.instances == 0 and not hasattr(upsampler, "upsampler_model")

    upsampler._prompt_upsample_with_offload(PROMPT, video)
    assert LLM.instances == 1 and upsampler.upsampler_model is None and LLM.live_count() == 0
    upsampler._prompt_upsample_with_offload(PROMPT, video)
    assert LLM.instances == 2 and LLM.live_count() == 0
    assert [c.instance for c in standin.calls] == [1, 2]

    # Upstream does not free the engine when the call raises.
    too_big = str(video_clip(1280, 704))
    with pytest.raises(ValueError):
        upsampler._prompt_upsample_with_offload(PROMPT, too_big)
    assert LLM.instances == 3 and upsampler.upsampler_model is not None


def test_without_offload_the_engine_is_built_once_in_init(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, standin_helpers
):
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler

    LLM = standin.LLM
    upsampler = PixtralPromptUpsampler(str(cosmos_checkpoint))
    assert LLM.instances == 1
    engine = upsampler.upsampler_model
    config = engine.llm_engine.model_config
    assert config.max_model_len == 4096
    assert config.multimodal_config.limit_per_prompt == {"image": 2}
    assert config.multimodal_config.get_limit_per_prompt("image") == 2
    assert config.multimodal_config.get_limit_per_prompt("video") == 999
    assert config.hf_config.vision_config.patch_size == 16 and config.hf_config.vision_config.image_size == 1024
    assert engine.engine_args["max_num_seqs"] == 2 and engine.engine_args["enable_prefix_caching"] is True
    assert engine.engine_args["gpu_memory_utilization"] == 0.98 and engine.engine_args["tokenizer_mode"] == "mistral"
    assert engine.get_tokenizer().mistral is not None
    assert Path(config.model) == cosmos_checkpoint / "nvidia" / "Cosmos-UpsamplePrompt1-12B-Transfer"

    video = str(video_clip(320, 240))
    upsampler._prompt_upsample_with_offload(PROMPT, video)
    upsampler._prompt_upsample_with_offload("", video)
    assert LLM.instances == 1 and upsampler.upsampler_model is engine
    assert [c.prompt_text for c in standin.calls] == [PROMPT, "describe the following images"]
    frames = first_frames(video)
    tekken = standin_helpers.bundled_tekken()  # the file the fixture copied into the checkpoint
    assert standin.calls[0].num_tokens == 3 + 2 * 15 * 21 + 16 == mistral_count(frames, PROMPT, tekken)
    assert standin.calls[1].num_tokens == mistral_count(frames, "describe the following images", tekken)


def test_engine_limits_can_be_overridden_for_tests(standin, cosmos_checkpoint, private_tmpdir, video_clip):
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler

    big = str(video_clip(1280, 704))
    standin.set_engine_limits(max_model_len=8192)
    upsampler = PixtralPromptUpsampler(str(cosmos_checkpoint), offload_prompt_upsampler=True)
    assert upsampler._prompt_upsample_with_offload(PROMPT, big).endswith("[2 images, 4699 tokens]")
    assert standin.calls[-1].max_model_len == 8192

    standin.set_engine_limits()
    PixtralPromptUpsampler.standin_max_model_len = 3000  # class attribute, restored below
    try:
        upsampler = PixtralPromptUpsampler(str(cosmos_checkpoint))
        assert upsampler.upsampler_model.llm_engine.model_config.max_model_len == 3000
        with pytest.raises(
            ValueError, match=r"^The decoder prompt \(length 4699\) is longer than the maximum model length of 3000\. "
        ):
            upsampler._prompt_upsample_with_offload(PROMPT, big)
    finally:
        PixtralPromptUpsampler.standin_max_model_len = None

    standin.set_engine_limits(image_limit=1)
    upsampler = PixtralPromptUpsampler(str(cosmos_checkpoint))
    assert upsampler.upsampler_model.llm_engine.model_config.multimodal_config.limit_per_prompt == {"image": 1}
    with pytest.raises(ValueError) as info:
        upsampler._prompt_upsample_with_offload(PROMPT, str(video_clip(320, 240)))
    assert str(info.value) == (
        "At most 1 image(s) may be provided in one request. "
        "You can set `--limit-mm-per-prompt` to increase this limit if the model supports it."
    )


def test_too_many_images_and_frame_lists(standin, cosmos_checkpoint, private_tmpdir, tmp_path):
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler
    from PIL import Image

    frames = []
    for i, size in enumerate([(320, 180), (400, 225), (320, 180)]):
        frames.append(tmp_path / f"f{i}.png")
        Image.new("RGB", size, (i * 40, 90, 200)).save(frames[-1])
    upsampler = PixtralPromptUpsampler(str(cosmos_checkpoint))
    # A list of image paths is used as is (the standalone pipeline passes one).
    upsampler._prompt_upsample_with_offload(PROMPT, [str(p) for p in frames[:2]])
    assert standin.calls[-1].image_sizes == [(320, 180), (400, 225)]
    assert standin.calls[-1].image_tokens == [252, 390]
    assert standin.calls[-1].num_tokens == 3 + 252 + 390 + 16 - 0  # BOS, [INST], [/INST] + images + text
    with pytest.raises(ValueError, match=r"^At most 2 image\(s\) may be provided in one request\."):
        upsampler._prompt_upsample_with_offload(PROMPT, [str(p) for p in frames])
    assert standin.calls[-1].num_tokens is None  # rejected before tokenization, as in vLLM
    assert list(private_tmpdir.iterdir()) == []


def test_chat_accepts_one_or_many_conversations_and_caps_the_answer(standin, cosmos_checkpoint):
    from vllm import LLM, SamplingParams

    model = str(cosmos_checkpoint / "nvidia" / "Cosmos-UpsamplePrompt1-12B-Transfer")
    llm = LLM(model=model, tokenizer_mode="mistral", max_model_len=64, limit_mm_per_prompt={"image": 2})
    conversation = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
    [single] = llm.chat(conversation, sampling_params=SamplingParams(max_tokens=300))
    assert single.prompt_token_ids[:2] == [1, 3] and len(single.prompt_token_ids) == 19
    assert single.prompt == PROMPT and single.outputs[0].text == f"Upsampled: {PROMPT} [0 images, 19 tokens]"
    assert single.outputs[0].finish_reason == "stop"
    outputs = llm.chat([conversation, [{"role": "user", "content": "Hi"}]])
    assert len(outputs) == 2
    # Default SamplingParams: max_tokens=16 cuts the fake answer, like vLLM would.
    assert [o.outputs[0].finish_reason for o in outputs] == ["length", "stop"]
    assert len(outputs[0].outputs[0].token_ids) == 16
    # Fits, but leaves only 64 - 19 = 45 tokens for the answer.
    long_text = PROMPT + " " + " ".join(["office"] * 30)
    [capped] = llm.chat([[{"role": "user", "content": long_text}]], sampling_params=SamplingParams(max_tokens=300))
    room = 64 - len(capped.prompt_token_ids)
    assert len(capped.outputs[0].token_ids) == room and capped.outputs[0].finish_reason == "length"
    with pytest.raises(NotImplementedError, match="Unknown part type: audio_url"):
        llm.chat([{"role": "user", "content": [{"type": "audio_url", "audio_url": {"url": "x"}}]}])
    with pytest.raises(TypeError, match="unexpected keyword argument 'not_an_engine_arg'"):
        LLM(model=model, tokenizer_mode="mistral", not_an_engine_arg=1)


def test_custom_temp_dir_for_frames(standin, cosmos_checkpoint, private_tmpdir, video_clip, tmp_path, monkeypatch):
    from cosmos_transfer1.utils.misc import extract_video_frames

    video = str(video_clip(320, 240))
    other = tmp_path / "frames"
    other.mkdir()
    monkeypatch.setenv("STANDIN_TEMPDIR", str(other))
    assert extract_video_frames(video) == [str(other / "frame_1.png"), str(other / "frame_2.png")]
    assert extract_video_frames(video, number_of_frames=5) == [str(other / f"frame_{i}.png") for i in (1, 2, 3)]
    assert extract_video_frames(str(tmp_path / "missing.mp4")) == []
    assert list(private_tmpdir.iterdir()) == []


# ----------------------------------------------------------------------------- the pipeline
def test_rank_1_never_builds_the_upsampler(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, torchrun_env, tmp_path
):
    torchrun_env(rank=1, world_size=2)
    video = str(video_clip(320, 240))
    pipeline = make_pipeline(cosmos_checkpoint, {"edge": {"input_control": video}}, offload_prompt_upsampler=False)
    assert pipeline.prompt_upsampler is None and pipeline.upsampler_hint_key is None
    _, prompts = pipeline.generate(PROMPT, video, control_inputs={"edge": {}}, save_folder=str(tmp_path / "out"))
    assert prompts == [PROMPT]
    assert standin.LLM.instances == 0 and standin.calls == []


def test_torchrun_variables_are_hidden_while_the_upsampler_loads(
    standin, cosmos_checkpoint, private_tmpdir, torchrun_env, monkeypatch
):
    from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler

    seen = []
    original = PixtralPromptUpsampler._load_upsampler_model

    def spy(self):
        seen.append({k: os.environ.get(k) for k in ("RANK", "MASTER_PORT", "TORCHELASTIC_RUN_ID")})
        return original(self)

    monkeypatch.setattr(PixtralPromptUpsampler, "_load_upsampler_model", spy)
    pipeline = make_pipeline(cosmos_checkpoint, {"seg": {"input_control": "x.mp4"}}, offload_prompt_upsampler=False)
    assert seen == [{"RANK": None, "MASTER_PORT": None, "TORCHELASTIC_RUN_ID": None}]
    assert os.environ["RANK"] == "0" and os.environ["MASTER_PORT"] == "29500"
    assert (pipeline.upsampler_hint_key, pipeline.hint_details) == ("seg", None)
    assert standin.LLM.instances == 1


def test_missing_rank_is_a_key_error_like_upstream(standin, cosmos_checkpoint, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(KeyError, match="RANK"):
        make_pipeline(cosmos_checkpoint, {"edge": {}})


@pytest.mark.parametrize("order", [("seg", "depth"), ("depth", "seg")])
def test_seg_and_depth_use_the_given_control_video(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, torchrun_env, tmp_path, order
):
    sizes = {"seg": (480, 272), "depth": (400, 224)}
    controls = {key: {"input_control": str(video_clip(*sizes[key], name=f"{key}.mp4"))} for key in order}
    controls["keypoint"] = {"input_control": str(video_clip(64, 64, name="kp.mp4"))}
    video = str(video_clip(320, 240, name="input.mp4"))
    pipeline = make_pipeline(cosmos_checkpoint, controls)
    assert pipeline.upsampler_hint_key == order[0]
    _, prompts = pipeline.generate("a", video, control_inputs=controls, save_folder=str(tmp_path / "out"))
    [call] = standin.calls
    assert call.image_sizes == [sizes[order[0]]] * 2
    assert prompts == [call.output_text]
    assert (tmp_path / "out" / "video_0").is_dir() and list((tmp_path / "out" / "video_0").iterdir()) == []


def test_no_usable_control_means_no_upsampler(standin, cosmos_checkpoint, torchrun_env, video_clip, tmp_path):
    video = str(video_clip(320, 240))
    pipeline = make_pipeline(cosmos_checkpoint, {"keypoint": {"input_control": video}})
    assert pipeline.prompt_upsampler is None and pipeline.upsampler_hint_key is None
    assert pipeline.generate("a", video, control_inputs={}, save_folder=str(tmp_path))[1] == ["a"]


def test_seg_without_input_control_fails_like_upstream(
    standin, cosmos_checkpoint, private_tmpdir, torchrun_env, video_clip, tmp_path
):
    video = str(video_clip(320, 240))
    pipeline = make_pipeline(cosmos_checkpoint, {"seg": {}})
    with pytest.raises(TypeError, match="'NoneType' object is not iterable"):
        pipeline.generate("a", video, control_inputs={"seg": {}}, save_folder=str(tmp_path / "out"))


@pytest.mark.parametrize("hint", ["edge", "vis"])
def test_vis_and_edge_without_control_generate_one_from_the_input(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, torchrun_env, tmp_path, hint
):
    video = str(video_clip(480, 272, frames=12))
    pipeline = make_pipeline(cosmos_checkpoint, {hint: {}}, canny_threshold="low", blur_strength="high")
    assert (pipeline.upsampler_hint_key, pipeline.hint_details) == ("vis", hint)
    _, prompts = pipeline.generate(PROMPT, video, control_inputs={hint: {}}, save_folder=str(tmp_path / "out"))
    made = tmp_path / "out" / "video_0" / f"control_input_{hint}_upsampler.mp4"
    assert video_info(made) == (10, 480, 272)
    [call] = standin.calls
    assert call.image_sizes == [(480, 272)] * 2 and prompts == [call.output_text]
    assert any(f"Saving control input to {made}" == m for m in standin.log.messages("INFO"))


def test_edge_with_a_given_control_uses_it(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, torchrun_env, tmp_path
):
    video = str(video_clip(480, 272, name="input.mp4"))
    control = str(video_clip(400, 224, name="edge.mp4"))
    controls = {"edge": {"input_control": control}, "vis": {}}  # "vis" present: details are "vis"
    pipeline = make_pipeline(cosmos_checkpoint, controls)
    assert pipeline.hint_details == "vis"
    pipeline.generate("a", video, control_inputs=controls, save_folder=str(tmp_path / "out"))
    assert (tmp_path / "out" / "video_0" / "control_input_vis_upsampler.mp4").exists()

    standin.LLM.reset()
    controls = {"edge": {"input_control": control}}
    pipeline = make_pipeline(cosmos_checkpoint, controls)
    pipeline.generate("a", video, control_inputs=controls, save_folder=str(tmp_path / "out2"))
    assert standin.calls[0].image_sizes == [(400, 224)] * 2
    assert list((tmp_path / "out2" / "video_0").iterdir()) == []


def test_batch_generate_calls_the_engine_once_per_pair(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, torchrun_env, tmp_path
):
    videos = [str(video_clip(320 + 32 * i, 240, name=f"in{i}.mp4")) for i in range(3)]
    prompts = [f"prompt {i}" for i in range(3)]
    pipeline = make_pipeline(cosmos_checkpoint, {"edge": {}})
    _, final = pipeline.generate(
        prompts, videos, control_inputs=[{"edge": {}}] * 3, save_folder=str(tmp_path / "out"), batch_size=3
    )
    assert [c.prompt_text for c in standin.calls] == prompts
    assert [c.image_sizes[0] for c in standin.calls] == [(320, 240), (352, 240), (384, 240)]
    assert final == [c.output_text for c in standin.calls]
    assert standin.LLM.instances == 3  # offloaded: one engine per call
    for i in range(3):
        assert (tmp_path / "out" / f"video_{i}" / "control_input_edge_upsampler.mp4").exists()


def test_distilled_pipeline_takes_the_same_path(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, torchrun_env, tmp_path
):
    from cosmos_transfer1.checkpoints import EDGE2WORLD_CONTROLNET_7B_DISTILLED_CHECKPOINT_PATH
    from cosmos_transfer1.diffusion.inference.world_generation_pipeline import (
        DistilledControl2WorldGenerationPipeline,
    )

    video = str(video_clip(320, 240))
    pipeline = DistilledControl2WorldGenerationPipeline(
        checkpoint_dir=str(cosmos_checkpoint),
        checkpoint_name=EDGE2WORLD_CONTROLNET_7B_DISTILLED_CHECKPOINT_PATH,
        control_inputs={"edge": {"input_control": video}},
        upsample_prompt=True,
        offload_prompt_upsampler=True,
    )
    _, prompts = pipeline.generate(PROMPT, video, control_inputs={"edge": {}}, save_folder=str(tmp_path))
    assert prompts == [standin.calls[0].output_text]
    with pytest.raises(AssertionError, match="single control input"):
        DistilledControl2WorldGenerationPipeline(
            checkpoint_dir=str(cosmos_checkpoint),
            checkpoint_name=EDGE2WORLD_CONTROLNET_7B_DISTILLED_CHECKPOINT_PATH,
            control_inputs={"edge": {}, "vis": {}},
        )


def test_log_stand_in_records_and_prints(standin, capsys):
    log = standin.log
    log.info("hello")
    log.warning("careful", rank0_only=False)
    log.logger.info("from {}", "loguru")
    assert log.records == [("INFO", "hello"), ("WARNING", "careful"), ("INFO", "from loguru")]
    assert "[cosmos-standin] WARNING | careful" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the scripts
def test_transfer_script_fails_on_1280x704_and_passes_on_640x480(
    run_standin_here, cosmos_checkpoint, private_tmpdir, video_clip, tmp_path
):
    big = video_clip(1280, 704, name="big.mp4")
    spec = edge_spec(tmp_path, big, input_control=big)
    out = tmp_path / "out_big"
    flags = [
        "--checkpoint_dir",
        cosmos_checkpoint,
        "--video_save_folder",
        out,
        "--controlnet_specs",
        spec,
        "--offload_text_encoder_model",
        "--upsample_prompt",
        "--offload_prompt_upsampler",
        "--offload_guardrail_models",
        "--num_gpus",
        "1",
    ]
    result = run_standin_here("transfer", *flags)
    assert result.returncode != 0
    assert f"ValueError: {TOO_LONG_4699}" in result.stderr
    assert not (out / "output.txt").exists()

    small = video_clip(640, 480, name="small.mp4")
    spec = edge_spec(tmp_path, small)  # no input_control: the upsampler makes its own edge video
    out = tmp_path / "out_small"
    flags[3], flags[5] = out, spec
    result = run_standin_here("transfer", *flags)
    assert result.returncode == 0, result.stderr
    assert (out / "output.txt").read_text() == f"Upsampled: {PROMPT} [2 images, 2479 tokens]"
    assert video_info(out / "video_0" / "control_input_edge_upsampler.mp4") == (3, 640, 480)
    assert (out / "edge_input_control_0.mp4").exists()  # the preprocessor's own control video
    assert "Prompt upsampler initialized with hint key: vis and hint details: edge" in result.stdout
    assert sorted(p.name for p in private_tmpdir.iterdir()) == ["frame_1.png", "frame_2.png"]


def test_transfer_script_on_rank_1_keeps_the_prompt(run_standin_here, cosmos_checkpoint, video_clip, tmp_path):
    big = video_clip(1280, 704)
    out = tmp_path / "out"
    result = run_standin_here(
        "transfer",
        "--checkpoint_dir",
        cosmos_checkpoint,
        "--video_save_folder",
        out,
        "--controlnet_specs",
        edge_spec(tmp_path, big, input_control=big),
        "--upsample_prompt",
        "--num_gpus",
        "1",
        rank=1,
        world_size=2,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "output.txt").read_text() == PROMPT
    assert "Initializing prompt upsampler" not in result.stdout


def test_transfer_script_batch_mode_calls_once_per_entry(
    run_standin_here, cosmos_checkpoint, private_tmpdir, video_clip, tmp_path, standin_helpers
):
    entries = [
        {"prompt": f"scene {i}", "visual_input": str(video_clip(320, 240 - 16 * i, name=f"b{i}.mp4"))} for i in range(3)
    ]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(e) + "\n" for e in entries))
    spec = edge_spec(tmp_path, entries[0]["visual_input"])
    out = tmp_path / "out"
    result = run_standin_here(
        "transfer",
        "--checkpoint_dir",
        cosmos_checkpoint,
        "--video_save_folder",
        out,
        "--controlnet_specs",
        spec,
        "--batch_input_path",
        batch,
        "--batch_size",
        "2",
        "--upsample_prompt",
        "--offload_prompt_upsampler",
    )
    assert result.returncode == 0, result.stderr
    counts = []
    for i, entry in enumerate(entries):
        tokens = mistral_count(first_frames(entry["visual_input"]), entry["prompt"], standin_helpers.bundled_tekken())
        assert (out / f"video_{i}" / "prompt.txt").read_text() == f"Upsampled: scene {i} [2 images, {tokens} tokens]"
        counts.append(tokens)
    assert [a - b for a, b in zip(counts, counts[1:])] == [2 * 21, 2 * 21]  # one row of 20+1 tokens less per frame
    assert result.stdout.count("Upsampled prompt 1:") == 2 and result.stdout.count("Upsampled prompt 2:") == 1


def test_standalone_upsampler_pipeline(run_standin_here, cosmos_checkpoint, private_tmpdir, video_clip):
    small, big = video_clip(640, 480), video_clip(1280, 704)
    base = ["--checkpoint_dir", cosmos_checkpoint, "--prompt", PROMPT, "--offload_prompt_upsampler"]
    ok = run_standin_here("upsampler_pipeline", *base, "--input_video", small)
    assert ok.returncode == 0, ok.stderr
    assert f"Upsampled prompt: Upsampled: {PROMPT} [2 images, 2479 tokens]" in ok.stdout
    bad = run_standin_here("upsampler_pipeline", *base, "--input_video", big)
    assert bad.returncode != 0 and f"ValueError: {TOO_LONG_4699}" in bad.stderr
    quiet = run_standin_here("upsampler_pipeline", *base, "--input_video", big, rank=1, world_size=2)
    assert quiet.returncode == 0 and quiet.stdout == ""
    bare = run_standin_here("upsampler_pipeline", *base, "--input_video", small, rank=None)
    assert bare.returncode != 0 and "KeyError: 'RANK'" in bare.stderr
    unpatched = run_standin_here("upsampler_pipeline", *base, "--input_video", small, "--upsampler_policy", "fit")
    assert unpatched.returncode == 2 and "unrecognized arguments: --upsampler_policy fit" in unpatched.stderr


# ----------------------------------------------------------------------------- patched variant
def fake_runtime(monkeypatch, answer="plugin answer"):
    calls = []
    module = types.ModuleType("cosmos_upsample_fix.runtime")

    def run_upsampler(upsampler, prompt, video_path, policy=None, endpoint=None):
        calls.append((upsampler, prompt, video_path, policy))
        return answer

    module.run_upsampler = run_upsampler
    monkeypatch.setitem(sys.modules, "cosmos_upsample_fix.runtime", module)
    return calls


def test_unpatched_stand_in_has_no_policy_option(standin, cosmos_checkpoint, torchrun_env):
    with pytest.raises(TypeError, match="unexpected keyword argument 'upsampler_policy'"):
        make_pipeline(cosmos_checkpoint, {"edge": {}}, upsampler_policy="fit")
    pipeline = make_pipeline(cosmos_checkpoint, {"edge": {}})
    assert not hasattr(pipeline, "upsampler_policy")


def test_patched_pipeline_calls_the_plugin(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, torchrun_env, tmp_path, monkeypatch
):
    standin.set_patched()
    calls = fake_runtime(monkeypatch)
    control = str(video_clip(400, 224, name="seg.mp4"))
    pipeline = make_pipeline(cosmos_checkpoint, {"seg": {"input_control": control}}, upsampler_policy="max-side:640")
    _, prompts = pipeline.generate("a", control, control_inputs={}, save_folder=str(tmp_path))
    assert prompts == ["plugin answer"]
    assert calls == [(pipeline.prompt_upsampler, "a", control, "max-side:640")]
    assert standin.calls == []  # the fake plugin never reached the engine

    # No policy given: the attribute exists and is None.
    pipeline = make_pipeline(cosmos_checkpoint, {"seg": {"input_control": control}})
    pipeline.generate("b", control, control_inputs={}, save_folder=str(tmp_path))
    assert calls[-1][1:] == ("b", control, None)


def test_patched_pipeline_falls_back_without_the_plugin(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, torchrun_env, tmp_path, monkeypatch
):
    standin.set_patched()
    monkeypatch.setitem(sys.modules, "cosmos_upsample_fix.runtime", None)  # import fails
    control = str(video_clip(320, 240))
    pipeline = make_pipeline(cosmos_checkpoint, {"edge": {"input_control": control}}, upsampler_policy="fit")
    _, prompts = pipeline.generate(PROMPT, control, control_inputs={}, save_folder=str(tmp_path))
    assert prompts == [standin.calls[0].output_text]
    assert "--upsampler_policy is ignored: cosmos-upsample-fix is not installed" in standin.log.messages("WARNING")


def test_patched_standalone_main_passes_the_video_path(
    standin, cosmos_checkpoint, private_tmpdir, video_clip, monkeypatch, capsys
):
    standin.set_patched()
    calls = fake_runtime(monkeypatch, answer="fitted")
    from cosmos_transfer1.auxiliary.upsampler.inference import upsampler_pipeline

    video = str(video_clip(320, 240))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "upsampler_pipeline.py",
            "--checkpoint_dir",
            str(cosmos_checkpoint),
            "--prompt",
            "p",
            "--input_video",
            video,
            "--upsampler_policy",
            "fixed:640x360",
        ],
    )
    upsampler_pipeline.main()
    [(model, prompt, path, policy)] = calls
    assert (prompt, path, policy) == ("p", video, "fixed:640x360")
    assert type(model).__name__ == "PixtralPromptUpsampler" and model.upsampler_model is not None
    assert capsys.readouterr().out.endswith("Upsampled prompt: fitted\n")
    assert list(private_tmpdir.iterdir()) == []  # the plugin, not upstream, handles the frames


def test_patched_scripts_accept_the_policy_and_fall_back_without_plugin(
    run_standin_here, cosmos_checkpoint, private_tmpdir, video_clip, tmp_path
):
    small = video_clip(640, 480)
    out = tmp_path / "out"
    result = run_standin_here(
        "transfer",
        "--checkpoint_dir",
        cosmos_checkpoint,
        "--video_save_folder",
        out,
        "--controlnet_specs",
        edge_spec(tmp_path, small, input_control=small),
        "--upsample_prompt",
        "--upsampler_policy",
        "fit",
        patched=True,
        block_plugin=True,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING | --upsampler_policy is ignored: cosmos-upsample-fix is not installed" in result.stdout
    assert (out / "output.txt").read_text() == f"Upsampled: {PROMPT} [2 images, 2479 tokens]"

    result = run_standin_here(
        "upsampler_pipeline",
        "--checkpoint_dir",
        cosmos_checkpoint,
        "--prompt",
        PROMPT,
        "--input_video",
        small,
        "--upsampler_policy",
        "fit",
        patched=True,
        block_plugin=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "--upsampler_policy is ignored: cosmos-upsample-fix is not installed",
        f"Upsampled prompt: Upsampled: {PROMPT} [2 images, 2479 tokens]",
    ]
