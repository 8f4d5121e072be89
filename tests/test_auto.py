"""Auto mode's data: the measured decision table (thinkbudget.auto, scripts/auto_decisions.py) and the
auto rows of the data mix (prompts that leave the decision to the model, targets that follow the table)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from thinkbudget import auto
from thinkbudget.data import DataMixArguments, build_rl_dataset, build_sft_dataset, row_types
from thinkbudget.protocol import AUTO_SENTENCE, AUTO_THINK_FLAG, EMPTY_THINK_BLOCK, parse_budget_from_prompt
from thinkbudget.tasks import load_problems
from thinkbudget.traces import full_trace_tokens, thinking_between_tags

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "tokens,expected", [(1, 0), (16, 0), (17, 1), (32, 1), (33, 2), (128, 3), (129, 4), (10_000, 4)]
)
def test_bin_index_literal(tokens, expected):
    assert auto.bin_index(tokens, [16, 32, 64, 128]) == expected


@pytest.mark.parametrize("edges", [[], [0, 8], [8, 8], [16, 8], [8, 1.5], [True, 8]])
def test_bad_edges(edges):
    with pytest.raises(ValueError, match="edges"):
        auto.check_edges(edges)


BINS = [
    {"max_full_trace_tokens": 32, "think": False},
    {"max_full_trace_tokens": 64, "think": True},
    {"max_full_trace_tokens": 128, "think": False},
]


@pytest.mark.parametrize(
    "tokens,expected", [(5, False), (32, False), (33, True), (64, True), (100, False), (500, False)]
)
def test_should_think_literal(tokens, expected):
    # Beyond the last bound, the hardest measured bin decides.
    assert auto.should_think(BINS, tokens) is expected
    assert auto.should_think([*BINS, {"max_full_trace_tokens": None, "think": True}], tokens) is (
        tokens > 128 or expected
    )


def _rec(task, method, pid, full, correct):
    return {"task": task, "method": method, "problem_id": pid, "full_trace_tokens": full, "correct": correct}


def test_measure_decisions_literal():
    records = [
        # easy problems (<= 16 tokens): thinking off as good as thinking -> answer directly
        _rec("chain", "no_think", "a", 10, True),
        _rec("chain", "think", "a", 10, True),
        _rec("chain", "no_think", "b", 12, False),
        _rec("chain", "think", "b", 12, False),
        # hard problems (> 16): thinking pays
        _rec("chain", "no_think", "c", 40, False),
        _rec("chain", "think", "c", 40, True),
        _rec("chain", "no_think", "d", 90, False),
        _rec("chain", "think", "d", 90, True),
        _rec("chain", "budget_prompt", "d", 90, False),  # other methods are not read
        # a task with only one of the two methods is left out
        _rec("gsm8k", "think", "g", 50, True),
    ]
    out = auto.measure_decisions(records, edges=[16], margin=0.02)
    assert list(out) == ["chain"]
    assert out["chain"] == [
        {"max_full_trace_tokens": 16, "n": 2, "off_accuracy": 0.5, "think_accuracy": 0.5, "think": False},
        {"max_full_trace_tokens": None, "n": 2, "off_accuracy": 0.0, "think_accuracy": 1.0, "think": True},
    ]
    # The margin is strict: a gain of exactly the margin does not make the bin think.
    tie = [_rec("chain", "no_think", str(i), 5, i < 1) for i in range(2)] + [
        _rec("chain", "think", str(i), 5, i < 2) for i in range(2)
    ]
    assert auto.measure_decisions(tie, edges=[16], margin=0.5)["chain"][0]["think"] is False
    assert auto.measure_decisions(tie, edges=[16], margin=0.49)["chain"][0]["think"] is True
    with pytest.raises(ValueError, match="margin"):
        auto.measure_decisions(records, margin=1.5)


def _decisions(path: Path, tasks=("chain",), easy=32) -> str:
    """Problems whose full trace needs at most ``easy`` tokens answer directly, harder ones think."""
    bins = [{"max_full_trace_tokens": easy, "think": False}, {"max_full_trace_tokens": None, "think": True}]
    auto.write_decisions(path, dict.fromkeys(tasks, bins), source="test", edges=[easy], margin=0.02)
    return str(path)


def test_load_decisions_errors(tmp_path):
    with pytest.raises(ValueError, match="(?s)does not exist.*scripts/auto_decisions.py"):
        auto.load_decisions(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a decision file"):
        auto.load_decisions(bad)
    bad.write_text(json.dumps({"tasks": {"chain": [{"max_full_trace_tokens": 8, "think": "yes"}]}}))
    with pytest.raises(ValueError, match="(?s)not a decision file.*true/false"):
        auto.load_decisions(bad)
    good = _decisions(tmp_path / "d.json")
    assert list(auto.load_decisions(good, ["chain"])) == ["chain"]
    with pytest.raises(ValueError, match="no decisions for task\\(s\\) gsm8k \\(it covers chain\\)"):
        auto.load_decisions(good, ["chain", "gsm8k"])


def test_mix_validation(tmp_path):
    with pytest.raises(ValueError, match="auto_decisions: required when auto_ratio > 0"):
        DataMixArguments(think_budget_ratio=0.4, think_free_ratio=0.2, no_think_ratio=0.2, auto_ratio=0.2)
    with pytest.raises(ValueError, match="must sum to 1.*\\+ 0.2\\)"):
        DataMixArguments(auto_ratio=0.2, auto_decisions=_decisions(tmp_path / "d.json"))
    with pytest.raises(ValueError, match="auto_ratio: must be a fraction"):
        DataMixArguments(think_budget_ratio=1.0, think_free_ratio=0.25, no_think_ratio=0.25, auto_ratio=-0.5)
    with pytest.raises(ValueError, match="auto_decisions: .* does not exist"):
        DataMixArguments(
            think_budget_ratio=0.4,
            think_free_ratio=0.2,
            no_think_ratio=0.2,
            auto_ratio=0.2,
            auto_decisions="/no/file",
        )


def _auto_mix(tmp_path, **kw) -> DataMixArguments:
    base = {
        "tasks": ["chain", "rg/leg_counting"],
        "num_train_problems": 80,
        "num_test_problems": 10,
        "budgets": [32, 128],
        "think_budget_ratio": 0.2,
        "think_free_ratio": 0.2,
        "no_think_ratio": 0.1,
        "auto_ratio": 0.5,
        "flag_ratio": 0.4,
        "auto_decisions": _decisions(tmp_path / "d.json"),
    }
    return DataMixArguments(**{**base, **kw})


def test_auto_rows_follow_the_measured_decisions(tmp_path, tokenizer):
    args = _auto_mix(tmp_path)
    assert row_types(args) == ["off", "free", "32", "128", "auto", "auto 32", "auto 128"]
    ds = build_sft_dataset(args, tokenizer, "train")
    problems = {p.id: p for t in args.tasks for p in load_problems(t, "train", n=80, seed=0)}
    rows = [r for r in ds if r["mode"] == "auto"]
    assert 0.35 < len(rows) / len(ds) < 0.65
    assert Counter(r["control"] for r in rows).keys() == {"kwargs", "flag"}
    assert {r["budget"] for r in rows} == {None, 32, 128}
    decided = Counter()
    for r in rows:
        p = problems[r["id"]]
        # The prompt leaves the decision to the model, by keyword or by flag, and states the budget drawn.
        assert AUTO_SENTENCE in r["prompt"] and not r["prompt"].endswith(EMPTY_THINK_BLOCK)
        assert (AUTO_THINK_FLAG in r["prompt"]) == (r["control"] == "flag")
        assert parse_budget_from_prompt(r["prompt"]) == r["budget"]
        n = full_trace_tokens(p.traces, tokenizer)
        thinks = n is not None and n > 32  # the decision table: <= 32 tokens answer directly
        assert (r["thinking_tokens"] > 0) == thinks, (r["id"], n)
        if thinks:
            assert r["completion"].startswith("<think>\n") and thinking_between_tags(r["completion"]).strip()
            assert r["budget"] is None or r["thinking_tokens"] <= r["budget"]
        else:
            # Nothing is pre-filled in auto mode: the target writes the empty block itself.
            assert r["completion"].startswith(EMPTY_THINK_BLOCK) and r["granularity"] == "none"
        decided[p.task, thinks] += 1
    # Both decisions occur on chain; reasoning-gym problems (no traces) always answer directly.
    assert decided["chain", True] and decided["chain", False] and not decided["rg/leg_counting", True]


def test_auto_mix_keeps_the_other_rows_and_rl_keeps_auto_rows(tmp_path, tokenizer):
    args = _auto_mix(tmp_path)
    plain = DataMixArguments(
        **{
            **vars(args),
            "think_budget_ratio": 0.2,
            "no_think_ratio": 0.6,
            "auto_ratio": 0.0,
            "auto_decisions": None,
        }
    )
    with_auto = build_sft_dataset(args, tokenizer, "train")
    without = build_sft_dataset(plain, tokenizer, "train")
    # Auto takes its rows from the end of the draw: every row drawn think is the same row in both mixes.
    a = {r["id"]: r for r in with_auto if r["mode"] == "think"}
    b = {r["id"]: r for r in without if r["mode"] == "think"}
    assert a == b and a
    # RL rows drawn auto stay auto (GRPO trains the decision: thinkbudget.decision): the prompt states
    # the auto sentence, and every row carries its difficulty.
    rl = build_rl_dataset(args, tokenizer, "train")
    assert set(rl["mode"]) == {"think", "no_think", "auto"}
    for row in rl:
        assert (AUTO_SENTENCE in row["prompt"]) == (row["mode"] == "auto")
        if row["task"] == "chain":  # reasoning-gym problems have no reference trace: no difficulty
            assert row["full_trace_tokens"] > 0
        else:
            assert row["full_trace_tokens"] is None
        assert row["target_lines"] is None or row["mode"] == "think"


def test_auto_decisions_script(tmp_path):
    samples = tmp_path / "eval" / "samples.jsonl"
    samples.parent.mkdir()
    recs = [
        _rec("chain", m, f"p{i}", 10 * (i + 1), m == "think" or i < 2)
        for i in range(8)
        for m in ("no_think", "think")
    ]
    samples.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "d.json"
    cmd = [
        sys.executable,
        "scripts/auto_decisions.py",
        "--eval_dir",
        str(samples.parent),
        "--output",
        str(out),
    ]
    proc = subprocess.run([*cmd, "--edges", "25"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    bins = auto.load_decisions(out, ["chain"])["chain"]
    assert [(b["max_full_trace_tokens"], b["n"], b["think"]) for b in bins] == [
        (25, 2, False),
        (None, 6, True),
    ]
    assert "answer directly" in proc.stdout
    bad = subprocess.run([*cmd, "--edges", "25,10"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "edges: must increase strictly" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "scripts/auto_decisions.py", "--eval_dir", str(tmp_path), "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "not an evaluation folder" in missing.stderr
