"""End to end on CPU with the tiny model: eval/evaluate.py, eval/plot.py, the generation backends,
resuming, bad input and the generation benchmark script."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thinkbudget import evaluation, generation, run_folders
from thinkbudget.parsing import parse_completion
from thinkbudget.protocol import EMPTY_THINK_BLOCK, THINK_CLOSE, THINK_OPEN, build_messages, render_prompt

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 4
# Tiny but complete: every method, two tasks, 2 problems each, a few tokens. prefill_think makes the
# random model "think", so budget forcing has something to cut.
SMOKE = [
    "--model",
    "tiny-llama",
    "--tasks",
    "chain,gsm8k",
    "--budgets",
    f"off,{BUDGET},none",
    "--limit",
    "2",
    "--max_new_tokens",
    "10",
    "--prefill_think",
    "--backend",
    "hf",
    "--batch_size",
    "8",
    "--ci_resamples",
    "200",
]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


evaluate = _load(ROOT / "eval" / "evaluate.py", "evaluate_script")
plot = _load(ROOT / "eval" / "plot.py", "plot_script")


def run_eval(*args: str):
    (parsed,) = run_folders.parse_config(evaluate.CONFIG_CLASSES, list(args))
    evaluate.main(parsed)
    return parsed


def read_samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "tiny"
    run_eval(*SMOKE, "--output", str(out))
    return out


def test_all_files_and_schema(smoke_dir, tokenizer):
    for name in evaluate.OUTPUT_FILES:
        assert (smoke_dir / name).is_file() and (smoke_dir / name).stat().st_size > 0, name
    results = evaluation.load_results(smoke_dir)  # validates the schema
    assert results["complete"] and results["backend"] == "hf" and results["model"] == "tiny-llama"
    assert results["config"]["max_new_tokens"] == 10 and results["config"]["temperature"] == 0.6
    assert results["sampling"] == {
        "max_new_tokens": 10,
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
        "seed": 0,
    }
    cells = {(r["task"], r["method"], r["budget_label"]) for r in results["rows"]}
    assert len(results["rows"]) == len(cells) == 2 * 6  # 2 tasks x (2 off + prompt + 2 none + forcing)
    assert all(r["n"] == 2 for r in results["rows"])
    samples = read_samples(smoke_dir)
    assert len(samples) == 24 and len({s["key"] for s in samples}) == 24
    tp = results["throughput"]
    assert tp["generated_tokens"] == sum(s["generated_tokens"] for s in samples) > 0
    assert tp["seconds"] > 0 and tp["samples_generated"] == 24
    for s in samples:  # counts come from the generated ids (pre-fill included) through the one parser
        assert len(s["completion_ids"]) == s["generated_tokens"] <= 10
        prefill = (
            EMPTY_THINK_BLOCK if s["method"] == "no_think" else (THINK_OPEN if s["mode"] == "think" else "")
        )
        assert s["prompt"].endswith(prefill)
        parsed = parse_completion(
            tokenizer(prefill, add_special_tokens=False)["input_ids"] + s["completion_ids"], tokenizer
        )
        assert (s["thinking_tokens"], s["answer_tokens"]) == (parsed.thinking_tokens, parsed.answer_tokens)
    summary = (smoke_dir / "summary.md").read_text()
    assert "| chain | budget_forcing | 4 | 2 |" in summary and "tiny-llama" in summary


def test_budget_forcing_fires_exactly_at_budget(smoke_dir, tokenizer):
    forced = [s for s in read_samples(smoke_dir) if s["method"] == "budget_forcing"]
    assert forced and all(s["forced"] for s in forced)  # 10 new tokens > budget: every row is cut
    close_id = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
    for s in forced:
        assert s["thinking_tokens"] == BUDGET and s["think_closed"] and s["within_budget"]
        assert s["completion_ids"][BUDGET] == close_id  # the prompt pre-filled <think>
    rows = [r for r in evaluation.load_results(smoke_dir)["rows"] if r["method"] == "budget_forcing"]
    assert all(r["forced_rate"] == 1.0 and r["within_budget_rate"] == 1.0 for r in rows)
    assert all(r["relative_length_error"] == 0.0 for r in rows)


def test_thinking_off_rows_have_no_thinking(smoke_dir):
    off = [s for s in read_samples(smoke_dir) if s["method"] == "no_think"]
    assert off and all(s["prompt"].endswith(EMPTY_THINK_BLOCK) for s in off)
    assert all(s["thinking_tokens"] == 0 and s["think_closed"] for s in off)
    rows = [r for r in evaluation.load_results(smoke_dir)["rows"] if r["mode"] == "no_think"]
    assert all(r["no_think_compliance"] is not None for r in rows)
    assert all(r["no_think_compliance"] == 1.0 for r in rows if r["method"] == "no_think")


def test_resume_after_truncated_samples(smoke_dir, tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(smoke_dir, out)
    lines = (out / "samples.jsonl").read_text().splitlines(keepends=True)
    kept = lines[:7]
    (out / "samples.jsonl").write_text("".join(kept) + lines[7][:40])  # killed mid-line
    run_eval(*SMOKE, "--output", str(out))
    samples = read_samples(out)
    keys = [s["key"] for s in samples]
    assert len(keys) == len(set(keys)) == 24
    assert (out / "samples.jsonl").read_text().startswith("".join(kept))  # kept samples were not redone
    results = evaluation.load_results(out)
    assert results["complete"] and results["throughput"]["samples_resumed"] == 7
    assert results["throughput"]["samples_generated"] == 24 - 7
    # A complete folder is not generated again.
    run_eval(*SMOKE, "--output", str(out))
    again = evaluation.load_results(out)
    assert again["throughput"]["samples_generated"] == 0 and len(read_samples(out)) == 24


@pytest.mark.slow
def test_kill_and_resume_subprocess(tmp_path):
    out = tmp_path / "killed"
    args = [*SMOKE, "--batch_size", "1", "--tasks", "chain", "--output", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "eval" / "evaluate.py"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    samples = out / "samples.jsonl"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if samples.is_file() and len(samples.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = len(samples.read_text().splitlines())
    assert before >= 2
    run_eval(*args)
    keys = [s["key"] for s in read_samples(out)]
    assert len(keys) == len(set(keys)) == 12  # 2 problems x 6 conditions
    assert evaluation.load_results(out)["complete"]


def test_parallel_samples_and_reward_model(tmp_path, tokenizer):
    # A tiny random reward model (sequence classification, one logit) for best-of-N.
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    rm_dir = tmp_path / "rm"
    cfg = LlamaConfig(
        vocab_size=len(tokenizer) + 64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForSequenceClassification(cfg).save_pretrained(rm_dir)
    tokenizer.save_pretrained(rm_dir)
    from thinkbudget.scorer import TrainedScorer

    scores = TrainedScorer(str(rm_dir)).score([("Q?", "a short text"), ("Q?", "another, longer text here")])
    assert len(scores) == 2 and all(isinstance(s, float) and isinstance(n, int) for s, n in scores)
    assert scores[0][1] < scores[1][1]  # tokens read: the whole input

    out = tmp_path / "parallel"
    run_eval(
        "--model",
        "tiny-llama",
        "--tasks",
        "chain",
        "--budgets",
        "none",
        "--methods",
        "think",
        "--limit",
        "2",
        "--samples",
        "3",
        "--max_new_tokens",
        "6",
        "--temperature",
        "0.8",
        "--backend",
        "hf",
        "--best_of_n_scorer",
        str(rm_dir),
        "--output",
        str(out),
    )
    (row,) = evaluation.load_results(out)["rows"]
    assert row["n"] == 2 and row["num_samples"] == 6 and set(row["pass_at_k"]) == {"1", "2", "3"}
    assert row["best_of_n_scorer"] == "reward_model"
    for key in ("majority_accuracy", "best_of_n_accuracy", "mean_tokens_per_problem"):
        assert row[key] is not None
    samples = read_samples(out)
    assert all(isinstance(s["reward_score"], float) and s["mean_logprob"] < 0 for s in samples)
    assert all(s["scorer_tokens"] > s["total_tokens"] for s in samples)  # question + completion
    assert row["mean_tokens_per_problem"] == pytest.approx(sum(s["total_tokens"] for s in samples) / 2)
    selectors = row["selectors"]
    assert set(selectors) == {"majority", "logprob", "scorer", "scorer_majority", "oracle"}
    assert selectors["oracle"]["accuracy"] == row["pass_at_k"]["3"]
    assert selectors["scorer"]["mean_tokens_per_problem"] == pytest.approx(
        sum(s["total_tokens"] + s["scorer_tokens"] for s in samples) / 2
    )
    assert "scorer-weighted majority" in (out / "summary.md").read_text()
    assert "pass@3" in (out / "summary.md").read_text()


def test_plot_overlays_two_evaluations(smoke_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(smoke_dir, other)
    report = tmp_path / "report"
    plot.main([str(smoke_dir), str(other), "--output", str(report)])
    md = (report / "results.md").read_text()
    assert (report / "accuracy_vs_tokens.png").stat().st_size > 0
    assert "tiny-llama (tiny)" in md and "tiny-llama (other)" in md  # labels made distinct
    assert md.count("| chain | budget_forcing | 4 |") == 2
    plot.main([str(smoke_dir), str(other), "--labels", "base", "RL", "--output", str(report)])
    assert "| base |" in (report / "results.md").read_text()
    with pytest.raises(SystemExit, match="2 folders"):
        plot.main([str(smoke_dir), str(other), "--labels", "one", "--output", str(report)])
    with pytest.raises(SystemExit, match="does not exist"):
        plot.main([str(tmp_path / "nowhere"), "--output", str(report)])


@pytest.mark.slow
def test_run_dir_curves_over_checkpoints(tmp_path, tiny_model_path):
    run = tmp_path / "run"
    for step in (2, 10):
        shutil.copytree(tiny_model_path, run / f"checkpoint-{step}")
    run_eval(
        "--run",
        str(run),
        "--tasks",
        "chain",
        "--budgets",
        "off,none",
        "--methods",
        "no_think,think",
        "--limit",
        "1",
        "--max_new_tokens",
        "4",
        "--backend",
        "hf",
    )
    for name in ("training_curves.png", "training_curves.json", "training_curves.md"):
        assert (run / "eval" / name).is_file()
    assert (run / "eval" / "checkpoint-10" / "results.json").is_file()
    curves = json.loads((run / "eval" / "training_curves.json").read_text())
    assert [p["step"] for p in curves["chain think none"]] == [2, 10]


# ------------------------------------------------------------------------------------------------
# Bad input: clear errors, before any model loads
# ------------------------------------------------------------------------------------------------
@pytest.fixture()
def no_model_loading(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(evaluate.models, "load_model_and_tokenizer", refuse)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--tasks", "chain,nosuchtask"],
            r"unknown task 'nosuchtask'; valid tasks: chain, multiply, nested, step, synthetic \(the three in turn\), "
            r"mix:<family>\+<family>\[\+\.\.\.\] \(generated families in turn, e\.g\. mix:step\+chain\), gsm8k",
        ),
        (["--budgets", "off,abc"], "budget 'abc' is not valid"),
        (["--budgets", "off,-5"], "budget '-5' is not valid"),
        (["--budgets", "off,0"], "budget '0' is not valid"),
        (["--model", "/no/such/model"], "model path '/no/such/model' does not exist"),
        (["--model", "nosuchorg/nosuchmodel"], "not a local path|neither a local path"),
        (["--methods", "budget_forcing", "--budgets", "off"], "needs an integer budget"),
        (["--samples", "2", "--temperature", "0"], "needs --temperature > 0"),
        (["--backend", "turbo"], "backend must be one of"),
        (["--split", "dev"], "--split must be one of train, test"),
        (["--task_limits", "5", "6"], "--task_limits: has 2 counts for 1 tasks"),
        (["--task_limits", "0"], "--task_limits: counts must be at least 1"),
    ],
)
def test_bad_input(args, message, tmp_path, no_model_loading, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = [
        "--model",
        "tiny-llama",
        "--tasks",
        "chain",
        "--budgets",
        "off,8",
        "--methods",
        "no_think,budget_prompt",
    ]
    with pytest.raises(SystemExit, match=message):
        run_eval(*base, *args, "--output", str(tmp_path / "out"))
    assert not (tmp_path / "out" / "samples.jsonl").exists()


def test_auto_methods_end_to_end(tmp_path):
    """Auto mode on the tiny model: prompts state the auto sentence (the flag path too), nothing is
    pre-filled, and the auto rows carry the think rate, within budget where it thinks and the quarters."""
    out = tmp_path / "auto"
    run_eval(
        *["--model", "tiny-llama", "--tasks", "chain", "--budgets", f"{BUDGET},none", "--limit", "4"],
        *["--methods", "auto,auto_flag,auto_budget", "--max_new_tokens", "8", "--backend", "hf"],
        *["--ci_resamples", "50", "--output", str(out)],
    )
    samples = read_samples(out)
    assert {s["method"] for s in samples} == {"auto", "auto_flag", "auto_budget"}
    for s in samples:
        assert s["mode"] == "auto" and s["prefill"] == ""
        assert "Think only if the problem needs it." in s["prompt"]
        assert (f"Think for at most {BUDGET} tokens." in s["prompt"]) == (s["method"] == "auto_budget")
        assert s["prompt"].rstrip().endswith("/auto_think<|im_end|>\n<|im_start|>assistant") == (
            s["method"] == "auto_flag"
        )
    results = json.loads((out / "results.json").read_text())
    for row in results["rows"]:
        recs = [s for s in samples if s["method"] == row["method"]]
        assert row["think_rate"] == sum(r["thinking_tokens"] > 0 for r in recs) / len(recs)
        assert [q["n"] for q in row["by_difficulty"]] == [1, 1, 1, 1]
        thinking = [r for r in recs if r["thinking_tokens"] > 0]
        expected = sum(r["within_budget"] for r in thinking) / len(thinking) if thinking else None
        assert row["within_budget_when_thinking"] == (expected if row["method"] == "auto_budget" else None)
    assert "## Auto mode" in (out / "summary.md").read_text()


def test_output_of_another_model_is_refused(smoke_dir, tmp_path, no_model_loading):
    out = tmp_path / "taken"
    shutil.copytree(smoke_dir, out)
    results = json.loads((out / "results.json").read_text())
    run_folders.write_json_atomic(
        out / "results.json", {**results, "model": "other", "model_path": "/models/other"}
    )
    with pytest.raises(SystemExit, match="holds results of model 'other'.*--overwrite"):
        run_eval(*SMOKE, "--output", str(out))
    with pytest.raises(SystemExit, match="other settings.*max_new_tokens: 10 -> 12"):
        run_eval(*SMOKE, "--max_new_tokens", "12", "--output", str(smoke_dir))
    # --overwrite clears the folder's evaluation files (and nothing else).
    (out / "notes.txt").write_text("keep me")
    (args,) = run_folders.parse_config(evaluate.CONFIG_CLASSES, [*SMOKE, "--overwrite", "--output", str(out)])
    evaluate.prepare_output(out, "/models/mine", args)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_split_is_part_of_the_settings(smoke_dir, tmp_path, no_model_loading):
    # A folder written before --split existed holds test problems: it resumes as test, never as train.
    out = tmp_path / "legacy"
    shutil.copytree(smoke_dir, out)
    results = json.loads((out / "results.json").read_text())
    del results["config"]["split"]
    run_folders.write_json_atomic(out / "results.json", results)
    (test_args,) = run_folders.parse_config(evaluate.CONFIG_CLASSES, [*SMOKE, "--output", str(out)])
    evaluate.prepare_output(out, results["model_path"], test_args)
    (train_args,) = run_folders.parse_config(
        evaluate.CONFIG_CLASSES, [*SMOKE, "--split", "train", "--output", str(out)]
    )
    with pytest.raises(ValueError, match="split: 'test' -> 'train'"):
        evaluate.prepare_output(out, results["model_path"], train_args)


def test_generation_order_groups_conditions():
    def sample(method: str, budget: int | None, length: int) -> object:
        cond = evaluation.Condition("chain", method, budget)
        prompt = evaluation.Prompt("p", [0] * length, "", [], None)
        return evaluate.Sample(f"{method}{budget}{length}", cond, None, 0, prompt)

    pending = [sample("budget_prompt", 64, 5), sample("no_think", None, 9), sample("budget_prompt", 32, 7)]
    pending += [sample("budget_prompt", 64, 3), sample("no_think", None, 2)]
    order = [s.key for s in evaluate.generation_order(pending)]
    assert order == [
        "budget_prompt327",
        "budget_prompt643",
        "budget_prompt645",
        "no_thinkNone2",
        "no_thinkNone9",
    ]


def test_list_tasks(capsys):
    run_eval("--list-tasks")
    names = capsys.readouterr().out.splitlines()
    assert {"chain", "multiply", "nested", "gsm8k"} <= set(names) and any(n.startswith("rg/") for n in names)


# ------------------------------------------------------------------------------------------------
# Generation backends
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["hf", "paged"])
def test_backends_force_at_budget(backend, tiny_model, tokenizer):
    open_id = tokenizer.convert_tokens_to_ids(THINK_OPEN)
    close_id = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
    prompts = [
        render_prompt(tokenizer, build_messages(q)) for q in ("2+2?", "A much longer question, 3*7?", "x")
    ]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] + [open_id] for p in prompts]
    requests = [
        generation.GenerationRequest(ids[0], 3),
        generation.GenerationRequest(ids[1], 5),
        generation.GenerationRequest(ids[2], None),
    ]
    sampling = generation.SamplingSettings(max_new_tokens=9, temperature=0.7, seed=0)
    gen = generation.build_generator(backend, model=tiny_model, tokenizer=tokenizer, sampling=sampling)
    try:
        results, seconds = generation.generate_all(gen, requests, batch_size=2)
    finally:
        gen.close()
    assert seconds > 0 and len(results) == 3
    for req, res in zip(requests, results):
        parsed = parse_completion([open_id] + res.token_ids, tokenizer)
        assert len(res.token_ids) == 9 and res.finish_reason == "length" and res.mean_logprob < 0
        if req.force_budget is None:
            assert not res.forced
        else:
            assert res.forced and parsed.thinking_tokens == req.force_budget
            assert res.token_ids[req.force_budget] == close_id


def test_paged_rounds_equal_hf_processor_greedy(tiny_model, tokenizer):
    """Greedy decoding: the rounds of the paged backend give exactly the processor's token ids."""
    open_id = tokenizer.convert_tokens_to_ids(THINK_OPEN)
    requests = []
    for q, budget in [("2+2?", 3), ("A much longer question, 3*7?", 5), ("x", None), ("y", 1)]:
        ids = tokenizer(render_prompt(tokenizer, build_messages(q)), add_special_tokens=False)["input_ids"]
        requests += [
            generation.GenerationRequest(ids + [open_id], budget),
            generation.GenerationRequest(ids, budget),
        ]
    sampling = generation.SamplingSettings(max_new_tokens=8, temperature=0.0)
    outputs = {}
    for backend in ("hf", "paged"):
        gen = generation.build_generator(backend, model=tiny_model, tokenizer=tokenizer, sampling=sampling)
        try:
            outputs[backend], _ = generation.generate_all(gen, requests, batch_size=3)
        finally:
            gen.close()
    assert [r.token_ids for r in outputs["hf"]] == [r.token_ids for r in outputs["paged"]]
    assert [r.forced for r in outputs["hf"]] == [r.forced for r in outputs["paged"]]
    assert sum(r.forced for r in outputs["hf"]) == 3  # the pre-filled rows with a budget


def _scripted_engine(script):
    """A stand-in engine for the pure round logic: the token at generation position i is script[i]
    (a forced </think> takes its position), stopping after a stop token or n tokens."""

    def step(calls):
        out = []
        for context, n, stops in calls:
            pos = len(context) - 1  # the prompt is one token
            produced = []
            while len(produced) < n and pos < len(script):
                produced.append(script[pos])
                pos += 1
                if produced[-1] in stops:
                    break
            out.append((produced, -0.5 * len(produced)))
        return out

    return step


def test_rounds_follow_the_processor_rule(tokenizer):
    """Budget forcing in rounds (paged/vLLM) counts thinking from the model's own first <think>, as
    ThinkingBudgetProcessor does, forces </think> after B thinking tokens, and stops at end-of-sequence."""
    open_id = tokenizer.convert_tokens_to_ids(THINK_OPEN)
    close_id = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
    eos = tokenizer.eos_token_id
    kwargs = {"open_id": open_id, "close_id": close_id, "stop_ids": {eos}, "max_new_tokens": 9}
    script = [11, 12, open_id, 21, 22, 23, 24, 25, 26, 27]
    (res,) = generation.generate_in_rounds(
        _scripted_engine(script), [generation.GenerationRequest([0], 3)], **kwargs
    )
    assert res.token_ids == [11, 12, open_id, 21, 22, 23, close_id, 25, 26]
    assert res.forced and res.finish_reason == "length" and res.logprob_sum == pytest.approx(-0.5 * 8)
    # Closed before the budget: nothing forced; end-of-sequence ends the row.
    early = [open_id, 21, close_id, 31, eos, 99]
    (res,) = generation.generate_in_rounds(
        _scripted_engine(early), [generation.GenerationRequest([0], 3)], **kwargs
    )
    assert res.token_ids == early[:5] and not res.forced and res.finish_reason == "stop"
    # No budget: one plain call; a prompt ending with <think> counts every generated token as thinking.
    (res,) = generation.generate_in_rounds(
        _scripted_engine(script), [generation.GenerationRequest([0], None)], **kwargs
    )
    assert res.token_ids == script[:9] and not res.forced
    (res,) = generation.generate_in_rounds(
        _scripted_engine(script), [generation.GenerationRequest([open_id], 2)], **kwargs
    )
    assert res.token_ids[:3] == [11, 12, close_id] and res.forced


def test_bench_script_runs_at_tiny_size(tmp_path):
    bench = _load(ROOT / "scripts" / "bench_generation.py", "bench_script")
    out = tmp_path / "bench.json"
    (args,) = run_folders.parse_config(
        [bench.BenchArguments],
        [
            "--model",
            "tiny-llama",
            "--task",
            "chain",
            "--num_prompts",
            "3",
            "--max_new_tokens",
            "4",
            "--batch_size",
            "2",
            "--fast_backend",
            "paged",
            "--output",
            str(out),
        ],
    )
    bench.main(args)
    report = json.loads(out.read_text())
    assert report["baseline"]["backend"] == "hf" and report["fast"]["backend"] == "paged"
    assert report["baseline"]["generated_tokens"] == report["fast"]["generated_tokens"] == 12
    assert report["speedup"] == pytest.approx(
        report["fast"]["tokens_per_second"] / report["baseline"]["tokens_per_second"]
    )
    for key in ("device", "commit", "command", "num_prompts"):
        assert report[key]


def test_cached_backend_writes_the_samples_hf_writes(tmp_path):
    """The whole evaluation streamed through the cached engine (batches of 3 written as they finish)
    holds, sample by sample, the hf evaluation's tokens, answers and flags; fp32
    here, so no bf16 rounding separates them."""
    run_eval(*SMOKE, "--output", str(tmp_path / "hf"), "--dtype", "float32")
    args = [a if a != "hf" else "cached" for a in SMOKE]
    args[args.index("--batch_size") + 1] = "3"
    out = tmp_path / "cached"
    run_eval(*args, "--output", str(out), "--dtype", "float32")
    hf = {r["key"]: r for r in read_samples(tmp_path / "hf")}
    cached = {r["key"]: r for r in read_samples(out)}
    assert cached.keys() == hf.keys()
    for key, r in cached.items():
        for name in ("completion_ids", "final_answer", "forced", "finish_reason", "thinking_tokens"):
            assert r[name] == hf[key][name], (key, name)
    results = evaluation.load_results(out)
    assert results["backend"] == "cached"
    engine = results["throughput"]["engine"]  # where the time went, summed over the evaluation
    assert engine["steps"] > 0 and engine["prefill_positions"] > 0 and engine["step_rows"] >= engine["steps"]
    assert "engine" not in evaluation.load_results(tmp_path / "hf")["throughput"]
    assert "of which reading prompts" in (out / "summary.md").read_text()
