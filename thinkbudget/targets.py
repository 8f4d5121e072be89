"""Targets, each reached or not, computed from result files: one rule for every verdict.

A target is **reached** only when its 95 % interval clears the bar; a point estimate that meets the bar
while its interval does not is "not reached" and says so. Used by ``scripts/proof_targets.py`` (the
proof's targets) and ``scripts/frontier_targets.py`` (the compute frontier's), so that the two tables
read the same way and the rule is written once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from thinkbudget.evaluation import wilson_interval


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def interval(lo: float | None, hi: float | None, scale: float = 100, unit: str = " %") -> str:
    return "–" if lo is None else f"{scale * lo:.1f} to {scale * hi:.1f}{unit}"


class Targets:
    """Collects (task, target, value, interval, verdict) lines."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, task: str, target: str, value: str, lo: float | None, bar: float, *, point=None, **extra):
        """Reached when the interval's lower end ``lo`` is at least ``bar``."""
        if lo is None:
            verdict = "no data"
        elif lo >= bar:
            verdict = "reached"
        elif point is not None and point >= bar:
            verdict = "NOT reached (the point estimate meets the bar, its interval does not clear it)"
        else:
            verdict = "NOT reached"
        self.rows.append({"task": task, "target": target, "value": value, "verdict": verdict, **extra})

    def diff(self, task: str, target: str, d: dict[str, Any] | None, bar: float) -> None:
        """A paired difference (:func:`paired_bootstrap`): reached when its interval's lower end >= ``bar``."""
        if d:
            self.add(task, target, diff_text(d), d["ci"][0], bar, point=d["difference"], diff=d)

    def table(self) -> list[str]:
        """The targets as Markdown table lines (header included)."""
        rows = [f"| {o['task']} | {o['target']} | {o['value']} | {o['verdict']} |" for o in self.rows]
        return ["| task | target | value | verdict |", "|---|---|---|---|", *rows]

    def wall_time(self, target: str, seconds: dict[str, float], limit_min: float) -> None:
        """The stages' summed wall time (``seconds`` per stage) against ``limit_min`` minutes."""
        total = sum(seconds.values())
        detail = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
        ok = total <= 60 * limit_min if seconds else None
        self.note("all", target, f"{total / 60:.1f} min: {detail}", ok, stage_seconds=seconds)

    def note(self, task: str, target: str, value: str, ok: bool | None, **extra) -> None:
        """A target without an interval (wall time): reached when ``ok``."""
        verdict = "no data" if ok is None else ("reached" if ok else "NOT reached")
        self.rows.append({"task": task, "target": target, "value": value, "verdict": verdict, **extra})


def diff_text(d: dict[str, Any]) -> str:
    lo, hi = d["ci"]
    return f"{100 * d['difference']:+.1f} pts ({100 * lo:+.1f} to {100 * hi:+.1f}), n = {d['n']}"


def samples_to_clear(bar: float, z: float = 1.96) -> int:
    """The fewest samples whose Wilson interval clears ``bar`` even with none missed: with a perfect
    score the lower end is n / (n + z^2), so n >= bar z^2 / (1 - bar) (381 for 99 %)."""
    return math.ceil(bar * z * z / (1 - bar)) if bar < 1 else math.inf


def rate_target(t: Targets, task: str, name: str, flags: list[bool], bar: float) -> None:
    k, n = sum(flags), len(flags)
    lo, hi = wilson_interval(k, n)
    p = k / n if n else None
    value = f"{pct(p)} ({interval(lo, hi)}), n = {n}"
    if n and n < samples_to_clear(bar):
        value += f" (at n = {n} no score clears {pct(bar)}: that takes n >= {samples_to_clear(bar)})"
    t.add(task, name, value, lo, bar, point=p, rate=p, ci=[lo, hi], n=n)


def stage_record(summary: Path, key: str) -> dict[str, float]:
    """One figure of every stage as the job runner recorded it in a job's summary (``pipeline.json`` of the
    main job, ``run.json`` of a frontier run): ``seconds`` (wall time) or ``peak_rss_mb`` (peak resident
    memory, MiB). Stages without it are left out; no summary gives ``{}``."""
    if not summary.is_file():
        return {}
    stages = json.loads(summary.read_text()).get("stages", {})
    return {k: v[key] for k, v in stages.items() if v.get(key) is not None}
