"""The ``cosmos-upsample-fix`` command: inspect, prepare, hint, upsample, scan, demo, table, patch.

Only this module prints. Exit status: 0 when the plan fits (or the patch action
succeeded), 2 with a one-line message on bad input or when nothing can fit, 1 for an
internal error, 141 when the reader of the output went away (``| head``), as for any
program stopped by SIGPIPE.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosmos_upsample_fix import __version__
from cosmos_upsample_fix.core import env
from cosmos_upsample_fix.core.budget import UPSTREAM_LIMITS
from cosmos_upsample_fix.core.options import SELECTIONS, Options
from cosmos_upsample_fix.errors import UpsampleFixError
from cosmos_upsample_fix.planning.planner import UPSTREAM_FRAMES, Plan, PlannedFrames, plan_frames
from cosmos_upsample_fix.tools.console import (
    PROG,
    HeldWarnings,
    LogLine,
    internal_error,
    optional_missing,
    quiet_stdout,
    require,
)
from cosmos_upsample_fix.tools.report import ONE_FRAME, format_report
from cosmos_upsample_fix.tools.scan import local_only

DEMO_PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
TABLE_SIZES = ("320x180", "640x480", "928x510", "960x540", "960x704", "1280x704", "1280x720", "1920x1080",
               "3840x2160", "1280x800", "1024x1024", "882x1568")
VIDEO_HELP = "a video, an image, or several images (one frame each)"
SIGPIPE_STATUS = 141
"""128 + SIGPIPE: what a shell reports for a program whose reader closed the pipe."""


def _common(parser: argparse.ArgumentParser, prompt: str | None = "") -> None:
    limits = UPSTREAM_LIMITS
    parser.add_argument("--prompt", default=prompt, help="the prompt to upsample (empty: upstream's default text)")
    parser.add_argument("--policy", default="fit",
                        help="fit (default), max-side:N, max-pixels:N, scale:F, fixed:WxH, none")
    parser.add_argument("--frames", type=int, default=None,
                        help=f"frames to send (default: up to {limits.max_images}, as upstream; fewer when the "
                             "input has fewer); of several images, --frames N sends N of them, picked by --select")
    parser.add_argument("--select", default=SELECTIONS[0], choices=SELECTIONS,
                        help=f"which frames (default {SELECTIONS[0]})")
    parser.add_argument("--max-model-len", type=int, default=limits.max_model_len,
                        help=f"the engine's context length (default {limits.max_model_len})")
    parser.add_argument("--reserve-output", type=int, default=limits.reserved_output_tokens,
                        help=f"tokens kept for the answer (default {limits.reserved_output_tokens})")
    parser.add_argument("--max-images", type=int, default=limits.max_images,
                        help=f"images the engine allows per prompt (default {limits.max_images})")
    parser.add_argument("--checkpoint-dir", help="upstream's checkpoint folder or the upsampler model folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="what upstream would send, and what the policy plans")
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help=VIDEO_HELP)
    p.add_argument("--preview", metavar="OUT.png",
                   help="also draw the first frame as the model sees it (plan, 320x180 hint, upstream)")
    _common(p)

    p = sub.add_parser("prepare", help="write the frames the upsampler would receive as PNG files")
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help=VIDEO_HELP)
    p.add_argument("--out-dir", required=True, help="folder for the PNG files (created if missing; never overwritten)")
    _common(p)

    p = sub.add_parser("hint", help="write a small mp4 that fits, for the standalone upsampler")
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help=VIDEO_HELP)
    p.add_argument("-o", "--output", required=True,
                   help="the mp4 to write (never overwritten); a folder (or a name ending in /) gets NAME_hint.mp4; "
                        "missing folders are created")
    _common(p)

    p = sub.add_parser("upsample", help="send the fitted request to an upsampler server, print its prompt")
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help=VIDEO_HELP)
    p.add_argument("--endpoint",
                   help=f"the server's OpenAI base URL, e.g. http://HOST:8000/v1 (default: ${env.ENDPOINT.name})")
    _common(p)
    for action in p._actions:  # the plan follows the server's max_model_len; a value given can only lower it
        if action.dest == "max_model_len":
            action.default, action.help = None, "plan for at most this context length (default: the server's)"

    p = sub.add_parser("scan", help="plan many files, folders, or an upstream specs/batch run")
    p.add_argument("inputs", nargs="*", metavar="PATH", help="video or image files, and folders (searched recursively)")
    p.add_argument("--controlnet_specs", metavar="FILE.json", help="upstream's specs file (one item, or the batch's)")
    p.add_argument("--batch_input_path", metavar="FILE.jsonl", help="upstream's batch file: one item per line")
    p.add_argument("--input_video_path", metavar="VIDEO", help="upstream's flag: the input video of a specs item")
    p.add_argument("-j", "--jobs", type=int, default=None, help="worker processes (default: the usable cores)")
    p.add_argument("--preview-dir", metavar="DIR", help="also draw one preview PNG per item into DIR")
    _common(p, prompt=None)

    p = sub.add_parser("demo", help="show the failure and the fix on a generated 1280x704 clip")
    p.add_argument("--out-dir", help="folder for the clip and frames (default: a new temporary folder)")
    _common(p)
    p.set_defaults(prompt=DEMO_PROMPT)

    p = sub.add_parser("table", help="a Markdown table of frame sizes, token costs and the plan")
    p.add_argument("sizes", nargs="*", metavar="WxH", help=f"frame sizes (default: {' '.join(TABLE_SIZES)})")
    _common(p)
    p.set_defaults(prompt=DEMO_PROMPT)

    p = sub.add_parser("patch", help="apply, check or revert the source patch on a Cosmos checkout")
    p.add_argument("action", choices=("apply", "check", "revert"),
                   help="apply the patch, check it (exit 0 applied, 1 applicable, 2 not), or revert it")
    p.add_argument("cosmos_dir", metavar="COSMOS_DIR", help="a cosmos-transfer1 checkout")
    return parser


def _check_numbers(args: argparse.Namespace) -> None:
    """The number flags, checked here so that a refusal names the flag (not ``Options``' keyword)."""
    for flag, minimum in (("--frames", 1), ("--max-model-len", 1), ("--reserve-output", 0), ("--max-images", 1)):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None and value < minimum:
            raise UpsampleFixError(f"{flag} must be a whole number >= {minimum}, got {value}")
    if None not in (args.max_model_len, args.reserve_output) and args.max_model_len <= args.reserve_output:
        raise UpsampleFixError(f"--max-model-len ({args.max_model_len}) must be above --reserve-output "
                               f"({args.reserve_output})")


def _options(args: argparse.Namespace, endpoint: str | None = None) -> Options:
    """The command line's edge: the one place its flags become :class:`Options`."""
    _check_numbers(args)
    return Options.build(
        policy=args.policy, select=args.select, frames=args.frames, max_model_len=args.max_model_len,
        reserve_output=args.reserve_output, max_images=args.max_images, checkpoint_dir=args.checkpoint_dir,
        endpoint=endpoint,
    )


def _source(inputs: Sequence[str] | str) -> str | list[str]:
    """One video/image path, or several image paths (one frame each); local files only."""
    paths = [inputs] if isinstance(inputs, str) else list(inputs)
    for path in paths:
        local_only(path)
    return paths[0] if len(paths) == 1 else paths


def _plan(args: argparse.Namespace, inputs: Sequence[str] | str) -> PlannedFrames:
    """Plan for one video/image path, or for several image paths (one frame each)."""
    from cosmos_upsample_fix.planning.tokenizer import load_model

    options = _options(args)
    return plan_frames(_source(inputs), args.prompt, options, model=load_model(options.checkpoint_dir),
                       one_frame=ONE_FRAME)


def _emit(args: argparse.Namespace, plan: Plan, extra: dict[str, Any] | None = None, text: str = "") -> int:
    if args.json:
        data = plan.to_dict()
        data.update(extra or {})
        print(json.dumps(data, indent=2))
    else:
        print(format_report(plan) + (("\n" + text) if text else ""))
    return 0 if plan.fits else 2


def _inspect(args: argparse.Namespace) -> int:
    planned = _plan(args, args.inputs)
    if not args.preview:
        return _emit(args, planned.plan)
    from cosmos_upsample_fix.planning.tokenizer import load_model
    from cosmos_upsample_fix.tools.preview import render_preview

    options = _options(args)
    path = render_preview(_source(args.inputs), args.prompt, options, args.preview,
                          model=load_model(options.checkpoint_dir), planned=planned)
    return _emit(args, planned.plan, {"preview": str(path)}, f"preview:  {path}")


def _prepare(args: argparse.Namespace) -> int:
    planned = _plan(args, args.inputs)
    out = Path(args.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UpsampleFixError(f"cannot create --out-dir {out}: {exc.strerror or exc}") from None
    files = [str(p) for p in planned.write(out)]
    return _emit(args, planned.plan, {"files": files}, "wrote:    " + ", ".join(files))


def hint_path(output: str, first_input: str) -> Path:
    """Where ``hint -o OUTPUT`` writes: OUTPUT, or ``OUTPUT/<input name>_hint.mp4`` for a folder.

    A folder is an existing one or a name ending in a slash; missing folders are created,
    as ``prepare`` creates its ``--out-dir``.
    """
    path = Path(output)
    if output.endswith(("/", os.sep)) or path.is_dir():
        path = path / f"{Path(first_input).stem}_hint.mp4"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UpsampleFixError(f"cannot create the folder {path.parent} for -o: {exc.strerror or exc}") from None
    return path


def _hint(args: argparse.Namespace) -> int:
    from cosmos_upsample_fix.media.mp4 import write_video

    planned = _plan(args, args.inputs)
    if len(set(planned.plan.planned.frame_sizes)) > 1:
        raise UpsampleFixError("a hint clip needs frames of one size; these images differ (use prepare instead)")
    path = write_video(planned.images, hint_path(args.output, args.inputs[0]))
    text = (f"wrote:    {path}\nnote:     sized for this prompt ({planned.plan.planned.text_tokens} tokens of text "
            "and chat template); a longer prompt needs a new hint clip")
    return _emit(args, planned.plan, {"output": str(path)}, text)


def _upsample(args: argparse.Namespace) -> int:
    from cosmos_upsample_fix.remote.endpoint import client_for, request_upsample

    endpoint = args.endpoint or env.ENDPOINT.get()
    if not endpoint:
        raise UpsampleFixError(f"no upsampler server given: use --endpoint URL (or set {env.ENDPOINT.name})")
    options = _options(args, endpoint=endpoint)
    client = client_for(endpoint)  # no openai client, a bad URL: refused before the input is read
    source = _source(args.inputs)
    result = request_upsample(source, args.prompt, options, client=client)  # the server's limits, then the plan
    if args.json:
        data = {**result.planned.plan.to_dict(), "endpoint": options.endpoint, "prompt": args.prompt,
                "upsampled_prompt": result.answer, "server_prompt_tokens": result.reply.prompt_tokens}
        print(json.dumps(data, indent=2))
    else:
        print(result.answer)
    return 0


def _scan(args: argparse.Namespace) -> int:
    from cosmos_upsample_fix.tools.scan import Job, ProgressBar, gather, preview_name, run, summary, table, usable_cores

    if not args.inputs and not args.controlnet_specs and not args.batch_input_path:
        raise UpsampleFixError("nothing to scan: give files or folders, or --controlnet_specs FILE.json")
    if args.jobs is not None and args.jobs < 1:
        raise UpsampleFixError(f"-j must be at least 1, got {args.jobs}")
    options = _options(args)
    if options.frames is not None:  # a count no item can meet is one error, not one per row
        from cosmos_upsample_fix.media.frames.selection import check_selection

        options.limits().check_images(check_selection(options.frames, options.select))
    items = gather(args.inputs, args.prompt, args.controlnet_specs, args.batch_input_path, args.input_video_path)
    previews = Path(args.preview_dir) if args.preview_dir else None
    if previews is not None:
        try:
            previews.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UpsampleFixError(f"cannot create --preview-dir {previews}: {exc.strerror or exc}") from None
    jobs = [Job(i, item, options, str(previews / preview_name(i, item)) if previews and item.plannable else None)
            for i, item in enumerate(items)]
    rows = run(jobs, args.jobs or usable_cores(), ProgressBar())
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(table(rows))
        print(summary(rows, options.policy.spec))
    errors = [row["error"] for row in rows if "error" in row]  # the items decide; a preview not written does not
    if any(error.startswith("internal error") for error in errors + [r.get("preview_error", "") for r in rows]):
        return 1
    return 2 if errors else 0


def _demo(args: argparse.Namespace) -> int:
    require("cv2", "demo (mistral_common tokenizes the written frames with it)")
    out = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="cosmos-upsample-fix-demo-"))
    made = not args.out_dir or not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _demo_in(args, out)
    except BaseException:
        if made:  # a failed demo leaves no folder of its own behind
            shutil.rmtree(out, ignore_errors=True)
        raise


def _demo_in(args: argparse.Namespace, out: Path) -> int:
    from cosmos_upsample_fix.tools.demo import run_demo

    done = run_demo(out, args.prompt, _options(args), one_frame=ONE_FRAME)
    text = (
        f"wrote:    {out}/ (the clip {done.clip.name} and the frames {', '.join(f.name for f in done.files)})\n"
        f"checked:  the written frames plus the prompt tokenize to {done.checked} tokens with mistral_common "
        "(matches the plan)"
    )
    extra = {"files": [str(f) for f in done.files], "clip": str(done.clip), "checked_tokens": done.checked}
    return _emit(args, done.planned.plan, extra, text)


def _table(args: argparse.Namespace) -> int:
    from cosmos_upsample_fix.core.options import parse_size
    from cosmos_upsample_fix.planning.tokenizer import load_model
    from cosmos_upsample_fix.tools.report import token_rows, token_table

    options = _options(args)
    sizes = [parse_size(text) for text in args.sizes or TABLE_SIZES]
    model = load_model(options.checkpoint_dir)
    table = token_rows(model, options.limits(), options.policy, sizes, args.frames or UPSTREAM_FRAMES, args.prompt)
    print(json.dumps(table, indent=2) if args.json else token_table(table))
    return 0


def _patch(args: argparse.Namespace) -> int:
    """``patch check`` exits 0 applied, 1 applicable, 2 mismatch; ``apply``/``revert`` 0 or 2."""
    from cosmos_upsample_fix.errors import PatchError
    from cosmos_upsample_fix.patching.tree import PatchState, apply, check, revert

    if args.action == "check":
        status = check(args.cosmos_dir)
        if status.state is PatchState.MISMATCH:  # an error line like every command's
            print(f"{PROG}: error: {status.message}", file=sys.stderr)
        else:
            print(status.message)
        return int(status.state)
    try:
        changed = apply(args.cosmos_dir) if args.action == "apply" else revert(args.cosmos_dir)
    except PatchError as exc:
        raise PatchError(f"{args.action} failed: {exc}") from None
    if not changed:
        print(f"nothing to do: {args.cosmos_dir} is {'already patched' if args.action == 'apply' else 'not patched'}")
        return 0
    names = ", ".join(str(Path(p).relative_to(args.cosmos_dir)) for p in changed)
    print(f"{'patched' if args.action == 'apply' else 'reverted'} {len(changed)} files in {args.cosmos_dir}: {names}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    The package's warnings (e.g. a skipped undecodable packet) are held while the command
    runs and shown after it when it succeeds; when it fails, stderr gets only the one-line
    error, which carries the reason.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # a path the terminal's encoding cannot show is escaped, not fatal
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # not a TextIOWrapper (e.g. replaced by a caller)
            pass
    console = logging.StreamHandler()
    console.setFormatter(LogLine())
    logging.basicConfig(level=logging.WARNING, handlers=[console])
    handlers = {"inspect": _inspect, "prepare": _prepare, "hint": _hint, "upsample": _upsample, "scan": _scan,
                "demo": _demo, "table": _table, "patch": _patch}
    package_log = logging.getLogger("cosmos_upsample_fix")
    held, propagate = HeldWarnings(), package_log.propagate
    package_log.addHandler(held)
    package_log.propagate = False
    failed = True
    try:
        code = handlers[args.command](args)
        sys.stdout.flush()
        failed = False
        return code
    except BrokenPipeError:  # `... | head`: the reader has what it wanted; end quietly
        quiet_stdout()
        return SIGPIPE_STATUS
    except UpsampleFixError as exc:
        held.records.clear()  # the one-line error says what went wrong
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # an optional module missing is the user's to fix; another is ours
        missing = optional_missing(exc)
        if missing is None:
            return internal_error(exc)
        held.records.clear()
        print(f"{PROG}: error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line; the traceback on request
        return internal_error(exc)
    finally:
        package_log.removeHandler(held)
        package_log.propagate = propagate
        if not failed:
            for record in held.records:
                package_log.handle(record)


if __name__ == "__main__":
    sys.exit(main())
