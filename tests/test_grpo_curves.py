"""eval/grpo_curves.py: a GRPO run's logged steps become a figure and a table with every logged metric,
the granularity panel only where the run logged it; a folder without a trainer state is a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _step(step: int, *, shape: bool, auto: bool = False) -> dict:
    h = {
        "step": step,
        "reward": 1.0 + step / 10,
        "reward_std": 0.5,
        "rewards/correctness/mean": 0.25 * step,
        "thinkbudget/budget_32/thinking_tokens": 40.0 - step,
        "thinkbudget/budget_32/within_budget": 0.5 + step / 10,
        "thinkbudget/no_budget/thinking_tokens": 90.0,
        "thinkbudget/accuracy": 0.375,
        "thinkbudget/no_think/compliance": 1.0,
    }
    if shape:
        h["thinkbudget/budget_32/at_target"] = 0.125 * step
        h["thinkbudget/no_budget/at_target"] = 0.75
    if auto:  # thinkbudget.rl logs the policy's P(think) at auto prompts, overall and per difficulty bin
        h["auto/p_think"] = 0.5
        h["auto/p_think/gt128"] = 1.0 - 0.0625 * step
        h["auto/p_think/le16"] = 0.125 * step
        h["auto/p_think/le128"] = 0.75
    return h


def _run(run: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "eval/grpo_curves.py"), str(run), "--output", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_curves_table_and_figure(tmp_path):
    for shape in (False, True):
        run = tmp_path / f"rl-{shape}" / "checkpoint-3"  # the newest checkpoint's state is read
        run.mkdir(parents=True)
        history = [_step(s, shape=shape) for s in (1, 2, 3)] + [{"train_runtime": 60.0, "step": 3}]
        (run / "trainer_state.json").write_text(json.dumps({"log_history": history}))
        out = tmp_path / f"curves-{shape}"
        proc = _run(run.parent, out)
        assert proc.returncode == 0, proc.stderr
        assert (out / "grpo_curves.png").stat().st_size > 10_000
        table = (out / "grpo_curves.md").read_text().splitlines()
        header = [c.strip() for c in table[4].strip("|").split("|")]
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[6:]]
        assert len(rows) == 3  # the summary entry without a reward is not a step
        col = dict(zip(header, zip(*rows)))
        assert col["step"] == ("1", "2", "3")
        assert col["budget_32/within_budget"] == ("0.6", "0.7", "0.8")
        assert col["rewards/correctness"] == ("0.25", "0.5", "0.75")
        if shape:
            assert col["budget_32/at_target"] == ("0.125", "0.25", "0.375")
            assert col["no_budget/at_target"] == ("0.75",) * 3
        else:
            assert not any("at_target" in c for c in header)
        assert not any("auto" in c for c in header)


def test_auto_panel_orders_the_difficulty_bins(tmp_path):
    run = tmp_path / "rl"
    run.mkdir()
    history = [_step(s, shape=False, auto=True) for s in (1, 2)]
    (run / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    proc = _run(run, tmp_path / "curves")
    assert proc.returncode == 0, proc.stderr
    header = [
        c.strip()
        for c in (tmp_path / "curves/grpo_curves.md").read_text().splitlines()[4].strip("|").split("|")
    ]
    auto = [c for c in header if c.startswith("auto/")]
    assert auto == ["auto/p_think", "auto/p_think/le16", "auto/p_think/le128", "auto/p_think/gt128"]


def test_missing_state_is_an_error(tmp_path):
    proc = _run(tmp_path, tmp_path / "out")
    assert proc.returncode != 0 and "no trainer_state.json" in proc.stderr
