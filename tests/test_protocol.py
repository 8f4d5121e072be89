"""Pinned chat-template renderings: the saved template is the user-facing contract."""

from __future__ import annotations

import random

import pytest

from thinkbudget.protocol import (
    AUTO_SENTENCE,
    EMPTY_THINK_BLOCK,
    budget_sentence,
    build_messages,
    format_response,
    last_flag,
    parse_budget_from_prompt,
    render_prompt,
    thinking_enabled,
    thinking_mode,
    validate_budget,
    validate_enable_thinking,
)

SYS = "<|im_start|>system\nYou are a helpful assistant. Put your final answer in \\boxed{}."
USER = "<|im_end|>\n<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
Q = build_messages("What is 2+3?")

PINNED = [
    ({}, SYS + USER),
    ({"enable_thinking": True}, SYS + USER),
    ({"enable_thinking": False}, SYS + USER + "<think>\n\n</think>\n\n"),
    ({"thinking_budget": 64}, SYS + "\nThink for at most 64 tokens." + USER),
    # Thinking off wins over a budget: the budget is not stated.
    ({"enable_thinking": False, "thinking_budget": 64}, SYS + USER + "<think>\n\n</think>\n\n"),
    # Auto mode: the fixed sentence, then the budget where one is given; nothing pre-filled.
    ({"enable_thinking": "auto"}, SYS + "\nThink only if the problem needs it." + USER),
    (
        {"enable_thinking": "auto", "thinking_budget": 64},
        SYS + "\nThink only if the problem needs it.\nThink for at most 64 tokens." + USER,
    ),
]


@pytest.mark.parametrize("kwargs,expected", PINNED)
def test_pinned_renderings_with_template_kwargs(tokenizer, kwargs, expected):
    assert render_prompt(tokenizer, Q, **kwargs) == expected
    # Plain transformers (what any user of a checkpoint calls) renders the same text.
    assert tokenizer.apply_chat_template(Q, tokenize=False, add_generation_prompt=True, **kwargs) == expected


def test_no_think_flag_renders_without_prefill(tokenizer):
    msgs = build_messages("What is 2+3?", flag="no_think")
    expected = SYS + USER.replace("2+3?", "2+3? /no_think")
    # Soft switch: the model itself must write the empty block, and no budget is stated.
    assert render_prompt(tokenizer, msgs, thinking_budget=64) == expected


def test_think_flag_keeps_budget(tokenizer):
    msgs = build_messages("What is 2+3?", flag="think")
    out = render_prompt(tokenizer, msgs, thinking_budget=32)
    assert "Think for at most 32 tokens." in out and out.endswith("<|im_start|>assistant\n")


def test_hard_switch_overrides_think_flag(tokenizer):
    msgs = build_messages("What is 2+3?", flag="think")
    assert render_prompt(tokenizer, msgs, enable_thinking=False).endswith(EMPTY_THINK_BLOCK)


def test_custom_system_message_carries_budget(tokenizer):
    msgs = build_messages("Q", system="Be brief.")
    out = render_prompt(tokenizer, msgs, thinking_budget=16)
    assert out.startswith("<|im_start|>system\nBe brief.\nThink for at most 16 tokens.<|im_end|>")


@pytest.mark.parametrize(
    "messages,flag",
    [
        ([{"role": "user", "content": "hi"}], None),
        ([{"role": "user", "content": "hi /no_think"}], "no_think"),
        ([{"role": "user", "content": "/no_think hi /think"}], "think"),
        ([{"role": "system", "content": "/think"}, {"role": "user", "content": "hi /no_think"}], "no_think"),
        ([{"role": "system", "content": "/no_think"}, {"role": "user", "content": "hi"}], "no_think"),
        # Flags in assistant turns do not count.
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "/no_think"}], None),
    ],
)
def test_last_flag_wins_and_template_agrees(tokenizer, messages, flag):
    assert last_flag(messages) == flag
    rendered = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, thinking_budget=8
    )
    assert ("Think for at most 8 tokens." in rendered) == thinking_enabled(messages)


def test_flags_fuzz_python_mirror_matches_template(tokenizer):
    rng = random.Random(0)
    pieces = ["/think", "/no_think", "hello", " ", "/thinking", "no_think", "/", "x"]
    for _ in range(200):
        msgs = [
            {
                "role": rng.choice(["system", "user", "assistant"]),
                "content": "".join(rng.choices(pieces, k=4)),
            }
            for _ in range(rng.randint(1, 3))
        ]
        rendered = tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=True, thinking_budget=5
        )
        assert ("Think for at most 5 tokens." in rendered) == thinking_enabled(msgs), msgs


def test_assistant_turn_and_generation_markers(tokenizer):
    msgs = Q + [{"role": "assistant", "content": format_response("2+3=5", "\\boxed{5}")}]
    out = tokenizer.apply_chat_template(msgs, tokenize=False)
    assert out.endswith("<|im_start|>assistant\n<think>\n2+3=5\n</think>\n\n\\boxed{5}<|im_end|>\n")
    enc = tokenizer.apply_chat_template(
        msgs, tokenize=True, return_assistant_tokens_mask=True, return_dict=True
    )
    mask = enc["assistant_masks"]
    supervised = tokenizer.decode([t for t, m in zip(enc["input_ids"], mask) if m])
    assert supervised == "<think>\n2+3=5\n</think>\n\n\\boxed{5}<|im_end|>"


@pytest.mark.parametrize(
    "thinking,expected",
    [
        ("a\nb", "<think>\na\nb\n</think>\n\nANS"),
        ("  padded  ", "<think>\npadded\n</think>\n\nANS"),
        (None, "<think>\n\n</think>\n\nANS"),
        ("   ", "<think>\n\n</think>\n\nANS"),
    ],
)
def test_format_response(thinking, expected):
    assert format_response(thinking, "ANS") == expected


@pytest.mark.parametrize("bad", [0, -1, 1.5, "abc", None, True, "-3"])
def test_validate_budget_rejects(bad):
    with pytest.raises(ValueError, match="thinking_budget"):
        validate_budget(bad)


def test_budget_sentence_round_trip():
    for b in (1, 32, 4096):
        assert parse_budget_from_prompt("x " + budget_sentence(b) + " y") == b
    assert parse_budget_from_prompt("no budget here") is None
    assert parse_budget_from_prompt(budget_sentence(8) + budget_sentence(16)) == 16
    with pytest.raises(ValueError):
        render_prompt(None, Q, thinking_budget=-5)


# --------------------------------------------------------------------------------------------
# Auto mode: the model decides whether to think
# --------------------------------------------------------------------------------------------
AUTO_CASES = [
    # (enable_thinking, user text, expected mode)
    (True, "hi", "think"),
    (False, "hi", "no_think"),
    ("auto", "hi", "auto"),
    (True, "hi /auto_think", "auto"),
    ("auto", "hi /think", "think"),  # a flag overrides the keyword's soft default
    ("auto", "hi /no_think", "no_think"),
    (False, "hi /auto_think", "no_think"),  # the hard switch beats every flag
    (True, "/auto_think hi /no_think", "no_think"),  # the last flag wins
    (True, "/no_think hi /auto_think", "auto"),
    (True, "hi/auto_think", "think"),  # a flag is a whole word
    (True, "hi /auto_think.", "think"),
]


@pytest.mark.parametrize("enable,text,mode", AUTO_CASES)
def test_auto_mode_table_python_mirror_matches_template(tokenizer, enable, text, mode):
    messages = build_messages(text)
    assert thinking_mode(messages, enable) == mode
    assert thinking_enabled(messages, enable) == (mode != "no_think")
    rendered = render_prompt(tokenizer, messages, enable_thinking=enable, thinking_budget=8)
    assert (AUTO_SENTENCE in rendered) == (mode == "auto")
    assert ("Think for at most 8 tokens." in rendered) == (mode != "no_think")
    assert rendered.endswith("<think>\n\n</think>\n\n") == (enable is False)


def test_auto_flag_fuzz_python_mirror_matches_template(tokenizer):
    rng = random.Random(1)
    pieces = ["/think", "/no_think", "/auto_think", "hello", " ", "/auto", "auto_think", "/", "x"]
    for _ in range(300):
        msgs = [
            {
                "role": rng.choice(["system", "user", "assistant"]),
                "content": "".join(rng.choices(pieces, k=4)),
            }
            for _ in range(rng.randint(1, 3))
        ]
        enable = rng.choice([True, False, "auto"])
        rendered = tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=True, enable_thinking=enable, thinking_budget=5
        )
        mode = thinking_mode(msgs, enable)
        assert (AUTO_SENTENCE in rendered) == (mode == "auto"), (msgs, enable)
        assert ("Think for at most 5 tokens." in rendered) == (mode != "no_think"), (msgs, enable)


@pytest.mark.parametrize("value", ["on", "true", "Auto", 1, 0, None, "no_think"])
def test_enable_thinking_values_are_checked(tokenizer, value):
    with pytest.raises(ValueError, match="enable_thinking must be True, False or 'auto'"):
        validate_enable_thinking(value)
    with pytest.raises(ValueError, match="enable_thinking must be True, False or 'auto'"):
        render_prompt(tokenizer, Q, enable_thinking=value)


def test_auto_flag_in_build_messages_and_bad_flag():
    assert build_messages("Q", flag="auto_think")[-1]["content"] == "Q /auto_think"
    with pytest.raises(ValueError, match="'auto_think'"):
        build_messages("Q", flag="auto")
