"""The one parser: literal cases, text/ids agreement, and fuzzing (it must never raise)."""

from __future__ import annotations

import random

import pytest

from thinkbudget.parsing import get_parser, parse_completion

CASES = [
    # text, thinking, answer, opened, closed, extra, boxed
    ("<think>\nstep\n</think>\n\nso \\boxed{5}", "step", "so \\boxed{5}", True, True, False, "5"),
    ("<think>\n\n</think>\n\n\\boxed{5}", "", "\\boxed{5}", True, True, False, "5"),
    ("\\boxed{5}", "", "\\boxed{5}", False, False, False, "5"),  # no-think answer after the pre-fill
    ("<think>\nnever closed", "never closed", "", True, False, False, None),
    (
        "reasoning without open tag</think>\\boxed{1}",
        "reasoning without open tag",
        "\\boxed{1}",
        False,
        True,
        False,
        "1",
    ),
    ("<think>a</think>b</think>c", "a", "b</think>c", True, True, True, None),
    (
        "<think>a<think>b</think>\\boxed{2} trailing",
        "a<think>b",
        "\\boxed{2} trailing",
        True,
        True,
        False,
        "2",
    ),
    (
        "<think>x</think>ans<think>more</think>\\boxed{3}",
        "x",
        "ans<think>more</think>\\boxed{3}",
        True,
        True,
        True,
        "3",
    ),
    ("  \n<think>x</think>\\boxed{4}", "x", "\\boxed{4}", True, True, False, "4"),
    ("", "", "", False, False, False, None),
    ("<think></think>", "", "", True, True, False, None),
    ("<think>t</think>\\boxed{7}<|im_end|>garbage after eos", "t", "\\boxed{7}", True, True, False, "7"),
]


@pytest.mark.parametrize("text,thinking,answer,opened,closed,extra,boxed", CASES)
def test_literal_cases(tokenizer, text, thinking, answer, opened, closed, extra, boxed):
    p = parse_completion(text, tokenizer)
    assert (p.thinking, p.answer) == (thinking, answer)
    assert (p.think_opened, p.think_closed, p.extra_think_tags, p.boxed_answer) == (
        opened,
        closed,
        extra,
        boxed,
    )
    assert (p.thinking_tokens == 0) == (not thinking)
    # The same completion as generated token ids parses to the same split and counts.
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    q = parse_completion(ids + [tokenizer.pad_token_id] * 3, tokenizer)
    assert (q.thinking, q.answer, q.think_opened, q.think_closed) == (thinking, answer, opened, closed)
    assert q.thinking_tokens == p.thinking_tokens and q.answer_tokens == p.answer_tokens


def test_counts_are_tokens_not_characters(tokenizer):
    word = " supercalifragilistic"
    p = parse_completion(f"<think>{word * 10}</think>ok", tokenizer)
    assert p.thinking_tokens == len(tokenizer(word * 10, add_special_tokens=False)["input_ids"])
    assert p.thinking_tokens < len(word * 10)


def test_empty_block_is_zero_and_within_budget(tokenizer):
    p = parse_completion("<think>\n\n</think>\n\nhi", tokenizer)
    assert p.thinking_tokens == 0 and p.no_think_compliant
    assert p.within_budget(1)


@pytest.mark.parametrize("n_words,budget,within", [(5, 100, True), (50, 50, None), (200, 50, False)])
def test_within_budget_below_at_and_past(tokenizer, n_words, budget, within):
    thinking = " ".join(["step"] * n_words)
    parser = get_parser(tokenizer)
    n = parser.thinking_token_count(thinking)
    p = parse_completion(f"<think>{thinking}</think>\\boxed{{1}}", tokenizer)
    assert p.thinking_tokens == n
    assert p.within_budget(budget) == (n <= budget)
    if within is not None:
        assert p.within_budget(budget) is within
    # Exactly at the budget is within; one past is not.
    assert p.within_budget(n) and not p.within_budget(n - 1)


def test_unclosed_never_within_budget(tokenizer):
    p = parse_completion("<think>short", tokenizer)
    assert not p.within_budget(10_000) and p.within_budget(None)


def test_reasoning_after_close_is_counted_as_answer(tokenizer):
    hidden = "Let me compute: 12*4=48, 48+2=50. " * 20
    p = parse_completion(f"<think>ok</think>{hidden}\\boxed{{50}}", tokenizer)
    assert p.thinking_tokens == 1
    assert p.answer_tokens > 200


def test_huge_input(tokenizer):
    p = parse_completion("<think>" + "a " * 200_000 + "</think>\\boxed{1}", tokenizer)
    assert p.thinking_tokens >= 200_000 and p.boxed_answer == "1"


def test_fuzz_text_never_raises(tokenizer):
    rng = random.Random(1234)
    alphabet = [
        "<think>",
        "</think>",
        "\\boxed{",
        "}",
        "{",
        "\n",
        " ",
        "x",
        "7",
        "<|im_end|>",
        "é",
        "\x00",
        "\\",
    ]
    for _ in range(500):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
        p = parse_completion(text, tokenizer)
        assert p.thinking_tokens >= 0 and p.answer_tokens >= 0
        assert p.total_tokens == p.thinking_tokens + p.answer_tokens
        if not p.think_closed and p.think_opened:
            assert p.answer == ""


def test_fuzz_ids_never_raise(tokenizer):
    rng = random.Random(99)
    vocab = len(tokenizer)
    special = tokenizer.convert_tokens_to_ids(["<think>", "</think>"])
    for _ in range(300):
        ids = [rng.choice([rng.randrange(vocab), *special, -1, vocab + 5]) for _ in range(rng.randint(0, 60))]
        p = parse_completion(ids, tokenizer)
        assert p.thinking_tokens <= len(ids) and p.answer_tokens <= len(ids)
