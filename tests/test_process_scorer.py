"""The process scorer: every arithmetic line labelled where it stands (its last token), the final answer at
the last token, slipped copies wrong at their slip; train/process_scorer.py trains a token head that
plain transformers loads, and the frontier and best-of-N read it as they read the pairwise scorer."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thinkbudget import process_scorer as ps
from thinkbudget import run_folders
from thinkbudget import scorer as sc
from thinkbudget.traces import LineVerdict, check_lines, line_verdicts

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "process_scorer.py"
SMOKE = ROOT / "configs" / "scorer" / "process-smoke.yaml"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


# ------------------------------------------------------------------------------------------------
# Lines and steps
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "thinking, expected",
    [
        ("57+8=65\n-9=56", [(0, 7, True), (8, 13, True)]),
        ("58+1=69\n+2=71", [(0, 7, False), (8, 13, True)]),  # the second continues from the wrong 69
        ("Natalia sold 48\n48/2 = 24", [(16, 25, True)]),  # prose is neither right nor wrong
        ("= 52", []),  # a bare result: nothing to check
        ("3 + 4 = 7\r\n+ 1 = 9", [(0, 9, True), (11, 18, False)]),  # a two-character line break
        ("", []),
        ("12 * 3 = 36.\n36 - 1 = 35", [(0, 12, True), (13, 24, True)]),
    ],
)
def test_line_verdicts_literal(thinking, expected):
    verdicts = line_verdicts(thinking)
    assert [(v.start, v.end, v.correct) for v in verdicts] == expected
    check = check_lines(thinking)
    assert (check.lines, check.correct) == (len(expected), sum(ok for *_, ok in expected))


def test_line_verdicts_stand_on_their_lines():
    rng = random.Random(0)
    for _ in range(300):
        value, lines = rng.randint(0, 99), []
        for _ in range(rng.randint(1, 8)):
            d = rng.randint(1, 9)
            value2 = value + d if rng.random() < 0.5 else value - d
            shown = value2 if rng.random() < 0.8 else value2 + rng.choice([-1, 1])
            lines.append(
                f"{'+' if value2 > value else '-'} {d} = {shown}" if lines else f"{value} + 0 = {shown}"
            )
            value = shown
        text = rng.choice(["\n", "\n\n"]).join(lines)
        verdicts = line_verdicts(text)
        assert all(isinstance(v, LineVerdict) and "\n" not in text[v.start : v.end] for v in verdicts)
        assert [text[v.start : v.end] for v in verdicts] == lines


@pytest.mark.parametrize(
    "response, lines",
    [
        ("<think>\n57+8=65\n-9=56\n</think>\n\nThe answer is \\boxed{56}.", ["57+8=65", "-9=56"]),
        ("<think>\n57+8=65\n-9=5", ["57+8=65", "-9=5"]),  # unclosed: all of it is thinking
        ("57+8=65\n</think>\n\n\\boxed{65}", ["57+8=65"]),  # no opening tag: the text before </think>
        ("<think>\n\n</think>\n\n3+4=7 so \\boxed{7}", []),  # lines after </think> are the answer's
        ("3+4=7 so \\boxed{7}", []),  # no think block
    ],
)
def test_line_steps_literal(response, lines):
    steps = ps.line_steps(response)
    assert [response[:e].rsplit("\n", 1)[-1] for e, _ in steps] == lines


def _rec(question: str, completion: str, correct: bool, key: str = "k", problem: str = "p") -> dict:
    return {
        "key": key,
        "task": "chain",
        "problem_id": problem,
        "method": "budget_prompt",
        "budget_label": "64",
        "question": question,
        "prefill": "",
        "completion": completion,
        "correct": correct,
        "final_answer": None,
        "mean_logprob": -0.1,
    }


def test_process_example_labels_each_line_at_its_last_token(tokenizer):
    completion = "<think>\n58+1=69\n+2=71\n</think>\n\nThe answer is \\boxed{71}.<|im_end|>"
    ex = ps.process_example(tokenizer, _rec("Compute 58 + 1 + 2.", completion, False), 256)
    labelled = [(i, lab) for i, lab in enumerate(ex["labels"]) if lab != ps.IGNORE]
    assert [lab for _, lab in labelled] == [0, 1, 0]  # 58+1=69 wrong, +2=71 right (from 69), answer wrong
    assert labelled[-1][0] == len(ex["input_ids"]) - 1
    for (i, _), line in zip(labelled[:2], ["58+1=69", "+2=71"]):
        assert tokenizer.decode(ex["input_ids"][: i + 1]).endswith(line)
        assert not tokenizer.decode(ex["input_ids"][:i]).endswith(line)
    assert ex["input_ids"] == sc.scorer_input_ids(tokenizer, "Compute 58 + 1 + 2.", completion, 256)


def test_a_line_checker_leaves_the_answer_unlabelled(tokenizer):
    completion = "<think>\n58+1=69\n+2=71\n</think>\n\nThe answer is \\boxed{71}.<|im_end|>"
    record = _rec("Compute 58 + 1 + 2.", completion, False)
    with_outcome = ps.process_example(tokenizer, record, 256)
    lines_only = ps.process_example(tokenizer, record, 256, outcome_label=False)
    assert lines_only["input_ids"] == with_outcome["input_ids"]
    assert lines_only["labels"][:-1] == with_outcome["labels"][:-1] and lines_only["labels"][-1] == ps.IGNORE
    alone = ps.process_example(
        tokenizer, _rec("Compute 5 + 1.", "<think>\n6\n</think>\n\n\\boxed{6}", True), 256, False
    )
    assert set(alone["labels"]) == {ps.IGNORE}  # nothing to learn: train/process_scorer.py drops such rows


def test_truncation_drops_the_middle_lines_and_keeps_the_answer(tokenizer):
    lines = [f"{i}+1={i + 1}" for i in range(40)]
    completion = "<think>\n" + "\n".join(lines) + "\n</think>\n\nThe answer is \\boxed{40}.<|im_end|>"
    question = "Compute something long."
    full = ps.process_example(tokenizer, _rec(question, completion, True), 1024)
    short = ps.process_example(tokenizer, _rec(question, completion, True), 64)
    assert sum(lab != ps.IGNORE for lab in full["labels"]) == 41
    assert short["input_ids"] == sc.scorer_input_ids(tokenizer, question, completion, 64)
    kept = [i for i, lab in enumerate(short["labels"]) if lab != ps.IGNORE]
    assert 1 < len(kept) < 41 and kept[-1] == 63 and all(short["labels"][i] == 1 for i in kept)
    ends = [e for e, _ in ps.line_steps(completion)]
    ids, positions, idx = ps.process_input(tokenizer, question, completion, ends, 64)
    assert idx == sorted(idx) and idx[-1] == len(ends) and idx[:-1] == list(range(41 - len(kept), 40))
    for p, k in zip(positions[:-1], idx[:-1]):
        assert tokenizer.decode(ids[: p + 1]).endswith(lines[k][-2:])


def test_with_slips_adds_wrong_copies_with_one_wrong_line():
    right = _rec(
        "Compute 57 + 8 - 9.", "<think>\n57+8=65\n-9=56\n</think>\n\nThe answer is \\boxed{56}.", True
    )
    wrong = _rec(
        "Compute 57 + 8 - 9.", "<think>\n57+8=64\n-9=55\n</think>\n\nThe answer is \\boxed{55}.", False, "w"
    )
    alone = _rec("Compute 5 + 1.", "<think>\n6\n</think>\n\nThe answer is \\boxed{6}.", True, "a")
    out = ps.with_slips([right, wrong, alone], per_right=2, seed=1)
    assert out[:3] == [right, wrong, alone] and out == ps.with_slips([right, wrong, alone], 2, seed=1)
    copies = out[3:]
    assert len(copies) == 2 and all(c["synthetic"] and not c["correct"] for c in copies)
    for c in copies:
        steps = ps.line_steps(c["completion"])
        assert [ok for _, ok in steps].count(False) == 1
    counts = ps.step_counts(out)
    assert counts == {
        "answers": 5,
        "lines_right": 2 + 1 + 2,
        "lines_wrong": 1 + 2,
        "answers_right": 2,
        "answers_wrong": 3,
    }


# ------------------------------------------------------------------------------------------------
# Config and training
# ------------------------------------------------------------------------------------------------
def _load_entry():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_process_scorer_entry", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(str(p) for p in (ROOT / "configs" / "scorer").glob("process-*.yaml")))
def test_every_process_scorer_recipe_parses(path):
    extra = [] if torch.cuda.is_available() else ["--bf16", "false"]
    script, training, _ = run_folders.parse_config(_load_entry().CONFIG_CLASSES, ["--config", path, *extra])
    assert script.data_dirs and training.max_length >= 16 and training.output_dir


def test_bad_process_scorer_config_fails_while_parsing():
    entry = _load_entry()
    for flags, field in (
        (["--slips_per_right", "-1"], "slips_per_right"),
        (["--max_length", "4"], "max_length"),
        (["--scorer_eval_fraction", "1.5"], "scorer_eval_fraction"),
        (["--slip_per_right", "1"], "slip_per_right"),  # a typo is refused, not ignored
        (["--logprob_prior", "true", "--scorer_eval_fraction", "0"], "logprob_prior"),
    ):
        with pytest.raises(SystemExit, match=field):
            entry.cli(["--config", str(SMOKE), "--bf16", "false", *flags])


def _chain_answers(n_problems: int) -> list[dict]:
    """Answers to chain-like problems: right traces, traces with a wrong line, results alone."""
    rng = random.Random(5)
    records = []
    for p in range(n_problems):
        a, b, c = rng.randint(10, 80), rng.randint(1, 9), rng.randint(1, 9)
        question = f"Compute {a} + {b} - {c}."
        for i in range(4):
            slip = 1 if i == 1 else 0
            first = a + b + slip
            thinking = f"{a}+{b}={first}\n-{c}={first - c}" if i < 3 else f"{a + b - c + (i == 3)}"
            result = first - c if i < 3 else a + b - c + 1
            completion = f"<think>\n{thinking}\n</think>\n\nThe answer is \\boxed{{{result}}}.<|im_end|>"
            record = _rec(question, completion, result == a + b - c, f"p{p}-{i}", f"chain-{p}")
            records.append({**record, "mean_logprob": -0.1 * (i + 1)})
    return records


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_path) -> tuple[Path, Path]:
    """(scorer data folder, trained process scorer): the smoke recipe through accelerate launch on CPU."""
    root = tmp_path_factory.mktemp("process-scorer")
    data = root / "data"
    data.mkdir()
    records = _chain_answers(8)
    (data / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run_folders.write_json_atomic(
        data / "results.json",
        {"model": "tiny-llama", "model_path": tiny_model_path, "config": {"split": "train", "samples": 4}},
    )
    out = root / "scorer"
    cmd = [
        *(sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu"),
        *(str(SCRIPT), "--config", str(SMOKE), "--data_dirs", str(data), "--output_dir", str(out)),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return data, out


@pytest.mark.slow
def test_smoke_process_scorer_trains_and_scores(trained, tiny_model_path, tokenizer):
    from transformers import AutoModelForTokenClassification

    data, out = trained
    before = load_file(Path(tiny_model_path) / "model.safetensors")
    after = load_file(out / "model.safetensors")
    shared = [k for k in after if k in before and after[k].shape == before[k].shape]
    assert shared and any(not torch.equal(before[k], after[k]) for k in shared), "no weight moved"
    model = AutoModelForTokenClassification.from_pretrained(out)
    assert model.config.num_labels == 2 and model.config.id2label == {0: "wrong", 1: "right"}
    saved = json.loads((out / sc.SCORER_CONFIG_FILE).read_text())
    assert saved["kind"] == ps.PROCESS_KIND and saved["max_length"] == 128 and ps.is_process_scorer(out)
    summary = json.loads((out / "run_summary.json").read_text())
    train = summary["data"]["train"]
    assert summary["global_step"] == 4 and train["lines_wrong"] > 0 and train["slipped_copies"] > 0
    assert summary["held_out"]["lines_right_n"] > 0 and summary["held_out"]["pairs"] > 0

    records, _ = sc.load_scorer_data([data])
    scorer = sc.load_scorer(str(out))
    assert isinstance(scorer, ps.ProcessScorer)
    scored = scorer.score_records(records[:4])
    detail = scorer.step_logprobs(records[:4])
    for r, (score, n), (lps, kept, n2) in zip(records[:4], scored, detail):
        steps = ps.line_steps(r["completion"])
        assert kept == list(range(len(steps) + 1)) and n == n2 == len(
            sc.scorer_input_ids(tokenizer, *sc.record_input(r), 128)
        )
        assert score == min(lps) and all(lp <= 0 and math.isfinite(lp) for lp in lps)
    # With the log-probability prior: the process score + w x the answer's mean log-probability.
    scorer.logprob_weight = 0.5
    for r, (score, _), (lps, _, _) in zip(records[:4], scorer.score_records(records[:4]), detail):
        assert score == pytest.approx(min(lps) + 0.5 * r["mean_logprob"])
    pairs = sc.build_pairs(records, max_pairs_per_group=4)
    w = ps.fit_logprob_prior(scorer, pairs)
    keys = list({r["key"]: r for pair in pairs for r in pair}.values())
    offsets = {r["key"]: s for r, (s, _) in zip(keys, scorer.process_scores(keys))}
    assert w == pytest.approx(sc.fit_logprob_weight(pairs, offsets=offsets)) and math.isfinite(w)
    scorer.logprob_weight = 0.0
    # As a line checker (no verdict on the final answer), the least likely line decides; no line: log 1/2.
    scorer.outcome_label = False
    for (score, _), (lps, _, _) in zip(scorer.score_records(records[:4]), detail):
        assert score == (min(lps[:-1]) if len(lps) > 1 else pytest.approx(math.log(0.5)))
    assert any(len(lps) == 1 for lps, _, _ in detail) and any(len(lps) > 1 for lps, _, _ in detail)
    # The frontier's cache takes it as it takes the pairwise scorer, once per sample.
    fresh = [dict(r) for r in records]
    assert sc.attach_scores(data, fresh, str(out)) == len(records)
    assert [r["reward_score"] for r in fresh[:4]] == pytest.approx([s for s, _ in scored], abs=1e-5)
    assert sc.attach_scores(data, [dict(r) for r in records], str(out)) == 0


def test_frontier_recipe_names_its_scorer_script(tmp_path):
    from thinkbudget.frontier import load_frontier_recipe

    shipped = ROOT / "configs/frontier/cpu.yaml"
    assert load_frontier_recipe(str(shipped)).scorer_script == "train/process_scorer.py"
    cmd = [sys.executable, str(ROOT / "scripts" / "frontier_run.py"), "--dry-run", "--checkpoint", "ckpt"]
    proc = subprocess.run(
        [*cmd, "--recipe", str(shipped), "--run-dir", str(tmp_path / "r")],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    out = " ".join(proc.stderr.split())
    assert (
        proc.returncode == 0
        and "train/process_scorer.py --config configs/scorer/process-smollm2-135m.yaml" in out
    )
    assert "--slips_per_right 2" in out, out[-3000:]
    # The recipe's start (the base model, as measured) comes after the policy the run passes: the last flag wins.
    assert out.index("--model_name_or_path smollm2-135m") > out.index("--model_name_or_path ckpt")
    _, _, model = run_folders.parse_config(
        _load_entry().CONFIG_CLASSES,
        ["--config", str(SMOKE), "--model_name_or_path", "ckpt", "--model_name_or_path", "smollm2-135m"]
        + ["--bf16", "false"],
    )
    assert model.model_name_or_path == "smollm2-135m"
    # The pairwise scorer back: its own recipe and keys; a process scorer's key is refused there.
    text = shipped.read_text()
    assert "scorer_script: train/process_scorer.py" in text and "    slips_per_right: 2" in text
    pairwise = text.replace("scorer_script: train/process_scorer.py", "scorer_script: train/scorer.py")
    pairwise = pairwise.replace(
        "configs/scorer/process-smollm2-135m.yaml", "configs/scorer/smollm2-135m.yaml"
    )
    (tmp_path / "pairwise.yaml").write_text(
        pairwise.replace("    slips_per_right: 2", "    pair_scope: condition")
    )
    assert load_frontier_recipe(str(tmp_path / "pairwise.yaml")).scorer_script == "train/scorer.py"
    (tmp_path / "mixed.yaml").write_text(pairwise)
    with pytest.raises(SystemExit, match="slips_per_right"):
        load_frontier_recipe(str(tmp_path / "mixed.yaml"))
    (tmp_path / "bad.yaml").write_text(
        text.replace("scorer_script: train/process_scorer.py", "scorer_script: train/prm.py")
    )
    with pytest.raises(
        SystemExit, match="scorer_script must be one of train/scorer.py, train/process_scorer.py"
    ):
        load_frontier_recipe(str(tmp_path / "bad.yaml"))
