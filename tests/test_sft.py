"""The SFT stage end to end on the tiny model: training changes the weights (think-token rows too),
the output is a plain checkpoint with our chat template, the loss mask is exactly the completion,
recipes parse, bad input fails before a model loads, a killed run resumes, and LoRA keeps the think
tokens trainable and merges into a plain checkpoint."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thinkbudget.sft import _first_supervised_position

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "sft" / "smoke.yaml"
SCRIPT = ROOT / "train" / "sft.py"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def _entry():
    """train/sft.py as a module (its main() does not run on import)."""
    spec = importlib.util.spec_from_file_location("train_sft_entry", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(
    args: list[str], launcher: list[str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    cmd = [*(launcher or [sys.executable]), str(SCRIPT), *args]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def _embedding(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return state["model.embed_tokens.weight"]


@pytest.fixture(scope="module")
def smoke_out(tmp_path_factory, smoke_data) -> Path:
    """One smoke run through `accelerate launch` on CPU (6 steps, checkpoints at 3 and 6), shared below."""
    out = tmp_path_factory.mktemp("sft") / "smoke"
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu"]
    args = ["--config", str(SMOKE), "--dataset_path", smoke_data, "--output_dir", str(out)]
    proc = _run(args, launcher=accelerate)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out


@pytest.mark.slow
def test_smoke_changes_parameters_and_think_rows(smoke_out, tiny_model_path, tokenizer):
    before = load_file(Path(tiny_model_path) / "model.safetensors")
    after = load_file(smoke_out / "model.safetensors")
    assert set(after) == set(before)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before), f"unchanged tensors: {sorted(set(before) - set(changed))}"
    ids = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    delta = (_embedding(after)[ids] - _embedding(before)[ids]).abs().sum(dim=1)
    assert (delta > 0).all(), f"think-token rows did not change: {delta}"
    summary = json.loads((smoke_out / "run_summary.json").read_text())
    assert summary["global_step"] == 6 and summary["resumed_from"] is None
    assert summary["think_token_ids"] == ids
    assert summary["train_tokens_this_session"] > 0 and summary["train_runtime_s"] > 0
    assert {"script", "training", "model"} <= set(summary["config"])
    assert sorted(p.name for p in smoke_out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]


@pytest.mark.slow
def test_smoke_output_loads_in_plain_transformers(smoke_out):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smoke_out)
    tok = AutoTokenizer.from_pretrained(smoke_out)
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    off = tok.apply_chat_template(msgs, enable_thinking=False, add_generation_prompt=True, tokenize=False)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    on = tok.apply_chat_template(msgs, add_generation_prompt=True, thinking_budget=64, tokenize=False)
    assert on.endswith("<|im_start|>assistant\n") and "Think for at most 64 tokens." in on
    assert len(tok("<think>", add_special_tokens=False)["input_ids"]) == 1
    assert tok.eos_token == "<|im_end|>"
    ids = tok(off, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3


def _mask_rows(tokenizer):
    """One row of each kind whose prompt/completion boundary differs: thinking off by template kwargs (the
    prompt ends with the pre-filled `</think>\\n\\n`), /no_think flag, and thinking under a budget."""
    from thinkbudget.data import RowPlan, answer_text, render_row_prompt
    from thinkbudget.protocol import format_response

    answer = answer_text("42")
    plans = [
        (RowPlan("no_think", "kwargs", None), answer),
        (RowPlan("no_think", "flag", None), format_response(None, answer)),
        (RowPlan("think", "kwargs", 64), format_response("6 * 7 = 42", answer)),
        (RowPlan("think", "flag", None), format_response("6 * 7 = 42", answer) + "<|im_end|>"),  # eos given
    ]
    return [{"prompt": render_row_prompt(tokenizer, "What is 6 * 7?", p), "completion": c} for p, c in plans]


@pytest.mark.slow
def test_loss_mask_is_exactly_the_completion_and_one_eos(tokenizer, tiny_model, tmp_path):
    from datasets import Dataset
    from trl import SFTTrainer

    from thinkbudget.sft import ThinkSFTConfig, tokenize_dataset

    rows = _mask_rows(tokenizer)
    # The boundary case that motivates separate tokenization: joined, BPE re-merges the prompt's last "\n\n".
    hard_off = rows[0]
    joined = tokenizer(hard_off["prompt"] + hard_off["completion"])["input_ids"]
    assert (
        joined[: len(tokenizer(hard_off["prompt"])["input_ids"])]
        != tokenizer(hard_off["prompt"])["input_ids"]
    )

    args = ThinkSFTConfig(
        output_dir=str(tmp_path), report_to="none", bf16=False, use_cpu=True, max_length=512
    )
    dataset = tokenize_dataset(Dataset.from_list(rows), tokenizer)
    trainer = SFTTrainer(model=tiny_model, args=args, train_dataset=dataset, processing_class=tokenizer)
    processed = {tuple(r["input_ids"]): r["labels"] for r in trainer.train_dataset}
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert len(processed) == len(rows)
    for row in rows:
        prompt_ids = tokenizer(row["prompt"])["input_ids"]  # what generation sees at inference
        body = row["completion"].removesuffix("<|im_end|>")
        completion_ids = tokenizer(body + "<|im_end|>", add_special_tokens=False)["input_ids"]
        input_ids = prompt_ids + completion_ids
        labels = processed[tuple(input_ids)]
        assert labels[: len(prompt_ids)] == [-100] * len(prompt_ids)
        assert labels[len(prompt_ids) :] == completion_ids
        assert labels[-1] == eos and completion_ids.count(eos) == 1
        assert tokenizer.decode(labels[len(prompt_ids) :]) == body + "<|im_end|>"

    # The collator pads with the pad token (== eos here) but with label -100: still one supervised eos per row.
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    assert ((batch["labels"] == eos).sum(dim=1) == 1).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_tokenize_row_refuses_eos_inside_the_completion(tokenizer):
    from thinkbudget.sft import tokenize_row

    with pytest.raises(ValueError, match="end-of-turn"):
        tokenize_row("<|im_start|>assistant\n", "a<|im_end|>b", tokenizer)


@pytest.mark.parametrize(
    "path", sorted(glob.glob(str(ROOT / "configs" / "sft" / "*.yaml"))), ids=os.path.basename
)
def test_every_sft_recipe_parses(path, tmp_path):
    import yaml

    from thinkbudget.models import MODEL_ALIASES
    from thinkbudget.run_folders import parse_config

    # bf16 recipes are GPU recipes; the parser refuses bf16 without a GPU, so check them with it off here.
    extra = [] if torch.cuda.is_available() else ["--bf16", "false"]
    if "dataset_path" in yaml.safe_load(Path(path).read_text()):  # a prepared mix: stand in a folder
        extra += ["--dataset_path", str(tmp_path)]
    script, training, model = parse_config(_entry().CONFIG_CLASSES, ["--config", path, *extra])
    script.validate()
    assert training.completion_only_loss is True and training.eos_token == "<|im_end|>"
    assert training.output_dir and not training.packing
    assert model.model_name_or_path in MODEL_ALIASES or Path(model.model_name_or_path).exists()


SMOKE_DATA = ["--config", str(SMOKE), "--dataset_path", "{data}"]
BAD_INPUTS = {
    "unknown_yaml_key": (["--config", "{bad_yaml}", "--dataset_path", "{data}"], "learning_rat"),
    # The mix is the data stage's: a trainer refuses its fields.
    "mix_field": ([*SMOKE_DATA, "--budgets", "32", "64"], "budgets"),
    "missing_dataset": (
        ["--config", str(SMOKE), "--dataset_path", "{tmp}/nodata"],
        "not a folder; prepare it first:\n  python data/prepare.py --config configs/data/<mix>.yaml",
    ),
    "no_dataset_path": (["--config", str(SMOKE), "--dataset_path", ""], "dataset_path: required"),
    "occupied_output_dir": ([*SMOKE_DATA, "--output_dir", "{smoke_out}"], "overwrite_output_dir"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_before_a_model_loads(case, smoke_out, smoke_data, tmp_path, capfd):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text(SMOKE.read_text() + "learning_rat: 1.0e-4\n")
    args, field = BAD_INPUTS[case]
    args = [a.format(bad_yaml=bad_yaml, smoke_out=smoke_out, data=smoke_data, tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as exc:
        _entry().cli(args)
    assert exc.value.code not in (0, None)
    assert field in str(exc.value.code)
    assert "Loading weights" not in "".join(capfd.readouterr()), "a model was loaded before failing"


@pytest.mark.slow
def test_bad_input_exit_code_on_the_command_line(tmp_path):
    proc = _run(["--config", str(SMOKE), "--dataset_path", str(tmp_path / "nodata")])
    assert proc.returncode != 0
    assert "python data/prepare.py" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
def test_resume_continues_past_the_checkpoint(smoke_out, smoke_data, tmp_path):
    # A run killed after step 3 leaves exactly this on disk: its checkpoint-3 in the output folder.
    out = tmp_path / "resumed"
    shutil.copytree(smoke_out / "checkpoint-3", out / "checkpoint-3")
    args = ["--config", str(SMOKE), "--dataset_path", smoke_data, "--output_dir", str(out)]
    proc = _run([*args, "--resume_from_checkpoint", "true"])
    assert proc.returncode == 0, proc.stderr[-5000:]
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-3")
    assert summary["global_step"] == 6
    full = json.loads((smoke_out / "run_summary.json").read_text())["train_tokens_this_session"]
    at_3 = json.loads((smoke_out / "checkpoint-3" / "trainer_state.json").read_text())[
        "num_input_tokens_seen"
    ]
    assert 0 < at_3 < full and summary["train_tokens_this_session"] == full - at_3
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps == [1, 2, 3, 4, 5, 6]  # 1-3 restored from the checkpoint, 4-6 trained after resuming
    # Same data order and optimizer state: the resumed run ends where the uninterrupted one did.
    a, b = load_file(smoke_out / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.mark.slow
def test_lora_trains_think_tokens_and_saves_merged_model(tmp_path, tiny_model_path, tokenizer, smoke_data):
    from transformers import AutoModelForCausalLM

    from thinkbudget.run_folders import parse_config

    entry = _entry()
    out = tmp_path / "lora"
    args = ["--config", str(SMOKE), "--dataset_path", smoke_data, "--output_dir", str(out)]
    args += ["--use_peft", "true", "--lora_r", "4"]
    args += ["--max_steps", "2", "--save_steps", "100", "--learning_rate", "1e-2"]
    summary = entry.main(*parse_config(entry.CONFIG_CLASSES, args))
    assert summary["peft"] is True and summary["global_step"] == 2
    assert (out / "adapter" / "adapter_config.json").is_file()
    before = load_file(Path(tiny_model_path) / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert set(after) == set(before), "the merged checkpoint must hold plain weights only"
    ids = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    emb_before, emb_after = _embedding(before), _embedding(after)
    assert ((emb_after[ids] - emb_before[ids]).abs().sum(dim=1) > 0).all(), "think-token rows did not train"
    others = torch.ones(emb_before.shape[0], dtype=torch.bool)
    others[ids] = False
    assert torch.equal(emb_after[others], emb_before[others]), "LoRA must leave the other rows frozen"
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(after[q], before[q]), "the LoRA delta was not merged into q_proj"
    assert torch.equal(
        after["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"]
    )
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_lora_think_rows_get_gradient_from_being_predicted(tiny_model, tokenizer):
    """With a tied head, the think rows must learn from the *output* side too (being predicted), through
    TRL's fused LM head and PEFT's trainable-tokens wrapper (see expose_output_head_bias)."""
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from thinkbudget.sft import SFTModelConfig, expose_output_head_bias, lora_config

    ids = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    add_fused_lm_head(tiny_model, outputs=("log_probs",))  # as SFTTrainer does
    model = get_peft_model(tiny_model, lora_config(SFTModelConfig(use_peft=True, lora_r=4), tokenizer))
    expose_output_head_bias(model)
    inputs = torch.tensor([[1, 2, 3, 4]])  # no think token in the input: only the head can give a gradient
    labels = torch.tensor([[-100, -100, -100, ids[0]]])
    out = model(input_ids=inputs, labels=labels, fused_lm_head=True)
    (-out.log_probs.sum()).backward()
    grads = [p.grad for n, p in model.named_parameters() if "trainable_tokens_delta" in n]
    assert len(grads) == 1 and grads[0].shape[0] == 2
    assert grads[0][0].abs().sum() > 0, "<think> row got no gradient from being the target"


def test_resolve_resume(tmp_path):
    from thinkbudget.run_folders import resolve_resume

    for fresh in (None, "", "false", "None", "no"):
        assert resolve_resume(fresh, str(tmp_path)) is None
    with pytest.raises(SystemExit, match="no complete checkpoint-N folder"):
        resolve_resume("true", str(tmp_path))
    with pytest.raises(SystemExit, match="not a complete checkpoint folder"):
        resolve_resume(str(tmp_path), str(tmp_path))
    for step in (2, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert resolve_resume("true", str(tmp_path)) == str(tmp_path / "checkpoint-10")  # numeric, not lexical
    assert resolve_resume("last", str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert resolve_resume(str(tmp_path / "checkpoint-2"), "elsewhere") == str(tmp_path / "checkpoint-2")


@pytest.mark.parametrize("num_items", [None, 7])
def test_own_losses_equal_trls_fused_loss_and_gradient(tokenizer, tiny_model_path, tmp_path, num_items):
    """lm_head_loss=full_logits and chunked (the CPU default) optimise exactly what TRL's fused head does:
    same loss, same gradient, same token accuracy, on a padded batch of real rows."""
    from datasets import Dataset

    from thinkbudget.models import load_model_and_tokenizer
    from thinkbudget.sft import ThinkBudgetSFTTrainer, ThinkSFTConfig, tokenize_dataset

    dataset = tokenize_dataset(Dataset.from_list(_mask_rows(tokenizer)), tokenizer)
    results = {}
    for choice in ("fused", "full_logits", "chunked"):
        model, _ = load_model_and_tokenizer(tiny_model_path, dtype="float32")
        args = ThinkSFTConfig(
            output_dir=str(tmp_path / choice), report_to="none", bf16=False, use_cpu=True, lm_head_loss=choice
        )
        trainer = ThinkBudgetSFTTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer
        )
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(dataset))])
        assert (batch["attention_mask"] == 0).any()  # padding is part of the case
        assert _first_supervised_position(batch["labels"]) > 0  # the head skips the shared prompt part
        assert trainer._head_keeps_logits  # ... through the model's own logits_to_keep
        trainer.model.train()
        loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=num_items)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
        results[choice] = (loss.item(), grad, trainer._metrics["train"]["mean_token_accuracy"][-1])
    l1, g1, a1 = results["fused"]
    for choice in ("full_logits", "chunked"):
        l2, g2, a2 = results[choice]
        assert l1 == pytest.approx(l2, rel=1e-5), choice
        assert torch.allclose(g1, g2, atol=1e-6, rtol=1e-4), choice
        assert a1 == pytest.approx(a2), choice


@pytest.mark.parametrize(
    ("labels", "first"),
    [
        ([[-100, -100, 5, 6]], 1),  # logits at 1 predict the token at 2
        ([[-100, -100, -100, 6], [-100, 4, 5, -100]], 0),  # the earliest row decides
        ([[-100, -100, -100, -100]], 0),  # nothing supervised
        ([[1, 2, 3]], 0),
    ],
)
def test_first_supervised_position(labels, first):
    assert _first_supervised_position(torch.tensor(labels)) == first


def test_lm_head_loss_choices_are_checked(tmp_path):
    from thinkbudget.sft import ThinkSFTConfig

    with pytest.raises(
        ValueError, match="lm_head_loss: 'chunky'; choose one of auto, fused, full_logits, chunked"
    ):
        ThinkSFTConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, lm_head_loss="chunky")


def test_length_grouped_batches_are_shuffled_not_a_long_to_short_loop():
    """Batches of similar length (a slice of the sorted order), the longest first, the rest in random
    order: no stretch of training sees only the short rows (transformers sorts 50 batches long to short)."""
    from thinkbudget.sft import LengthBatchShuffledSampler, length_grouped_batches

    lengths = [(i * 37) % 101 for i in range(400)]
    idx = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(0))
    assert sorted(idx) == list(range(400))
    batches = [idx[i : i + 16] for i in range(0, 400, 16)]
    assert max(lengths[i] for i in batches[0]) == max(lengths)
    by_max = sorted(batches, key=lambda b: -max(lengths[i] for i in b))
    for b, c in zip(by_max, by_max[1:]):  # each batch is a contiguous run of the sorted lengths
        assert min(lengths[i] for i in b) >= max(lengths[i] for i in c)
    maxima = [max(lengths[i] for i in b) for b in batches[1:]]
    assert maxima != sorted(maxima, reverse=True)  # not long to short
    half = len(maxima) // 2  # both halves of training see long and short batches
    assert max(maxima[:half]) > 80 > min(maxima[:half]) and max(maxima[half:]) > 80 > min(maxima[half:])
    assert idx == length_grouped_batches(lengths, 16, torch.Generator().manual_seed(0))
    sampler = LengthBatchShuffledSampler(lengths, 16, torch.Generator().manual_seed(1))
    assert len(sampler) == 400 and sorted(sampler) == list(range(400))


@pytest.mark.parametrize("choice", ["full_logits", "chunked"])
def test_own_losses_run_under_the_trainers_mixed_precision(choice, tokenizer, tiny_model_path, tmp_path):
    """With bf16 the decoder's layers and the head run under autocast in a real training step on both
    paths: the chunked path calls the decoder directly, past accelerate's autocast wrapper of the forward,
    and must enter it itself (an fp32 step is ~2x slower on a CPU). On a CPU autocast keeps no cache of
    cast weights (thinkbudget.hardware.autocast_without_weight_cache)."""
    from datasets import Dataset

    from thinkbudget.models import load_model_and_tokenizer
    from thinkbudget.sft import ThinkBudgetSFTTrainer, ThinkSFTConfig, tokenize_dataset

    dataset = tokenize_dataset(Dataset.from_list(_mask_rows(tokenizer)), tokenizer)
    model, _ = load_model_and_tokenizer(tiny_model_path, dtype="float32")
    seen = []
    cached = []

    def record(*_):
        seen.append(torch.is_autocast_enabled("cpu"))
        cached.append(torch.is_autocast_cache_enabled())

    model.model.layers[0].register_forward_hook(record)
    model.lm_head.register_forward_hook(record)
    args = ThinkSFTConfig(
        output_dir=str(tmp_path),
        report_to="none",
        bf16=True,
        use_cpu=True,
        lm_head_loss=choice,
        max_steps=1,
        per_device_train_batch_size=len(dataset),
        save_strategy="no",
    )
    trainer = ThinkBudgetSFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    assert seen and all(seen), seen
    assert not any(cached), cached  # no bf16 weight copies kept through the forward on a CPU
