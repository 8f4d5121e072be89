"""scripts/bench_cpu.py's decoding benchmark at tiny size: every part runs and the report holds what
results/cpu-speed-decoding.md states (a smoke run: its figures mean nothing at this size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_decoding_benchmark_quick(tmp_path):
    out = tmp_path / "decoding"
    subprocess.run(
        [sys.executable, "scripts/bench_cpu.py", "--model", "tiny-llama", "--quick", "true",
         "--decoding_only", "true", "--repeats", "2", "--output", str(out)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    report = json.loads(out.with_suffix(".json").read_text())
    assert [len(report["eval_runs"][b]) for b in ("hf", "cached")] == [2, 2]
    real = report["real_eval"]
    assert real["samples_compared"] == 3 * 5  # (2 chain + 1 GSM8K problems) x 5 conditions
    assert real["hf"]["samples_generated"] == real["cached"]["samples_generated"] == 15
    assert 0 <= real["same_tokens"] <= real["same_answer"] <= 1
    grpo = report["grpo"]
    assert {g["completions_per_step"] for g in grpo.values()} == {grpo["hf"]["completions_per_step"]}
    assert [(g["rollout_backend"], g["micro_batches"]) for g in grpo.values()] == [
        ("hf", "TRL's shuffled, full width"),
        ("cached", "TRL's shuffled, full width"),
        ("cached", "grouped by length"),
    ]
    assert 0 < report["figures"]["decode_share_of_matmul"] < 1
    targets = {t["target"]: t["verdict"] for t in report["targets"]}
    assert len(targets) == 6 and {v.split(" (")[0] for v in targets.values()} <= {"reached", "NOT reached"}
    agreement = next(t for t in report["targets"] if t["target"].startswith("greedy answers agree"))
    lo, hi = agreement["interval"]  # judged by its Wilson interval, as every target of the project
    assert 0 <= lo <= agreement["value"] <= hi <= 1 and agreement["n"] == 4
    assert (agreement["verdict"] == "reached") == (lo >= 0.95)
    assert "engine" in report["real_eval"]["cached"] and "engine" not in report["real_eval"]["hf"]
    assert 0 < report["figures"]["real_eval_prompt_share_of_positions"] < 1
    assert "| real evaluation (15 samples), tokens/s |" in out.with_suffix(".md").read_text()


def test_real_eval_limits_are_checked():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import bench_cpu
    finally:
        sys.path.pop(0)
    with pytest.raises(ValueError, match="--real_eval_limits takes two positive problem counts"):
        bench_cpu.BenchArguments(real_eval_limits="200")
    assert bench_cpu.BenchArguments(real_eval_limits="", quick=True).real_eval_limits == ""
