"""Auto mode in GRPO (thinkbudget.decision): the forced decision tokens, the branch plan of a group, the
no_think_bonus reward and auto rows in the rewards, and the trainer's AdaptThink sampling on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from thinkbudget import decision
from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN, build_messages, render_prompt
from thinkbudget.rewards import completion_stats, get_reward_funcs


def test_decision_tokens_of_the_real_tokenizer(tokenizer):
    tokens = decision.decision_tokens(tokenizer)
    assert tokens.position == 1  # <think> is one token, then "\n\n" (empty block) or "\n" (a trace)
    assert tokenizer.decode(tokens.prefix("no_think")) == f"{THINK_OPEN}\n\n"
    assert tokenizer.decode(tokens.prefix("think")) == f"{THINK_OPEN}\n"
    # They are the tokens the model writes: the start of the empty block and of a trace, as encoded whole.
    empty = tokenizer.encode(f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n#### 5", add_special_tokens=False)
    trace = tokenizer.encode(f"{THINK_OPEN}\n3 + 4 = 7\n{THINK_CLOSE}", add_special_tokens=False)
    assert empty[:2] == tokens.prefix("no_think") and trace[:2] == tokens.prefix("think")
    with pytest.raises(ValueError, match="branch must be one of"):
        tokens.prefix("auto")


class _MergingTokenizer:
    """A tokenizer that writes the newline and the first digit as one token (one id per string piece)."""

    pieces = [THINK_OPEN, "\n\n", THINK_CLOSE, "\n1"]

    def encode(self, text, add_special_tokens=False):
        ids, rest = [], text
        while rest:
            i = next(i for i, p in enumerate(self.pieces) if rest.startswith(p))
            ids.append(i)
            rest = rest[len(self.pieces[i]) :]
        return ids

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


def test_decision_tokens_refuse_a_tokenizer_that_merges_the_trace_start():
    with pytest.raises(ValueError, match="auto_decision_sampling: false"):
        decision.decision_tokens(_MergingTokenizer())


@pytest.mark.parametrize(
    "modes, prompts, expected",
    [
        (["auto"] * 4, ["a"] * 4, ["no_think", "think", "no_think", "think"]),
        (["auto"] * 4, ["a", "a", "b", "b"], ["no_think", "think", "no_think", "think"]),
        (["think", "auto", "auto", "no_think"], ["a", "b", "b", "c"], [None, "no_think", "think", None]),
        (["auto", "think", "auto"], ["a", "a", "a"], ["no_think", None, "no_think"]),  # a run restarts
        (["auto"] * 3, ["a"] * 3, ["no_think", "think", "no_think"]),
        ([], [], []),
    ],
)
def test_plan_branches_splits_each_group_in_halves(modes, prompts, expected):
    assert decision.plan_branches(modes, prompts) == expected


@pytest.mark.parametrize("p_empty, expected", [(1.0, 0.0), (0.5, 0.5), (0.25, 0.75), (1e-9, 1.0)])
def test_p_think_reads_the_forced_empty_block(p_empty, expected):
    assert decision.p_think(math.log(p_empty)) == pytest.approx(expected, abs=1e-6)


def _ids(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_no_think_bonus_and_auto_rows_in_the_rewards(tokenizer):
    auto_prompt = render_prompt(
        tokenizer, build_messages("What is 3 + 4?"), enable_thinking="auto", thinking_budget=16
    )
    texts = [
        f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\nThe answer is \\boxed{{7}}",  # auto, no thinking, right
        f"{THINK_OPEN}\n3 + 4 = 7\n{THINK_CLOSE}\n\nThe answer is \\boxed{{7}}",  # auto, thinks, right
        f"{THINK_OPEN}\n3 + 4 = 7 and 1 + 1 = 2 and 2 + 2 = 4 and 5 + 5 = 10\n{THINK_CLOSE}\n\n\\boxed{{7}}",
        f"{THINK_OPEN}\n3 + 4 = 7\n{THINK_CLOSE}\n\n\\boxed{{7}}",  # a think row: no bonus either way
    ]
    ids = [_ids(tokenizer, t) for t in texts]
    columns = {
        "answer": ["7"] * 4,
        "budget": [16, 16, 16, None],
        "mode": ["auto", "auto", None, "think"],  # the third is auto by its prompt's sentence
        "task": ["chain"] * 4,
    }
    prompts = [auto_prompt] * 3 + [render_prompt(tokenizer, build_messages("What is 3 + 4?"))]
    bonus, compliance, cutoff = get_reward_funcs(
        ["no_think_bonus", "mode_compliance", "budget_cutoff"], tokenizer
    )
    assert bonus(prompts, None, ids, **columns) == [1.0, 0.0, 0.0, None]
    # Each auto row is judged as the mode it chose: the empty block complies as thinking off; the budget
    # applies where it thinks (the long trace is over its 16 tokens), and a right answer without thinking
    # is right within the budget (so that a right answer pays the same whichever mode gave it).
    assert compliance(prompts, None, ids, **columns) == [1.0, 1.0, 1.0, 1.0]
    assert cutoff(prompts, None, ids, **columns) == [1.0, 1.0, 0.0, None]
    stats = completion_stats(ids, tokenizer, prompts=prompts, **columns)
    assert [(s["auto"], s["mode"]) for s in stats] == [
        (True, "no_think"),
        (True, "think"),
        (True, "think"),
        (False, "think"),
    ]
    from thinkbudget.rl import rollout_metrics

    names = [n for n, _ in rollout_metrics(stats[:3])]
    assert names.count("thinkbudget/auto/thinks") == 3
    assert "thinkbudget/no_think/compliance" not in names and not any("budget_16" in n for n in names)
    assert dict(rollout_metrics(stats[2:3]))["thinkbudget/auto/within_budget_when_thinking"] == 0.0


def _auto_dataset(tok, n_auto=2):
    from datasets import Dataset

    prompts = [
        render_prompt(tok, build_messages(f"What is {i} + 1?"), enable_thinking="auto") for i in range(n_auto)
    ]
    prompts.append(render_prompt(tok, build_messages("What is 9 + 1?")))
    n = len(prompts)
    return Dataset.from_dict(
        {
            "prompt": prompts,
            "answer": [str(i + 1) for i in range(n_auto)] + ["10"],
            "budget": [None] * n,
            "mode": ["auto"] * n_auto + ["think"],
            "task": ["chain"] * n,
            "full_trace_tokens": [10, 100, 40][:n],
        }
    )


def _trainer(model_path, tmp_path, dataset, reward_funcs=None, **config):
    from thinkbudget.models import load_model_and_tokenizer
    from thinkbudget.rl import ThinkBudgetGRPOTrainer, ThinkGRPOConfig

    model, tok = load_model_and_tokenizer(model_path, dtype="float32")
    tok.padding_side = "left"
    args = ThinkGRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        **{"max_completion_length": 12, **config},
    )
    return ThinkBudgetGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs or get_reward_funcs(["correctness", "no_think_bonus"], tok),
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )


@pytest.mark.parametrize("backend", ["hf", "cached"])
def test_trainer_forces_half_of_each_auto_group_and_weights_the_decision(
    backend, tiny_model_path, tokenizer, tmp_path
):
    dataset = _auto_dataset(tokenizer)
    trainer = _trainer(
        tiny_model_path, tmp_path, dataset, num_generations=4, per_device_train_batch_size=12, max_steps=1
    )
    trainer.args.rollout_backend = backend
    tokens = decision.decision_tokens(tokenizer)
    rows = [dict(dataset[i]) for i in range(3) for _ in range(4)]  # three groups of four, as TRL batches them
    trainer.model.eval()  # evaluation samples the decision on-policy: nothing forced
    assert "decision_branch" not in trainer._generate_and_score_completions(rows)
    trainer.model.train()  # as inside trainer.train()
    torch.manual_seed(0)
    out = trainer._generate_and_score_completions(rows)
    assert out["decision_branch"].tolist() == [0, 1, 0, 1] * 2 + [-1] * 4
    assert out["decision_bin"].tolist() == [0] * 4 + [3] * 4 + [2] * 4  # 10 / 100 / 40 tokens (edges 16..128)
    for ids, mask, b in zip(out["completion_ids"], out["completion_mask"], out["decision_branch"].tolist()):
        ids = ids[mask.bool()].tolist()
        assert len(ids) <= 12  # the forced tokens count in max_completion_length
        if b >= 0:
            assert ids[:2] == tokens.prefix(decision.BRANCHES[b])
    # The loss's forward sets the decision token's old log-probability to log 1/2 (AdaptThink's pi_IS):
    # PPO's ratio there is pi/0.5; every other token keeps ratio 1.
    trainer.current_gradient_accumulation_steps = 1  # set by trainer.train()
    loss = trainer._compute_loss(trainer.model, out)
    assert torch.isfinite(loss)
    old = out["old_per_token_logps"]
    forced = out["decision_branch"] >= 0
    assert torch.all(old[forced, 1] == decision.IS_LOGP)
    assert not torch.any(old[~forced, 1] == decision.IS_LOGP)
    p = trainer._metrics["train"]["auto/p_think"]
    assert len(p) == 1 and 0.0 <= p[0] <= 1.0
    assert set(trainer._metrics["train"]) >= {"auto/p_think/le16", "auto/p_think/le128"}
    # With the option off, the same rows sample the decision on-policy and carry no decision columns.
    trainer.auto_decision_sampling = False
    plain = trainer._generate_and_score_completions(rows)
    assert "decision_branch" not in plain and "old_per_token_logps" not in plain


def test_a_step_on_auto_rows_trains_with_both_modes_in_every_group(varied_model_path, tokenizer, tmp_path):
    # A reward that pays the empty block (the decision token alone): the forced halves give every group
    # both values, so the step has an advantage to follow (on-policy, a random model never writes "\n\n"
    # after <think> and every group would tie).
    def pays_no_think(completion_ids=None, **kwargs):
        return [float(ids[1] == no_think_token) for ids in completion_ids]

    no_think_token = decision.decision_tokens(tokenizer).no_think[-1]
    dataset = _auto_dataset(tokenizer, n_auto=2).select([0, 1])
    trainer = _trainer(
        varied_model_path,
        tmp_path,
        dataset,
        reward_funcs=[pays_no_think],
        num_generations=4,
        per_device_train_batch_size=8,
        max_steps=1,
        learning_rate=1e-4,
    )
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.named_parameters())
    logged = [e for e in trainer.state.log_history if "auto/p_think" in e]
    assert logged and 0.0 <= logged[0]["auto/p_think"] <= 1.0 and logged[0]["grad_norm"] > 0
    assert logged[0]["rewards/pays_no_think/mean"] == pytest.approx(0.5)  # exactly half forced off


def test_check_auto_rows(tokenizer):
    from thinkbudget.rl import check_auto_rows

    dataset = _auto_dataset(tokenizer)
    check_auto_rows(dataset, True, 8, False, ["correctness", "no_think_bonus"])
    check_auto_rows(dataset.select([2]), True, 3, True, ["correctness"])  # no auto rows: nothing to check
    with pytest.raises(ValueError, match="num_generations: .* must be even, got 3"):
        check_auto_rows(dataset, True, 3, False, ["no_think_bonus"])
    with pytest.raises(ValueError, match="use_vllm: false"):
        check_auto_rows(dataset, True, 8, True, ["no_think_bonus"])
    check_auto_rows(dataset, False, 3, True, ["no_think_bonus"])  # on-policy sampling: any group size


@pytest.mark.parametrize("budget", [16, 32, None])
def test_a_right_answer_pays_the_same_in_either_mode_but_for_delta(tokenizer, budget):
    """AdaptThink's rule, on the CPU proof's GRPO rewards plus no_think_bonus at delta = 0.05: in an auto
    group, answering without thinking earns exactly delta more than a trace within the stated budget
    (0.85 B, where the proof's ramp starts) when both are right, and when both are wrong; so the decision
    moves on accuracy and delta alone."""
    import yaml

    from thinkbudget.rewards import RewardParams
    from thinkbudget.run_folders import REPO_ROOT

    rl = yaml.safe_load((REPO_ROOT / "configs/pipeline/cpu-proof.yaml").read_text())["rl"]["overrides"]
    names, weights = [*rl["reward_funcs"], "no_think_bonus"], [*rl["reward_weights"], 0.05]
    params = RewardParams(soft_punish_cache_ratio=rl["soft_punish_cache_ratio"])
    funcs = get_reward_funcs(names, tokenizer, params)
    prompt = render_prompt(
        tokenizer, build_messages("What is 3 + 4?"), enable_thinking="auto", thinking_budget=budget
    )

    def total(text: str) -> float:
        cols = {"answer": ["7"], "budget": [budget], "mode": ["auto"], "task": ["chain"]}
        values = [f([prompt], None, [_ids(tokenizer, text)], **cols)[0] for f in funcs]
        return sum(w * v for w, v in zip(weights, values) if v is not None)

    trace = "3 + 4 = 7"
    for answer in ("7", "8"):  # right, wrong
        direct = total(f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\nThe answer is \\boxed{{{answer}}}.")
        think = total(f"{THINK_OPEN}\n{trace}\n{THINK_CLOSE}\n\nThe answer is \\boxed{{{answer}}}.")
        assert direct - think == pytest.approx(0.05), (answer, direct, think)
