"""Stand-in for ``cosmos_transfer1/diffusion/inference/transfer.py`` (the upsampler path).

Same flags as upstream (the ones that only matter to diffusion are accepted and ignored),
same spec-file merging, same pipeline construction and batch loop. Instead of a video it
writes the final prompt: ``<video_save_folder>/<video_save_name>.txt`` for one input,
``<video_save_folder>/video_<i>/prompt.txt`` for a batch file.

Under ``STANDIN_PATCHED=1``: ``--upsampler_policy`` and ``--upsampler_endpoint`` exist and are
passed to the pipeline as ``upsampler_policy=`` / ``upsampler_endpoint=``, and an endpoint makes
the script call ``install(policy=, endpoint=)`` right after parsing (as patches/cosmos-transfer1.patch does).
"""

import argparse
import copy
import json
import os
import sys

os.environ["TOKENIZERS_PARALLELISM"] = "false"

from cosmos_transfer1 import _standin
from cosmos_transfer1.checkpoints import (
    BASE_7B_CHECKPOINT_AV_SAMPLE_PATH,
    BASE_7B_CHECKPOINT_PATH,
    EDGE2WORLD_CONTROLNET_7B_DISTILLED_CHECKPOINT_PATH,
)
from cosmos_transfer1.diffusion.inference.inference_utils import load_controlnet_specs, validate_controlnet_specs
from cosmos_transfer1.diffusion.inference.preprocessors import Preprocessors
from cosmos_transfer1.diffusion.inference.world_generation_pipeline import (
    DiffusionControl2WorldGenerationPipeline,
    DistilledControl2WorldGenerationPipeline,
)
from cosmos_transfer1.utils import log, misc
from cosmos_transfer1.utils.io import read_prompts_from_file

_STRENGTHS = ["very_low", "low", "medium", "high", "very_high"]


def parse_arguments():
    parser = argparse.ArgumentParser(description="Control to world generation demo script", conflict_handler="resolve")
    parser.add_argument("--prompt", type=str, default="The video captures a stunning, photorealistic scene.")
    parser.add_argument(
        "--negative_prompt", type=str, default="The video captures a game playing, with bad crappy graphics."
    )
    parser.add_argument("--input_video_path", type=str, default="")
    parser.add_argument("--num_input_frames", type=int, default=1, choices=[1])
    parser.add_argument("--sigma_max", type=float, default=70.0)
    parser.add_argument("--blur_strength", type=str, default="medium", choices=_STRENGTHS)
    parser.add_argument("--canny_threshold", type=str, default="medium", choices=_STRENGTHS)
    parser.add_argument("--controlnet_specs", type=str, required=True)
    parser.add_argument("--is_av_sample", action="store_true")
    parser.add_argument("--checkpoint_dir", type=str, default="checkpoints")
    parser.add_argument("--tokenizer_dir", type=str, default="Cosmos-Tokenize1-CV8x8x8-720p")
    parser.add_argument("--video_save_name", type=str, default="output")
    parser.add_argument("--video_save_folder", type=str, default="outputs/")
    parser.add_argument("--batch_input_path", type=str)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--num_steps", type=int, default=35)
    parser.add_argument("--guidance", type=float, default=5)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--num_gpus", type=int, default=1)
    parser.add_argument("--offload_diffusion_transformer", action="store_true")
    parser.add_argument("--offload_text_encoder_model", action="store_true")
    parser.add_argument("--offload_guardrail_models", action="store_true")
    parser.add_argument("--upsample_prompt", action="store_true")
    parser.add_argument("--offload_prompt_upsampler", action="store_true")
    if _standin.patched():
        parser.add_argument("--upsampler_policy", type=str, default=None)
        parser.add_argument("--upsampler_endpoint", type=str, default=None)
    parser.add_argument("--use_distilled", action="store_true")
    parser.add_argument("--save_input_noise", action="store_true")
    parser.add_argument("--benchmark", action="store_true")
    cmd_args = parser.parse_args()

    control_inputs, json_args = load_controlnet_specs(cmd_args)
    log.info(f"control_inputs: {json.dumps(control_inputs, indent=4)}")
    log.info(f"args in json: {json.dumps(json_args, indent=4)}")
    # Spec-file values fill in what the command line did not set.
    for key in json_args:
        if f"--{key}" not in sys.argv:
            setattr(cmd_args, key, json_args[key])
    log.info(f"final args: {json.dumps(vars(cmd_args), indent=4)}")
    return cmd_args, control_inputs


def demo(cfg, control_inputs):
    """Build the pipeline, run each batch through ``generate`` and save the final prompts."""
    control_inputs = validate_controlnet_specs(cfg, control_inputs)
    misc.set_random_seed(cfg.seed)

    device_rank = 0
    process_group = None
    if cfg.num_gpus > 1:
        # Upstream initialises torch.distributed / megatron here; the stand-in only reads the rank.
        device_rank = int(os.environ.get("RANK", 0))

    preprocessors = Preprocessors()
    extra = {}
    if _standin.patched():
        extra = {"upsampler_policy": cfg.upsampler_policy, "upsampler_endpoint": cfg.upsampler_endpoint}

    if cfg.use_distilled:
        assert not cfg.is_av_sample
        assert not cfg.save_input_noise, "Saving input noise is not supported for distilled models"
        pipeline = DistilledControl2WorldGenerationPipeline(
            checkpoint_dir=cfg.checkpoint_dir,
            checkpoint_name=EDGE2WORLD_CONTROLNET_7B_DISTILLED_CHECKPOINT_PATH,
            offload_network=cfg.offload_diffusion_transformer,
            offload_text_encoder_model=cfg.offload_text_encoder_model,
            offload_guardrail_models=cfg.offload_guardrail_models,
            guidance=cfg.guidance,
            num_steps=cfg.num_steps,
            fps=cfg.fps,
            seed=cfg.seed,
            num_input_frames=cfg.num_input_frames,
            control_inputs=control_inputs,
            sigma_max=cfg.sigma_max,
            blur_strength=cfg.blur_strength,
            canny_threshold=cfg.canny_threshold,
            upsample_prompt=cfg.upsample_prompt,
            offload_prompt_upsampler=cfg.offload_prompt_upsampler,
            process_group=process_group,
            **extra,
        )
    else:
        pipeline = DiffusionControl2WorldGenerationPipeline(
            checkpoint_dir=cfg.checkpoint_dir,
            checkpoint_name=BASE_7B_CHECKPOINT_AV_SAMPLE_PATH if cfg.is_av_sample else BASE_7B_CHECKPOINT_PATH,
            offload_network=cfg.offload_diffusion_transformer,
            offload_text_encoder_model=cfg.offload_text_encoder_model,
            offload_guardrail_models=cfg.offload_guardrail_models,
            guidance=cfg.guidance,
            num_steps=cfg.num_steps,
            fps=cfg.fps,
            seed=cfg.seed,
            num_input_frames=cfg.num_input_frames,
            control_inputs=control_inputs,
            sigma_max=cfg.sigma_max,
            blur_strength=cfg.blur_strength,
            canny_threshold=cfg.canny_threshold,
            upsample_prompt=cfg.upsample_prompt,
            offload_prompt_upsampler=cfg.offload_prompt_upsampler,
            process_group=process_group,
            save_input_noise=cfg.save_input_noise,
            **extra,
        )

    if cfg.batch_input_path:
        log.info(f"Reading batch inputs from path: {cfg.batch_input_path}")
        prompts = read_prompts_from_file(cfg.batch_input_path)
    else:
        prompts = [{"prompt": cfg.prompt, "visual_input": cfg.input_video_path}]

    batch_size = cfg.batch_size if hasattr(cfg, "batch_size") else 1
    if any("upscale" in c for c in control_inputs) and batch_size > 1:
        batch_size = 1
        log.info("Setting batch_size=1 as upscale does not support batch generation")
    os.makedirs(cfg.video_save_folder, exist_ok=True)
    for batch_start in range(0, len(prompts), batch_size):
        batch = prompts[batch_start : batch_start + batch_size]
        batch_prompt_texts = [p.get("prompt", None) for p in batch]
        batch_video_paths = [p.get("visual_input", None) for p in batch]

        batch_control_inputs = []
        for i, entry in enumerate(batch):
            if cfg.batch_input_path:
                video_save_subfolder = os.path.join(cfg.video_save_folder, f"video_{batch_start + i}")
                os.makedirs(video_save_subfolder, exist_ok=True)
            else:
                video_save_subfolder = cfg.video_save_folder
            current = copy.deepcopy(control_inputs)
            for hint_key, override in entry.get("control_overrides", {}).items():
                if hint_key in current:
                    current[hint_key].update(override)
                else:
                    log.warning(f"Ignoring unknown control key in override: {hint_key}")
            log.info("running preprocessor")
            preprocessors(
                entry.get("visual_input", None),
                entry.get("prompt", None),
                current,
                video_save_subfolder,
                blur_strength=cfg.blur_strength,
                canny_threshold=cfg.canny_threshold,
            )
            batch_control_inputs.append(current)

        batch_outputs = pipeline.generate(
            prompt=batch_prompt_texts,
            video_path=batch_video_paths,
            negative_prompt=cfg.negative_prompt,
            control_inputs=batch_control_inputs,
            save_folder=video_save_subfolder,
            batch_size=len(batch),
        )
        if batch_outputs is None:
            log.critical("Guardrail blocked generation for entire batch.")
            continue
        videos, final_prompts = batch_outputs[0], batch_outputs[1]

        for i, (video, prompt) in enumerate(zip(videos, final_prompts)):  # noqa: B007 - upstream's loop
            if cfg.batch_input_path:
                prompt_save_path = os.path.join(cfg.video_save_folder, f"video_{batch_start + i}", "prompt.txt")
            else:
                prompt_save_path = os.path.join(cfg.video_save_folder, f"{cfg.video_save_name}.txt")
            if device_rank == 0:
                os.makedirs(os.path.dirname(prompt_save_path), exist_ok=True)
                with open(prompt_save_path, "wb") as handle:
                    handle.write(prompt.encode("utf-8"))
                log.info(f"Saved prompt to {prompt_save_path}")


if __name__ == "__main__":
    args, control_inputs = parse_arguments()
    if _standin.patched() and args.upsampler_endpoint:  # the patch: requests go to this server
        try:
            from cosmos_upsample_fix.runtime import install
        except ImportError:
            log.warning("--upsampler_endpoint is ignored: cosmos-upsample-fix is not installed")
        else:
            install(policy=args.upsampler_policy, endpoint=args.upsampler_endpoint)
    demo(args, control_inputs)
