"""Rewards: literal completions below, at and past the budget, malformed ones, pickling and fuzzing.

Completions are written as text and tokenized to the exact ids the trainer would hand over (plus the
end-of-turn token), so every length below is a token count from the shared parser.
"""

from __future__ import annotations

import math
import pickle
import random

import pytest

from thinkbudget.parsing import parse_completion
from thinkbudget.protocol import EMPTY_THINK_BLOCK, build_messages, render_prompt
from thinkbudget.rewards import (
    REWARDS,
    RewardParams,
    check_reward_names,
    completion_stats,
    get_reward_funcs,
)

B = 10
PARAMS = RewardParams(
    length_alpha=0.05, l1_delta=0.5, answer_cap=16, soft_punish_cache_ratio=0.25, cosine_max_len=20
)
ANSWER = "The answer is \\boxed{5}."  # 9 tokens


def thinking(n: int) -> str:
    """A think block with exactly ``n`` thinking tokens (two newlines + n-2 words), n >= 3."""
    return "<think>\n" + " ".join(["step"] * (n - 2)) + "\n</think>\n\n"


@pytest.fixture(scope="module")
def rewards(tokenizer):
    return {f.__name__: f for f in get_reward_funcs(list(REWARDS), tokenizer, PARAMS)}


@pytest.fixture(scope="module")
def prompts(tokenizer):
    q = build_messages("What is 2 + 3?")
    return {
        "budget": render_prompt(tokenizer, q, thinking_budget=B),
        "free": render_prompt(tokenizer, q),
        "no_think": render_prompt(tokenizer, q, enable_thinking=False),  # pre-filled empty block
        "no_think_flag": render_prompt(tokenizer, build_messages("What is 2 + 3?", flag="no_think")),
    }


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def score(
    rewards, tokenizer, prompts, completion, *, kind="budget", gold="5", budget=B, mode="think", **extra
):
    kwargs = dict(answer=[gold], budget=[budget], mode=[mode], task=["gsm8k"], meta=["{}"], **extra)
    out = {}
    for name, f in rewards.items():
        (out[name],) = f(
            prompts=[prompts[kind]],
            completions=[completion],
            completion_ids=[ids_of(tokenizer, completion)],
            **kwargs,
        )
    return out


def test_thinking_helper_is_exact(tokenizer):
    for n in (3, 6, 10, 14, 40):
        parsed = parse_completion(ids_of(tokenizer, thinking(n) + ANSWER), tokenizer)
        assert (parsed.thinking_tokens, parsed.answer_tokens, parsed.think_closed) == (n, 9, True)


cos = math.cos
# (case, completion, expected values); B = 10, alpha = 0.05, delta = 0.5, cache = ceil(0.25 * 10) = 3.
TABLE = [
    (
        "below budget, correct",
        thinking(6) + ANSWER,
        dict(
            correctness=1,
            format=1,
            mode_compliance=1,
            l1_exact=-0.2,
            l1_max=0.7,
            budget_cutoff=1,
            soft_overlong=0.0,
            cosine=0.5 + 0.25 * (1 + cos(0.6 * math.pi)),
            answer_length=0.0,
        ),
    ),
    (
        "inside the soft ramp",
        thinking(8) + ANSWER,
        dict(l1_exact=-0.1, l1_max=0.6, budget_cutoff=1, soft_overlong=-1 / 3),
    ),
    (
        "exactly at budget",
        thinking(10) + ANSWER,
        dict(correctness=1, l1_exact=0.0, l1_max=0.5, budget_cutoff=1, soft_overlong=-1.0, cosine=0.5),
    ),
    (
        "past budget",
        thinking(14) + ANSWER,
        dict(
            correctness=1,
            format=1,
            l1_exact=-0.2,
            l1_max=0.3,
            budget_cutoff=0,
            soft_overlong=-1.0,
            cosine=-1.0,
        ),
    ),
    (
        "far past budget (l1_exact unclamped, as in LCPO)",
        thinking(40) + ANSWER,
        dict(l1_exact=-1.5, l1_max=0.0, budget_cutoff=0, soft_overlong=-1.0, cosine=-1.0),
    ),
    (
        "wrong answer below budget",
        thinking(6) + "The answer is \\boxed{7}.",
        dict(
            correctness=0,
            format=1,
            l1_max=0.0,
            budget_cutoff=0,
            l1_exact=-0.2,
            cosine=-0.5 - 0.25 * (1 + cos(0.6 * math.pi)),
        ),
    ),
    (
        "unclosed think (cut off)",
        "<think>\n" + "step " * 30,
        dict(
            correctness=0,
            format=0,
            mode_compliance=0,
            l1_exact=-0.05 * (32 - B),  # its real length: 32 thinking tokens ("\n", 30 words, " ")
            l1_max=0.0,
            budget_cutoff=0,
            soft_overlong=-1.0,
            cosine=-1.0,
            answer_length=0.0,
        ),
    ),
    (
        "missing boxed (math-verify still reads the answer)",
        thinking(6) + "The answer is 5.",
        dict(correctness=1, format=0, l1_max=0.7),
    ),
    (
        "two boxed answers",
        thinking(6) + "\\boxed{4} or \\boxed{5}",
        dict(format=0, correctness=1),
    ),
    (
        "extra think block after the answer",
        thinking(6) + "<think>more</think> " + ANSWER,
        dict(format=0),
    ),
    (
        "no think block at all in a think row",
        ANSWER,
        dict(correctness=1, format=0, mode_compliance=0, l1_max=0.5 + 0.05 * B, budget_cutoff=1),
    ),
    (
        "reasoning moved after </think> (answer 9 + 15 = 24 tokens, cap 16: n_eff = 6 + 8)",
        thinking(6) + " ".join(["step"] * 15) + " " + ANSWER,
        dict(
            correctness=1, l1_exact=-0.2, l1_max=0.3, budget_cutoff=0, soft_overlong=-1.0, answer_length=-0.5
        ),
    ),
]


@pytest.mark.parametrize("case,completion,expected", TABLE, ids=[t[0] for t in TABLE])
def test_table_think_rows_with_budget(rewards, tokenizer, prompts, case, completion, expected):
    got = score(rewards, tokenizer, prompts, completion)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), f"{case}: {name}"


def test_answer_overflow_counts_tokens(tokenizer):
    text = thinking(6) + " ".join(["step"] * 15) + " " + ANSWER
    assert parse_completion(ids_of(tokenizer, text), tokenizer).answer_tokens == 24


def test_no_think_rows(rewards, tokenizer, prompts):
    # Pre-filled empty block: the completion is just the answer.
    got = score(rewards, tokenizer, prompts, ANSWER, kind="no_think", budget=None, mode="no_think")
    assert (got["correctness"], got["format"], got["mode_compliance"]) == (1, 1, 1)
    for name in ("l1_exact", "l1_max", "budget_cutoff", "soft_overlong", "group_length", "cosine"):
        assert got[name] is None, name
    assert got["answer_length"] == 0
    # Flag /no_think: the model must write the empty block itself.
    got = score(
        rewards,
        tokenizer,
        prompts,
        EMPTY_THINK_BLOCK + ANSWER,
        kind="no_think_flag",
        budget=None,
        mode="no_think",
    )
    assert (got["format"], got["mode_compliance"]) == (1, 1)
    # Thinking in a no-think row breaks mode compliance, whichever way thinking was switched off.
    got = score(
        rewards, tokenizer, prompts, thinking(6) + ANSWER, kind="no_think_flag", budget=None, mode="no_think"
    )
    assert (got["correctness"], got["format"], got["mode_compliance"]) == (1, 1, 0)
    got = score(
        rewards,
        tokenizer,
        prompts,
        "step step\n</think>\n\n" + ANSWER,
        kind="no_think",
        budget=None,
        mode="no_think",
    )
    assert (got["format"], got["mode_compliance"]) == (0, 0)
    # The pre-filled block must not be re-opened either.
    got = score(
        rewards, tokenizer, prompts, thinking(6) + ANSWER, kind="no_think", budget=None, mode="no_think"
    )
    assert (got["format"], got["mode_compliance"]) == (0, 0)


def test_think_rows_without_budget(rewards, tokenizer, prompts):
    got = score(rewards, tokenizer, prompts, thinking(10) + ANSWER, kind="free", budget=None)
    for name in ("l1_exact", "l1_max", "budget_cutoff", "soft_overlong"):
        assert got[name] is None, name
    assert (got["correctness"], got["format"], got["mode_compliance"]) == (1, 1, 1)
    # cosine falls back to cosine_max_len = 20 tokens: progress 0.5
    assert got["cosine"] == pytest.approx(0.5 + 0.25 * (1 + cos(0.5 * math.pi)))


def test_extra_keyword_arguments_are_ignored(rewards, tokenizer, prompts):
    plain = score(rewards, tokenizer, prompts, thinking(8) + ANSWER)
    noisy = score(
        rewards,
        tokenizer,
        prompts,
        thinking(8) + ANSWER,
        trainer_state=object(),
        log_extra=lambda *a: None,
        log_metric=lambda *a: None,
        question=["?"],
        id=["x"],
    )
    assert plain == noisy


def test_missing_gold_and_odd_budget_values(rewards, tokenizer, prompts):
    got = score(rewards, tokenizer, prompts, thinking(6) + ANSWER, gold=None)
    assert got["correctness"] is None and got["l1_max"] is None and got["budget_cutoff"] is None
    assert got["format"] == 1  # gold-free rewards still apply
    for odd in (float("nan"), 0, -5, "x", True):
        got = score(rewards, tokenizer, prompts, thinking(6) + ANSWER, budget=odd)
        assert got["l1_max"] is None, odd
    got = score(rewards, tokenizer, prompts, thinking(6) + ANSWER, budget="10")
    assert got["l1_max"] == pytest.approx(0.7)


def test_mode_inferred_from_prompt_when_column_missing(rewards, tokenizer, prompts):
    f = rewards["mode_compliance"]
    text = thinking(6) + ANSWER
    kw = dict(
        prompts=[prompts["no_think"], prompts["no_think_flag"], prompts["budget"]], completions=[text] * 3
    )
    ids = [ids_of(tokenizer, text)] * 3
    assert f(completion_ids=ids, answer=["5"] * 3, **kw) == [0.0, 0.0, 1.0]


def test_group_length_is_relative_within_each_prompt(rewards, tokenizer):
    f = rewards["group_length"]
    p1, p2 = "prompt one", "prompt two"
    completions = [
        thinking(4) + ANSWER,  # shortest, correct -> 0.5
        thinking(8) + ANSWER,  # correct -> 0.5 - 4/9
        thinking(12) + "\\boxed{7}",  # wrong -> min(0, 0.5 - 8/9)
        "<think>\n" + "step " * 20,  # unclosed: wrong, its real length (22) is the longest -> -0.5
        thinking(6) + ANSWER,  # group of two equal lengths -> 0
        thinking(6) + "\\boxed{9}",
    ]
    got = f(
        prompts=[p1, p1, p1, p1, p2, p2],
        completions=completions,
        completion_ids=[ids_of(tokenizer, c) for c in completions],
        answer=["5"] * 6,
        budget=[None] * 6,
        mode=["think"] * 6,
    )
    assert got == pytest.approx([0.5, 0.5 - 4 / 18, min(0.0, 0.5 - 8 / 18), -0.5, 0.0, 0.0])


def test_rewards_pickle_and_keep_their_names(rewards, tokenizer, prompts):
    text = thinking(8) + ANSWER
    for name, f in rewards.items():
        clone = pickle.loads(pickle.dumps(f))
        assert clone.__name__ == name
        kw = dict(answer=["5"], budget=[B], mode=["think"])
        ids = [ids_of(tokenizer, text)]
        assert clone(prompts=[prompts["budget"]], completions=[text], completion_ids=ids, **kw) == f(
            prompts=[prompts["budget"]], completions=[text], completion_ids=ids, **kw
        )


def test_unknown_names_and_bad_parameters():
    with pytest.raises(ValueError, match="valid names: correctness, format"):
        check_reward_names(["correctness", "lenght"])
    with pytest.raises(ValueError, match="twice"):
        check_reward_names(["format", "format"])
    for field, value in [
        ("length_alpha", 0.0),
        ("length_alpha", -1.0),
        ("l1_delta", 2.0),
        ("answer_cap", 0),
        ("soft_punish_cache_ratio", 0.0),
        ("cosine_max_len", 0),
    ]:
        with pytest.raises(ValueError, match=field):
            RewardParams(**{field: value}).validate()


def think(trace: str, answer: str = "57") -> str:
    return f"<think>\n{trace}\n</think>\n\n\\boxed{{{answer}}}"


# (case, completion, target_lines, expected): the trace the data stage would train, by shape.
GRANULARITY = [
    ("full trace, its target", think("47 + 8 = 55\n+ 2 = 57"), 2, 1.0),
    ("full trace, a coarser target", think("47 + 8 = 55\n+ 2 = 57"), 1, 0.0),
    ("full trace, the result alone was the target", think("47 + 8 = 55\n+ 2 = 57"), 0, 0.0),
    ("coarser trace, its target", think("47 + 8 + 2 = 57"), 1, 1.0),
    ("a wrong line at the target's shape", think("47 + 8 = 54\n+ 2 = 56", "56"), 2, 0.0),
    ("prose lines are not counted", think("Add the first two.\n47 + 8 = 55\nThen 2.\n+ 2 = 57"), 2, 1.0),
    ("the result alone, its target", think("= 57"), 0, 1.0),
    ("the result alone, a finer target", think("= 57"), 2, 0.0),
    ("an empty think block is not the result", "<think>\n\n</think>\n\n\\boxed{57}", 0, 0.0),
    ("unclosed at the target's shape", "<think>\n47 + 8 = 55\n+ 2 = 57", 2, 0.0),
    ("a wrong answer does not matter here", think("47 + 8 = 55\n+ 2 = 57", "3"), 2, 1.0),
    ("no target: thinking-off row or no traces", think("47 + 8 = 55\n+ 2 = 57"), None, None),
    ("a NaN target (a column read by pandas)", think("= 57"), float("nan"), None),
]


@pytest.mark.parametrize("case,completion,target,expected", GRANULARITY, ids=[t[0] for t in GRANULARITY])
def test_granularity_table(rewards, tokenizer, prompts, case, completion, target, expected):
    for kind, budget in (("budget", B), ("free", None)):  # the budget is in the target, not in the rule
        got = score(rewards, tokenizer, prompts, completion, kind=kind, budget=budget, target_lines=[target])
        assert got["granularity"] == expected, (case, kind)
    # Thinking-off rows have no granularity, whatever the column says.
    got = score(
        rewards, tokenizer, prompts, "57", kind="no_think", budget=None, mode="no_think", target_lines=[0]
    )
    assert got["granularity"] is None


def test_completion_stats(tokenizer, prompts):
    texts = [thinking(6) + ANSWER, thinking(14) + ANSWER, ANSWER]
    stats = completion_stats(
        [ids_of(tokenizer, t) for t in texts],
        tokenizer,
        prompts=[prompts["budget"], prompts["budget"], prompts["no_think"]],
        answer=["5", "4", "5"],
        budget=[B, B, None],
        mode=["think", "think", "no_think"],
    )
    assert [s["thinking_tokens"] for s in stats] == [6, 14, 0]
    assert [s["within_budget"] for s in stats] == [True, False, None]
    assert [s["correct"] for s in stats] == [True, False, True]
    assert [s["no_think_compliant"] for s in stats] == [None, None, True]
    assert [s["at_target"] for s in stats] == [None, None, None]  # no target_lines column
    stats = completion_stats(
        [ids_of(tokenizer, think("47 + 8 = 55\n+ 2 = 57")), ids_of(tokenizer, think("= 57"))],
        tokenizer,
        prompts=[prompts["budget"]] * 2,
        answer=["57", "57"],
        budget=[B, B],
        mode=["think", "think"],
        target_lines=[2, 2],
    )
    assert [s["at_target"] for s in stats] == [1.0, 0.0]


def _bounds(f):
    return f.bounds


def test_fuzz_random_token_ids_and_strings(rewards, tokenizer, prompts):
    rng = random.Random(0)
    special = [tokenizer.convert_tokens_to_ids(t) for t in ("<think>", "</think>")] + [tokenizer.eos_token_id]
    vocab = len(tokenizer)
    batch_ids, batch_text = [], []
    for _ in range(60):
        ids = [
            rng.choice(special) if rng.random() < 0.2 else rng.randrange(-5, vocab + 50)
            for _ in range(rng.randrange(0, 60))
        ]
        batch_ids.append(ids)
        batch_text.append("")
    batch_ids += [[2**70, -1], [], [special[0]] * 5]  # ids no tokenizer has, empty, unclosed tags only
    batch_text += ["", "", ""]
    alphabet = list("ab 12\n{}\\$") + ["<think>", "</think>", "\\boxed{", "<|im_end|>"]
    for _ in range(40):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        batch_ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        batch_text.append(text)
    n = len(batch_ids)
    kinds = list(prompts.values()) + [None, 42]
    kw = dict(
        prompts=[rng.choice(kinds) for _ in range(n)],
        completions=batch_text,
        completion_ids=batch_ids,
        answer=[rng.choice(["5", "1/2", "", None, "x^2"]) for _ in range(n)],
        budget=[rng.choice([None, 1, 5, 10, 300, float("nan"), -3]) for _ in range(n)],
        mode=[rng.choice(["think", "no_think", None, "bogus"]) for _ in range(n)],
        task=[rng.choice(["gsm8k", None, "rg/leg_counting"]) for _ in range(n)],
        meta=[rng.choice(["{}", None, "not json", {"a": 1}]) for _ in range(n)],
        target_lines=[rng.choice([None, 0, 2, 7, -1, float("nan"), "3", "x"]) for _ in range(n)],
    )
    for name, f in rewards.items():
        values = f(**kw)
        lo, hi = _bounds(f)
        assert len(values) == n, name
        for v in values:
            assert v is None or (lo <= v <= hi and math.isfinite(v)), (name, v)
    # Text-only calls (no ids) never raise either.
    for name, f in rewards.items():
        values = f(prompts=kw["prompts"], completions=batch_text, answer=kw["answer"], budget=kw["budget"])
        assert len(values) == n, name


def test_correctness_unbudgeted_pays_only_where_no_budget_is_stated(rewards, tokenizer, prompts):
    """Right past the budget earns what wrong does (None: budget_cutoff alone pays budgeted rows); free
    thinking and thinking off are paid as by ``correctness``."""
    f = {"correctness_unbudgeted": rewards["correctness_unbudgeted"], "correctness": rewards["correctness"]}
    cases = [
        # (completion, kind, budget, mode, gold, expected correctness_unbudgeted, expected correctness)
        (thinking(6) + ANSWER, "budget", B, "think", "5", None, 1.0),  # within the budget
        (thinking(14) + ANSWER, "budget", B, "think", "5", None, 1.0),  # past it
        (thinking(6) + ANSWER, "free", None, "think", "5", 1.0, 1.0),
        (thinking(6) + ANSWER, "free", None, "think", "6", 0.0, 0.0),
        (ANSWER, "no_think", None, "no_think", "5", 1.0, 1.0),
        (ANSWER, "no_think", None, "no_think", "4", 0.0, 0.0),
        (thinking(6) + ANSWER, "free", None, "think", None, None, None),  # no gold
    ]
    for completion, kind, budget, mode, gold, want, want_plain in cases:
        got = score(f, tokenizer, prompts, completion, kind=kind, gold=gold, budget=budget, mode=mode)
        assert (got["correctness_unbudgeted"], got["correctness"]) == (want, want_plain), (kind, budget, gold)
