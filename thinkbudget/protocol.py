"""The thinking-control protocol: one definition shared by SFT, GRPO and evaluation.

A response is ``<think>`` reasoning ``</think>`` answer, with the final answer in ``\\boxed{}``.
Thinking is switched by prompt, two ways that agree:

(a) chat-template keyword arguments, rendered by the *saved* chat template so that plain
    ``tokenizer.apply_chat_template(msgs, enable_thinking=False, thinking_budget=64)`` works for any
    user of a checkpoint (transformers, vLLM):
      - ``enable_thinking`` (bool, default True). False is a *hard* switch: the generation prompt is
        pre-filled with an empty think block, exactly as Qwen3 does.
      - ``thinking_budget`` (int tokens or None). Stated in the system message in one fixed phrasing
        (:data:`BUDGET_TEMPLATE`); ignored when thinking is off.
(b) the text flags ``/think`` and ``/no_think`` in a system or user message (Qwen3's soft switch; the
    last flag wins). A flag is a whole whitespace-separated word: ``see example.com/no_thinking`` or
    ``a/think`` in a question switches nothing. With ``/no_think`` the model itself writes the empty think block; nothing is
    pre-filled, which is what lets evaluation measure no-think compliance "with only the flag".

**Auto mode** leaves the decision to the model: ``enable_thinking="auto"`` (a soft default, as True is:
a later ``/think`` or ``/no_think`` flag overrides it) or the text flag ``/auto_think`` (the last flag wins,
as for the other two). The system message then states :data:`AUTO_SENTENCE`, nothing is pre-filled, and
the model opens its answer with either the empty think block (it decided not to think) or a trace.
``thinking_budget`` combines with it: the budget holds where the model thinks. ``enable_thinking=False``
stays the hard switch that beats every flag, and renderings without auto are unchanged. (thinkbudget's
stages install this template whenever they load a tokenizer; a checkpoint saved before auto mode, loaded
by plain transformers, renders auto as thinking on: its template ignores the keyword and the flag.)

The budget counts thinking tokens only (between the tags); the answer is counted separately by
:mod:`thinkbudget.parsing`, so reasoning cannot hide after ``</think>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
THINK_FLAG = "/think"
NO_THINK_FLAG = "/no_think"
AUTO_THINK_FLAG = "/auto_think"
FLAGS = (THINK_FLAG, NO_THINK_FLAG, AUTO_THINK_FLAG)
AUTO = "auto"
# The values of the enable_thinking keyword: on, the hard off switch, and auto (the model decides).
ENABLE_THINKING_VALUES = (True, False, AUTO)
# What the template pre-fills with enable_thinking=False, and what a no-think answer starts with.
EMPTY_THINK_BLOCK = f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n"
# The answer cap (tokens after </think>): beyond it an answer counts as reasoning moved past the think
# block. GRPO charges those tokens as thinking (RewardParams.answer_cap) and evaluation flags them
# (EvalArguments.answer_cap, ``reasoning_after_think``): one name, one value. SFT answers are ~12 tokens.
ANSWER_CAP = 32
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Put your final answer in \\boxed{}."
# The one fixed phrasing of a budget. The budget-forcing logits processor reads budgets back out of
# rendered prompts with BUDGET_PATTERN, so this sentence is the single source of truth.
BUDGET_TEMPLATE = "Think for at most {budget} tokens."
BUDGET_PATTERN = re.compile(r"Think for at most (\d+) tokens\.")
# The one fixed phrasing of auto mode, stated in the system message (before a budget, if any).
AUTO_SENTENCE = "Think only if the problem needs it."

# ChatML (SmolLM2, Qwen2/3) with the thinking controls. Kept readable on purpose: this string is
# what ships inside every checkpoint we save. `{% generation %}` marks assistant tokens so TRL's
# `assistant_only_loss` also works on conversational data.
CHAT_TEMPLATE = r"""{%- set ns = namespace(think=true, hard_off=false, flag='') -%}
{%- if enable_thinking is defined and enable_thinking is false -%}{%- set ns.hard_off = true -%}{%- endif -%}
{%- if enable_thinking is defined and enable_thinking is string and enable_thinking == 'auto' -%}{%- set ns.flag = 'auto_think' -%}{%- endif -%}
{%- for m in messages -%}
{%- if m['role'] in ['system', 'user'] and m['content'] is string -%}
{%- for w in m['content'].split() -%}
{%- if w == '/think' -%}{%- set ns.flag = 'think' -%}{%- elif w == '/no_think' -%}{%- set ns.flag = 'no_think' -%}{%- elif w == '/auto_think' -%}{%- set ns.flag = 'auto_think' -%}{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endfor -%}
{%- if ns.hard_off or ns.flag == 'no_think' -%}{%- set ns.think = false -%}{%- endif -%}
{%- set budget_line = '' -%}
{%- if ns.think and thinking_budget is defined and thinking_budget is not none -%}
{%- set budget_line = '@BUDGET_PREFIX@' ~ thinking_budget ~ '@BUDGET_SUFFIX@' -%}
{%- endif -%}
{%- if messages[0]['role'] == 'system' -%}
{%- set system = messages[0]['content'] -%}{%- set rest = messages[1:] -%}
{%- else -%}
{%- set system = '@DEFAULT_SYSTEM@' -%}{%- set rest = messages -%}
{%- endif -%}
{%- if ns.think and ns.flag == 'auto_think' -%}{%- set system = system ~ '\n' ~ '@AUTO_SENTENCE@' -%}{%- endif -%}
{%- if budget_line -%}{%- set system = system ~ '\n' ~ budget_line -%}{%- endif -%}
{{- '<|im_start|>system\n' ~ system ~ '<|im_end|>\n' -}}
{%- for m in rest -%}
{%- if m['role'] == 'assistant' -%}
{{- '<|im_start|>assistant\n' -}}{%- generation -%}{{- m['content'] ~ '<|im_end|>' -}}{%- endgeneration -%}{{- '\n' -}}
{%- else -%}
{{- '<|im_start|>' ~ m['role'] ~ '\n' ~ m['content'] ~ '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- if ns.hard_off -%}{{- '<think>\n\n</think>\n\n' -}}{%- endif -%}
{%- endif -%}"""
# Fill the template from the constants above so the phrasing is written once (Jinja string literals
# need backslashes doubled).
_prefix, _suffix = BUDGET_TEMPLATE.split("{budget}")
CHAT_TEMPLATE = (
    CHAT_TEMPLATE.replace("@BUDGET_PREFIX@", _prefix)
    .replace("@BUDGET_SUFFIX@", _suffix)
    .replace("@DEFAULT_SYSTEM@", DEFAULT_SYSTEM_PROMPT.replace("\\", "\\\\"))
    .replace("@AUTO_SENTENCE@", AUTO_SENTENCE)
)


def budget_sentence(budget: int) -> str:
    """The fixed sentence that states a thinking budget of ``budget`` tokens."""
    return BUDGET_TEMPLATE.format(budget=validate_budget(budget))


def validate_budget(budget: Any, *, field: str = "thinking_budget", strict: bool = False) -> int:
    """Return ``budget`` as a positive int or raise ``ValueError`` naming ``field``. The one rule for a
    number of tokens (budgets, token limits) wherever it is given; ``strict`` refuses digit strings
    (a config value that must already be a number), which a chat-template keyword may be."""
    if isinstance(budget, bool) or not isinstance(budget, int):
        if not strict and isinstance(budget, str) and budget.strip().isdigit():
            budget = int(budget.strip())
        else:
            raise ValueError(f"{field} must be a positive integer number of tokens, got {budget!r}")
    if budget <= 0:
        raise ValueError(f"{field} must be a positive integer number of tokens, got {budget}")
    return budget


def parse_budget_from_prompt(prompt: str) -> int | None:
    """The budget stated in a rendered prompt (the last statement wins), or None."""
    found = BUDGET_PATTERN.findall(prompt)
    return int(found[-1]) if found else None


def flags_in(text: str) -> list[str]:
    """The thinking flags in ``text``, in order: ``'think'`` / ``'no_think'`` / ``'auto_think'`` for each
    whitespace-separated word that *is* ``/think``, ``/no_think`` or ``/auto_think`` (a whole word:
    ``example.com/no_thinking``, ``a/think`` or ``/think.`` are not flags). ``str.split()`` is also what
    the chat template uses, so both agree."""
    return [w[1:] for w in text.split() if w in FLAGS]


def last_flag(messages: Sequence[dict[str, Any]]) -> str | None:
    """``'think'``, ``'no_think'``, ``'auto_think'`` or None: the last text flag in system/user messages
    (Qwen3 rule). A flag is a whole whitespace-separated word (:func:`flags_in`)."""
    flag = None
    for m in messages:
        content = m.get("content")
        if m.get("role") not in ("system", "user") or not isinstance(content, str):
            continue
        found = flags_in(content)
        if found:
            flag = found[-1]
    return flag


def validate_enable_thinking(value: Any) -> bool | str:
    """``enable_thinking`` as True, False or ``'auto'``, or ``ValueError`` naming the valid values (the
    template would read any other string as thinking on)."""
    if value is True or value is False or value == AUTO:
        return value
    raise ValueError(f"enable_thinking must be True, False or {AUTO!r}, got {value!r}")


def thinking_mode(messages: Sequence[dict[str, Any]], enable_thinking: bool | str = True) -> str:
    """``'think'``, ``'no_think'`` or ``'auto'``: the mode the template puts the model in (mirrors
    :data:`CHAT_TEMPLATE`: the hard off switch first, then the last flag, then the keyword's default)."""
    enable_thinking = validate_enable_thinking(enable_thinking)
    if enable_thinking is False:
        return "no_think"
    flag = last_flag(messages) or ("auto_think" if enable_thinking == AUTO else None)
    return {"no_think": "no_think", "auto_think": AUTO}.get(flag or "", "think")


def thinking_enabled(messages: Sequence[dict[str, Any]], enable_thinking: bool | str = True) -> bool:
    """Whether the template lets the model think (thinking mode or auto; mirrors :data:`CHAT_TEMPLATE`)."""
    return thinking_mode(messages, enable_thinking) != "no_think"


def build_messages(
    question: str, *, system: str | None = None, flag: str | None = None
) -> list[dict[str, str]]:
    """Chat messages for one question; ``flag`` ('think'/'no_think'/'auto_think') is appended to the user
    turn."""
    if flag not in (None, "think", "no_think", "auto_think"):
        raise ValueError(f"flag must be one of None, 'think', 'no_think', 'auto_think', got {flag!r}")
    user = question if flag is None else f"{question} /{flag}"
    msgs = [{"role": "system", "content": system}] if system is not None else []
    return msgs + [{"role": "user", "content": user}]


def render_prompt(
    tokenizer: Any,
    messages: Sequence[dict[str, Any]],
    *,
    enable_thinking: bool | str = True,
    thinking_budget: int | None = None,
) -> str:
    """Render a generation prompt with per-row thinking controls (TRL's ``chat_template_kwargs`` is
    global to a run, so mixed batches render each row themselves through this function).
    ``enable_thinking`` is True, False or ``'auto'``."""
    enable_thinking = validate_enable_thinking(enable_thinking)
    if thinking_budget is not None:
        thinking_budget = validate_budget(thinking_budget)
    return tokenizer.apply_chat_template(
        list(messages),
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=enable_thinking,
        thinking_budget=thinking_budget,
    )


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt: **the one rule** for every stage (SFT, GRPO, evaluation, demo).

    The chat template never writes a BOS token, so the prompt is tokenized with the tokenizer's own
    special tokens (``tokenizer(text)``: a BOS where the tokenizer adds one), exactly as TRL's
    GRPOTrainer tokenizes string prompts. A text that already starts with the BOS token (a template
    that writes it) gets no second one. Continuations (a completion, a pre-fill) are tokenized without
    special tokens."""
    bos = getattr(tokenizer, "bos_token", None)
    add = not (bos and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=add)["input_ids"])


def format_response(thinking: str | None, answer: str) -> str:
    """A training target in the protocol's format. ``thinking=None`` means thinking off, which still
    keeps the empty think block (Qwen3: no-think targets keep an empty block)."""
    if thinking is None or not thinking.strip():
        return f"{EMPTY_THINK_BLOCK}{answer}"
    return f"{THINK_OPEN}\n{thinking.strip()}\n{THINK_CLOSE}\n\n{answer}"


def boxed(answer: str) -> str:
    """``\\boxed{answer}``: the protocol's marker for the final answer."""
    return f"\\boxed{{{answer}}}"
