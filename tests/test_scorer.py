"""The trained best-of-N scorer: its input never holds the gold, its data comes from training problems
only, train/scorer.py trains a head that plain transformers loads, and eval/frontier.py draws the
compute frontier with it."""

from __future__ import annotations

import glob
import importlib.util
import inspect
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thinkbudget import evaluation, run_folders, tasks
from thinkbudget import scorer as sc
from thinkbudget.protocol import EMPTY_THINK_BLOCK, THINK_CLOSE, THINK_OPEN

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "scorer.py"
SMOKE = ROOT / "configs" / "scorer" / "smoke.yaml"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
GOLD_MARK = "GOLD-7f3a91"  # a gold answer no question or completion contains
CONDITIONS = (
    evaluation.Condition("chain", "no_think", None),
    evaluation.Condition("chain", "budget_prompt", 16),
)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _record(tokenizer, problem, cond, idx: int, answer: str) -> dict:
    """One samples.jsonl line as eval/evaluate.py writes it, for a hand-written completion."""
    prompt = evaluation.build_prompt(tokenizer, problem.question, cond)
    think = "" if cond.method == "no_think" else f"{THINK_OPEN}\nstep {idx}\n{THINK_CLOSE}\n\n"
    ids = tokenizer(f"{think}The answer is \\boxed{{{answer}}}.<|im_end|>", add_special_tokens=False)[
        "input_ids"
    ]
    return evaluation.make_record(
        tokenizer,
        condition=cond,
        problem=problem,
        sample_idx=idx,
        prompt=prompt,
        token_ids=ids,
        finish_reason="stop",
        mean_logprob=-0.1 * (idx + 1),
    )


def write_eval_folder(
    out: Path, tokenizer, model_path: str, *, split: str, problems: int, samples: int
) -> list[dict]:
    """An evaluation folder of `chain` problems of ``split``: even samples right, odd ones wrong (labels
    by the one scorer), under thinking off and budget 16."""
    records = []
    for p in tasks.load_problems("chain", split, problems, seed=3):
        for cond in CONDITIONS:
            for i in range(samples):
                answer = p.answer if i % 2 == 0 else str(int(p.answer) + 1 + i)
                records.append(_record(tokenizer, p, cond, i, answer))
    out.mkdir(parents=True)
    evaluation.append_records(out / "samples.jsonl", records)
    run_folders.write_json_atomic(
        out / "results.json",
        {
            "model": "tiny-llama",
            "model_path": model_path,
            "commit": "test",
            "device": "cpu",
            "backend": "hf",
            "command": "written by tests/test_scorer.py",
            "config": {"split": split, "seed": 3, "samples": samples, "max_new_tokens": 32},
            "rows": [],
            "throughput": {"generated_tokens": 0, "seconds": 0.0, "tokens_per_second": None},
            "complete": True,
        },
    )
    return records


# ------------------------------------------------------------------------------------------------
# The input: question + completion, never the gold or the label
# ------------------------------------------------------------------------------------------------
def test_scorer_input_cannot_be_given_the_gold():
    assert list(inspect.signature(sc.scorer_input_ids).parameters) == [
        "tokenizer",
        "question",
        "response",
        "max_length",
    ]
    assert not {"gold", "correct", "final_answer", "answer"} & set(sc.SCORER_INPUT_FIELDS)


def test_scorer_input_is_blind_to_gold_and_label(tokenizer):
    problem = tasks.Problem("p1", "chain", "Compute 2 + 3.", GOLD_MARK)
    rec = _record(tokenizer, problem, CONDITIONS[1], 0, "5")
    assert rec["gold"] == GOLD_MARK and rec["correct"] is False
    ids = sc.scorer_input_ids(tokenizer, *sc.record_input(rec), 256)
    text = tokenizer.decode(ids)
    assert GOLD_MARK not in text and text.startswith("Question: Compute 2 + 3.")
    assert f"{THINK_OPEN}\nstep 0\n{THINK_CLOSE}" in text and text.endswith("\\boxed{5}.<|im_end|>")
    # Only the input fields are read: the same ids from them alone, and whatever gold and label say.
    assert sc.record_input({k: rec[k] for k in sc.SCORER_INPUT_FIELDS}) == sc.record_input(rec)
    changed = {**rec, "gold": "5", "correct": True, "final_answer": "17", "prompt": f"{GOLD_MARK} leaked"}
    assert sc.scorer_input_ids(tokenizer, *sc.record_input(changed), 256) == ids
    # Thinking off: the pre-filled empty block is part of what the scorer reads.
    off = _record(tokenizer, problem, CONDITIONS[0], 1, "5")
    assert (
        tokenizer.decode(sc.scorer_input_ids(tokenizer, *sc.record_input(off), 256)).count(EMPTY_THINK_BLOCK)
        == 1
    )
    with pytest.raises(ValueError, match="rerun eval/evaluate.py"):
        sc.record_input({"key": "old", "completion": "x"})


def test_pairs_dataset_holds_token_ids_only(tokenizer):
    problem = tasks.Problem("p1", "chain", "Compute 2 + 3.", GOLD_MARK)
    records = [_record(tokenizer, problem, CONDITIONS[1], i, str(5 + i)) for i in range(4)]
    for r in records:
        r["correct"] = r["sample_idx"] % 2 == 0  # labels from elsewhere: only their use is tested here
    pairs = sc.build_pairs(records)
    dataset = sc.pairs_dataset(pairs, tokenizer, 256)
    assert dataset.column_names == ["chosen_ids", "rejected_ids"] and len(dataset) == 4
    for row in dataset:
        for ids in (row["chosen_ids"], row["rejected_ids"]):
            assert GOLD_MARK not in tokenizer.decode(ids)


def test_truncation_keeps_the_question_start_and_the_answer_end(tokenizer):
    question = "Compute " + " + ".join(str(i) for i in range(60)) + "."
    response = "<think>\n" + "\n".join(f"{i} + 1 = {i + 1}" for i in range(80)) + "\n</think>\n\n\\boxed{42}"
    ids = sc.scorer_input_ids(tokenizer, question, response, 64)
    assert len(ids) == 64
    text = tokenizer.decode(ids)
    assert text.startswith("Question: Compute 0 + 1") and text.endswith("</think>\n\n\\boxed{42}")
    short = sc.scorer_input_ids(tokenizer, "Q?", "\\boxed{1}", 64)
    assert tokenizer.decode(short) == "Question: Q?\n\nResponse: \\boxed{1}"
    with pytest.raises(ValueError, match="max_length"):
        sc.scorer_input_ids(tokenizer, "Q?", "A", 1)


# ------------------------------------------------------------------------------------------------
# Pairs and the data folders
# ------------------------------------------------------------------------------------------------
def _lit(problem: str, idx: int, correct: bool, budget: str = "32") -> dict:
    method = "no_think" if budget == "off" else "budget_prompt"
    return {
        "key": f"{problem}/{budget}/{idx}",
        "task": "chain",
        "problem_id": problem,
        "method": method,
        "budget_label": budget,
        "correct": correct,
    }


def test_build_pairs_literal():
    records = [
        _lit("a", 0, True),
        _lit("a", 1, False),
        _lit("a", 2, False),
        _lit("a", 0, False, "off"),
        _lit("b", 0, True),
        _lit("b", 1, True),  # all right: no pair
    ]
    pairs = sc.build_pairs(records)
    assert [(c["key"], w["key"]) for c, w in pairs] == [("a/32/0", "a/32/1"), ("a/32/0", "a/32/2")]
    across = sc.build_pairs(records, scope="problem")
    assert len(across) == 3 and all(c["correct"] and not w["correct"] for c, w in across)
    capped = sc.build_pairs(records, max_pairs_per_group=1, seed=5)
    assert len(capped) == 1 and capped == sc.build_pairs(records, max_pairs_per_group=1, seed=5)
    summary = sc.data_summary(records, "condition")
    assert summary == {"samples": 6, "problems": 2, "correct_share": 0.5, "groups": 3, "mixed_groups": 1}
    with pytest.raises(ValueError, match="pair_scope"):
        sc.build_pairs(records, scope="task")


def _answer(key: str, thinking: str | None, boxed: str, correct: bool = True, prefill: str = "") -> dict:
    completion = (f"{THINK_OPEN}{thinking}{THINK_CLOSE}\n\n" if thinking is not None else "") + (
        f"The answer is \\boxed{{{boxed}}}.<|im_end|>"
    )
    return {**_lit(key, 0, correct, "128"), "key": key, "question": "Compute 57 + 8 - 9.", "prefill": prefill,
            "completion": completion, "mean_logprob": -0.1}  # fmt: skip


def test_slipped_record_literal():
    right = _answer("r", "\n57+8=65\n-9=56\n", "56")
    slipped = sc.slipped_record(right, random.Random(3), 1)
    assert (
        slipped["completion"]
        == f"{THINK_OPEN}\n57+8=74\n-9=65\n{THINK_CLOSE}\n\nThe answer is \\boxed{{65}}.<|im_end|>"
    )
    assert slipped["key"] == "r#slip1" and slipped["final_answer"] == "65" and slipped["correct"] is False
    assert (
        slipped["synthetic"] and slipped["mean_logprob"] is None and slipped["question"] == right["question"]
    )
    # The thinking of a pre-filled think tag is changed too; the pre-fill stays as it is.
    prefilled = _answer("p", None, "56", prefill="")
    prefilled["prefill"], prefilled["completion"] = (
        THINK_OPEN,
        f"\n57+8=65\n-9=56\n{THINK_CLOSE}\\boxed{{56}}",
    )
    out = sc.slipped_record(prefilled, random.Random(3))
    assert out["completion"] == f"\n57+8=74\n-9=65\n{THINK_CLOSE}\\boxed{{65}}"
    for bad in (
        _answer("w", "\n57+8=65\n-9=56\n", "56", correct=False),  # only right answers are copied
        _answer("n", None, "56"),  # no thinking
        _answer("a", "\n= 56\n", "56"),  # the result alone
        _answer("f", "\n57+8=65\n-9=56\n", "55"),  # the answer does not follow the trace
    ):
        assert sc.slipped_record(bad, random.Random(0)) is None, bad["key"]


def test_slip_pairs_are_deterministic_and_distinct():
    records = [
        _answer("a", "\n57+8=65\n-9=56\n+3=59\n", "59"),
        _answer("b", "\n= 56\n", "56"),  # nothing to change
        _answer("c", "\n57+8=65\n", "65", correct=False),
    ]
    pairs = sc.slip_pairs(records, 3, seed=1)
    assert len(pairs) == 3 and all(r is records[0] for r, _ in pairs)
    assert len({w["completion"] for _, w in pairs}) == 3 and [w["key"] for _, w in pairs] == [
        "a#slip0",
        "a#slip1",
        "a#slip2",
    ]
    assert pairs == sc.slip_pairs(records, 3, seed=1) and sc.slip_pairs(records, 0) == []
    from thinkbudget.grading import extract_boxed
    from thinkbudget.traces import answer_follows, check_lines

    for _, w in pairs:
        thinking = w["completion"].split(THINK_OPEN)[1].split(THINK_CLOSE)[0]
        assert check_lines(thinking).correct == check_lines(thinking).lines - 1
        assert answer_follows(thinking, extract_boxed(w["completion"])) and w["final_answer"] != "59"


def test_held_out_problems_keep_all_their_answers():
    records = [_lit(f"p{i}", j, j == 0) for i in range(200) for j in range(3)]
    held = {r["problem_id"] for r in records if sc.held_out_problem(r, 0.25)}
    assert 25 < len(held) < 75
    for r in records:
        assert sc.held_out_problem(r, 0.25) == (r["problem_id"] in held)
    assert not any(sc.held_out_problem(r, 0.0) for r in records)


def test_scorer_data_must_be_training_problems(tmp_path, tokenizer, tiny_model_path):
    write_eval_folder(tmp_path / "test", tokenizer, tiny_model_path, split="test", problems=1, samples=2)
    with pytest.raises(ValueError, match="training split only"):
        sc.load_scorer_data([tmp_path / "test"])
    with pytest.raises(ValueError, match="no results.json"):
        sc.load_scorer_data([tmp_path / "missing"])
    write_eval_folder(tmp_path / "train", tokenizer, tiny_model_path, split="train", problems=2, samples=2)
    records, provenance = sc.load_scorer_data([tmp_path / "train"])
    assert len(records) == 2 * 2 * 2 and provenance[0]["model_path"] == tiny_model_path
    assert all(tasks.split_of(r["question"]) == "train" for r in records)


# ------------------------------------------------------------------------------------------------
# Recipes and the scorer-data command
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    sorted(
        [
            p for p in glob.glob(str(ROOT / "configs/scorer/*.yaml")) if "/process-" not in p
        ]  # test_process_scorer
        + glob.glob(str(ROOT / "configs/frontier/*.yaml"))
    ),
)
def test_every_scorer_recipe_parses(path):
    if "/configs/frontier/" in path:  # a whole run: scripts/frontier_run.py
        from thinkbudget.frontier import load_frontier_recipe

        recipe = load_frontier_recipe(path)  # every stage's keys checked against its entry point
        held_out = recipe.eval.overrides
        assert held_out["limit"] * len(held_out["tasks"]) >= 200 and held_out["samples"] >= 16
        return
    if os.path.basename(path).startswith("data-"):  # scorer data: an evaluation of training problems
        evaluate = _load(ROOT / "eval" / "evaluate.py", "evaluate_for_scorer_tests")
        (args,) = run_folders.parse_config(evaluate.CONFIG_CLASSES, ["--config", path])
        plan = evaluate.validate(args)
        assert args.split == "train" and args.samples > 1
        assert {c.method for c in plan.conditions} >= {"no_think", "budget_prompt"}
        return
    train = _load(SCRIPT, "train_scorer_entry")
    extra = [] if torch.cuda.is_available() else ["--bf16", "false"]
    script, training, model = run_folders.parse_config(train.CONFIG_CLASSES, ["--config", path, *extra])
    assert script.data_dirs and training.max_length >= 16 and training.output_dir


def test_bad_scorer_config_fails_while_parsing():
    train = _load(SCRIPT, "train_scorer_entry")
    for flags, field in (
        (["--pair_scope", "task"], "pair_scope"),
        (["--max_pairs_per_group", "0"], "max_pairs_per_group"),
        (["--max_length", "4"], "max_length"),
        (["--use_peft", "true"], "use_peft"),
        (["--slip_pairs_per_right", "-1"], "slip_pairs_per_right"),
        (["--slip_pairs_per_right", "2", "--logprob_prior", "true"], "logprob_prior"),
    ):
        with pytest.raises(SystemExit, match=field):
            train.cli(["--config", str(SMOKE), "--bf16", "false", *flags])


def test_frontier_run_prints_its_five_commands(tmp_path):
    bad = tmp_path / "bad.yaml"
    recipe = (ROOT / "configs/frontier/cpu.yaml").read_text()
    assert "    num_train_epochs: 1" in recipe
    bad.write_text(recipe.replace("num_train_epochs: 1", "num_train_epochz: 1"))
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "frontier_run.py"),
        "--dry-run",
        "--run-dir",
        str(tmp_path / "r"),
    ]
    proc = subprocess.run([*cmd, "--checkpoint", "ckpt"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = " ".join(proc.stderr.split())
    assert f"--split train --output {tmp_path}/r/scorer-data" in out and "train/process_scorer.py" in out
    assert f"--split test --output {tmp_path}/r/eval" in out and "--samples 16" in out
    assert f"eval/frontier.py --eval_dirs {tmp_path}/r/eval --scorer {tmp_path}/r/scorer" in out
    assert (
        f"scripts/frontier_targets.py {tmp_path}/r --output {tmp_path}/r/targets/targets --time_limit_min 60"
        in out
    )
    proc = subprocess.run([*cmd, "--recipe", str(bad)], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode != 0 and "num_train_epochz" in proc.stderr and "num_train_epochs" in proc.stderr


def test_scorer_data_recipe_answers_training_problems(tmp_path):
    evaluate = _load(ROOT / "eval" / "evaluate.py", "evaluate_for_scorer_tests")
    out = tmp_path / "data"
    (args,) = run_folders.parse_config(
        evaluate.CONFIG_CLASSES,
        ["--config", str(ROOT / "configs/scorer/data-smoke.yaml"), "--output", str(out)],
    )
    evaluate.main(args)
    results = evaluation.load_results(out)
    assert results["config"]["split"] == "train" and results["complete"]
    records, provenance = sc.load_scorer_data([out])
    assert len(records) == 2 * 2 * 2  # problems x conditions x samples
    assert all(tasks.split_of(r["question"]) == "train" for r in records)
    assert all(isinstance(r["correct"], bool) and r["gold"] for r in records)
    assert provenance[0]["commit"] and provenance[0]["seed"] == 0 and provenance[0]["command"]
    assert "train split (not held out" in (out / "summary.md").read_text()


# ------------------------------------------------------------------------------------------------
# Training (accelerate launch), loading, scoring, the frontier
# ------------------------------------------------------------------------------------------------
def _smoke_argv(data: Path, out: Path) -> list[str]:
    """train/scorer.py's arguments for the smoke recipe on ``data``, writing ``out``."""
    return ["--config", str(SMOKE), "--data_dirs", str(data), "--output_dir", str(out)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenizer, tiny_model_path) -> tuple[Path, Path]:
    """(scorer data folder, trained scorer folder): the smoke recipe through accelerate launch on CPU."""
    root = tmp_path_factory.mktemp("scorer")
    data = root / "data"
    write_eval_folder(data, tokenizer, tiny_model_path, split="train", problems=6, samples=4)
    out = root / "scorer"
    cmd = [
        *(sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu"),
        *(str(SCRIPT), "--config", str(SMOKE), "--data_dirs", str(data), "--output_dir", str(out)),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return data, out


@pytest.mark.slow
def test_smoke_scorer_trains_and_loads_in_plain_transformers(trained, tiny_model_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    data, out = trained
    before = load_file(Path(tiny_model_path) / "model.safetensors")
    after = load_file(out / "model.safetensors")
    shared = [k for k in after if k in before and after[k].shape == before[k].shape]
    assert shared and any(not torch.equal(before[k], after[k]) for k in shared), "no weight moved"
    assert "score.weight" in after and (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    model = AutoModelForSequenceClassification.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.num_labels == 1 and tok.convert_tokens_to_ids(THINK_CLOSE) != tok.unk_token_id
    with torch.inference_mode():
        logits = model(**tok(["Question: Q?\n\nResponse: \\boxed{1}"], return_tensors="pt")).logits
    assert logits.shape == (1, 1)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["global_step"] == 4 and summary["data"]["train"]["pairs"] > 0
    assert summary["data_provenance"][0]["dir"] == str(data) and summary["model_path"] == tiny_model_path
    assert json.loads((out / sc.SCORER_CONFIG_FILE).read_text())["max_length"] == 128
    records, _ = sc.load_scorer_data([data])
    scores = sc.TrainedScorer(str(out)).score_records(records[:3])
    assert [n for _, n in scores] == [
        len(sc.scorer_input_ids(tok, *sc.record_input(r), 128)) for r in records[:3]
    ]


@pytest.mark.slow
def test_train_top_layers_leaves_the_lower_layers_alone(trained, tmp_path, tiny_model_path):
    data, _ = trained
    out = tmp_path / "top"
    cmd = [sys.executable, str(SCRIPT), *_smoke_argv(data, out)]
    proc = subprocess.run(
        [*cmd, "--train_top_layers", "1", "--save_strategy", "no"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    before = load_file(Path(tiny_model_path) / "model.safetensors")
    after = load_file(out / "model.safetensors")
    moved = {
        k
        for k in after
        if k in before and after[k].shape == before[k].shape and not torch.equal(after[k], before[k])
    }
    assert moved and all(k.startswith(("model.layers.1.", "model.norm.")) for k in moved), sorted(moved)
    with pytest.raises(SystemExit, match="has 2 layers"):
        argv = [*cmd[2:-1], str(tmp_path / "too-many"), "--train_top_layers", "3", "--bf16", "false"]
        _load(SCRIPT, "train_scorer_entry").cli(argv)


@pytest.mark.slow
def test_frontier_command_with_the_trained_scorer(trained, tmp_path, tokenizer, tiny_model_path):
    _, scorer_dir = trained
    frontier = _load(ROOT / "eval" / "frontier.py", "frontier_script")
    a, b = tmp_path / "a", tmp_path / "b"
    records = write_eval_folder(a, tokenizer, tiny_model_path, split="test", problems=3, samples=4)
    write_eval_folder(b, tokenizer, tiny_model_path, split="test", problems=3, samples=2)
    argv = ["--eval_dirs", str(a), str(b), "--scorer", str(scorer_dir), "--output", str(tmp_path / "overlay")]
    (args,) = run_folders.parse_config(frontier.CONFIG_CLASSES, [*argv, "--ci_resamples", "50"])
    evaluations = frontier.main(args)
    for folder in (a, b, tmp_path / "overlay"):
        for name in ("frontier.png", "frontier.md", "frontier.json"):
            assert (folder / name).is_file() and (folder / name).stat().st_size > 0, folder / name
    points = json.loads((a / "frontier.json").read_text())["points"]
    assert {(p["n"], p["selector"]) for p in points} >= {(1, "single"), (4, "scorer"), (4, "scorer_majority")}
    assert {p["n"] for p in points} == {1, 2, 4} and any(p["pareto"] for p in points)
    # Every sample's score is cached once; its tokens are the scorer's whole input.
    cached = [json.loads(line) for line in (a / sc.SCORES_FILE).read_text().splitlines()]
    assert len(cached) == len(records) and all(c["scorer_tokens"] > 0 for c in cached)
    by_key = {c["key"]: c["scorer_tokens"] for c in cached}
    one = next(p for p in points if p["n"] == 4 and p["selector"] == "scorer" and p["budget_label"] == "16")
    mine = [r for r in records if r["budget_label"] == "16"]
    assert one["mean_scorer_tokens_per_problem"] == pytest.approx(sum(by_key[r["key"]] for r in mine) / 3)
    assert sc.attach_scores(a, [dict(r) for r in records], str(scorer_dir)) == 0  # nothing scored twice
    overlay = (tmp_path / "overlay" / "frontier.md").read_text()
    assert [ev["label"] for ev in evaluations] == ["tiny-llama (a)", "tiny-llama (b)"]
    assert "tiny-llama (a): a larger budget or more samples?" in overlay and "★" in overlay


# ------------------------------------------------------------------------------------------------
# The log-probability prior: score = head + w * mean_logprob, w fit on the training pairs
# ------------------------------------------------------------------------------------------------
def _lp_pair(i: int, lp_right: float, lp_wrong: float) -> tuple[dict, dict]:
    return (
        {"key": f"r{i}", "correct": True, "mean_logprob": lp_right},
        {"key": f"w{i}", "correct": False, "mean_logprob": lp_wrong},
    )


@pytest.mark.parametrize(
    "diffs",
    [[1.0, 1.0, -1.0], [0.5, 0.2, -0.3, 0.1, -0.05], [2.0, 2.0, 2.0], [1.0, -1.0], [0.0, 0.0]],
)
def test_fit_logprob_weight_is_the_maximum_of_its_objective(diffs):
    """w maximises sum log sigmoid(w d) - w^2 / 2 over the pairs' log-probability differences d: checked
    against a fine grid; equal evidence both ways gives 0, a prior that separates every pair stays finite."""
    import math

    pairs = [_lp_pair(i, -0.5 + d, -0.5) for i, d in enumerate(diffs)]
    w = sc.fit_logprob_weight(pairs)

    def objective(x: float) -> float:
        return sum(-math.log1p(math.exp(-x * d)) for d in diffs) - x * x / 2

    best = max((x / 1000 for x in range(-20_000, 20_001)), key=objective)
    assert w == pytest.approx(best, abs=2e-3)
    assert objective(w) >= objective(best) - 1e-9
    if sorted(diffs) == sorted(-d for d in diffs):
        assert w == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "diffs, offsets",
    [
        ([1.0, 1.0, -1.0], [0.0, 0.0, 0.0]),  # no offset: the log-probability alone
        ([1.0, 1.0, -1.0], [3.0, 3.0, -3.0]),  # the offsets already rank the pairs as the lp does
        ([1.0, 1.0, -1.0], [-2.0, -2.0, 4.0]),  # the offsets rank them the other way round
        ([0.5, -0.2, 0.3], [0.1, 1.5, -0.4]),
    ],
)
def test_fit_logprob_weight_with_offsets_is_the_maximum_of_its_objective(diffs, offsets):
    """With a score beside it (the process scorer's), w maximises sum log sigmoid(o + w d) - w^2 / 2."""
    import math

    pairs = [_lp_pair(i, -0.5 + d, -0.5) for i, d in enumerate(diffs)]
    scores = {f"r{i}": o for i, o in enumerate(offsets)} | {f"w{i}": 0.0 for i in range(len(offsets))}
    w = sc.fit_logprob_weight(pairs, offsets=scores)

    def objective(x: float) -> float:
        return sum(-math.log1p(math.exp(-(o + x * d))) for o, d in zip(offsets, diffs)) - x * x / 2

    best = max((x / 1000 for x in range(-20_000, 20_001)), key=objective)
    assert w == pytest.approx(best, abs=2e-3) and objective(w) >= objective(best) - 1e-9
    if not any(offsets):
        assert w == pytest.approx(sc.fit_logprob_weight(pairs))


def test_scorer_identity_changes_with_how_it_scores(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    before = sc.scorer_identity(tmp_path)
    (tmp_path / sc.SCORER_CONFIG_FILE).write_text(json.dumps({"logprob_weight": 0.0}))
    middle = sc.scorer_identity(tmp_path)
    (tmp_path / sc.SCORER_CONFIG_FILE).write_text(json.dumps({"logprob_weight": 2.0}))
    assert len({before, middle, sc.scorer_identity(tmp_path)}) == 3
    assert sc.scorer_identity(tmp_path) == sc.scorer_identity(tmp_path)


def test_logprob_prior_needs_the_log_probability():
    right, wrong = _lp_pair(0, -0.1, -0.2)
    for bad in (None, float("nan"), True, "-0.1"):
        with pytest.raises(ValueError, match="w0 has no mean_logprob"):
            sc.fit_logprob_weight([(right, {**wrong, "mean_logprob": bad})])


def test_pairs_dataset_margin_is_the_prior_s_difference(tokenizer):
    """With a weight w, TRL's margin column is -w (lp_chosen - lp_rejected), so that its loss
    -log sigmoid(head_c - head_r - margin) is the loss of the whole score head + w lp."""
    problem = tasks.load_problems("chain", "train", 1, seed=3)[0]
    right = _record(tokenizer, problem, CONDITIONS[1], 0, problem.answer)  # mean_logprob -0.1
    wrong = _record(tokenizer, problem, CONDITIONS[1], 3, "0")  # mean_logprob -0.4
    ds = sc.pairs_dataset([(right, wrong)], tokenizer, 64, logprob_weight=2.0)
    assert ds.column_names == ["chosen_ids", "rejected_ids", "margin"]
    assert ds[0]["margin"] == pytest.approx(-2.0 * (-0.1 - -0.4))
    assert sc.pairs_dataset([(right, wrong)], tokenizer, 64).column_names == ["chosen_ids", "rejected_ids"]
    assert sc.share_ranked_right([(right, wrong)], {right["key"]: 1.0, wrong["key"]: 0.5}) == 1.0
    assert sc.share_ranked_right([(right, wrong)], {right["key"]: 0.5, wrong["key"]: 0.5}) == 0.0


@pytest.mark.slow
def test_scorer_with_the_logprob_prior(trained, tmp_path):
    """train/scorer.py --logprob_prior true: w fit and saved beside the scorer, the frontier's score is
    the head's plus w times the answer's mean log-probability, and the summary reports the whole score's
    held-out pairwise accuracy next to the head's and the log-probability's."""
    data, _ = trained
    out = tmp_path / "prior"
    argv = [*_smoke_argv(data, out), "--save_strategy", "no"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *argv, "--logprob_prior", "true", "--scorer_eval_fraction", "0.5"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    summary = json.loads((out / "run_summary.json").read_text())
    weight = json.loads((out / sc.SCORER_CONFIG_FILE).read_text())["logprob_weight"]
    records, _ = sc.load_scorer_data([data])
    pairs = sc.build_pairs([r for r in records if not sc.held_out_problem(r, 0.5)], max_pairs_per_group=8)
    assert weight == summary["logprob_weight"] == pytest.approx(sc.fit_logprob_weight(pairs)) and weight > 0
    scorer = sc.TrainedScorer(str(out))
    head = scorer.score([sc.record_input(r) for r in records[:4]])
    whole = scorer.score_records(records[:4])
    for r, (h, n), (s, m) in zip(records[:4], head, whole):
        assert s == pytest.approx(h + weight * r["mean_logprob"]) and n == m
    assert summary["held_out_logprob_pairwise_accuracy"] is not None
    assert 0.0 <= summary["held_out_pairwise_accuracy"] <= 1.0
