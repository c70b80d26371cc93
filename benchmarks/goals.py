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
UNIFORM_MAX_RATIO = 2.5
"""``select="uniform"`` / ``select="first"`` on the 600-frame clip."""
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


def cap_goal(fidelity: FidelityResult) -> Goal:
    rows = fidelity.cap
    failures = [f"{r.clip.name} (sent {r.sent[0]}x{r.sent[1]}, {r.fit_tokens} vs {r.upstream_tokens} tokens)"
                for r in rows if not r.ok]
    return Goal(
        "Cap: frames above the model's cap that already fit are pre-shrunk to the model's size, same token count",
        not failures,
        (f"{len(rows) - len(failures)}/{len(rows)} pass; PSNR gain over the model's cubic "
         f"{min(r.gain for r in rows):+.2f} to {max(r.gain for r in rows):+.2f} dB; payload "
         f"{sum(r.payload_sent for r in rows) / 1e6:.1f} MB vs {sum(r.payload_upstream for r in rows) / 1e6:.1f} MB"
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


def uniform_goal(speed: SpeedResult) -> Goal:
    long = speed.long
    return Goal(
        f"Selection: uniform ≤ {UNIFORM_MAX_RATIO:g}x first on the 600-frame clip",
        long is not None and long.ratio <= UNIFORM_MAX_RATIO,
        f"{long.ratio:.2f}x on {long.clip.name}" if long is not None else "no long clip",
        applicable=long is not None,
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
        budget_goal(budget), hint_goal(fidelity), filter_goal(fidelity), cap_goal(fidelity),
        speed_goal(speed), uniform_goal(speed), payload_goal(speed), planning_goal(planning),
    ]
