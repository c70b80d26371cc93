"""The goals, with their numbers, judged on the measured data (pure: no I/O, no timing).

The numbers are fixed here and do not move with the results; a miss is reported as FAIL
and ``--strict`` turns it into a non-zero exit status.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from .budget_use import BudgetResult
from .fidelity import FidelityResult
from .planning import PlanningResult
from .speed import SpeedResult

FIT_MIN_USE = 0.95
"""Where the original request does not fit, ``fit`` uses at least 95 % of the prompt budget."""
FIDELITY_MIN_GAIN_DB = 3.0
"""``fit`` scores at least 3 dB PSNR above the 320x180 hint on every 720p-class clip."""
FILTER_TOLERANCE_DB = 0.1
"""The model's view of our frame scores at least max(Lanczos, the model's cubic) − 0.1 dB."""
SPEED_MAX_RATIO = 1.0
"""Plugin / upstream-style baseline on every 720p-class clip."""
SPEED_MAX_MEDIAN_RATIO = 0.7
"""Plugin / baseline, median over the 720p-class clips."""
PRESHRINK_TOLERANCE_DB = 0.1
"""Frames over the cap that fit: the view of what is sent ≥ the view of the full frames − 0.1 dB."""
FLOOR_MAX_RATIO = 1.15
"""``read_frames`` with ``first``, ``uniform``, ``ends`` / the decode floor of the same frames, on every clip."""
PLAN_MAX_MS = 1.0
"""Planning ``fit`` for one request (median)."""


@dataclass(frozen=True)
class Goal:
    name: str
    passed: bool
    detail: str
    applicable: bool = True  # False: no input of this run qualifies (reported as N/A)
    timed: bool = False  # judged on wall times (machine-dependent)

    @property
    def result(self) -> str:
        if not self.applicable:
            return "N/A"
        return "PASS" if self.passed else "FAIL"


def _failing(names: list[str]) -> str:
    return f"; failing: {', '.join(names)}" if names else ""


def budget_goal(budget: BudgetResult) -> Goal:
    failures = [f"{r.clip.name} ({100 * r.fit_use:.1f}%, fits={r.fit_fits})" for r in budget.rows
                if not (r.fit_fits and r.exact_ok and (r.upstream_fits or r.fit_use >= FIT_MIN_USE))]
    use = [r.fit_use for r in budget.rows if not r.upstream_fits]
    n = len(budget.rows)
    return Goal(
        f"Budget: every clip fits under fit; ≥ {FIT_MIN_USE:.0%} of the budget where the original does not fit",
        not failures,
        f"{n - len(failures)}/{n} clips pass" + (f"; min use {100 * min(use):.1f}%" if use else "")
        + _failing(failures),
        applicable=n > 0,
    )


def hint_goal(fidelity: FidelityResult) -> Goal:
    rows = [r for r in fidelity.rows if r.clip.p720]
    failures = [f"{r.clip.name} ({r.gain:+.2f} dB)" for r in rows if r.gain < FIDELITY_MIN_GAIN_DB]
    gains = [r.gain for r in rows]
    return Goal(
        f"Fidelity: fit ≥ {FIDELITY_MIN_GAIN_DB:g} dB PSNR above the 320x180 hint on every 720p-class clip",
        not failures,
        (f"{len(rows) - len(failures)}/{len(rows)} pass; gain min {min(gains):+.2f} dB, median "
         f"{statistics.median(gains):+.2f} dB" if rows else "no 720p-class clip") + _failing(failures),
        applicable=bool(rows),
    )


def filter_goal(fidelity: FidelityResult) -> Goal:
    rows = fidelity.filters
    failures = [f"{r.clip.name} ({r.margin:+.2f} dB)" for r in rows if r.margin < -FILTER_TOLERANCE_DB]
    margins = [r.margin for r in rows]
    return Goal(
        f"Filter: the model's view of our frame ≥ max(Lanczos, model's cubic) − {FILTER_TOLERANCE_DB:g} dB PSNR "
        "at the same target size, on every clip",
        not failures,
        (f"{len(rows) - len(failures)}/{len(rows)} pass; ours − best other: min {min(margins):+.2f} dB, median "
         f"{statistics.median(margins):+.2f} dB" if rows else "no resized clip") + _failing(failures),
        applicable=bool(rows),
    )


def preshrink_goal(fidelity: FidelityResult) -> Goal:
    rows = fidelity.preshrink
    failures = [f"{r.clip.name} ({r.margin:+.2f} dB, sent {', '.join(f'{w}x{h}' for w, h in r.sent)}, "
                f"{r.sent_tokens}/{r.upstream_tokens}/{r.exact_tokens} tokens)"
                for r in rows if not (r.ok and r.margin >= -PRESHRINK_TOLERANCE_DB)]
    frames = sum(len(r.sent) for r in rows)
    return Goal(
        "Pre-shrink: frames over the model's cap whose request fits are sent with the same tokens, and the model's "
        f"view of them ≥ its view of the full frames − {PRESHRINK_TOLERANCE_DB:g} dB PSNR, on every clip",
        not failures,
        (f"{len(rows) - len(failures)}/{len(rows)} pass; ours − full: min {min(r.margin for r in rows):+.2f} dB, "
         f"median {statistics.median(r.margin for r in rows):+.2f} dB; {sum(r.as_is for r in rows)}/{frames} frames "
         f"sent as they are; payload (PNG level 1) {sum(r.payload_sent for r in rows) / 1e6:.1f} MB vs "
         f"{sum(r.payload_full for r in rows) / 1e6:.1f} MB for the full frames"
         if rows else "no such input") + _failing(failures),
        applicable=bool(rows),
    )


def speed_goal(speed: SpeedResult) -> Goal:
    rows = [r for r in speed.rows if r.clip.p720]
    failures = [f"{r.clip.name} ({r.ratio:.2f}x)" for r in rows if r.ratio > SPEED_MAX_RATIO]
    median = statistics.median(r.ratio for r in rows) if rows else 0.0
    return Goal(
        f"Speed: plugin / baseline ≤ {SPEED_MAX_RATIO:.1f}x on every 720p-class clip and ≤ "
        f"{SPEED_MAX_MEDIAN_RATIO:.1f}x median",
        not failures and median <= SPEED_MAX_MEDIAN_RATIO,
        (f"{len(rows) - len(failures)}/{len(rows)} ≤ {SPEED_MAX_RATIO:.1f}x; median {median:.2f}x, max "
         f"{max(r.ratio for r in rows):.2f}x" if rows else "no 720p-class clip") + _failing(failures),
        applicable=bool(rows),
        timed=True,
    )


def floor_goal(speed: SpeedResult) -> Goal:
    rows = speed.selections
    ratios = [(r.clip.name, sel, r.ratio(sel)) for r in rows for sel in r.selects]
    failures = [f"{name} {sel} ({ratio:.2f}x)" for name, sel, ratio in ratios if ratio > FLOOR_MAX_RATIO]
    return Goal(
        f"Selection: read_frames with first, uniform and ends ≤ {FLOOR_MAX_RATIO:g}x the decode floor of the same "
        "frames, on every clip",
        bool(rows) and not failures,
        (f"{len(ratios) - len(failures)}/{len(ratios)} pass; max "
         + ", ".join(f"{sel} {max(r for _, s, r in ratios if s == sel):.2f}x" for sel in rows[0].selects)
         if rows else "no video") + _failing(failures),
        applicable=bool(rows),
        timed=True,
    )


def payload_goal(speed: SpeedResult) -> Goal:
    rows = speed.rows
    bad = [r.clip.name for r in rows if not 0 < r.payload_compressed <= r.payload]
    return Goal(
        "Payload: base64 bytes per request reported next to the time, for stored vs compressed PNG",
        bool(rows) and not bad,
        (f"{len(rows)} clips; compressed / stored {min(r.payload_compressed / r.payload for r in rows):.2f} to "
         f"{max(r.payload_compressed / r.payload for r in rows):.2f}" if rows else "no clip")
        + _failing([f"{n} (compressed not smaller)" for n in bad]),
        applicable=bool(rows),
    )


def planning_goal(planning: PlanningResult) -> Goal:
    pure, full = statistics.median(planning.pure_ms), statistics.median(planning.full_ms)
    return Goal(
        f"Planning: a fit plan < {PLAN_MAX_MS:g} ms",
        pure < PLAN_MAX_MS and full < PLAN_MAX_MS,
        f"median {pure * 1e3:.0f} µs pure, {full * 1e3:.0f} µs with model.count; exact cross-check median "
        f"{statistics.median(planning.exact_ms):.1f} ms",
        timed=True,
    )


def judge(budget: BudgetResult, fidelity: FidelityResult, speed: SpeedResult, planning: PlanningResult) -> list[Goal]:
    """Every goal, in the order of the Goals table."""
    return [
        budget_goal(budget), hint_goal(fidelity), filter_goal(fidelity), preshrink_goal(fidelity),
        speed_goal(speed), floor_goal(speed), payload_goal(speed), planning_goal(planning),
    ]
