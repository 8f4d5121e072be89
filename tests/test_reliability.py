"""Reliability (issue #12): nothing lost, nothing run that should not be.

One reproduction per item of the issue (tiny-llama, real subprocesses and a real ``SIGKILL`` where
the item is about a kill), then a table of bad inputs: each must exit non-zero with a message that
names the problem, load no model where that can be avoided, and leave nothing half-written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting to be reaped counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# ---------------------------------------------------------------------------------------------
# Item 3 (last part): killing the pipeline leaves no stage running
# ---------------------------------------------------------------------------------------------
# The "pipeline" runs a stage through thinkbudget.jobs.run_logged (as scripts/pipeline.py and the
# sweep do); the stage starts its own child the way `accelerate launch` starts the training script,
# and that child calls die_with_parent() first, as every entry point does.
_GRANDCHILD = (
    "import os, sys, time; sys.path.insert(0, os.environ['TB_ROOT']); "
    "from thinkbudget.run_folders import die_with_parent; die_with_parent(); "
    "open(os.environ['TB_PIDS'], 'a').write(f'{os.getpid()}\\n'); time.sleep(300)"
)
_STAGE = (
    "import os, subprocess, sys; open(os.environ['TB_PIDS'], 'a').write(f'{os.getpid()}\\n'); "
    "subprocess.run([sys.executable, '-c', os.environ['TB_GRANDCHILD']])"
)
_PIPELINE = (
    "import os, sys; sys.path.insert(0, os.environ['TB_ROOT']); "
    "from thinkbudget.jobs import run_logged; "
    "run_logged([sys.executable, '-c', os.environ['TB_STAGE']], os.environ['TB_LOG'], label='stage')"
)


def test_killed_pipeline_leaves_no_stage_running(tmp_path):
    pids = tmp_path / "pids"
    env = {
        **os.environ,
        "TB_ROOT": str(ROOT),
        "TB_PIDS": str(pids),
        "TB_LOG": str(tmp_path / "stage.log"),
        "TB_STAGE": _STAGE,
        "TB_GRANDCHILD": _GRANDCHILD,
    }
    env.pop("THINKBUDGET_DIE_WITH_PARENT", None)  # run_logged sets it for the stage
    pipeline = subprocess.Popen(
        [PY, "-c", _PIPELINE], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    started: list[int] = []
    try:
        assert _wait_for(lambda: pids.is_file() and len(pids.read_text().split()) == 2, 120), (
            "the stage and its child did not start"
        )
        started = [int(p) for p in pids.read_text().split()]
        assert all(_alive(p) for p in started)
        pipeline.send_signal(signal.SIGKILL)  # the pipeline only: its stage must follow on its own
        pipeline.wait()
        assert _wait_for(lambda: not any(_alive(p) for p in started), 20), "a stage outlived its pipeline"
    finally:
        for p in started:  # never leave a sleeper behind, even when the test fails
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if pipeline.poll() is None:
            pipeline.kill()
            pipeline.wait()


def test_every_entry_point_asks_to_die_with_its_parent_before_slow_imports():
    # The real scripts: the call sits in their `__main__` prelude, before torch/transformers load.
    for script in ("data/prepare.py", "train/sft.py", "train/rl.py", "eval/evaluate.py"):
        text = (ROOT / script).read_text()
        prelude = text[: text.index("\nfrom thinkbudget")]
        assert "_die_with_parent()" in prelude, script


# =============================================================================================
# Shared helpers
# =============================================================================================
def _load(path: Path, name: str):
    """An entry-point script as a module (its `__main__` block does not run)."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def _script(name: str):
    paths = {
        "prepare": ROOT / "data" / "prepare.py",
        "sft": ROOT / "train" / "sft.py",
        "rl": ROOT / "train" / "rl.py",
        "evaluate": ROOT / "eval" / "evaluate.py",
        "pipeline": ROOT / "scripts" / "pipeline.py",
        "sweep": ROOT / "scripts" / "sweep.py",
        "demo": ROOT / "scripts" / "demo.py",
    }
    return _load(paths[name], f"reliability_{name}_script")


def _run_eval(*argv: str) -> None:
    from thinkbudget import run_folders

    evaluate = _script("evaluate")
    (args,) = run_folders.parse_config(evaluate.CONFIG_CLASSES, list(argv))
    evaluate.main(args)


def _read_samples(folder: Path) -> dict[str, dict]:
    import json

    return {
        r["key"]: r
        for r in (json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines() if line)
    }


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{tmp}", str(root)).replace("{root}", str(ROOT)))


def _snapshot(root: Path) -> list[tuple[str, int]]:
    """Every file and folder under ``root`` with its size: equal before and after = nothing written."""
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")
    )


# =============================================================================================
# Item 1: a stage is finished only when its output says it is complete
# =============================================================================================
def _owned_run_dir(path: Path) -> Path:
    from thinkbudget.jobs import RUN_MARKER

    path.mkdir(parents=True, exist_ok=True)
    (path / RUN_MARKER).write_text('{"created_by": "scripts/pipeline.py"}')
    return path


INCOMPLETE_RESULTS = '{"model": "tiny-llama", "model_path": "x", "config": {}, "complete": false}'


def test_an_incomplete_evaluation_is_not_finished(tmp_path, capsys, monkeypatch):
    from thinkbudget import evaluation
    from thinkbudget.run_folders import stage_finished

    results = tmp_path / "results.json"
    results.write_text(INCOMPLETE_RESULTS)  # what a killed evaluation leaves
    assert not stage_finished(results)
    with pytest.raises(ValueError, match="not complete .* run eval/evaluate.py again"):
        evaluation.load_results(tmp_path)  # not "missing key 'rows'"
    # The pipeline reruns it (a dry run prints its command instead of "skipped (finished)").
    run_dir = _owned_run_dir(tmp_path / "run")
    _write(run_dir, {"eval/base/results.json": INCOMPLETE_RESULTS})
    pipeline = _script("pipeline")
    monkeypatch.chdir(tmp_path)
    argv = ["--profile", "smoke", "--run-dir", str(run_dir), "--only", "eval_base", "--dry-run"]
    assert pipeline.main(pipeline.parse_args(argv)) == 0
    out = capsys.readouterr()
    text = out.out + out.err
    assert "eval_base: skipped" not in text and "eval/evaluate.py" in text


def test_a_sweep_with_an_incomplete_evaluation_reports_without_a_keyerror(tmp_path, monkeypatch):
    from thinkbudget.sweep import load_sweep, plan_runs

    sweep_file = tmp_path / "sweep.yaml"
    _write(tmp_path, {"sweep.yaml": SWEEP.format(grid="learning_rate: [1.0e-5, 2.0e-5]")})
    monkeypatch.chdir(ROOT)
    runs = plan_runs(load_sweep(sweep_file))
    for run in runs:  # trained, then killed during the evaluation
        _write(run.dir, {"model/run_summary.json": "{}", "eval/results.json": INCOMPLETE_RESULTS})
        assert run.trained and not run.evaluated
    sweep = _script("sweep")
    with pytest.raises(SystemExit, match="has been evaluated yet"):
        sweep.main(sweep.parse_args([str(sweep_file), "--report-only"]))


# =============================================================================================
# Items 1 and 4 with a real SIGKILL: a killed evaluation is unfinished, and its resumed (and
# re-batched) samples are exactly those of an uninterrupted run
# =============================================================================================
EVAL_ARGS = [
    "--model", "tiny-llama", "--tasks", "chain", "--budgets", "none,6", "--methods",
    "think,budget_prompt,budget_forcing", "--limit", "8", "--max_new_tokens", "24", "--prefill_think",
    "--temperature", "1.0", "--top_k", "50", "--backend", "hf", "--dtype", "float32",
    "--ci_resamples", "50",
]  # fmt: skip


@pytest.mark.slow
def test_killed_evaluation_resumes_to_the_samples_of_an_uninterrupted_run(tmp_path):
    import json

    from thinkbudget.run_folders import stage_finished

    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [PY, str(ROOT / "eval" / "evaluate.py"), *EVAL_ARGS, "--batch_size", "1", "--output", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    samples = killed / "samples.jsonl"
    try:
        _wait_for(lambda: proc.poll() is not None or (samples.is_file() and samples.read_text()), 300, 0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the evaluation finished before it could be killed"
    done = len(samples.read_text().splitlines())
    assert 0 < done < 24
    # Item 1: what the kill left is not a finished evaluation.
    assert json.loads((killed / "results.json").read_text())["complete"] is False
    assert not stage_finished(killed / "results.json")
    # Item 4: resumed with another batch size, and uninterrupted: the same answers, sample by sample.
    _run_eval(*EVAL_ARGS, "--batch_size", "3", "--output", str(killed))
    _run_eval(*EVAL_ARGS, "--batch_size", "16", "--output", str(tmp_path / "whole"))
    resumed, whole = _read_samples(killed), _read_samples(tmp_path / "whole")
    assert len(whole) == 24 and resumed.keys() == whole.keys()
    for key, record in whole.items():
        assert resumed[key]["completion_ids"] == record["completion_ids"], key
    assert stage_finished(killed / "results.json")


# =============================================================================================
# Item 2: the pipeline deletes only what it created
# =============================================================================================
def test_pipeline_refuses_a_run_dir_it_does_not_own(tmp_path, monkeypatch):
    from thinkbudget.jobs import remove_owned

    clone = tmp_path / "clone"  # `--run-dir .` in a clone: data/prepare.py must survive
    _write(clone, {"data/prepare.py": "print('tracked file')\n"})
    pipeline = _script("pipeline")
    monkeypatch.chdir(clone)
    with pytest.raises(SystemExit, match="not created by a thinkbudget job"):
        pipeline.main(pipeline.parse_args(["--profile", "smoke", "--run-dir", ".", "--only", "data"]))
    assert (clone / "data" / "prepare.py").read_text() == "print('tracked file')\n"
    with pytest.raises(RuntimeError, match="refusing to delete"):
        remove_owned(clone, clone / "data")
    owned = _owned_run_dir(tmp_path / "owned")
    with pytest.raises(RuntimeError, match="refusing to delete"):
        remove_owned(owned, clone / "data")  # outside the owned folder
    with pytest.raises(RuntimeError, match="refusing to delete"):
        remove_owned(owned, owned)  # the folder itself
    (owned / "data").mkdir()
    remove_owned(owned, owned / "data")
    assert not (owned / "data").exists() and (clone / "data").is_dir()


# =============================================================================================
# Item 3: resume hazards
# =============================================================================================
def test_overwrite_removes_the_old_runs_checkpoints_so_resume_cannot_pick_one(tmp_path):
    from thinkbudget.run_folders import clear_output_dir, resolve_resume

    out = tmp_path / "out"
    _write(out, {"checkpoint-4/trainer_state.json": "{}", "checkpoint-8/trainer_state.json": "{}"})
    _write(out, {"run_summary.json": "{}", "checkpoint-8/model.safetensors.tmp1": "x", "notes.txt": "mine"})
    clear_output_dir(out, overwrite=True, resuming=False)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with pytest.raises(SystemExit, match="no complete checkpoint"):
        resolve_resume("true", str(out))


def test_a_kills_leftovers_are_removed_before_resuming(tmp_path):
    from thinkbudget.run_folders import clear_output_dir, resolve_resume

    out = tmp_path / "out"
    _write(
        out,
        {
            "checkpoint-4/trainer_state.json": "{}",
            "checkpoint-4/optimizer.pt.tmp1a2b": "half",  # a kill while rewriting checkpoint-4
            "checkpoint-6/model.safetensors": "half",  # killed while saving: no trainer_state.json
            "tmp-checkpoint-6/x": "half",
        },
    )
    assert resolve_resume("true", str(out)).endswith("checkpoint-4")  # the half-written one is skipped
    clear_output_dir(out, overwrite=False, resuming=True)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-4"]
    assert sorted(p.name for p in (out / "checkpoint-4").iterdir()) == ["trainer_state.json"]


def test_pipeline_resumes_killed_training_instead_of_starting_over(tmp_path, capsys, monkeypatch):
    run_dir = _owned_run_dir(tmp_path / "run")
    _write(run_dir, {"data/manifest.json": "{}", "sft/checkpoint-1/trainer_state.json": "{}"})
    pipeline = _script("pipeline")
    monkeypatch.chdir(tmp_path)
    argv = ["--profile", "smoke", "--run-dir", str(run_dir), "--only", "sft", "--dry-run"]
    assert pipeline.main(pipeline.parse_args(argv)) == 0
    text = "".join(capsys.readouterr())
    assert "train/sft.py" in text and "--resume_from_checkpoint true" in text
    # --force starts clean.
    argv += ["--force", "sft"]
    assert pipeline.main(pipeline.parse_args(argv)) == 0
    assert "--resume_from_checkpoint" not in "".join(capsys.readouterr())


# The resume of a finished run (refused) and of no checkpoint are in the bad-input table below;
# SFT and GRPO killed with SIGKILL and resumed bit-identically: tests/test_sft.py and
# tests/test_rl.py::test_kill_then_resume_continues_the_step_count.


# =============================================================================================
# Item 6: model output never reaches eval()
# =============================================================================================
def test_unsafe_reasoning_gym_families_are_refused_and_never_scored(tmp_path, tokenizer):
    from thinkbudget import tasks
    from thinkbudget.data import DataMixArguments
    from thinkbudget.grading import UNSAFE_RG_FAMILIES, is_correct
    from thinkbudget.rewards import RewardParams, get_reward_funcs

    target = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(target)!r}).write_text('ran')"
    hostile = f"<think>\nok\n</think>\n\nThe answer is \\boxed{{{payload}}}."
    answer = f"The answer is \\boxed{{{payload}}}."
    names = tasks.list_tasks()
    for family in [*UNSAFE_RG_FAMILIES, "composite"]:
        task = f"rg/{family}"
        assert task not in names
        with pytest.raises(ValueError, match="refused"):
            tasks.validate_task_name(task)
        with pytest.raises(ValueError, match="refused"):
            DataMixArguments(tasks=[task]).validate()
        assert is_correct(answer, "[]", task=task, meta={}) is False
        assert is_correct(payload, "[]", task=task, meta={}) is False
    (correctness,) = get_reward_funcs(["correctness"], tokenizer, RewardParams())
    for family in UNSAFE_RG_FAMILIES:
        ids = tokenizer(hostile, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        (value,) = correctness(
            prompts=["Q"], completions=[hostile], completion_ids=[ids], answer=["x"], budget=[None],
            mode=["think"], task=[f"rg/{family}"], meta=["{}"],
        )  # fmt: skip
        assert value == 0.0
    assert not target.exists()


# Families whose score_answer calls eval() on something other than the model's answer.
EVAL_OF_GOLD_ONLY = {"number_sorting": "eval() of the gold answer, a fallback when it is not JSON"}


def test_every_reasoning_gym_scorer_that_evaluates_text_is_refused():
    """Scans the installed reasoning-gym: a family whose score_answer calls eval(), sympy's
    parse_expr or sympify (which runs eval) must be in UNSAFE_RG_FAMILIES."""
    import inspect
    import re

    pytest.importorskip("reasoning_gym")
    from reasoning_gym.factory import DATASETS

    from thinkbudget.grading import UNSAFE_RG_FAMILIES

    pattern = re.compile(r"(?<![\w.])(eval|exec)\(|parse_expr\(|sympify\(")
    evaluating = set()
    for name, (cls, *_rest) in DATASETS.items():
        try:
            source = inspect.getsource(cls.score_answer)
        except (OSError, TypeError):
            continue
        if pattern.search(source):
            evaluating.add(name)
    unlisted = evaluating - set(UNSAFE_RG_FAMILIES) - set(EVAL_OF_GOLD_ONLY)
    assert not unlisted, f"scorers that evaluate text but are not refused: {sorted(unlisted)}"
    assert {"string_insertion", "binary_matrix", "spiral_matrix", "n_queens"} <= set(UNSAFE_RG_FAMILIES)


# =============================================================================================
# Item 7: the sbatch file quotes every user value (run under bash with stand-in commands)
# =============================================================================================
SWEEP = """name: t
script: train/rl.py
recipe: configs/rl/smoke.yaml
model_name_or_path: tiny-llama
output_root: "{{tmp}}/sweep runs"
accelerate_args: [--num_processes, "1", --cpu]
overrides: {{max_steps: 2, save_steps: 2}}
grid:
  {grid}
eval: {{tasks: chain, budgets: "off,16,none", methods: [no_think, budget_prompt, think], limit: 2}}
"""


def test_sbatch_values_are_quoted_and_never_run(tmp_path, monkeypatch):
    pwned = tmp_path / "pwned"
    text = SWEEP.format(grid="learning_rate: [1.0e-5]").replace(
        '[--num_processes, "1", --cpu]', f'[--num_processes, "1", --mixed_precision, "$(touch {pwned})"]'
    )
    _write(tmp_path, {"sweep.yaml": text})
    sweep = _script("sweep")
    monkeypatch.chdir(tmp_path)
    args = sweep.parse_args([str(tmp_path / "sweep.yaml"), "--launcher", "slurm", "--no-submit"])
    assert sweep.main(args) == 0
    sbatch = tmp_path / "sweep runs" / "sweep.sbatch"
    assert sbatch.is_file() and not pwned.exists()
    # Stand-ins for srun, scontrol, accelerate and python that record their arguments, one a line.
    bin_dir, logs = tmp_path / "bin", tmp_path / "logs"
    bin_dir.mkdir()
    logs.mkdir()
    stubs = {
        "srun": 'shift; exec "$@"',
        "scontrol": "echo node1",
        "accelerate": 'printf "%s\\n" "$@" > "$LOGS/accelerate"',
        "python": 'printf "%s\\n" "$@" > "$LOGS/python"',
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "LOGS": str(logs),
        "SLURM_ARRAY_TASK_ID": "0",
        "SLURM_JOB_NODELIST": "node1",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(["bash", str(sbatch)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not pwned.exists()  # the $(...) was an argument, not a command
    launched = (logs / "accelerate").read_text().splitlines()
    assert f"$(touch {pwned})" in launched
    config = launched[launched.index("--config") + 1]  # the path with a space stays one argument
    assert config.startswith(str(tmp_path / "sweep runs") + "/") and config.endswith("/config.yaml")
    evaluated = (logs / "python").read_text().splitlines()
    assert evaluated[0] == "eval/evaluate.py" and " " in evaluated[evaluated.index("--output") + 1]


# =============================================================================================
# Item 8: a sweep's dry run never runs the user's script
# =============================================================================================
USER_SCRIPT = """import pathlib
pathlib.Path(__file__).with_name("user_code_ran").write_text("yes")
from thinkbudget.rl import RLModelConfig, RLScriptArguments, ThinkGRPOConfig

CONFIG_CLASSES = (RLScriptArguments, ThinkGRPOConfig, RLModelConfig)
"""


def test_sweep_dry_run_does_not_execute_the_script(tmp_path, capsys, monkeypatch):
    text = SWEEP.format(grid="learning_rate: [1.0e-5]").replace(
        "script: train/rl.py", f"script: {tmp_path / 'user_train.py'}"
    )
    _write(tmp_path, {"sweep.yaml": text, "user_train.py": USER_SCRIPT})
    sweep = _script("sweep")
    monkeypatch.chdir(tmp_path)
    assert sweep.main(sweep.parse_args([str(tmp_path / "sweep.yaml"), "--dry-run"])) == 0
    assert "user_train.py" in capsys.readouterr().out
    assert not (tmp_path / "user_code_ran").exists()


# =============================================================================================
# Item 9: thinking flags are whole words
# =============================================================================================
def test_thinking_flags_match_whole_words_only(tokenizer):
    from thinkbudget.protocol import (
        build_messages,
        flags_in,
        parse_budget_from_prompt,
        render_prompt,
        thinking_enabled,
    )

    for text in ("see example.com/no_thinking", "a/no_think", "/no_think.", "x/think", "/thinking"):
        assert flags_in(text) == [], text
        messages = build_messages(text)
        assert thinking_enabled(messages)
        assert parse_budget_from_prompt(render_prompt(tokenizer, messages, thinking_budget=32)) == 32
    assert flags_in("please /no_think now") == ["no_think"] and flags_in("/think") == ["think"]
    assert not thinking_enabled(build_messages("what is 2+2? /no_think"))


# =============================================================================================
# Item 10: trust_remote_code is off by default everywhere
# =============================================================================================
def test_trust_remote_code_is_off_by_default_everywhere(tmp_path):
    import inspect
    import re

    import yaml

    from thinkbudget import models, run_folders

    for fn in (models.load_model_and_tokenizer, models.load_tokenizer):
        assert inspect.signature(fn).parameters["trust_remote_code"].default is False
    for stage in ("sft", "rl"):
        script = _script(stage)
        for recipe in sorted((ROOT / "configs" / stage).glob("*.yaml")):
            prepared = "dataset_path" in yaml.safe_load(recipe.read_text())  # stand in a prepared folder
            extra = ["--dataset_path", str(tmp_path)] if prepared else []
            parsed = run_folders.parse_config(script.CONFIG_CLASSES, ["--config", str(recipe), *extra])
            assert all(getattr(a, "trust_remote_code", False) is False for a in parsed), recipe
    # Nothing switches it on: no recipe, profile or sweep sets it, and no code passes True.
    for path in (ROOT / "configs").rglob("*.yaml"):
        assert "trust_remote_code" not in path.read_text(), path
    for path in [*ROOT.glob("thinkbudget/*.py"), *ROOT.glob("*/*.py")]:
        if path.parent.name == "tests":
            continue
        assert not re.search(r"trust_remote_code\s*[=:]\s*(bool\s*=\s*)?True", path.read_text()), path


# =============================================================================================
# Items 11 and 12: budget forcing skips finished rows and counts as the parser does
# =============================================================================================
def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _drive(tokenizer, prompts: list[list[int]], scripts: list[list[int]], budgets, steps: int):
    """Feed scripted tokens through ThinkingBudgetProcessor as ``generate`` does (one call per
    step, equal-length rows); a row forced at a step takes ``</think>`` instead of its scripted token."""
    import torch

    from thinkbudget.forcing import ThinkingBudgetProcessor

    close_id = tokenizer.convert_tokens_to_ids("</think>")
    proc = ThinkingBudgetProcessor(tokenizer, budgets=budgets)
    gens: list[list[int]] = [[] for _ in prompts]
    for step in range(steps):
        ids = torch.tensor([p + g for p, g in zip(prompts, gens)])
        scores = proc(ids, torch.zeros(len(prompts), len(tokenizer)))
        for row, gen in enumerate(gens):
            forced = bool(scores[row].min() < 0)  # every token but </think> masked
            gen.append(close_id if forced else scripts[row][step])
    return gens, proc


def test_forcing_skips_rows_that_already_stopped(tokenizer):
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    think = tokenizer.convert_tokens_to_ids("<think>")
    prompt = [*_ids(tokenizer, "Q?"), think]  # both rows pre-filled with <think>
    words = _ids(tokenizer, " one two three four five six seven eight nine ten eleven")
    stopped = [*words[:2], eos] + [pad] * 20  # ended after 2 tokens; generate then feeds it padding
    gens, proc = _drive(tokenizer, [prompt, prompt], [stopped, words + [pad] * 20], [4, 4], steps=12)
    assert proc.fired == [1] and 0 not in proc.fired_at  # not inflated by the padding of row 0
    assert gens[0] == stopped[:12]


def test_forcing_and_the_parser_agree_when_text_precedes_think(tokenizer):
    from thinkbudget.generation import GenerationRequest, generate_in_rounds
    from thinkbudget.parsing import get_parser, parse_completion

    think = tokenizer.convert_tokens_to_ids("<think>")
    close = tokenizer.convert_tokens_to_ids("</think>")
    eos = tokenizer.eos_token_id
    prompt = _ids(tokenizer, "<|im_start|>assistant\n")
    script = [*_ids(tokenizer, "Let me see."), think, *_ids(tokenizer, "\n" + " step" * 30)]
    budget = 4
    (gen,), proc = _drive(tokenizer, [prompt], [script], [budget], steps=len(script))
    cut = gen.index(close)
    completion = gen[: cut + 1] + _ids(tokenizer, "\n\nThe answer is \\boxed{5}.") + [eos]
    assert parse_completion(completion, tokenizer).thinking_tokens == budget  # was 7 with forcing at 4

    def engine(calls):  # the scripted tokens, position by position, up to a stop id or n tokens
        out = []
        for context, n, stops in calls:
            pos, produced = len(context) - len(prompt), []
            while len(produced) < n and pos < len(script):
                produced.append(script[pos])
                pos += 1
                if produced[-1] in stops:
                    break
            out.append((produced, 0.0))
        return out

    (rounds,) = generate_in_rounds(
        engine, [GenerationRequest(prompt, budget)], open_id=think, close_id=close, stop_ids={eos},
        max_new_tokens=cut + 1, parser=get_parser(tokenizer),
    )  # fmt: skip
    assert rounds.forced and rounds.token_ids == gen[: cut + 1]  # paged/vLLM force at the same token


# =============================================================================================
# Items 13 and 14: the rewards follow their published formulas
# =============================================================================================
def _reward(tokenizer, name: str, completions: list[str], answers: list[str], budget=None, **params):
    from thinkbudget.rewards import RewardParams, get_reward_funcs

    (fn,) = get_reward_funcs([name], tokenizer, RewardParams(**params))
    ids = [_ids(tokenizer, c) + [tokenizer.eos_token_id] for c in completions]
    n = len(completions)
    return fn(
        prompts=["the same prompt"] * n, completions=completions, completion_ids=ids, answer=answers,
        budget=[budget] * n, mode=["think"] * n, task=["gsm8k"] * n, meta=["{}"] * n,
    )  # fmt: skip


def _thinking(n: int) -> str:
    return "<think>\n" + " ".join(["step"] * (n - 2)) + "\n</think>\n\n"


def test_group_length_uses_the_real_length_of_a_runaway_sample(tokenizer):
    from thinkbudget.parsing import parse_completion

    short_wrong = _thinking(10) + "The answer is \\boxed{7}."
    correct = _thinking(20) + "The answer is \\boxed{5}."
    runaway = "<think>\n" + " step" * 400  # never closed
    values = _reward(tokenizer, "group_length", [short_wrong, correct, runaway], ["5"] * 3)
    lengths = [
        parse_completion(_ids(tokenizer, c), tokenizer).thinking_tokens for c in (short_wrong, correct)
    ]
    hi = parse_completion(_ids(tokenizer, runaway), tokenizer).thinking_tokens
    lo = lengths[0]
    assert hi > 300
    assert values[1] == pytest.approx(0.5 - (lengths[1] - lo) / (hi - lo))  # Kimi k1.5: ~ +0.47
    assert values[1] > 0.4  # with "longest + 1" for the runaway it was ~ -0.41
    assert values[2] == pytest.approx(-0.5) and values[0] == 0.0  # wrong: min(0, lambda)


def test_l1_exact_is_not_clamped(tokenizer):
    from thinkbudget.parsing import parse_completion

    text = _thinking(600) + "The answer is \\boxed{5}."
    n = parse_completion(_ids(tokenizer, text), tokenizer).thinking_tokens
    (value,) = _reward(tokenizer, "l1_exact", [text], ["5"], budget=10, length_alpha=0.005)
    assert value == pytest.approx(-0.005 * (n - 10)) and value < -2  # LCPO: no clamp at -1


# =============================================================================================
# Item 15: one rule for special tokens when tokenizing prompts
# =============================================================================================
class _BosTokenizer:
    """The project's tokenizer, but one that adds a BOS token (as Llama's do)."""

    def __init__(self, inner):
        self.inner = inner
        self.bos_token, self.bos_token_id = "<|endoftext|>", inner.convert_tokens_to_ids("<|endoftext|>")

    def __call__(self, text, add_special_tokens=True, **kw):
        out = self.inner(text, add_special_tokens=False, **kw)
        if add_special_tokens:
            out["input_ids"] = [self.bos_token_id, *out["input_ids"]]
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_sft_evaluation_and_demo_tokenize_a_prompt_alike(tokenizer):
    from thinkbudget.evaluation import Condition, build_prompt
    from thinkbudget.protocol import build_messages, encode_prompt, render_prompt
    from thinkbudget.sft import tokenize_row

    bos_tok = _BosTokenizer(tokenizer)
    text = render_prompt(tokenizer, build_messages("What is 2 + 3?"), thinking_budget=16)
    sft = tokenize_row(text, "<think>\nx\n</think>\n\nThe answer is \\boxed{5}.", bos_tok)
    prompt_len = sft["completion_mask"].index(1)
    evaluated = build_prompt(bos_tok, "What is 2 + 3?", Condition("chain", "budget_prompt", 16))
    assert sft["input_ids"][:prompt_len] == evaluated.ids == encode_prompt(bos_tok, text)
    assert evaluated.ids[0] == bos_tok.bos_token_id and evaluated.ids[1] != bos_tok.bos_token_id


# =============================================================================================
# Item 16: think tags written as sub-word pieces are tags for every parser
# =============================================================================================
def test_sub_word_think_tags_are_tags_for_ids_text_and_forcing(tokenizer):
    from thinkbudget.parsing import parse_completion

    def pieces(tag: str) -> list[int]:
        return [i for part in ("<", tag.strip("<>"), ">") for i in _ids(tokenizer, part)]

    body, answer = _ids(tokenizer, "\nsome thought here\n"), _ids(tokenizer, "\n\nThe answer is \\boxed{5}.")
    ids = [*pieces("<think>"), *body, *pieces("</think>"), *answer, tokenizer.eos_token_id]
    assert len(pieces("<think>")) > 1
    by_ids = parse_completion(ids, tokenizer)
    by_text = parse_completion(tokenizer.decode(ids, skip_special_tokens=False), tokenizer)
    assert by_ids.think_opened and by_ids.think_closed and by_text.think_closed
    assert by_ids.thinking_tokens == by_text.thinking_tokens > 0
    assert by_ids.boxed_answer == by_text.boxed_answer == "5"


# =============================================================================================
# Item 17: an unknown hub id fails at once, saying why
# =============================================================================================
def test_unknown_hub_id_fails_fast_offline_and_unreachable(monkeypatch):
    from thinkbudget import models

    start = time.monotonic()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="not a local path.*HF_HUB_OFFLINE"):
        models.resolve_model_path("nobody-here/no-such-model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(FileNotFoundError, match="not a local path.*hub is unreachable"):
        models.resolve_model_path("nobody-here/no-such-model")
    assert time.monotonic() - start < 15


# =============================================================================================
# Item 21: GSM8K ships with the project
# =============================================================================================
def test_gsm8k_is_read_from_the_repository(monkeypatch):
    from thinkbudget import tasks

    monkeypatch.delenv("THINKBUDGET_GSM8K_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert tasks.gsm8k_dir() == ROOT / "data" / "gsm8k"
    for split in ("train", "test"):
        assert (ROOT / "data" / "gsm8k" / f"{split}.jsonl").stat().st_size > 100_000
    assert "MIT" in (ROOT / "data" / "gsm8k" / "LICENSE").read_text()
    problems = tasks.load_problems("gsm8k", "test", n=3)
    assert len(problems) == 3 and all(p.answer for p in problems)
    assert "shared/data" not in (ROOT / "thinkbudget" / "tasks.py").read_text()


# =============================================================================================
# Items 5, 18, 19, 20 and the rest: the catalogue of bad inputs
# =============================================================================================
# Each case: (id, entry point, argv, files to create first, a pattern the message must contain).
# "{tmp}" is the test's folder, "{root}" the repository. Every case must exit non-zero with that
# message, load no model weights, and leave the test's folder exactly as it was (nothing half-written).
DATA = ["--config", "{root}/configs/data/smoke.yaml", "--output_dir", "{tmp}/out"]
SFT = [
    "--config",
    "{root}/configs/sft/smoke.yaml",
    "--dataset_path",
    "{data}",
    "--model_name_or_path",
    "tiny-llama",
    "--output_dir",
    "{tmp}/out",
]
RL = [
    "--config",
    "{root}/configs/rl/smoke.yaml",
    "--dataset_path",
    "{data}",
    "--model_name_or_path",
    "tiny-llama",
    "--output_dir",
    "{tmp}/out",
]
EVAL = [
    "--model",
    "tiny-llama",
    "--tasks",
    "chain",
    "--budgets",
    "none",
    "--methods",
    "think",
    "--limit",
    "1",
    "--max_new_tokens",
    "4",
    "--backend",
    "hf",
    "--output",
    "{tmp}/out",
]
PIPE = ["--profile", "smoke", "--run-dir", "{tmp}/run"]
NOT_A_MODEL = {"notamodel/README.md": "just notes"}
BAD_JSONL = {"bad.jsonl": '{"question": "1 + 1?", "answer": "2"}\n{"question": oops\n'}
FINISHED_RUN = {"out/checkpoint-2/trainer_state.json": "{}", "out/run_summary.json": "{}"}
OLD_RUN = {"out/checkpoint-2/trainer_state.json": "{}"}
OTHER_RESULTS = {
    "out/results.json": '{"model": "x", "model_path": "/elsewhere", "config": {}, "complete": true, "rows": []}'
}
SWEEP_FILE = "{tmp}/sweep.yaml"


def _sweep(grid: str = "learning_rate: [1.0e-5]", **replace: str) -> dict[str, str]:
    text = SWEEP.format(grid=grid)
    for old, new in replace.items():
        text = text.replace(old, new)
    return {"sweep.yaml": text}


BAD_INPUTS = [
    # data/prepare.py
    ("data-unknown-task", "prepare", [*DATA, "--tasks", "nope"], {}, r"unknown task 'nope'"),
    ("data-unsafe-task", "prepare", [*DATA, "--tasks", "rg/n_queens"], {}, r"rg/n_queens.*refused"),
    ("data-negative-budget", "prepare", [*DATA, "--budgets", "-4"], {}, r"budgets.*positive"),
    ("data-ratios", "prepare", [*DATA, "--think_budget_ratio", "0.9"], {}, r"must sum to 1"),
    ("data-malformed-jsonl", "prepare", [*DATA, "--tasks", "jsonl:{tmp}/bad.jsonl"], BAD_JSONL, r"bad.jsonl:2: malformed JSON"),
    ("data-missing-jsonl", "prepare", [*DATA, "--tasks", "jsonl:{tmp}/none.jsonl"], {}, r"none.jsonl does not exist"),
    ("data-empty-mix", "prepare", [*DATA, "--num_train_problems", "0"], {}, r"no rows"),
    ("data-output-is-a-file", "prepare", [*DATA[:3], "{tmp}/afile"], {"afile": "x"}, r"afile is a file"),
    ("data-output-unwritable", "prepare", [*DATA[:3], "/proc/thinkbudget/out"], {}, r"cannot .*/proc"),
    ("data-not-a-model", "prepare", [*DATA, "--model_name_or_path", "{tmp}/notamodel"], NOT_A_MODEL, r"not a model folder: it has no config.json"),
    ("data-unknown-hub-id", "prepare", [*DATA, "--model_name_or_path", "nobody-here/no-model"], {}, r"not a local path"),
    ("data-unknown-config-key", "prepare", ["--config", "{tmp}/c.yaml", "--output_dir", "{tmp}/out"], {"c.yaml": "taskz: [chain]\n"}, r"c.yaml: unknown keys.*taskz.*did you mean tasks"),
    ("data-invalid-yaml", "prepare", ["--config", "{tmp}/c.yaml", "--output_dir", "{tmp}/out"], {"c.yaml": "tasks: [chain\n"}, r"c.yaml: not valid YAML"),
    ("data-config-without-value", "prepare", ["--output_dir", "{tmp}/out", "--config"], {}, r"--config needs a file path"),
    ("data-config-equals-missing", "prepare", ["--config={tmp}/nope.yaml", "--output_dir", "{tmp}/out"], {}, r"nope.yaml does not exist"),
    ("data-config-twice", "prepare", [*DATA, "--config", "{root}/configs/data/smoke.yaml"], {}, r"--config is given more than once"),
    # train/sft.py
    ("sft-no-steps", "sft", [*SFT, "--max_steps", "0", "--num_train_epochs", "0"], {}, r"nothing to train"),
    ("sft-learning-rate-flag", "sft", [*SFT, "--learning_rate", "fast"], {}, r"learning_rate.*'fast'"),
    ("sft-learning-rate-yaml", "sft", ["--config", "{tmp}/c.yaml", "--output_dir", "{tmp}/out"], {"c.yaml": "learning_rate: fast\n"}, r"learning_rate: 'fast' is not a valid float"),
    ("sft-dtype", "sft", [*SFT, "--dtype", "float13"], {}, r"float13"),
    ("sft-resume-nothing", "sft", [*SFT, "--resume_from_checkpoint", "true"], {}, r"no complete checkpoint"),
    ("sft-resume-not-a-checkpoint", "sft", [*SFT, "--resume_from_checkpoint", "{tmp}/notackpt"], {"notackpt/x": ""}, r"not a complete checkpoint folder"),
    ("sft-resume-finished", "sft", [*SFT, "--resume_from_checkpoint", "true"], FINISHED_RUN, r"holds a finished run"),
    ("sft-old-run-no-overwrite", "sft", SFT, OLD_RUN, r"already holds a run.*overwrite_output_dir"),
    ("sft-overwrite-and-resume", "sft", [*SFT, "--overwrite_output_dir", "true", "--resume_from_checkpoint", "true"], OLD_RUN, r"contradict"),
    ("sft-dataset-path", "sft", [*SFT, "--dataset_path", "{tmp}/nodata"], {}, r"dataset_path.*not a folder"),
    ("sft-unknown-flag", "sft", [*SFT, "--lerning_rate", "1e-5"], {}, r"lerning_rate"),
    ("sft-not-a-model", "sft", [*SFT, "--model_name_or_path", "{tmp}/notamodel"], NOT_A_MODEL, r"not a model folder"),
    ("sft-output-is-a-file", "sft", [*SFT[:7], "{tmp}/afile"], {"afile": "x"}, r"afile is a file"),
    ("sft-no-dataset-path", "sft", ["--config", "{tmp}/c.yaml", "--output_dir", "{tmp}/out"], {"c.yaml": "max_steps: 1\n"}, r"dataset_path: required.*python data/prepare.py"),
    # train/rl.py
    ("rl-no-steps", "rl", [*RL, "--max_steps", "0", "--num_train_epochs", "0"], {}, r"nothing to train"),
    ("rl-unknown-reward", "rl", [*RL, "--reward_funcs", "correctness", "nope"], {}, r"unknown reward.*nope"),
    ("rl-mix-field", "rl", [*RL, "--tasks", "chain"], {}, r"--tasks"),  # the mix is the data stage's
    ("rl-budget-over-completion", "rl", [*RL, "--max_completion_length", "20"], {}, r"budgets up to 24 tokens.*max_completion_length=20"),
    ("rl-bad-type-yaml", "rl", ["--config", "{tmp}/c.yaml", "--output_dir", "{tmp}/out"], {"c.yaml": "num_generations: many\n"}, r"num_generations: 'many' is not a valid int"),
    ("rl-resume-finished", "rl", [*RL, "--resume_from_checkpoint", "true"], FINISHED_RUN, r"holds a finished run"),
    # eval/evaluate.py
    ("eval-empty-jsonl", "eval", [*EVAL[:2], "--tasks", "jsonl:{tmp}/empty.jsonl", *EVAL[4:]], {"empty.jsonl": ""}, r"no test problems in task"),
    ("eval-malformed-jsonl", "eval", [*EVAL[:2], "--tasks", "jsonl:{tmp}/bad.jsonl", *EVAL[4:]], BAD_JSONL, r"bad.jsonl:2: malformed JSON"),
    ("eval-unknown-task", "eval", [*EVAL, "--tasks", "nope"], {}, r"unknown task 'nope'"),
    ("eval-unsafe-task", "eval", [*EVAL, "--tasks", "rg/string_insertion"], {}, r"refused"),
    ("eval-dtype", "eval", [*EVAL, "--dtype", "float13"], {}, r"float13"),
    ("eval-budgets", "eval", [*EVAL, "--budgets", "lots"], {}, r"lots"),
    ("eval-method", "eval", [*EVAL, "--methods", "guess"], {}, r"unknown method 'guess'"),
    ("eval-samples", "eval", [*EVAL, "--samples", "0"], {}, r"--samples must be at least 1"),
    ("eval-greedy-samples", "eval", [*EVAL, "--samples", "4", "--temperature", "0"], {}, r"needs --temperature > 0"),
    ("eval-max-new-tokens", "eval", [*EVAL, "--max_new_tokens", "0"], {}, r"--max_new_tokens must be positive"),
    ("eval-limit", "eval", [*EVAL, "--limit", "0"], {}, r"--limit must be a positive"),
    ("eval-output-is-a-file", "eval", [*EVAL[:-1], "{tmp}/afile"], {"afile": "x"}, r"afile is a file"),
    ("eval-output-unwritable", "eval", [*EVAL[:-1], "/proc/thinkbudget/out"], {}, r"cannot .*/proc"),
    ("eval-no-output", "eval", EVAL[:-2], {}, r"--output is required"),
    ("eval-not-a-model", "eval", [*EVAL, "--model", "{tmp}/notamodel"], NOT_A_MODEL, r"not a model folder"),
    ("eval-missing-path", "eval", [*EVAL, "--model", "./no/such/model"], {}, r"does not exist"),
    ("eval-unknown-hub-id", "eval", [*EVAL, "--model", "nobody-here/no-model"], {}, r"not a local path"),
    ("eval-other-models-results", "eval", EVAL, OTHER_RESULTS, r"holds results of model"),
    ("eval-reward-model", "eval", [*EVAL, "--best_of_n_scorer", "{tmp}/norm"], {}, r"best_of_n_scorer"),
    ("eval-run-missing", "eval", [*EVAL, "--run", "{tmp}/norun"], {}, r"--run .*no such folder"),
    ("eval-config-empty", "eval", [*EVAL, "--config="], {}, r"--config needs a file path"),
    # scripts/demo.py (the budget is checked before the model loads)
    ("demo-budget-zero", "demo", ["--budget", "0"], {}, r"--budget"),
    ("demo-budget-negative", "demo", ["--budget", "-3"], {}, r"--budget"),
    ("demo-budget-word", "demo", ["--budget", "many"], {}, r"--budget.*many"),
    ("demo-max-new-tokens", "demo", ["--max_new_tokens", "0"], {}, r"--max_new_tokens"),
    ("demo-not-a-model", "demo", ["--model", "{tmp}/notamodel"], NOT_A_MODEL, r"not a model folder"),
    # scripts/pipeline.py
    ("pipeline-run-dir-not-owned", "pipeline", [*PIPE, "--only", "data"], {"run/prepare.py": "x"}, r"not created by a thinkbudget job"),
    ("pipeline-run-dir-is-a-file", "pipeline", ["--profile", "smoke", "--run-dir", "{tmp}/afile"], {"afile": "x"}, r"afile is a file"),
    ("pipeline-unknown-stage", "pipeline", [*PIPE, "--only", "nope"], {}, r"unknown stage 'nope'"),
    ("pipeline-unknown-profile", "pipeline", ["--profile", "nope", "--run-dir", "{tmp}/run"], {}, r"no pipeline profile 'nope'"),
    ("pipeline-profile-key", "pipeline", ["--profile", "{tmp}/p.yaml", "--run-dir", "{tmp}/run"], {"p.yaml": "description: x\nsmoke: true\nmodel: tiny-llama\nmodle: x\n"}, r"modle"),
    # scripts/sweep.py
    ("sweep-grid-type", "sweep", [SWEEP_FILE, "--dry-run"], _sweep("learning_rate: [fast]"), r"learning_rate: 'fast' is not a valid float"),
    ("sweep-grid-key", "sweep", [SWEEP_FILE, "--dry-run"], _sweep("lerning_rate: [1.0e-5]"), r"lerning_rate.*did you mean learning_rate"),
    ("sweep-override-type", "sweep", [SWEEP_FILE, "--dry-run"], _sweep(**{"max_steps: 2": "max_steps: two"}), r"max_steps: 'two' is not a valid int"),
    ("sweep-foreign-script", "sweep", [SWEEP_FILE, "--dry-run"], {**_sweep(**{"train/rl.py": "{tmp}/user.py"}), "user.py": "open('{tmp}/ran', 'w')\n"}, r"not one of the project's"),
    ("sweep-missing-recipe", "sweep", [SWEEP_FILE, "--dry-run"], _sweep(**{"configs/rl/smoke.yaml": "configs/rl/nope.yaml"}), r"nope.yaml does not exist"),
    ("sweep-empty-grid", "sweep", [SWEEP_FILE, "--dry-run"], _sweep(grid="{}"), r"'grid' must be a non-empty"),
    ("sweep-unwritable-root", "sweep", [SWEEP_FILE, "--output-root", "/proc/thinkbudget/runs"], _sweep(), r"output_root.*cannot"),
]  # fmt: skip


def _entry(name: str):
    if name == "eval":
        return lambda argv: _run_eval(*argv)
    if name in ("pipeline", "sweep"):
        script = _script(name)
        return lambda argv: script.main(script.parse_args(argv))
    script = _script(name)
    return script.main if name == "demo" else script.cli


@pytest.fixture()
def no_model_loads(monkeypatch):
    """Loading model weights fails the test: bad input must be refused before that."""
    from transformers import PreTrainedModel

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for bad input")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))


def test_the_catalogue_has_forty_cases_and_unique_ids():
    assert len(BAD_INPUTS) >= 40 and len({c[0] for c in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize(
    ("case", "entry", "argv", "files", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input(
    case, entry, argv, files, message, tmp_path, capsys, monkeypatch, no_model_loads, smoke_data
):
    import re

    _write(tmp_path, files)
    argv = [
        a.replace("{tmp}", str(tmp_path)).replace("{root}", str(ROOT)).replace("{data}", smoke_data)
        for a in argv
    ]
    before = _snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)  # a stray relative write would show in the snapshot
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as exc:
        _entry(entry)(argv)
    code = exc.value.code
    assert code not in (0, None), f"{case}: exit code {code!r}"
    captured = capsys.readouterr()
    text = f"{code if isinstance(code, str) else ''}\n{captured.err}\n{captured.out}"
    assert re.search(message, text, re.S), f"{case}: {text[-2000:]}"
    assert "Traceback" not in text
    assert _snapshot(tmp_path) == before, f"{case}: something was written"


# A few of them as real command lines: the exit status and stderr a user sees (no traceback).
CLI_CASES = [
    (["eval/evaluate.py", *EVAL, "--config"], r"--config needs a file path"),
    (["data/prepare.py", "--config={tmp}/nope.yaml"], r"nope.yaml does not exist"),
    (["scripts/demo.py", "--budget", "0"], r"--budget"),
]


@pytest.mark.parametrize(("argv", "message"), CLI_CASES, ids=["evaluate", "prepare", "demo"])
def test_bad_input_on_the_command_line(argv, message, tmp_path):
    import re

    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [PY, str(ROOT / argv[0]), *argv[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and re.search(message, done.stderr), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
