"""scripts/auto_targets.py: issue #21's verdicts computed from an evaluation's samples, reached only when
the interval clears the bar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from thinkbudget.evaluation import sample_key

ROOT = Path(__file__).resolve().parents[1]
MIX = "mix:step+chain"


def _rec(task, method, label, problem, *, correct=True, thinking=0, answer=12, full=11, within=None):
    return {
        "key": sample_key(task, method, label, problem, 0),
        "task": task,
        "method": method,
        "budget_label": label,
        "problem_id": problem,
        "sample_idx": 0,
        "correct": correct,
        "thinking_tokens": thinking,
        "total_tokens": thinking + answer,
        "within_budget": within,
        "full_trace_tokens": full,
    }


def _write(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True)
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/auto_targets.py"), *args], capture_output=True, text=True
    )


def _mix(budget_misses: int) -> list[dict]:
    """200 easy problems (full trace 11 tokens) answered directly by auto, 200 hard ones (100 tokens) on
    which auto thinks; always thinking costs 23 / 110 tokens; every answer right. At budget 32 auto thinks
    on the hard ones only, ``budget_misses`` of them over budget."""
    out = []
    for i in range(400):
        hard = i % 2 == 1
        p, full = (f"chain-{i}", 100) if hard else (f"step-{i}", 11)
        out.append(_rec(MIX, "think", "none", p, thinking=98 if hard else 11, full=full))
        out.append(_rec(MIX, "auto", "none", p, thinking=98 if hard else 0, full=full))
        out.append(
            _rec(
                MIX,
                "auto_budget",
                "32",
                p,
                thinking=30 if hard else 0,
                full=full,
                within=not (hard and i < 2 * budget_misses),
            )
        )
    return out


def test_verdicts_from_samples(tmp_path):
    new = (
        _mix(budget_misses=10)
        + [_rec("chain", "no_think", "off", f"c{i}", correct=i < 50) for i in range(100)]
        + [_rec("chain", "budget_prompt", "32", f"c{i}", thinking=20, within=i < 80) for i in range(100)]
    )
    old = [_rec("chain", "no_think", "off", f"c{i}", correct=i < 10) for i in range(100)] + [
        _rec("chain", "budget_prompt", "32", f"c{i}", thinking=20, within=True) for i in range(100)
    ]
    out = tmp_path / "targets"
    proc = _run(
        str(_write(tmp_path / "new", new)),
        "--baseline",
        str(_write(tmp_path / "old", old)),
        "--output",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    verdict = {
        (t["task"], t["target"]): t["verdict"]
        for t in json.loads(out.with_suffix(".json").read_text())["targets"]
    }
    assert (
        verdict[MIX, "auto accuracy within 2 points of always thinking (auto − think, paired)"] == "reached"
    )
    # (23 - 12) / (23 + 110) = 8.3 % fewer tokens
    assert verdict[MIX, "auto uses >= 40 % fewer total tokens than always thinking (paired)"] == "NOT reached"
    assert verdict[MIX, "think rate on the hardest quarter >= 80 %"] == "reached"
    assert (
        verdict[MIX, "answers without thinking on the easiest quarter >= 80 % (think rate <= 20 %)"]
        == "reached"
    )
    assert verdict[MIX, "overall think rate >= 20 %"] == "reached"
    assert verdict[MIX, "overall think rate <= 80 % (answers without thinking >= 20 %)"] == "reached"
    # 190 of 200 within budget: 95.0 %, its Wilson interval does not clear 95 %
    assert verdict[MIX, "auto at budget 32: within budget >= 95 % where it thinks"].startswith(
        "NOT reached (the point estimate meets the bar"
    )
    assert (
        verdict["chain", "no regression: no_think at off, accuracy (this − before, paired; upper end >= 0)"]
        == "reached"
    )
    assert (
        verdict[
            "chain",
            "no regression: budget_prompt at 32, within budget (this − before, paired; upper end >= 0)",
        ]
        == "NOT reached"
    )
    md = out.with_suffix(".md").read_text()
    assert "| mix:step+chain | think rate on the hardest quarter >= 80 % |" in md
    # where the saving comes from, per family: the steps answered without thinking
    assert "| step | auto | none | 200 | 100.0 % | 0.0 % | 0.0 | 12.0 |" in md
    assert "| chain | auto | none | 200 | 100.0 % | 100.0 % | 98.0 | 110.0 |" in md
    family = json.loads(out.with_suffix(".json").read_text())["by_family"]
    assert [(f["family"], f["method"], f["budget"]) for f in family][:3] == [
        ("chain", "auto", "none"),
        ("chain", "auto_budget", "32"),
        ("chain", "think", "none"),
    ]


def test_a_model_that_always_thinks_fails_the_decision_targets(tmp_path):
    recs = [r for r in _mix(0) if r["method"] == "think"]
    recs += [
        {**r, "method": "auto", "key": sample_key(MIX, "auto", "none", r["problem_id"], 0)} for r in recs
    ]
    out = tmp_path / "t"
    assert _run(str(_write(tmp_path / "e", recs)), "--output", str(out)).returncode == 0
    verdict = {t["target"]: t["verdict"] for t in json.loads(out.with_suffix(".json").read_text())["targets"]}
    assert (
        verdict["answers without thinking on the easiest quarter >= 80 % (think rate <= 20 %)"]
        == "NOT reached"
    )
    assert verdict["overall think rate <= 80 % (answers without thinking >= 20 %)"] == "NOT reached"
    assert verdict["auto uses >= 40 % fewer total tokens than always thinking (paired)"] == "NOT reached"


def test_bad_input_is_named(tmp_path):
    proc = _run(str(tmp_path / "missing"), "--output", str(tmp_path / "t"))
    assert proc.returncode != 0 and "missing/samples.jsonl does not exist" in proc.stderr
    no_auto = _write(tmp_path / "e", [_rec(MIX, "think", "none", "p0")])
    proc = _run(str(no_auto), "--output", str(tmp_path / "t"))
    assert proc.returncode != 0 and "no auto samples" in proc.stderr
