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
from cosmos_upsample_fix.core.options import ENDPOINT_ENV, Options
from cosmos_upsample_fix.errors import UpsampleFixError
from cosmos_upsample_fix.planning.planner import UPSTREAM_FRAMES, Plan, PlannedFrames, plan_frames
from cosmos_upsample_fix.tools.report import format_report
from cosmos_upsample_fix.tools.scan import local_only

PROG = "cosmos-upsample-fix"
DEMO_PROMPT = "Robotic arms hand over a coffee cup to a woman in a modern office."
TABLE_SIZES = ("320x180", "640x480", "928x510", "960x540", "960x704", "1280x704", "1280x720", "1920x1080",
               "3840x2160", "1280x800", "1024x1024", "882x1568")
SIGPIPE_STATUS = 141
"""128 + SIGPIPE: what a shell reports for a program whose reader closed the pipe."""


def _common(parser: argparse.ArgumentParser, prompt: str | None = "") -> None:
    parser.add_argument("--prompt", default=prompt, help="the prompt to upsample (empty: upstream's default text)")
    parser.add_argument("--policy", default="fit",
                        help="fit (default), max-side:N, max-pixels:N, scale:F, fixed:WxH, none")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames to send (default: up to 2, as upstream; fewer when the input has fewer)")
    parser.add_argument("--select", default="first", choices=("first", "uniform", "ends"),
                        help="which frames (default first)")
    parser.add_argument("--max-model-len", type=int, default=4096, help="the engine's context length (default 4096)")
    parser.add_argument("--reserve-output", type=int, default=300, help="tokens kept for the answer (default 300)")
    parser.add_argument("--max-images", type=int, default=2, help="images the engine allows per prompt (default 2)")
    parser.add_argument("--checkpoint-dir", help="upstream's checkpoint folder or the upsampler model folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="what upstream would send, and what the policy plans")
    p.add_argument("inputs", nargs="+", metavar="VIDEO", help="a video, an image, or several images (one frame each)")
    p.add_argument("--preview", metavar="OUT.png",
                   help="also draw the first frame as the model sees it (plan, 320x180 hint, upstream)")
    _common(p)

    p = sub.add_parser("prepare", help="write the frames the upsampler would receive as PNG files")
    p.add_argument("inputs", nargs="+", metavar="VIDEO")
    p.add_argument("--out-dir", required=True, help="folder for the PNG files (created if missing; never overwritten)")
    _common(p)

    p = sub.add_parser("hint", help="write a small mp4 that fits, for the standalone upsampler")
    p.add_argument("inputs", nargs="+", metavar="VIDEO")
    p.add_argument("-o", "--output", required=True,
                   help="the mp4 to write (never overwritten); a folder (or a name ending in /) gets NAME_hint.mp4; "
                        "missing folders are created")
    _common(p)

    p = sub.add_parser("upsample", help="send the fitted request to an upsampler server, print its prompt")
    p.add_argument("inputs", nargs="+", metavar="VIDEO")
    p.add_argument("--endpoint",
                   help=f"the server's OpenAI base URL, e.g. http://HOST:8000/v1 (default: ${ENDPOINT_ENV})")
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
    p.add_argument("action", choices=("apply", "check", "revert"))
    p.add_argument("cosmos_dir", metavar="COSMOS_DIR")
    return parser


def _options(args: argparse.Namespace, endpoint: str | None = None) -> Options:
    """The command line's edge: the one place its flags become :class:`Options`."""
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
    return plan_frames(_source(inputs), args.prompt, options, model=load_model(options.checkpoint_dir))


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
                          model=load_model(options.checkpoint_dir), limits=planned.plan.limits)
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

    endpoint = args.endpoint or os.environ.get(ENDPOINT_ENV, "").strip()
    if not endpoint:
        raise UpsampleFixError(f"no upsampler server given: use --endpoint URL (or set {ENDPOINT_ENV})")
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
    errors = [row["error"] for row in rows if "error" in row]
    if any(error.startswith("internal error") for error in errors):
        return 1
    return 2 if errors else 0


def _demo(args: argparse.Namespace) -> int:
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
    import base64

    from cosmos_upsample_fix.media.mp4 import demo_frames, write_video
    from cosmos_upsample_fix.planning.tokenizer import load_model

    clip = write_video(demo_frames(), out / "demo_1280x704.mp4")
    planned = _plan(args, str(clip))
    files = planned.write(out)
    # the authoritative check: the written PNGs, sent as upstream sends them, through mistral_common
    model = load_model(args.checkpoint_dir)
    urls = ["data:image/jpeg;base64," + base64.b64encode(Path(f).read_bytes()).decode() for f in files]
    checked = len(model.encode(args.prompt, urls))
    text = (
        f"wrote:    {out}/ (the clip {clip.name} and the frames {', '.join(f.name for f in files)})\n"
        f"checked:  the written frames plus the prompt tokenize to {checked} tokens with mistral_common "
        f"({'matches the plan' if checked == planned.plan.planned.prompt_tokens else 'MISMATCH'})"
    )
    if checked != planned.plan.planned.prompt_tokens:
        raise UpsampleFixError(f"token check failed: planned {planned.plan.planned.prompt_tokens}, got {checked}")
    extra = {"files": [str(f) for f in files], "clip": str(clip), "checked_tokens": checked}
    return _emit(args, planned.plan, extra, text)


def _table(args: argparse.Namespace) -> int:
    from cosmos_upsample_fix.core.options import parse_size
    from cosmos_upsample_fix.planning.tokenizer import load_model
    from cosmos_upsample_fix.tools.report import token_table

    options = _options(args)
    sizes = [parse_size(text) for text in args.sizes or TABLE_SIZES]
    model = load_model(options.checkpoint_dir)
    print(token_table(model, options.limits(), options.policy, sizes, args.frames or UPSTREAM_FRAMES, args.prompt))
    return 0


def _patch(args: argparse.Namespace) -> int:
    """``patch check`` exits 0 applied, 1 applicable, 2 mismatch; ``apply``/``revert`` 0 or 2."""
    from cosmos_upsample_fix.errors import PatchError
    from cosmos_upsample_fix.patching.tree import PatchState, apply, check, revert

    if args.action == "check":
        status = check(args.cosmos_dir)
        print(status.message, file=sys.stderr if status.state is PatchState.MISMATCH else sys.stdout)
        return int(status.state)
    try:
        changed = apply(args.cosmos_dir) if args.action == "apply" else revert(args.cosmos_dir)
    except PatchError as exc:
        print(f"{args.action} failed: {exc}", file=sys.stderr)
        return 2
    if not changed:
        print(f"nothing to do: {args.cosmos_dir} is {'already patched' if args.action == 'apply' else 'not patched'}")
        return 0
    names = ", ".join(str(Path(p).relative_to(args.cosmos_dir)) for p in changed)
    print(f"{'patched' if args.action == 'apply' else 'reverted'} {len(changed)} files in {args.cosmos_dir}: {names}")
    return 0


class _HeldWarnings(logging.Handler):
    """Keeps the package's warnings while a command runs (see :func:`main`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _quiet_stdout() -> None:
    """After the reader closed the pipe: send what is left to /dev/null, so exiting prints nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured by a caller)
        pass


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
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    handlers = {"inspect": _inspect, "prepare": _prepare, "hint": _hint, "upsample": _upsample, "scan": _scan,
                "demo": _demo, "table": _table, "patch": _patch}
    package_log = logging.getLogger("cosmos_upsample_fix")
    held, propagate = _HeldWarnings(), package_log.propagate
    package_log.addHandler(held)
    package_log.propagate = False
    failed = True
    try:
        code = handlers[args.command](args)
        sys.stdout.flush()
        failed = False
        return code
    except BrokenPipeError:  # `... | head`: the reader has what it wanted; end quietly
        _quiet_stdout()
        return SIGPIPE_STATUS
    except UpsampleFixError as exc:
        held.records.clear()  # the one-line error says what went wrong
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line; the traceback on request
        if os.environ.get("COSMOS_UPSAMPLE_FIX_DEBUG"):
            raise
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"{PROG}: internal error: {text} (set COSMOS_UPSAMPLE_FIX_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    finally:
        package_log.removeHandler(held)
        package_log.propagate = propagate
        if not failed:
            for record in held.records:
                package_log.handle(record)


if __name__ == "__main__":
    sys.exit(main())
