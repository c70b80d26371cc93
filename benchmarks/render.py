"""Markdown for the report: the Goals table and one section per measurement."""
from __future__ import annotations

import math
import statistics

import cv2

from .budget_use import BudgetResult
from .clips import Clip
from .config import LIMITS, PROMPT, ROOMY
from .control import KINDS
from .fidelity import PAYLOAD_LEVEL, FidelityResult, Score
from .floor import THREAD_SETTINGS
from .goals import (
    FIDELITY_MIN_GAIN_DB,
    FILTER_TOLERANCE_DB,
    FIT_MIN_USE,
    FLOOR_MAX_RATIO,
    PLAN_MAX_MS,
    PRESHRINK_TOLERANCE_DB,
    Goal,
)
from .offload import OffloadResult
from .planning import PlanningResult
from .speed import COMPRESSED_LEVEL, SpeedResult


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def db(x: float) -> str:
    return "lossless" if math.isinf(x) or x > 100 else f"{x:.2f}"


def ms(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def wh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def ps(score: Score) -> str:
    return f"{db(score.psnr)} / {score.ssim:.4f}"


def kb(n: int) -> str:
    return f"{n / 1024:.0f}"


def goals(goal_list: list[Goal]) -> str:
    return "## Goals\n\n" + table(["goal", "result", "figures"], [[g.name, g.result, g.detail] for g in goal_list])


def budget(result: BudgetResult) -> str:
    rows = [[
        r.clip.name, wh(r.clip.size), str(r.upstream_tokens), pct(r.upstream_use) + ("" if r.upstream_fits else " ✗"),
        wh(r.hint_size), str(r.hint_tokens), pct(r.hint_use), wh(r.fit_size), str(r.fit_tokens), pct(r.fit_use),
        "yes" if r.exact_ok else f"NO ({r.exact_upstream}/{r.exact_fit})",
    ] for r in result.rows]
    use = [r.fit_use for r in result.rows if not r.upstream_fits]
    out = [
        "## 1. Budget use", "",
        f"Prompt: \"{PROMPT}\" ({result.text_tokens} tokens with BOS/[INST]/[/INST]); a video sends two frames "
        "(upstream sends the first two), a still one. Budget use = prompt tokens / "
        f"({LIMITS.max_model_len} − {LIMITS.reserved_output_tokens}) = /{LIMITS.prompt_budget}; over 100 % (✗) "
        "the request fails. *hint* is the manual workaround: 320x180 (180x320 for portrait); other aspect ratios "
        "keep their ratio with a 320-px long side, the short side rounded to even. *fit* is `plan_frames(source, "
        "prompt, Options.build(policy=\"fit\"))`. Every count is cross-checked against `len(model.encode(prompt, "
        "images))` through mistral_common with the actual frames.", "",
        f"Goal: every clip fits under `fit`, and where the original does not fit, `fit` uses ≥ {FIT_MIN_USE:.0%} "
        "of the budget.", "",
        table(["clip", "original", "upstream tokens", "upstream use", "hint size", "hint tokens", "hint use",
               "fit size", "fit tokens", "fit use", "exact = mistral_common"], rows),
    ]
    if use:
        out += ["", f"`fit` budget use where the original does not fit: min {pct(min(use))}, median "
                    f"{pct(statistics.median(use))}, max {pct(max(use))} ({len(use)} clips)."]
    return "\n".join(out)


def fidelity(result: FidelityResult, cap: int) -> str:
    rows = []
    for r in result.rows:
        gain = "—" if r.fit.psnr > 100 else f"{r.gain:+.2f}"
        rows.append([r.clip.name, wh(r.clip.size), "yes" if r.clip.p720 else "", f"{wh(r.fit_sent)} → {wh(r.fit_grid)}",
                     ps(r.fit), f"{wh(r.hint_sent)} → {wh(r.hint_grid)}", ps(r.hint), db(r.hint_clip_psnr),
                     ps(r.upstream) if r.upstream else "fails (over budget)", gain])
    filters = [[r.clip.name, wh(r.clip.size), wh(r.target), f"{r.factor:.2f}", r.chosen, ps(r.ours), ps(r.lanczos),
                ps(r.cubic), f"{r.margin:+.2f}", "PASS" if r.margin >= -FILTER_TOLERANCE_DB else "FAIL",
                ps(r.cubic_float)]
               for r in result.filters]
    caps = [[r.clip.name, r.clip.kind, wh(r.clip.size), ", ".join(wh(x) for x in r.sent), wh(r.model_size),
             f"{r.upstream_tokens} / {r.sent_tokens} / {r.exact_tokens}", ps(r.full), ps(r.ours), f"{r.margin:+.2f}",
             kb(r.payload_upstream), kb(r.payload_full), kb(r.payload_sent),
             "PASS" if r.ok and r.margin >= -PRESHRINK_TOLERANCE_DB else "FAIL"]
            for r in result.preshrink]
    out = [
        "## 2. Fidelity", "",
        "What the model sees vs. the original frame. The frames a method sends go through mistral_common's own "
        f"image encoder ({cap}-px cap, 16-px patch grid, OpenCV INTER_CUBIC on float32 RGB); its normalised output "
        "is un-normalised to 0..255, scaled back to the original size with OpenCV INTER_CUBIC (the same for every "
        "row), clipped, and compared with the original frame as PyAV decodes it. PSNR over all RGB channels (peak "
        "255); SSIM (Wang et al. 2004, Gaussian 11×11, σ 1.5) on luma; both the mean over the frames sent. *hint* "
        "= the frames resized to the hint size with the package's resize, no codec (the workaround's best case; "
        "the goal is judged on it); *hint clip* = the same frames as a real H.264 hint clip (`hint.write_video`, "
        "CRF 12) read back. *upstream* = the full frames, only where that request fits. \"lossless\": the model "
        "sees the original pixels. Every PSNR here was computed with OpenCV "
        f"{cv2.__version__} (its cubic resize is the model's and the scaling back; the figures shift by about "
        "0.3 dB between OpenCV versions).", "",
        f"Goal: `fit` ≥ {FIDELITY_MIN_GAIN_DB:g} dB above the hint on every 720p-class clip (short side 700–800 px).",
        "",
        table(["clip", "original", "720p class", "fit sent → model grid", "fit PSNR / SSIM", "hint sent → model grid",
               "hint PSNR / SSIM", "hint clip (h264) PSNR", "upstream PSNR / SSIM", "fit − hint (dB)"], rows),
        "", "### The downscale filter at each shrink factor", "",
        "At fit's target size (on the patch grid, so the model's own resize is then a no-op): *ours* = the frames "
        "the plugin sends (`images.resize`, the filter it picks for the factor, named in *filter*); *Lanczos* = "
        "Pillow's antialiased `LANCZOS` to the same size; *cubic* = the full frame given to OpenCV INTER_CUBIC on "
        "float32 straight to that size (the model's own resize, no antialiasing), as a frame would carry it: "
        "rounded to 8 bits. Each goes through the model's view and is scored as above. *model's float cubic* "
        "(no goal) is the same resize left in float and unclipped, as the model computes it inside its encoder from "
        "a full frame it receives: no 8-bit frame can carry its overshoot, so on busy content with hard edges it "
        "scores above every frame that can be sent.", "",
        f"Goal: ours ≥ max(Lanczos, cubic) − {FILTER_TOLERANCE_DB:g} dB PSNR on every clip.", "",
        table(["clip", "original", "target", "shrink", "filter", "ours PSNR / SSIM", "Lanczos PSNR / SSIM",
               "cubic PSNR / SSIM", "ours − best (dB)", "goal", "model's float cubic PSNR / SSIM"], filters),
        "", f"### Frames over the model's {cap}-px cap whose request fits", "",
        f"Every clip over the cap, planned with `fit` at max_model_len {ROOMY.max_model_len} (a server where every "
        "clip's full request fits; upstream's 4096 lets only the widest clips and the still through). The model "
        "shrinks such frames itself, with its float cubic. The plugin sends each frame pre-shrunk to that size "
        "(same token grid) when the model's view of it scores at most 0.05 dB below its view of the full frame, "
        "refined by back-projection where it loses, and the full frame otherwise (`images.preshrink`). *full* = "
        "the full frames as the model sees them; *ours* = the frames sent; tokens = upstream / sent / "
        "`len(model.encode(...))` of the frames sent. KB = base64 of the request's images: upstream's full-size "
        f"PNGs (OpenCV defaults), the full frames and the frames sent as PNG level {PAYLOAD_LEVEL} (what the "
        "plugin sends to a server on another machine).", "",
        f"Goal: same tokens, every frame at the model's size or its own, and ours ≥ full − "
        f"{PRESHRINK_TOLERANCE_DB:g} dB on every clip.", "",
        table(["clip", "kind", "original", "sent", "model's size", "tokens", "full PSNR / SSIM", "ours PSNR / SSIM",
               "ours − full (dB)", "upstream KB", "full KB", "sent KB", "goal"], caps)
        if caps else "No such input in this run.",
        "", kinds(result),
    ]
    return "\n".join(out)


def kinds(result: FidelityResult) -> str:
    """One table per kind of content: each fidelity goal's margin per clip (— where it does not apply)."""
    hint = {r.clip.name: r.gain for r in result.rows if r.clip.p720}
    filt = {r.clip.name: r.margin for r in result.filters}
    pre = {r.clip.name: r for r in result.preshrink}
    out = ["### Per kind of content", "",
           "Each fidelity goal per clip, grouped by what the frames show (sample clips by their Cosmos control "
           f"name; generated ones by their generator). *fit − hint* (goal ≥ {FIDELITY_MIN_GAIN_DB:g} dB, 720p class "
           f"only), *filter* = ours − max(Lanczos, cubic) (goal ≥ −{FILTER_TOLERANCE_DB:g} dB), *pre-shrink* = ours "
           f"− full (goal ≥ −{PRESHRINK_TOLERANCE_DB:g} dB) with the frames sent as they are."]
    for kind in KINDS:
        names = [r.clip for r in result.rows if r.clip.kind == kind]
        if not names:
            continue
        rows = [[c.name, wh(c.size), f"{hint[c.name]:+.2f}" if c.name in hint else "—",
                 f"{filt[c.name]:+.2f}" if c.name in filt else "—",
                 f"{pre[c.name].margin:+.2f}" if c.name in pre else "—",
                 f"{pre[c.name].as_is}/{len(pre[c.name].sent)}" if c.name in pre else "—"] for c in names]
        minima = [min(d.values(), default=math.inf) for d in (
            {c.name: hint[c.name] - FIDELITY_MIN_GAIN_DB for c in names if c.name in hint},
            {c.name: filt[c.name] + FILTER_TOLERANCE_DB for c in names if c.name in filt},
            {c.name: pre[c.name].margin + PRESHRINK_TOLERANCE_DB for c in names if c.name in pre})]
        out += ["", f"**{kind}** ({len(names)} clips; smallest margin over each goal: "
                + ", ".join(f"{label} {'—' if math.isinf(m) else f'{m:+.2f} dB'}"
                            for label, m in zip(("hint", "filter", "pre-shrink"), minima)) + ")", "",
                table(["clip", "original", "fit − hint (dB)", "filter (dB)", "pre-shrink (dB)", "frames sent as is"],
                      rows)]
    return "\n".join(out)


def _rng(xs: list[float]) -> str:
    return f"{ms(min(xs))}–{ms(max(xs))}"


def speed(result: SpeedResult, runs: int) -> str:
    rows = [[r.clip.name, wh(r.clip.size), "yes" if r.clip.p720 else "", ms(r.plugin_ms), kb(r.payload),
             ms(r.compressed_ms), kb(r.payload_compressed), ms(r.baseline_ms), kb(r.payload_baseline),
             f"{r.ratio:.2f}", f"{r.paired:.2f}", _rng(r.plugin), _rng(r.baseline)] for r in result.rows]
    stages = [[r.clip.name, wh(r.clip.size), *(ms(r.stages[k]) for k in ("decode", "plan", "resize", "png", "b64")),
               ms(sum(r.stages.values())), *(ms(r.baseline_stages[k]) for k in ("decode", "png", "b64")),
               ms(sum(r.baseline_stages.values()))] for r in result.rows]
    out = [
        "## 3. Speed and payload", "",
        f"One process, wall time, median of {runs} runs after one warm-up run; the plugin, the plugin with "
        "compressed PNG and the baseline run interleaved, each into a fresh folder made outside the timed region. "
        "*plugin* = from the video path to the data URLs of the frames the upsampler receives: "
        "`plan_frames(path, prompt, options)` (decode, plan, resize) + `PlannedFrames.write(dir)` (the package's "
        f"PNG files) + reading them back and base64. *compressed* = the same with `images.write_png(..., "
        f"level={COMPRESSED_LEVEL})`. *baseline* = upstream's `extract_video_frames` + `image_to_base64` re-done: "
        "`cv2.VideoCapture` reads the first two frames, `cv2.imwrite` writes full-size PNGs (OpenCV's defaults), "
        "base64 of the files. KB = base64 bytes of the request's images (what goes over the wire to a server). "
        "The goal is judged on the ratio of the medians; *paired* = median of per-run ratios (a check against load "
        f"drift). Load average (1 min) at the start: {result.load_start}, at the end: {result.load_end}.", "",
        "Goal: plugin / baseline ≤ 1.0 on every 720p-class clip and ≤ 0.7 median over them.", "",
        table(["clip", "original", "720p class", "plugin ms", "plugin KB", "compressed ms", "compressed KB",
               "baseline ms", "baseline KB", "plugin / baseline", "paired", "plugin range ms", "baseline range ms"],
              rows),
        "", "### Where the time goes (median ms per stage, separate step-by-step runs)", "",
        "Plugin: *decode* = `read_frames(path, 2, \"first\")`; *plan* = text tokens (cached) + `plan_sizes` + two "
        "`model.count`; *resize* = `planner.resize_all`; *png* = `images.write_png` of both; *b64* = read back + "
        "base64. Baseline: *decode* = `cv2.VideoCapture` + two `read()`; *png* = two `cv2.imwrite`; *b64* likewise.",
        "",
        table(["clip", "original", "decode", "plan", "resize", "png", "b64", "plugin sum", "base decode", "base png",
               "base b64", "base sum"], stages),
    ]
    if result.whatif and result.whatif_clip is not None:
        out += ["", f"### What other resizers and PNG settings would cost (first frame of {result.whatif_clip.name}, "
                    f"median of {min(9, runs)}; not the package's path except where marked)", "",
                table(["stage", "how", "size", "ms / frame", "PNG KB"],
                      [[w.stage, w.how, wh(w.size), ms(w.ms), "" if w.kb is None else f"{w.kb:.0f}"]
                       for w in result.whatif])]
    if result.selections:
        settings = ", ".join(f"{t}/{n}" for t, n in THREAD_SETTINGS)
        sel_rows = []
        for r in result.selections:
            for select in r.selects:
                sel_rows.append([
                    r.clip.name, wh(r.clip.size), f"{r.clip.frames} ({r.keyframes} key)", select,
                    str(list(r.indices[select])), str(r.decoded[select]), ms(statistics.median(r.package[select])),
                    ms(statistics.median(r.floor[select])), r.threads[select], f"{r.ratio(select):.2f}",
                    "PASS" if r.ratio(select) <= FLOOR_MAX_RATIO else "FAIL"])
        out += [
            "", "### Frame selection against the decode floor", "",
            "*read* = `read_frames(path, 2, select)`, the package's whole frame reading (open, demux where the "
            "selection needs it, seek, decode, RGB). *floor* = the least work that yields the same frames, with "
            "the packets known beforehand: open the file, seek to the keyframe each frame depends on, decode from "
            "there skipping every picture no other one refers to except the wanted ones, convert the wanted ones to "
            f"RGB; under each thread setting {settings} (type/count, 0 = one per core), all timed interleaved with "
            f"*read* round by round after a warm-up each, median of {runs} runs; the floor is the setting with the "
            "lowest median. *decoded* = pictures from the keyframes to the wanted frames, before skipping. "
            "The frames of both are checked equal. `uniform` and `ends` pick the same two frames.", "",
            f"Goal: read / floor ≤ {FLOOR_MAX_RATIO:g}x for every selection on every clip.", "",
            table(["clip", "original", "frames", "select", "picks", "decoded", "read ms", "floor ms",
                   "floor threads", "read / floor", "goal"], sel_rows),
        ]
    return "\n".join(out)


def planning(result: PlanningResult) -> str:
    def stats(xs: list[float]) -> list[str]:
        xs = sorted(xs)
        return [f"{statistics.median(xs) * 1e3:.1f}", *(f"{xs[min(len(xs) - 1, int(p * len(xs)))] * 1e3:.1f}"
                                                       for p in (0.9, 0.99)), f"{xs[-1] * 1e3:.1f}"]

    n = len(result.pure_ms)
    agreed = "NO" if any("differ" in p for p in result.problems) else "yes"
    return "\n".join([
        "## 4. Planning cost", "",
        f"Per request, µs (`time.perf_counter_ns`). {n} seeded requests of varied sizes (80 % two equal frames of "
        "common or random aspect ratios, long side 96–4096 px; 10 % two different frames; 10 % one frame). The "
        "cross-check encodes the planned request with random-pixel images of the planned sizes through "
        f"mistral_common; every count agreed: {agreed} ({result.checked} requests).", "",
        f"Goal: < {PLAN_MAX_MS:g} ms (median) to plan `fit` for one request.", "",
        table(["what", "requests", "median µs", "p90 µs", "p99 µs", "max µs"], [
            ["`plan_sizes` (pure planning)", str(n), *stats(result.pure_ms)],
            ["`plan_sizes` + `text_tokens` (cached) + 2 × `model.count`", str(n), *stats(result.full_ms)],
            ["exact cross-check: `model.encode(prompt, images)`", str(result.checked), *stats(result.exact_ms)],
        ]),
    ])


def offload(result: OffloadResult, video: Clip | None) -> str:
    head = ["## 5. A batch of prompts: in-process engine with offload vs an endpoint", ""]
    if result.skipped:
        return "\n".join(head + [f"skipped: {result.skipped}"])
    return "\n".join(head + [
        f"{result.rows[0].prompts} prompts on {video.name if video else 'one clip'} through upstream's "
        "`PixtralPromptUpsampler._prompt_upsample_with_offload` with the plugin installed, run on the test "
        "stand-ins (`tests/standin`: a `vllm.LLM` that tokenizes and checks like vLLM 0.9.2 and counts its "
        "constructions; `tests/openai_server.py`: a `vllm serve` stand-in on 127.0.0.1). A real engine build "
        "loads the 12B model (minutes); the stand-in's takes milliseconds, so the count of builds is the figure "
        "that carries over, not the time.", "",
        table(["mode", "prompts", "engine builds", "server requests", "answers", "wall s (stand-ins)"],
              [[r.mode, str(r.prompts), str(r.engine_builds), str(r.server_requests), str(r.answers),
                f"{r.seconds:.2f}"] for r in result.rows]),
    ])
