"""scripts/frontier_targets.py: every verdict of the scorer and the frontier computed from frontier.json,
reached only when the interval clears the bar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _diff(of, against, budget, difference, lo, hi, method="budget_prompt"):
    return {
        "label": "rl",
        "task": "chain",
        "method": method,
        "budget_label": budget,
        "n": 8,
        "of": of,
        "against": against,
        "difference": difference,
        "difference_ci": [lo, hi],
        "problems": 200,
    }


def _gap(budget, share, lo, hi):
    return {
        "label": "rl",
        "task": "chain",
        "method": "budget_prompt",
        "budget_label": budget,
        "n": 8,
        "selector": "scorer",
        "single": 0.4,
        "selected": 0.5,
        "oracle": 0.7,
        "share": share,
        "share_ci": [lo, hi],
        "problems": 200,
    }


def _pairwise(accuracy, lo, hi, pairs, problems):
    return {
        "label": "rl",
        "accuracy": accuracy,
        "ci": [lo, hi],
        "pairs": pairs,
        "problems": problems,
        "by_condition": {},
    }


def _level(spend, winner):
    return {"label": "rl", "task": "chain", "spend": spend, "winner": winner, "difference": None}


def _run(tmp_path: Path, frontier: dict, seconds: dict[str, float]) -> Path:
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "scorer").mkdir()
    (run / "eval" / "frontier.json").write_text(json.dumps(frontier))
    (run / "run.json").write_text(json.dumps({"stages": {k: {"seconds": v} for k, v in seconds.items()}}))
    data = {"train": {"pairs": 2100, "samples": 2560, "problems": 72, "groups": 288, "mixed_groups": 150}}
    (run / "scorer" / "run_summary.json").write_text(json.dumps({"data": data}))
    return run


def _cli(*args: str) -> subprocess.CompletedProcess:
    script = str(ROOT / "scripts" / "frontier_targets.py")
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=ENV, capture_output=True, text=True)


def _targets(run: Path, *flags: str) -> dict[str, str]:
    proc = _cli(str(run), *flags)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((run / "targets" / "targets.json").read_text())["targets"]
    assert (run / "targets" / "targets.md").read_text().count("\n| ") == len(rows) + 1  # + the header
    return {r["target"]: r["verdict"] for r in rows}


def test_verdicts_from_frontier_json(tmp_path):
    frontier = {
        "scorer_pairwise": [_pairwise(0.84, 0.81, 0.87, 900, 150)],
        "logprob_pairwise": [_pairwise(0.9, 0.88, 0.92, 900, 150)],
        "scorer_against_others": [
            _diff("scorer", "majority", "off", 0.05, 0.01, 0.09, method="no_think"),  # not a budget
            _diff("scorer", "majority", "32", 0.04, 0.005, 0.08),  # >= 3 points, interval above zero
            _diff("scorer", "majority", "64", 0.05, -0.01, 0.10),  # interval holds zero
            _diff("scorer", "majority", "128", 0.02, 0.001, 0.04),  # above zero but < 3 points
            _diff("scorer_majority", "majority", "32", 0.0, 0.0, 0.0),  # equal: lower end 0 clears >= 0
            _diff("scorer_majority", "majority", "64", 0.01, -0.02, 0.04),
        ],
        "gap_closed": [_gap("32", 0.5, 0.35, 0.65), _gap("64", 0.4, 0.2, 0.6)],
        "spend_table": [_level(32, "budget"), _level(64, "neither"), _level(128, "samples")],
    }
    seconds = {"scorer_data": 600, "scorer": 300, "eval": 2000, "frontier": 300}
    v = _targets(_run(tmp_path, frontier, seconds), "--time_limit_min", "60")
    assert v["scorer pairwise accuracy >= 80.0 % on >= 200 held-out pairs"] == "reached"
    prefix = "scorer best-of-8 >= majority@8 + 3 points, paired interval above zero, at "
    assert [v[prefix + c] for c in ("off", "32", "64", "128")] == [
        "reached",
        "reached",
        "NOT reached",
        "NOT reached",
    ]
    assert (
        v["scorer best-of-8 >= majority@8 + 3 points (interval above zero) at one budget at least"]
        == "reached"
    )
    assert (
        v["scorer-weighted vote >= majority vote at 32 (n = 8; paired interval's lower end >= 0)"]
        == "reached"
    )
    assert v[
        "scorer-weighted vote >= majority vote at 64 (n = 8; paired interval's lower end >= 0)"
    ].startswith("NOT reached (the point estimate")
    assert v["scorer-weighted vote >= majority vote at every budget"] == "NOT reached"
    gap = "scorer best-of-8 closes >= 1/3 of the gap from one sample to pass@8 at "
    assert v[gap + "32"] == "reached" and v[gap + "64"].startswith("NOT reached (the point estimate")
    assert any(k.startswith("the frontier table says") and x == "reached" for k, x in v.items())
    assert v["frontier run within 60 min (run.json)"] == "reached"  # 3,200 s = 53.3 min
    md = (tmp_path / "run" / "targets" / "targets.md").read_text()
    assert "mean log-probability ranks the same held-out pairs at 90.0 % (88.0 % to 92.0 %)" in md
    assert "The scorer trained on 2100 pairs" in md and "slip_pairs_per_right" not in md
    # A scorer that also trained on slipped copies says so, with their count.
    summary = tmp_path / "run" / "scorer" / "run_summary.json"
    data = json.loads(summary.read_text())
    data["data"]["train"]["slip_pairs"] = 1310
    summary.write_text(json.dumps(data))
    _targets(tmp_path / "run")
    md = (tmp_path / "run" / "targets" / "targets.md").read_text()
    assert "and on 1310 pairs of a right answer against a copy with one arithmetic line changed" in md
    # A process scorer's data is lines and answers, not pairs.
    train = {"answers": 3550, "lines_right": 15407, "lines_wrong": 1532, "answers_right": 735}
    train |= {"answers_wrong": 2815, "slipped_copies": 1310}
    summary.write_text(json.dumps({"stage": "process_scorer", "data": {"train": train}}))
    _targets(tmp_path / "run")
    md = (tmp_path / "run" / "targets" / "targets.md").read_text()
    assert (
        "The process scorer trained on 3550 answers to training problems (1310 of them slipped copies" in md
    )
    assert "15407 right and 1532 wrong arithmetic lines, 735 right and 2815 wrong final answers" in md
    assert "pairs (right and wrong answers" not in md


def test_too_few_pairs_slow_run_and_no_win(tmp_path):
    frontier = {
        "scorer_pairwise": [_pairwise(0.95, 0.9, 0.99, 150, 40)],
        "scorer_against_others": [_diff("scorer", "majority", "32", 0.01, -0.02, 0.04)],
        "gap_closed": [],
        "spend_table": [_level(32, None), _level(64, "neither")],
    }
    v = _targets(_run(tmp_path, frontier, {"eval": 3700}), "--time_limit_min", "60")
    assert v["scorer pairwise accuracy >= 80.0 % on >= 200 held-out pairs"] == "NOT reached"
    assert v["scorer best-of-8 >= majority@8 + 3 points (interval above zero) at one budget at least"] == (
        "NOT reached"
    )
    assert any(k.startswith("the frontier table says") and x == "NOT reached" for k, x in v.items())
    assert v["frontier run within 60 min (run.json)"] == "NOT reached"


def test_missing_frontier_is_a_clear_error(tmp_path):
    proc = _cli(str(tmp_path))
    assert proc.returncode != 0 and "frontier.json does not exist" in proc.stderr
