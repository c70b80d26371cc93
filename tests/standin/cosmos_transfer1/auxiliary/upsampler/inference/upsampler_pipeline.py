"""Stand-in for ``cosmos_transfer1/auxiliary/upsampler/inference/upsampler_pipeline.py``.

Upstream's standalone script: ``--prompt``, ``--input_video``, ``--checkpoint_dir``,
``--offload_prompt_upsampler``; under ``STANDIN_PATCHED=1`` also ``--upsampler_policy``,
``--upsampler_endpoint`` (``install(policy=, endpoint=)`` right after parsing) and the
plugin-aware call of patches/cosmos-transfer1.patch.
"""

import argparse

from cosmos_transfer1 import _standin
from cosmos_transfer1.auxiliary.upsampler.model.upsampler import PixtralPromptUpsampler
from cosmos_transfer1.utils.misc import extract_video_frames
from cosmos_transfer1.utils.torchrun_keys import TORCHRUN_KEYS as DIST_KEYS  # each must be present


def parse_args():
    parser = argparse.ArgumentParser(description="Prompt upsampler pipeline")
    parser.add_argument("--prompt", type=str, required=False, help="Prompt to upsample")
    parser.add_argument("--input_video", type=str, required=True, help="Path to input video file")
    parser.add_argument(
        "--checkpoint_dir", type=str, default="checkpoints", help="Base directory containing model checkpoints"
    )
    parser.add_argument(
        "--offload_prompt_upsampler", action="store_true", help="Offload prompt upsampler model after inference"
    )
    if _standin.patched():
        parser.add_argument("--upsampler_policy", type=str, default=None, help="Frame downsampling policy (patched)")
        parser.add_argument("--upsampler_endpoint", type=str, default=None, help="Upsampler server URL (patched)")
    return parser.parse_args()


def main():
    args = parse_args()
    if _standin.patched() and args.upsampler_endpoint:  # the patch: requests go to this server
        try:
            from cosmos_upsample_fix.runtime import install
        except ImportError:
            print("--upsampler_endpoint is ignored: cosmos-upsample-fix is not installed")
        else:
            install(policy=args.upsampler_policy, endpoint=args.upsampler_endpoint)
    model = PixtralPromptUpsampler(args.checkpoint_dir, offload_prompt_upsampler=args.offload_prompt_upsampler)

    if _standin.patched():
        # What the patch puts in place of upstream's two lines.
        try:
            from cosmos_upsample_fix.runtime import run_upsampler
        except ImportError:
            run_upsampler = None
        if run_upsampler is not None:
            upsampled_prompt = run_upsampler(
                model, args.prompt, args.input_video, policy=args.upsampler_policy, endpoint=args.upsampler_endpoint
            )
        else:
            if args.upsampler_policy:
                print("--upsampler_policy is ignored: cosmos-upsample-fix is not installed")
            frame_paths = extract_video_frames(args.input_video)
            upsampled_prompt = model._prompt_upsample_with_offload(args.prompt, frame_paths)
    else:
        frame_paths = extract_video_frames(args.input_video)
        upsampled_prompt = model._prompt_upsample_with_offload(args.prompt, frame_paths)
    print("Upsampled prompt:", upsampled_prompt)


if __name__ == "__main__":
    import os

    rank = int(os.environ["RANK"])
    for key in DIST_KEYS:
        del os.environ[key]  # upstream deletes unconditionally: a missing variable is a KeyError
    if rank == 0:
        main()
