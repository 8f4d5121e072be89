"""scripts/proof_targets.py: every verdict computed from the result files, reached only when the interval
clears the bar."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _records import sample_record

from thinkbudget import evaluation as ev

ROOT = Path(__file__).resolve().parents[1]
N = 40  # problems per condition


def _rec(method, budget, problem, correct, thinking, *, full=100, closed=True, flags=None):
    return sample_record(
        method,
        budget,
        problem,
        0,
        correct,
        thinking,
        answer="1",
        think_closed=closed,
        trace_lines=4 if thinking else 0,
        trace_lines_correct=4 if thinking else 0,
        answer_follows_trace=True if thinking else None,
        full_trace_tokens=full,
        forced=method == "budget_forcing",
        flags={
            "reasoning_after_think": False,
            "thinking_in_no_think": bool(flags),
            "unclosed_think": False,
            "padding": False,
        },
    )


def _write_eval(folder: Path, records: list[dict], conditions: list[ev.Condition]) -> None:
    folder.mkdir(parents=True)
    ev.append_records(folder / "samples.jsonl", records)
    results = {
        "model": "m",
        "commit": "c",
        "device": "cpu",
        "backend": "hf",
        "config": {},
        "rows": ev.aggregate(records, conditions),
        "throughput": {"generated_tokens": 1, "seconds": 1.0, "tokens_per_second": 1.0},
        "complete": True,
    }
    (folder / "results.json").write_text(json.dumps(results))


def _proof_targets(run: Path, out: Path, *flags: str) -> dict:
    """Run ``scripts/proof_targets.py`` on ``run`` with ``flags``; its ``targets.json`` (must succeed)."""
    cmd = [sys.executable, str(ROOT / "scripts/proof_targets.py"), str(run), "--output", str(out), *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.with_suffix(".json").read_text())


def test_verdicts_from_result_files(tmp_path):
    run = tmp_path / "run"
    ids = [f"p{i}" for i in range(N)]
    # Problems p0-p19 need more than 128 tokens (full trace 150), the others 60.
    full = {p: 150 if i < 20 else 60 for i, p in enumerate(ids)}
    correct_up_to = {"off": 2, 32: 12, 64: 24, 128: 32, "free": 36}
    rl = []
    for i, p in enumerate(ids):
        rl.append(_rec("no_think", None, p, i < correct_up_to["off"], 0, full=full[p]))
        rl.append(_rec("no_think_flag", None, p, False, 0, full=full[p], flags=i == 0))  # one breach
        for b in (32, 64, 128):
            thinking = {32: 20, 64: 50, 128: 100}[b] if full[p] > b else 30
            rl.append(_rec("budget_prompt", b, p, i < correct_up_to[b], thinking, full=full[p]))
        rl.append(_rec("think", None, p, i < correct_up_to["free"], full[p], full=full[p]))
    conds = [ev.Condition("chain", m, b) for m, b in [("no_think", None), ("no_think_flag", None)]]
    conds += [ev.Condition("chain", "budget_prompt", b) for b in (32, 64, 128)] + [
        ev.Condition("chain", "think", None)
    ]
    _write_eval(run / "eval" / "rl", rl, conds)
    forcing = [_rec("budget_forcing", 32, p, i < 4, 32, full=full[p]) for i, p in enumerate(ids)]
    _write_eval(run / "eval" / "forcing", forcing, [ev.Condition("chain", "budget_forcing", 32)])
    (run / "pipeline.json").write_text(
        json.dumps(
            {
                "stages": {
                    "sft": {"seconds": 3000, "peak_rss_mb": 3100.0},
                    "rl": {"seconds": 600, "peak_rss_mb": 4700.0},
                }
            }
        )
    )

    out = tmp_path / "targets"
    data = _proof_targets(run, out, "--time_limit_min", "120", "--memory_limit_gib", "4")
    verdict = {t["target"]: t["verdict"] for t in data["targets"]}
    assert verdict["free-thinking accuracy >= 60 %"] == "reached"  # 90 %, Wilson lower 77 %
    assert verdict["thinking off at least 30 points below free thinking"] == "reached"
    assert verdict["accuracy rises with the budget: off < 32 < 64 < 128 (point estimates)"] == "reached"
    assert verdict["accuracy off → 32: paired interval above zero"] == "reached"
    assert verdict["accuracy off → 128: paired interval above zero"] == "reached"
    # 100 % within budget of 40 samples: the interval (91-100 %) does not clear 95 %.
    assert verdict["within budget >= 95 % at 32"].startswith("NOT reached (the point estimate meets the bar")
    assert verdict["problems needing > 128 tokens: mean thinking at 128 >= 2x that at 32"] == "reached"  # 5x
    assert (
        verdict["budget effect at 32 >= 30 points (stated minus free thinking under 32 tokens)"] == "reached"
    )
    assert verdict["accuracy: stated budget (SFT+GRPO) >= forcing (SFT) + 5 points at 32"] == "reached"
    assert verdict["thinking-off compliance >= 99 % (/no_think flag)"] == "NOT reached"
    assert (
        verdict["stages within 120 min (pipeline.json; a resumed stage counts its last attempt)"] == "reached"
    )
    # 4,700 MiB = 4.6 GiB > 4 GiB.
    assert verdict["every stage's peak resident memory <= 4 GiB (pipeline.json)"] == "NOT reached"
    curve = [(p["condition"], p["accuracy"]) for p in data["curve"]]
    assert curve == [("off", 0.05), ("32", 0.3), ("64", 0.6), ("128", 0.8), ("free", 0.9)]
    assert (tmp_path / "accuracy_vs_budget.png").stat().st_size > 0
    md = out.with_suffix(".md").read_text()
    assert "| free | 90.0 %" in md and "NOT reached" in md and "| 32 | 30.0 %" in md

    # --model sft: the same tables and targets about the SFT model (eval/sft), for SFT-only experiments.
    shutil.copytree(run / "eval" / "rl", run / "eval" / "sft")
    shutil.rmtree(run / "eval" / "rl")
    sft_out = tmp_path / "sft-targets"
    sft = _proof_targets(run, sft_out, "--model", "sft")
    assert [(p["condition"], p["accuracy"]) for p in sft["curve"]] == curve
    sft_verdict = {t["target"]: t["verdict"] for t in sft["targets"]}
    assert sft_verdict["accuracy: stated budget (SFT) >= forcing (SFT) + 5 points at 32"] == "reached"
    assert "SFT (`eval/sft`)" in sft_out.with_suffix(".md").read_text()
    cmd = [sys.executable, str(ROOT / "scripts/proof_targets.py"), str(run), "--output", str(sft_out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)  # --model rl: its evaluation is gone
    assert proc.returncode != 0 and "eval/rl" in proc.stderr


def test_missing_evaluation_is_a_clear_error(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/proof_targets.py"),
            str(tmp_path),
            "--output",
            str(tmp_path / "t"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "proof_targets.py: error" in proc.stderr


def test_by_difficulty_literal():
    sys.path.insert(0, str(ROOT / "scripts"))
    import proof_targets

    records = [
        _rec("budget_prompt", 32, "p1", True, 20, full=20),
        _rec("budget_prompt", 32, "p2", False, 0, full=100),  # result alone (no lines)
        _rec("budget_prompt", 32, "p3", True, 60, full=150),
        _rec("think", None, "p2", True, 90, full=100),
    ]
    rows = proof_targets.by_difficulty(records, "chain", [32, 64, 128])
    got = {(r["condition"], r["full_trace_tokens"]): (r["n"], r["accuracy"], r["result_only"]) for r in rows}
    assert got == {
        ("32", "<= 32"): (1, 1.0, 0.0),
        ("32", "65-128"): (1, 0.0, 1.0),
        ("32", "> 128"): (1, 1.0, 0.0),
        ("free", "65-128"): (1, 1.0, 0.0),
    }


def test_samples_to_clear_matches_the_wilson_interval():
    from thinkbudget.targets import samples_to_clear

    for bar, n in ((0.99, 381), (0.95, 73), (0.9, 35)):
        assert samples_to_clear(bar) == n
        assert ev.wilson_interval(n, n)[0] >= bar > ev.wilson_interval(n - 1, n - 1)[0]


def test_control_evaluation_carries_the_switches_of_its_task(tmp_path):
    run = tmp_path / "run"
    ids = [f"p{i}" for i in range(N)]
    rl = [_rec("budget_prompt", 32, p, True, 20, full=60) for p in ids]
    rl += [_rec("no_think_flag", None, p, False, 0, flags=i == 0) for i, p in enumerate(ids)]  # one breach
    rl += [_rec("no_think", None, p, False, 0) for p in ids]
    conds = [ev.Condition("chain", "budget_prompt", 32)]
    conds += [ev.Condition("chain", m, None) for m in ("no_think_flag", "no_think")]
    _write_eval(run / "eval" / "rl", rl, conds)
    # The control evaluation: /no_think on 400 problems, none breached (Wilson lower end 99.05 %).
    control = [_rec("no_think_flag", None, f"q{i}", False, 0) for i in range(400)]
    _write_eval(run / "eval" / "control", control, [ev.Condition("chain", "no_think_flag", None)])
    verdict = {t["target"]: t for t in _proof_targets(run, tmp_path / "targets")["targets"]}
    flag = verdict["thinking-off compliance >= 99 % (/no_think flag) (eval/control)"]
    assert flag["verdict"] == "reached" and flag["n"] == 400
    assert "thinking-off compliance >= 99 % (/no_think flag)" not in verdict  # rl's 40 are not counted
    # The template path was not in the control evaluation: rl's samples carry it.
    assert verdict["thinking-off compliance >= 99 % (template pre-fill)"]["n"] == N


def _word_problem(rec: dict) -> dict:
    """``rec`` as a GSM8K sample (same condition and problem)."""
    key = ev.sample_key("gsm8k", rec["method"], rec["budget_label"], rec["problem_id"], rec["sample_idx"])
    return {**rec, "task": "gsm8k", "key": key}


def test_control_evaluation_carries_word_problem_budgets(tmp_path):
    """GSM8K within budget comes from eval/control where it ran that budget, from eval/rl elsewhere."""
    run = tmp_path / "run"
    ids = [f"p{i}" for i in range(N)]
    rl = [_rec("budget_prompt", b, p, True, 20, full=60) for p in ids for b in (32, 64)]
    # rl's word problems: 36 of 40 within at 32 (90 %, cannot clear 90 %) and all 40 within at 64.
    rl += [
        _word_problem(_rec("budget_prompt", 32, p, False, 20 if i >= 4 else 40)) for i, p in enumerate(ids)
    ]
    rl += [_word_problem(_rec("budget_prompt", 64, p, False, 20)) for p in ids]
    conds = [ev.Condition(t, "budget_prompt", b) for t in ("chain", "gsm8k") for b in (32, 64)]
    _write_eval(run / "eval" / "rl", rl, conds)
    # The control evaluation ran budget 32 only: 380 of 400 within (95 %, Wilson 92.4..96.8 %).
    qs = [f"q{i}" for i in range(400)]
    control = [
        _word_problem(_rec("budget_prompt", 32, q, False, 20 if i >= 20 else 40)) for i, q in enumerate(qs)
    ]
    _write_eval(run / "eval" / "control", control, [ev.Condition("gsm8k", "budget_prompt", 32)])
    got = {
        t["target"]: (t["verdict"], t["n"])
        for t in _proof_targets(run, tmp_path / "targets")["targets"]
        if t["task"] == "gsm8k"
    }
    assert got == {
        "within budget >= 90 % at 32 (eval/control)": ("reached", 400),
        "within budget >= 90 % at 64": ("reached", N),
    }


def test_memory_target_needs_every_stage_measured(tmp_path):
    run = tmp_path / "run"
    ids = [f"p{i}" for i in range(N)]
    _write_eval(
        run / "eval" / "rl",
        [_rec("budget_prompt", 32, p, True, 20, full=60) for p in ids],
        [ev.Condition("chain", "budget_prompt", 32)],
    )
    name = "every stage's peak resident memory <= 8 GiB (pipeline.json)"

    def verdict(stages: dict) -> dict:
        (run / "pipeline.json").write_text(json.dumps({"stages": stages}))
        targets = _proof_targets(run, tmp_path / "targets", "--memory_limit_gib", "8")["targets"]
        return {t["target"]: t for t in targets}[name]

    # The SFT stage ran before peaks were recorded: a small peak elsewhere proves nothing.
    row = verdict({"sft": {"seconds": 3000}, "eval_control": {"seconds": 200, "peak_rss_mb": 2600.0}})
    assert row["verdict"] == "no data" and "not measured: sft" in row["value"]
    # One measured stage above the limit fails the target whatever the others did.
    row = verdict({"sft": {"seconds": 3000}, "rl": {"seconds": 600, "peak_rss_mb": 9000.0}})
    assert row["verdict"] == "NOT reached"
    row = verdict(
        {"sft": {"seconds": 3000, "peak_rss_mb": 7000.0}, "rl": {"seconds": 600, "peak_rss_mb": 3000.0}}
    )
    assert row["verdict"] == "reached"


def test_baseline_comparison_is_paired_over_problems(tmp_path):
    ids = [f"p{i}" for i in range(N)]
    conds = [ev.Condition("chain", "budget_prompt", 32), ev.Condition("chain", "think", None)]
    runs = {}
    for name, right, thinking in (("new", N, 20), ("old", N // 2, 40)):  # old: half right, over budget
        run = tmp_path / name
        recs = [_rec("budget_prompt", 32, p, i < right, thinking, full=60) for i, p in enumerate(ids)]
        recs += [_rec("think", None, p, True, 60, full=60) for p in ids]
        _write_eval(run / "eval" / "rl", recs, conds)
        runs[name] = run
    out = tmp_path / "targets"
    data = _proof_targets(runs["new"], out, "--baseline", str(runs["old"]))
    rows = {r["condition"]: r for r in data["against_baseline"]}
    assert rows["32"]["correct"]["difference"] == pytest.approx(0.5) and rows["32"]["correct"]["n"] == N
    assert rows["32"]["within_budget"]["difference"] == pytest.approx(1.0)
    assert rows["free"]["correct"]["difference"] == 0.0 and "within_budget" not in rows["free"]
    assert "## Against the baseline run" in out.with_suffix(".md").read_text()
    cmd = [sys.executable, str(ROOT / "scripts/proof_targets.py"), str(runs["new"]), "--output", str(out)]
    missing = subprocess.run([*cmd, "--baseline", str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode != 0 and "--baseline" in missing.stderr and "does not exist" in missing.stderr


def test_granularity_table_literal(tmp_path, tokenizer, tiny_model_path):
    """Each sample's trace is placed against the data stage's target for its problem at its budget
    (plan line included when the run's mix has one): at the target, coarser, finer, and whether it
    states the problem's size; a run folder without its data manifest gives no table."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import proof_targets

    from thinkbudget.data import RESULT, fit_trace
    from thinkbudget.tasks import load_problems

    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "manifest.json").write_text(json.dumps({"config": {"data": {"plan_line": True}}}))
    shutil.copytree(tiny_model_path, run / "rl")  # the run's checkpoint: its tokenizer counts the tokens
    config = {"tasks": ["chain"], "task_limits": [12], "limit": 5, "seed": 0, "split": "test"}
    _write_eval(run / "eval" / "rl", [], [])
    results = json.loads((run / "eval" / "rl" / "results.json").read_text())
    (run / "eval" / "rl" / "results.json").write_text(json.dumps(results | {"config": config}))
    problems = load_problems("chain", "test", 12, seed=0)
    # A problem whose target at 32 is a coarser trace, not the full one and not the result alone.
    p = next(q for q in problems if fit_trace(q, 32, tokenizer, plan=True)[0] not in ("full", RESULT))
    target = fit_trace(p, 32, tokenizer, plan=True)[0]
    lines = {g: len(t.splitlines()) for g, t in p.traces.items()}
    steps = p.meta["steps"]

    def sample(trace_lines, within, stated):
        r = _rec("budget_prompt", 32, p.id, True, 30)
        r.update(
            trace_lines=trace_lines, within_budget=within, completion=f"<think>\n{stated} steps\n</think>"
        )
        return r

    records = [
        sample(lines[target], True, steps),  # the target, its size stated right
        sample(lines["full"], False, steps),  # finer than the target, and over budget
        sample(0, True, steps + 1),  # the result alone: coarser; the size stated wrong
        sample(99, True, steps),  # no granularity of this problem has 99 lines
    ]
    (row,) = proof_targets.granularity_table(run, records, "chain", [32])
    assert (row["model"], row["budget"], row["n"], row["plan_line"]) == ("SFT+GRPO", 32, 4, True)
    assert (row["target"], row["finer"], row["coarser"], row["other"]) == (0.25, 0.25, 0.25, 0.25)
    assert (row["target_over_budget"], row["finer_over_budget"], row["coarser_over_budget"]) == (0, 0.25, 0)
    assert row["size_stated_right"] == 0.75
    # of the three that state the right size: one at the target, one (finer) over budget
    assert row["right_size_at_target"] == pytest.approx(1 / 3) and row[
        "right_size_over_budget"
    ] == pytest.approx(1 / 3)
    # The SFT model's samples, read the same way with its own evaluation and checkpoint.
    shutil.copytree(run / "eval" / "rl", run / "eval" / "sft")
    assert proof_targets.granularity_table(run, records, "chain", [32], stage="sft") == []  # no checkpoint
    shutil.copytree(tiny_model_path, run / "sft")
    (sft,) = proof_targets.granularity_table(run, records[:2], "chain", [32], stage="sft")
    assert (sft["model"], sft["n"], sft["target"], sft["finer_over_budget"]) == ("SFT", 2, 0.5, 0.5)
    (run / "data" / "manifest.json").unlink()
    assert proof_targets.granularity_table(run, records, "chain", [32]) == []


def test_sample_granularity_literal():
    """A sample's granularity: the trace with as many lines, and between ``full`` and ``terse`` (the
    same lines, with and without spaces) the one closer in length, a wrong digit or two included."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import proof_targets

    from thinkbudget.tasks import TERSE, chain_lines

    ops = [("+", 8), ("-", 6), ("+", 3), ("-", 2)]
    traces = {
        "full": "\n".join(chain_lines(47, ops, 1)),
        TERSE: "\n".join(chain_lines(47, ops, 1, terse=True)),
        "2-per-line": "\n".join(chain_lines(47, ops, 2)),
    }

    def record(thinking: str, lines: int) -> dict:
        return {
            "completion": f"<think>\n{thinking}\n</think>\n\nThe answer is \\boxed{{50}}.",
            "trace_lines": lines,
        }

    cases = [
        (record(traces["full"], 4), "full"),
        (record(traces[TERSE], 4), TERSE),
        (record("47+8=55\n-6=49\n+3=52\n-2=51", 4), TERSE),  # a wrong last line is still terse
        (record("47 + 8 = 55\n- 6 = 49\n+ 3 = 52\n- 2 = 5", 4), "full"),
        (record(traces["2-per-line"], 2), "2-per-line"),
        (record("= 50", 0), "result"),
        (record("47 + 8 = 55\n- 6 = 49\n+ 3 = 52", 3), None),  # no trace has 3 lines
    ]
    assert [proof_targets.sample_granularity(traces, r) for r, _ in cases] == [g for _, g in cases]
