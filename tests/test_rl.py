"""The GRPO stage end to end on CPU: recipes parse, bad input fails early, training changes the
weights on one and on two processes (DDP over gloo), a killed run resumes, rollouts can be
budget-forced.

The trainer runs start from a tiny-llama variant whose output layer gives ``<think>``, ``</think>``
and the end-of-turn token a few percent of probability each (see ``varied_model_path``): a random
tiny model otherwise writes 40 tokens of noise for every rollout, every reward is the same within a
group, GRPO's advantages are all zero and no weight can move. With the bias, rollouts differ in
thinking and answer length, so the rewards differ and the updates are real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "rl" / "smoke.yaml"
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": str(ROOT),
}
# Small overrides on top of the smoke recipe (already tiny): 3 steps, checkpoint at step 2.
FAST = ["--max_steps", "3", "--save_steps", "2", "--overwrite_output_dir", "true"]


def _entry_point():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_rl_entry", ROOT / "train" / "rl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rl_entry():
    return _entry_point()


def _launch(args: list[str], *, processes: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    if processes == 1:
        launcher = ["--num_processes", "1", "--cpu"]
    else:  # accelerate only spawns several processes for multi-GPU types; use_cpu (in smoke.yaml) makes it gloo
        launcher = ["--multi_gpu", "--num_processes", str(processes), "--main_process_port", "29517"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launcher, "train/rl.py", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _weights(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(path) / "model.safetensors"))


def _assert_trained(initial: str, out: Path) -> dict:
    before, after = _weights(initial), _weights(out)
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert changed, "no parameter changed"
    state = json.loads((out / "trainer_state.json").read_text())
    logs = [e for e in state["log_history"] if "reward_std" in e]
    # The change came from a GRPO signal: some group had differing rewards and a non-zero gradient.
    assert any(e["reward_std"] > 0 and e["grad_norm"] > 0 for e in logs), logs
    for e in logs:  # the stage's own metrics land in every logged step
        assert "thinkbudget/accuracy" in e and "timing/generation_s" in e and "rewards/l1_max/mean" in e
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["global_step"] == 3
    timing = summary["timing"]
    assert timing["generation_s"] > 0 and timing["generated_tokens_all_processes"] > 0
    assert timing["step_s_total"] >= timing["generation_s"]
    assert summary["commit"] and summary["device"]
    # The final folder is a standard checkpoint with the protocol's chat template.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    assert "enable_thinking" in tok.chat_template
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    return summary


# ------------------------------------------------------------------------------------------------
# Recipes and bad input (fast)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", sorted((ROOT / "configs" / "rl").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_parses_through_the_real_parser(rl_entry, recipe, tmp_path):
    import yaml

    from thinkbudget.rl import validate_run
    from thinkbudget.run_folders import parse_config

    # bf16 recipes need a GPU or use_cpu to pass TrainingArguments' own check on this machine.
    extra = [] if torch.cuda.is_available() else ["--use_cpu", "true"]
    if "dataset_path" in yaml.safe_load(recipe.read_text()):  # a prepared mix: stand in a folder
        extra += ["--dataset_path", str(tmp_path)]
    script_args, training_args, model_args = parse_config(
        rl_entry.CONFIG_CLASSES, ["--config", str(recipe), *extra]
    )
    validate_run(script_args, training_args)
    assert model_args.model_name_or_path
    assert len(training_args.reward_weights or script_args.reward_funcs) == len(script_args.reward_funcs)


def _main_fails(rl_entry, monkeypatch, args: list[str], dataset_path: str) -> str:
    """Run main() with the smoke recipe on ``dataset_path`` + ``args``; it must exit before any model loads."""
    import thinkbudget.models
    from thinkbudget.run_folders import parse_config

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the bad input was reported")

    monkeypatch.setattr(thinkbudget.models, "load_model_and_tokenizer", no_model)
    try:
        parsed = parse_config(
            rl_entry.CONFIG_CLASSES, ["--config", str(SMOKE), "--dataset_path", dataset_path, *args]
        )
    except ValueError as e:  # a dataclass's own check while parsing (train/rl.py exits with it)
        return str(e)
    with pytest.raises(SystemExit) as info:
        rl_entry.main(*parsed)
    return str(info.value)


@pytest.mark.parametrize(
    "args,field",
    [
        (["--reward_funcs", "correctness", "lenght_reward"], "reward_funcs"),
        (["--reward_weights", "1.0", "2.0"], "reward_weights"),
        (["--length_alpha", "0"], "length_alpha"),
        (["--length_alpha", "-0.1"], "length_alpha"),
        # The smoke mix's budgets (16, 24 tokens) against the completion: checked once, on the rows.
        (["--max_completion_length", "20"], "budget: the dataset holds budgets up to 24 tokens"),
        (["--budgets", "16"], "budgets"),  # the mix is the data stage's: a trainer refuses its fields
        (
            ["--budget_forcing_rollouts", "true", "--use_transformers_continuous_batching", "true"],
            "budget_forcing_rollouts",
        ),
    ],
)
def test_bad_input_names_the_field_before_loading(rl_entry, monkeypatch, tmp_path, smoke_data, args, field):
    message = _main_fails(rl_entry, monkeypatch, [*args, "--output_dir", str(tmp_path / "out")], smoke_data)
    assert field in message
    if field == "reward_funcs":
        assert "l1_max" in message and "correctness" in message  # lists the valid names


@pytest.mark.parametrize("missing", ["budget", "answer"])
def test_dataset_without_a_required_column(rl_entry, monkeypatch, tmp_path, tokenizer, missing):
    from thinkbudget.data import DataMixArguments, build_rl_dataset

    rows = build_rl_dataset(
        DataMixArguments(tasks=["chain"], num_train_problems=4, num_test_problems=1), tokenizer
    )
    rows.remove_columns([missing]).save_to_disk(str(tmp_path / "prepared" / "rl" / "train"))
    message = _main_fails(
        rl_entry, monkeypatch, ["--output_dir", str(tmp_path / "out")], str(tmp_path / "prepared")
    )
    assert missing in message and "python data/prepare.py" in message


def test_reward_names_are_checked_once_per_launch(rl_entry, monkeypatch, smoke_data, tokenizer, tmp_path):
    """Parsing the recipe checks them; validate_run and building the rewards rely on that check."""
    from thinkbudget import rewards, rl
    from thinkbudget.run_folders import parse_config

    calls = []

    def counting(names):
        calls.append(list(names))
        return real(names)

    real = rewards.check_reward_names
    monkeypatch.setattr(rewards, "check_reward_names", counting)
    monkeypatch.setattr(rl, "check_reward_names", counting)
    args = ["--config", str(SMOKE), "--dataset_path", smoke_data, "--output_dir", str(tmp_path)]
    script_args, training_args, _ = parse_config(rl_entry.CONFIG_CLASSES, args)
    rl.validate_run(script_args, training_args)
    rewards.get_reward_funcs(script_args.reward_funcs, tokenizer, script_args.reward_params())
    assert calls == [script_args.reward_funcs]


def test_reward_help_lists_the_registry():
    from trl import TrlParser

    from thinkbudget.rewards import REWARDS
    from thinkbudget.rl import RLScriptArguments

    text = " ".join(TrlParser([RLScriptArguments]).format_help().split())
    assert f"Reward names (thinkbudget.rewards.REWARDS): {', '.join(REWARDS)}." in text


def test_bad_input_exits_non_zero_from_the_command_line(tmp_path, smoke_data):
    cmd = [sys.executable, "train/rl.py", "--config", str(SMOKE), "--dataset_path", smoke_data]
    cmd += ["--reward_funcs", "correctness", "bogus"]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "reward_funcs" in proc.stderr and "valid names" in proc.stderr
    assert "Loading weights" not in proc.stderr


def test_resume_skips_a_checkpoint_killed_while_saving(tmp_path):
    from thinkbudget.run_folders import resolve_resume

    for step, complete in [(2, True), (4, True), (6, False)]:
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert resolve_resume("true", str(tmp_path)).endswith("checkpoint-4")
    assert resolve_resume(None, str(tmp_path)) is None
    with pytest.raises(SystemExit, match="resume_from_checkpoint"):
        resolve_resume(str(tmp_path / "checkpoint-6"), str(tmp_path))
    with pytest.raises(SystemExit, match="resume_from_checkpoint"):
        resolve_resume("true", str(tmp_path / "empty"))


# ------------------------------------------------------------------------------------------------
# Budget-forced rollouts inside GRPOTrainer's own generation path
# ------------------------------------------------------------------------------------------------
def _tiny_grpo_trainer(model, tok, tmp_path, dataset, budget_forcing_rollouts=False, **config):
    """The project's GRPO trainer on a tiny model, CPU, fp32, no logging; ``config``: ThinkGRPOConfig fields."""
    from thinkbudget.rewards import get_reward_funcs
    from thinkbudget.rl import ThinkBudgetGRPOTrainer, ThinkGRPOConfig

    args = ThinkGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **config)
    return ThinkBudgetGRPOTrainer(
        model=model,
        reward_funcs=get_reward_funcs(["correctness"], tok),
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        budget_forcing_rollouts=budget_forcing_rollouts,
    )


@pytest.mark.parametrize("backend", ["hf", "cached"])
def test_budget_forced_rollouts_stop_thinking_at_the_budget(backend, tiny_model_path, tokenizer, tmp_path):
    from datasets import Dataset

    from thinkbudget.models import load_model_and_tokenizer
    from thinkbudget.parsing import parse_completion
    from thinkbudget.protocol import build_messages, render_prompt

    model, tok = load_model_and_tokenizer(tiny_model_path, dtype="float32")
    tok.padding_side = "left"
    budgets = [3, 7, None]
    # Pre-filled "<think>": the random tiny model never opens the block itself (an SFT'd model does,
    # and the processor counts from its own <think> then); rows without a budget are never forced.
    prompts = [
        render_prompt(tok, build_messages(f"Q{i}?"), thinking_budget=b) + "<think>"
        for i, b in enumerate(budgets)
    ]
    dataset = Dataset.from_dict(
        {
            "prompt": prompts,
            "answer": ["1"] * 3,
            "budget": budgets,
            "mode": ["think"] * 3,
            "task": ["chain"] * 3,
        }
    )
    trainer = _tiny_grpo_trainer(
        model,
        tok,
        tmp_path,
        dataset,
        budget_forcing_rollouts=True,
        num_generations=3,
        per_device_train_batch_size=3,
        max_completion_length=16,
        max_steps=1,
    )
    trainer.args.rollout_backend = backend
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert trainer._cached_rollouts(trainer.accelerator.unwrap_model(trainer.model_wrapped)) == (
        backend == "cached"
    )
    torch.manual_seed(0)
    completion_ids, _ = trainer._generate_single_turn(prompt_ids, None, {}, 3)
    close_id = tok.convert_tokens_to_ids("</think>")
    for ids, budget in zip(completion_ids, budgets):
        parsed = parse_completion(ids, tok)  # no <think> in the completion: the prompt opened it
        assert len(ids) == 16 or ids[-1] == tok.eos_token_id
        if budget is None:
            assert close_id not in ids[:15]
        else:
            assert parsed.think_closed and parsed.thinking_tokens == budget
            assert ids[budget] == close_id
    assert "generate" not in vars(trainer.accelerator.unwrap_model(trainer.model_wrapped))  # wrapper removed
    assert (
        trainer._metrics["train"]["rollouts/forced_share"]
        or trainer._metrics["eval"]["rollouts/forced_share"]
    )

    # Without the option nothing is forced: the random model does not close the block by itself.
    trainer.budget_forcing_rollouts = False
    torch.manual_seed(0)
    free_ids, _ = trainer._generate_single_turn(prompt_ids, None, {}, 3)
    assert any(close_id not in ids for ids in free_ids)


# ------------------------------------------------------------------------------------------------
# Trainer runs (accelerate launch, CPU)
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_recipe_one_process(varied_model_path, smoke_data, tmp_path):
    out = tmp_path / "rl"
    _launch(
        ["--config", str(SMOKE), "--dataset_path", smoke_data, "--model_name_or_path", varied_model_path]
        + ["--output_dir", str(out), *FAST]
    )
    summary = _assert_trained(varied_model_path, out)
    assert summary["num_processes"] == 1


@pytest.mark.slow
def test_smoke_recipe_two_processes_ddp_gloo(varied_model_path, smoke_data, tmp_path):
    out = tmp_path / "rl"
    _launch(
        ["--config", str(SMOKE), "--dataset_path", smoke_data, "--model_name_or_path", varied_model_path]
        + ["--output_dir", str(out), *FAST],
        processes=2,
    )
    summary = _assert_trained(varied_model_path, out)
    assert summary["num_processes"] == 2


@pytest.mark.slow
def test_kill_then_resume_continues_the_step_count(varied_model_path, smoke_data, tmp_path):
    out = tmp_path / "rl"
    base = ["--config", str(SMOKE), "--dataset_path", smoke_data, "--model_name_or_path", varied_model_path]
    base += ["--output_dir", str(out)]
    # A long run, killed (SIGKILL, whole process group) as soon as its first checkpoint is complete.
    proc = subprocess.Popen(
        [
            sys.executable,
            "train/rl.py",
            *base,
            "--max_steps",
            "200",
            "--save_steps",
            "2",
            "--overwrite_output_dir",
            "true",
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    from thinkbudget.run_folders import complete_checkpoints

    deadline = time.time() + 240
    try:
        while not complete_checkpoints(out) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stderr = proc.communicate()[1]
    assert complete_checkpoints(out), stderr[-4000:]
    assert not (out / "run_summary.json").exists()  # it really was killed mid-run
    resumed = complete_checkpoints(out)[-1]
    step = int(resumed.name.split("-")[1])
    weights_at_kill = _weights(resumed)

    _launch([*base, "--max_steps", str(step + 2), "--save_steps", "2", "--resume_from_checkpoint", "true"])
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["resumed_from"] == str(resumed)
    assert (summary["initial_global_step"], summary["global_step"]) == (step, step + 2)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == step + 2
    assert {e["step"] for e in state["log_history"] if "reward" in e} >= {step + 1, step + 2}
    # The checkpoint resumed from is intact, and the new one exists.
    assert all(torch.equal(v, _weights(resumed)[k]) for k, v in weights_at_kill.items())
    assert (out / f"checkpoint-{step + 2}" / "trainer_state.json").is_file()


def test_own_heads_logps_equal_trls_fused_head(tiny_model_path, tokenizer, tmp_path):
    """lm_head_loss=full_logits and chunked (the CPU default) give the policy-gradient the same per-token
    log-probabilities, entropies and gradients as TRL's fused head: temperature-scaled, zero on padding."""
    from datasets import Dataset

    from thinkbudget.models import load_model_and_tokenizer

    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, len(tokenizer), (4, 20), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :3] = 0  # left-padded prompt
    attention_mask[1, -4:] = 0  # a completion that ended early (right padding)
    results = {}
    for choice in ("fused", "full_logits", "chunked"):
        model, tok = load_model_and_tokenizer(tiny_model_path, dtype="float32")
        dataset = Dataset.from_dict({"prompt": ["Q?"] * 2, "answer": ["1"] * 2})
        trainer = _tiny_grpo_trainer(
            model,
            tok,
            tmp_path / choice,
            dataset,
            num_generations=2,
            per_device_train_batch_size=2,
            max_completion_length=8,
            temperature=0.7,
            lm_head_loss=choice,
        )
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, attention_mask, 8, batch_size=3, compute_entropy=True
        )
        logps.sum().backward()
        grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
        results[choice] = (logps.detach(), entropies.detach(), grad)
    l1, e1, g1 = results["fused"]
    for choice in ("full_logits", "chunked"):
        l2, e2, g2 = results[choice]
        assert l1.shape == l2.shape == (4, 8)
        assert (l2[1, -4:] == 0).all() and (l2[0] != 0).all() and (e2[1, -4:] == 0).all(), choice
        assert torch.allclose(l1, l2, atol=1e-5) and torch.allclose(e1, e2, atol=1e-5), choice
        assert torch.allclose(g1, g2, atol=1e-5, rtol=1e-4), choice


def test_lm_head_loss_choices_are_checked(tmp_path):
    from thinkbudget.rl import ThinkGRPOConfig

    with pytest.raises(
        ValueError, match="lm_head_loss: 'chunky'; choose one of auto, fused, full_logits, chunked"
    ):
        ThinkGRPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, lm_head_loss="chunky")


# ------------------------------------------------------------------------------------------------
# Micro-batches grouped by length (length_grouped_micro_batches)
# ------------------------------------------------------------------------------------------------
def _rollout_batch(prompt_lengths, completion_lengths, seed=0):
    """A generation batch as TRL returns it: left-padded prompts, right-padded completions, per-row
    values of each kind (1-D tensor, list, 2-D completion-aligned tensor) and a shared scalar."""
    gen = torch.Generator().manual_seed(seed)
    rows, p_width, c_width = len(prompt_lengths), max(prompt_lengths), max(completion_lengths)
    prompt_mask = torch.tensor([[0] * (p_width - n) + [1] * n for n in prompt_lengths])
    completion_mask = torch.tensor([[1] * n + [0] * (c_width - n) for n in completion_lengths])
    return {
        "prompt_ids": torch.randint(1, 100, (rows, p_width), generator=gen) * prompt_mask,
        "prompt_mask": prompt_mask,
        "completion_ids": torch.randint(1, 100, (rows, c_width), generator=gen) * completion_mask,
        "completion_mask": completion_mask,
        "old_per_token_logps": -torch.rand(rows, c_width, generator=gen) * completion_mask,
        "advantages": torch.randn(rows, generator=gen),
        "row": list(range(rows)),
        "num_items_in_batch": completion_mask.sum(),
        "ref_per_token_logps": None,
    }


def _real_tokens(batch, i):
    """Row i's real prompt and completion tokens and its per-token values, padding dropped."""
    p, c = batch["prompt_mask"][i].bool(), batch["completion_mask"][i].bool()
    return (
        batch["prompt_ids"][i][p].tolist(),
        batch["completion_ids"][i][c].tolist(),
        batch["old_per_token_logps"][i][c].tolist(),
    )


@pytest.mark.parametrize(
    "prompt_lengths, completion_lengths, chunks, widths",
    [
        # two short answers and two long traces: each pair alone, trimmed to its own width
        ([5, 3, 5, 4], [2, 9, 3, 8], 2, [(5, 3), (4, 9)]),
        # one chunk: the whole batch, nothing to trim
        ([2, 4], [6, 1], 1, [(4, 6)]),
        # a chunk of short prompts drops the prompt padding of the long one
        ([7, 2, 2, 7], [1, 1, 2, 5], 2, [(2, 2), (7, 5)]),
    ],
)
def test_length_grouped_micro_batches_cases(prompt_lengths, completion_lengths, chunks, widths):
    from thinkbudget.rl import length_grouped_micro_batches

    batch = _rollout_batch(prompt_lengths, completion_lengths)
    out = length_grouped_micro_batches(batch, chunks)
    assert [(c["prompt_ids"].size(1), c["completion_ids"].size(1)) for c in out] == widths
    for chunk in out:
        assert chunk["num_items_in_batch"] is batch["num_items_in_batch"]  # shared scalar
        assert chunk["ref_per_token_logps"] is None
        for j, i in enumerate(chunk["row"]):
            assert _real_tokens(chunk, j) == _real_tokens(batch, i)
            assert chunk["advantages"][j] == batch["advantages"][i]


@pytest.mark.parametrize("seed", range(25))
def test_length_grouped_micro_batches_fuzz(seed):
    """Every row exactly once, chunks in order of length, and only all-padding columns dropped."""
    import random

    from thinkbudget.rl import length_grouped_micro_batches

    rnd = random.Random(seed)
    chunks = rnd.choice([1, 2, 3, 4])
    rows = chunks * rnd.randint(1, 5)
    prompts = [rnd.randint(1, 12) for _ in range(rows)]
    completions = [rnd.randint(1, 20) for _ in range(rows)]
    batch = _rollout_batch(prompts, completions, seed)
    out = length_grouped_micro_batches(batch, chunks)
    assert len(out) == chunks and all(len(c["row"]) == rows // chunks for c in out)
    assert sorted(i for c in out for i in c["row"]) == list(range(rows))
    totals = [[prompts[i] + completions[i] for i in c["row"]] for c in out]
    assert all(max(a) <= min(b) for a, b in zip(totals, totals[1:]))
    for chunk in out:
        assert chunk["prompt_mask"][:, 0].any() and chunk["completion_mask"][:, -1].any()
        for j, i in enumerate(chunk["row"]):
            assert _real_tokens(chunk, j) == _real_tokens(batch, i)


def test_length_grouped_micro_batches_refuse_an_uneven_split():
    from thinkbudget.rl import length_grouped_micro_batches

    with pytest.raises(ValueError, match="5 rollouts do not split into 2"):
        length_grouped_micro_batches(_rollout_batch([1] * 5, [1] * 5), 2)


def test_grouped_micro_batches_give_trls_gradient(tiny_model_path, tmp_path):
    """The step's gradient, summed over grouped and trimmed micro-batches, equals the gradient over
    TRL's shuffled full-width micro-batches of the same rollouts (the dapo loss's shared normaliser)."""
    from datasets import Dataset
    from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

    from thinkbudget.models import load_model_and_tokenizer
    from thinkbudget.rl import length_grouped_micro_batches

    model, tok = load_model_and_tokenizer(tiny_model_path, dtype="float32")
    dataset = Dataset.from_dict({"prompt": ["Q?"] * 2, "answer": ["1"] * 2})
    trainer = _tiny_grpo_trainer(
        model, tok, tmp_path, dataset, num_generations=2, per_device_train_batch_size=2, loss_type="dapo"
    )
    assert trainer._grouped_micro_batches  # a text model, one generation batch a step: the trainer groups
    batch = _rollout_batch([6, 2, 9, 3, 4, 8], [3, 12, 1, 7, 2, 5], seed=1)
    batch.pop("row")
    batch["old_per_token_logps"] = None
    grads = []
    for chunks in (
        split_tensor_dict(shuffle_sequence_dict(batch), 3),
        length_grouped_micro_batches(batch, 3),
    ):
        trainer.model.zero_grad()
        for chunk in chunks:
            trainer._compute_loss(trainer.model, chunk).backward()
        grads.append(torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]))
    assert grads[0].abs().max() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_cpu_trainers_return_freed_memory_after_each_micro_batch():
    """The CPU callback trims the heap after each micro-batch's backward, before the optimizer step and
    after the step: hooks that transformers' Trainer calls (a misspelt hook would never run)."""
    from transformers import TrainerCallback

    from thinkbudget.hardware import ReleaseFreedMemory, training_callbacks

    calls = []
    callback = ReleaseFreedMemory.callback()
    for hook in ("on_substep_end", "on_pre_optimizer_step", "on_step_end"):
        assert hook in vars(TrainerCallback)
        closure = {c.cell_contents for c in getattr(type(callback), hook).__closure__ or ()}
        (release,) = [c for c in closure if isinstance(c, ReleaseFreedMemory)]
        release._trim = lambda _, hook=hook: calls.append(hook)
        getattr(callback, hook)(None, None, None)
    assert calls == ["on_substep_end", "on_pre_optimizer_step", "on_step_end"]
    from types import SimpleNamespace

    assert len(training_callbacks(SimpleNamespace(use_cpu=True))) == 1
    assert training_callbacks(SimpleNamespace(use_cpu=False)) == []


def test_entropy_is_differentiable_only_under_an_entropy_bonus(tiny_model_path, tmp_path):
    """Without an entropy bonus the logged entropy carries no graph; with one (entropy_coef) it does, and
    both give the same values."""
    from datasets import Dataset

    from thinkbudget.models import load_model_and_tokenizer

    input_ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    attention_mask = torch.ones_like(input_ids)
    values = {}
    for coef in (0.0, 0.01):
        model, tok = load_model_and_tokenizer(tiny_model_path, dtype="float32")
        dataset = Dataset.from_dict({"prompt": ["Q?"] * 2, "answer": ["1"] * 2})
        trainer = _tiny_grpo_trainer(
            model,
            tok,
            tmp_path / str(coef),
            dataset,
            num_generations=2,
            per_device_train_batch_size=2,
            lm_head_loss="full_logits",
            entropy_coef=coef,
        )
        _, entropies, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, attention_mask, 6, compute_entropy=True
        )
        assert entropies.requires_grad == (coef > 0)
        if coef > 0:
            entropies.sum().backward()
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters())
        values[coef] = entropies.detach()
    assert torch.allclose(values[0.0], values[0.01], atol=1e-6)


def test_bf16_rollout_copy_is_made_per_generation_batch_and_dropped(tiny_model_path, tmp_path):
    """On a CPU with bf16, rollouts come from a bf16 copy of the policy's current weights, and the copy is
    gone before the update, so its memory does not sit beside the gradients and AdamW's moments; the
    loss's forward runs under autocast without a cache of cast weights."""
    from datasets import Dataset

    from thinkbudget.models import load_model_and_tokenizer
    from thinkbudget.rewards import get_reward_funcs
    from thinkbudget.rl import ThinkBudgetGRPOTrainer, ThinkGRPOConfig

    model, tok = load_model_and_tokenizer(tiny_model_path, dtype="float32")
    tok.padding_side = "left"
    dataset = Dataset.from_dict({"prompt": ["Q1?", "Q2?"], "answer": ["1", "2"]})
    args = ThinkGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=True,
        report_to="none",
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=4,
        max_steps=1,
    )
    trainer = ThinkBudgetGRPOTrainer(
        model=model,
        reward_funcs=get_reward_funcs(["correctness"], tok),
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )
    copies = []
    real = trainer._rollout_copy

    def recording(m):
        copy = real(m)
        copies.append((copy, {k: v.clone() for k, v in copy.state_dict().items()}))
        return copy

    trainer._rollout_copy = recording
    policy = trainer.accelerator.unwrap_model(trainer.model_wrapped)
    for step in range(2):
        with torch.no_grad():
            policy.model.norm.weight.add_(0.5)  # the policy moves between generation batches
        trainer._generate(["Q1?", "Q2?"])
        copy, weights = copies[-1]
        assert trainer._bf16_rollout_model is None  # dropped before the update
        assert all(v.dtype == torch.bfloat16 for v in weights.values())
        for name, value in policy.state_dict().items():
            assert torch.equal(weights[name], value.to(torch.bfloat16)), (step, name)
    assert copies[0][0] is not copies[1][0]

    # The loss's forward runs in bf16 autocast without a cache of cast weights (CPU).
    seen = []
    policy.model.layers[0].register_forward_hook(
        lambda *_: seen.append((torch.is_autocast_enabled("cpu"), torch.is_autocast_cache_enabled()))
    )
    ids = torch.randint(0, 100, (2, 6))
    trainer._get_per_token_logps_and_entropies(trainer.model, ids, torch.ones_like(ids), 3)
    assert seen and all(s == (True, False) for s in seen), seen


_HOLES = """
import sys, torch
from thinkbudget.hardware import map_large_allocations
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) // 1024
if sys.argv[1] == "1":
    assert map_large_allocations(1)
first = torch.ones(1 << 20)
del first  # a freed 4 MB block: glibc raises its threshold to it
blocks = [torch.ones(1 << 20) for _ in range(100)]  # 100 x 4 MB, touched
before = rss()
del blocks[::2]  # every other block freed: holes between live blocks
print(before - rss())
"""


@pytest.mark.parametrize(("threshold", "returned"), [("0", False), ("1", True)])
def test_mapped_large_allocations_return_freed_memory(threshold, returned):
    """cpu_mmap_threshold_mb: freed blocks between live ones go back to the system at once; with glibc's
    default they stay in its heap as holes (the fragmentation that raised the GRPO stage's peak)."""
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", _HOLES, threshold], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    freed_mb = int(out.stdout.split()[-1])
    assert (freed_mb > 150) if returned else (freed_mb < 50), freed_mb  # 200 MB freed


def test_mmap_threshold_is_checked(tmp_path):
    from thinkbudget.rl import ThinkGRPOConfig

    with pytest.raises(ValueError, match=r"cpu_mmap_threshold_mb: megabytes in \[0, 32\].*got 64"):
        ThinkGRPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, cpu_mmap_threshold_mb=64)
