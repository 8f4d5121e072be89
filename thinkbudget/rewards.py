"""Reward functions for the GRPO stage: correctness, format, mode compliance and length control.

Every reward follows TRL's contract ``f(prompts, completions, completion_ids, **columns) -> list[float | None]``:
the dataset columns (``answer``, ``budget``, ``mode``, ``task``, ``meta``) arrive as keyword lists,
any other keyword (``trainer_state``, ``log_metric``, ...) is ignored, and ``None`` means "does not
apply to this row" (TRL then leaves that reward out of the row's sum).

Shared rules, so that the number a reward optimises is the number evaluation reports:

- Every length is a token count from :func:`thinkbudget.parsing.parse_completion`, on the exact
  completion token ids (the parser stops at end-of-sequence/padding). ``n`` = thinking tokens,
  ``B`` = the row's budget (``budget`` column, tokens). Correctness is only
  :func:`thinkbudget.grading.is_correct` on the answer section.
- The answer section has its own cap, ``answer_cap`` tokens. Reasoning moved after ``</think>``
  must not escape the budget, so every length reward measures the *effective* thinking length
  ``n_eff = n + max(0, answer_tokens - answer_cap)``: answer tokens beyond the cap are charged as
  thinking. ``answer_length`` penalises the overflow on its own (also on no-think rows).
- An unclosed think block (opened, but the model never wrote ``</think>``, usually cut off at
  ``max_completion_length``) has no answer and counts as infinitely long: it gets each length
  reward's worst value.
- Length rewards return ``None`` on no-think rows (their length is governed by ``mode_compliance``
  and ``answer_length``) and, where the formula needs a budget, on rows without one.
- An auto row (``mode`` ``auto``: the model decides) is scored as the mode its completion chose: a think
  row if it wrote thinking (budget and all), else a no-think row; ``no_think_bonus`` pays the choice
  not to think (AdaptThink's ``delta``, :mod:`thinkbudget.decision`).
- No reward raises on model output; every value is clamped to the reward's declared ``bounds``.

Rewards are small callable classes (picklable: TRL may ship reward functions to another process)
with a ``__name__`` (TRL logs ``rewards/<name>/mean``). They are built by name through
:func:`get_reward_funcs` from the :data:`REWARDS` registry and a :class:`RewardParams`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from thinkbudget.grading import extract_boxed, is_correct
from thinkbudget.parsing import ParsedCompletion, parse_completion
from thinkbudget.protocol import (
    ANSWER_CAP,
    AUTO_SENTENCE,
    EMPTY_THINK_BLOCK,
    NO_THINK_FLAG,
    THINK_CLOSE,
    THINK_FLAG,
    THINK_OPEN,
)
from thinkbudget.traces import check_lines

logger = logging.getLogger(__name__)


@dataclass
class RewardParams:
    """Parameters of the rewards (all lengths in tokens). Used as a config section by ``train/rl.py``."""

    length_alpha: float = field(
        default=0.005,
        metadata={
            "help": "alpha: reward per token of distance from the budget (per token) for l1_exact and l1_max. "
            "L1 uses about 1/(max budget - min budget)."
        },
    )
    l1_delta: float = field(
        default=0.5,
        metadata={"help": "delta: l1_max's reward for a correct answer exactly at the budget (0..1)."},
    )
    answer_cap: int | None = field(
        default=ANSWER_CAP,
        metadata={
            "help": "Cap on the answer section after </think> (tokens). Answer tokens beyond it count as "
            "thinking for every length reward and are penalised by answer_length. None = no cap."
        },
    )
    soft_punish_cache_ratio: float = field(
        default=0.25,
        metadata={
            "help": "soft_overlong: the DAPO ramp starts at B - cache, cache = ceil(ratio * B) tokens (0 < ratio <= 1)."
        },
    )
    cosine_max_len: int = field(
        default=512,
        metadata={
            "help": "cosine: length scale L (tokens) for think rows without a budget (rows with one use B)."
        },
    )
    cosine_min_value_wrong: float = field(
        default=-1.0, metadata={"help": "cosine: wrong answer, shortest length."}
    )
    cosine_max_value_wrong: float = field(
        default=-0.5, metadata={"help": "cosine: wrong answer, longest length."}
    )
    cosine_min_value_correct: float = field(
        default=0.5, metadata={"help": "cosine: correct answer, longest length."}
    )
    cosine_max_value_correct: float = field(
        default=1.0, metadata={"help": "cosine: correct answer, shortest length."}
    )
    cosine_exceed_value: float = field(
        default=-1.0,
        metadata={"help": "cosine: reward of a think block over L or unclosed (Demystifying's r_exceed)."},
    )

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if not (
            isinstance(self.length_alpha, int | float)
            and self.length_alpha > 0
            and math.isfinite(self.length_alpha)
        ):
            raise ValueError(
                f"length_alpha must be a positive number (reward per token), got {self.length_alpha!r}"
            )
        if not 0.0 <= self.l1_delta <= 1.0:
            raise ValueError(f"l1_delta must lie in [0, 1], got {self.l1_delta!r}")
        if self.answer_cap is not None and (isinstance(self.answer_cap, bool) or int(self.answer_cap) <= 0):
            raise ValueError(
                f"answer_cap must be a positive number of tokens or None, got {self.answer_cap!r}"
            )
        if not 0.0 < self.soft_punish_cache_ratio <= 1.0:
            raise ValueError(
                f"soft_punish_cache_ratio must lie in (0, 1], got {self.soft_punish_cache_ratio!r}"
            )
        if self.cosine_max_len <= 0:
            raise ValueError(
                f"cosine_max_len must be a positive number of tokens, got {self.cosine_max_len!r}"
            )
        if not (self.cosine_min_value_wrong <= self.cosine_max_value_wrong <= self.cosine_min_value_correct):
            raise ValueError(
                "cosine values must satisfy cosine_min_value_wrong <= cosine_max_value_wrong <= "
                "cosine_min_value_correct <= cosine_max_value_correct"
            )
        if self.cosine_min_value_correct > self.cosine_max_value_correct:
            raise ValueError("cosine_min_value_correct must not exceed cosine_max_value_correct")


# --------------------------------------------------------------------------------------------------
# Shared per-row helpers (cached: several rewards parse and score the same completion in one step)
# --------------------------------------------------------------------------------------------------
_PARSE_CACHE: OrderedDict[tuple[int, bytes], tuple[Any, ParsedCompletion]] = OrderedDict()
_PARSE_CACHE_SIZE = 4096  # completions: a few generation batches


def _parse(tokenizer: Any, completion_ids: Sequence[int] | None, completion: Any) -> ParsedCompletion:
    """Parse a completion from its exact token ids (falling back to its text when ids are absent)."""
    if completion_ids is None:
        return parse_completion(_completion_text(completion), tokenizer)
    try:
        ids = [int(i) for i in completion_ids]
        # Keyed by the ids packed as bytes (8 per token), so the cache stays small for long completions.
        key = (id(tokenizer), b"".join(i.to_bytes(8, "little", signed=True) for i in ids))
    except (TypeError, ValueError, OverflowError):  # not token ids: fall back to the text
        return parse_completion(_completion_text(completion), tokenizer)
    hit = _PARSE_CACHE.get(key)
    if hit is not None and hit[0] is tokenizer:
        _PARSE_CACHE.move_to_end(key)
        return hit[1]
    parsed = parse_completion(ids, tokenizer)
    _PARSE_CACHE[key] = (tokenizer, parsed)
    if len(_PARSE_CACHE) > _PARSE_CACHE_SIZE:
        _PARSE_CACHE.popitem(last=False)
    return parsed


def _completion_text(completion: Any) -> str:
    # String prompts give string completions; conversational ones give [{"role", "content"}].
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return "" if completion is None else str(completion)


@functools.lru_cache(maxsize=65536)
def _cached_is_correct(answer: str, gold: str, task: str | None, meta_json: str) -> bool:
    try:
        meta = json.loads(meta_json) if meta_json else None
    except ValueError:  # a malformed meta column scores like a missing one
        meta = None
    return is_correct(answer, gold, task=task, meta=meta if isinstance(meta, dict) else None)


def _meta_json(meta: Any) -> str:
    if meta is None:
        return ""
    if isinstance(meta, str):
        return meta
    try:
        return json.dumps(meta, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return ""


def _budget(value: Any) -> int | None:
    """A row's budget as a positive int, or None (missing, NaN, non-positive, unparsable)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        b = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(b) or b <= 0:
        return None
    return int(b)


def _prefill(prompt: Any) -> str | None:
    """What the prompt already wrote of the think block: ``"closed"`` (the no-think pre-fill),
    ``"open"`` (a pre-filled ``<think>``) or None. The completion's format is judged with it."""
    if not isinstance(prompt, str):
        return None
    tail = prompt.rstrip()
    if tail.endswith(EMPTY_THINK_BLOCK.strip()) or tail.endswith(THINK_CLOSE):
        return "closed"
    if tail.endswith(THINK_OPEN):
        return "open"
    return None


def row_mode(mode: Any, prompt: Any) -> str:
    """``"think"``, ``"no_think"`` or ``"auto"``: the ``mode`` column, else inferred from the rendered
    prompt (auto where the template stated :data:`~thinkbudget.protocol.AUTO_SENTENCE`)."""
    if mode in ("think", "no_think", "auto"):
        return mode
    if isinstance(prompt, str) and AUTO_SENTENCE in prompt:
        return "auto"
    if _prefill(prompt) == "closed":
        return "no_think"
    if isinstance(prompt, str) and prompt.rfind(NO_THINK_FLAG) > prompt.rfind(THINK_FLAG):
        return "no_think"
    return "think"


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any]:
    values = kwargs.get(name)
    if values is None:
        return [None] * n
    values = list(values)
    return values + [None] * (n - len(values)) if len(values) < n else values[:n]


ROW_COLUMNS = ("answer", "budget", "mode", "task", "meta", "target_lines")
"""The dataset columns a reward reads (``data.RL_COLUMNS`` writes them)."""


def build_rows(
    tokenizer: Any,
    prompts: Sequence[Any] | None,
    completions: Sequence[Any] | None,
    completion_ids: Sequence[Sequence[int]] | None,
    columns: dict[str, Any],
) -> list[dict[str, Any]]:
    """One dict per completion, as every reward and :func:`completion_stats` see it: ``prompt``,
    ``parsed`` (the one parser, cached), and the dataset columns ``answer``, ``budget``, ``mode``,
    ``task``, ``meta``, ``target_lines`` (``mode`` resolved from the prompt when the column is missing,
    ``budget`` an int or None). ``auto`` says whether the row left the decision to the model; such a
    row's ``mode`` is the one its completion chose (``think`` when it wrote thinking)."""
    n = len(completion_ids) if completion_ids is not None else len(completions or [])
    prompts = list(prompts) if prompts is not None else [None] * n
    completions = list(completions) if completions is not None else [None] * n
    ids = list(completion_ids) if completion_ids is not None else [None] * n
    cols = {name: _column(columns, name, n) for name in ROW_COLUMNS}
    rows = []
    for i in range(n):
        row = {
            "prompt": prompts[i] if i < len(prompts) else None,
            "parsed": _parse(tokenizer, ids[i], completions[i] if i < len(completions) else None),
        }
        row.update({name: values[i] for name, values in cols.items()})
        row["mode"] = row_mode(row["mode"], row["prompt"])
        row["auto"] = row["mode"] == "auto"
        if row["auto"]:
            row["mode"] = "think" if row["parsed"].thinking_tokens > 0 else "no_think"
        row["budget"] = _budget(row["budget"])
        rows.append(row)
    return rows


class Reward:
    """Base class: parses each row once, calls :meth:`row`, clamps to ``bounds``, never raises."""

    name: ClassVar[str] = "reward"  # the registry key and what TRL logs (rewards/<name>/mean)
    bounds: ClassVar[tuple[float, float]] = (0.0, 1.0)
    params: ClassVar[tuple[str, ...]] = ()  # RewardParams fields this reward reads

    def __init__(self, tokenizer: Any, answer_cap: int | None = None, **values: Any):
        self.tokenizer = tokenizer
        self.answer_cap = answer_cap
        unknown = set(values) - set(self.params)
        if unknown:
            raise TypeError(
                f"{self.__name__} takes no parameter(s) {sorted(unknown)}; it reads {list(self.params)}"
            )
        defaults = RewardParams()
        for name in self.params:
            setattr(self, name, values.get(name, getattr(defaults, name)))

    @property
    def __name__(self) -> str:  # TRL names a callable reward by its __name__
        return self.name

    def __repr__(self) -> str:
        ps = ", ".join(f"{p}={getattr(self, p)!r}" for p in ("answer_cap", *self.params))
        return f"{type(self).__name__}({ps})"

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        rows = build_rows(self.tokenizer, prompts, completions, completion_ids, kwargs)
        n = len(rows)
        try:
            values = self.batch(rows)
        except Exception:  # a bug here must not kill a long run: log it and skip this reward
            logger.exception("reward %s failed on a batch; returning None for it", self.__name__)
            return [None] * n
        lo, hi = self.bounds
        return [None if v is None or math.isnan(v) else float(min(hi, max(lo, v))) for v in values]

    # Subclasses override row() (independent rows) or batch() (rows that depend on each other).
    def batch(self, rows: list[dict[str, Any]]) -> list[float | None]:
        out = []
        for row in rows:
            try:
                out.append(self.row(row))
            except Exception:
                logger.exception("reward %s failed on one completion; returning None for it", self.__name__)
                out.append(None)
        return out

    def row(self, row: dict[str, Any]) -> float | None:
        raise NotImplementedError

    # -- helpers shared by subclasses ----------------------------------------------------------
    def correct(self, row: dict[str, Any]) -> bool | None:
        """Whether the row's answer section is correct; None when the row has no gold answer."""
        gold = row["answer"]
        if gold is None or (isinstance(gold, float) and math.isnan(gold)):
            return None
        task = row["task"] if isinstance(row["task"], str) else None
        return _cached_is_correct(row["parsed"].answer, str(gold), task, _meta_json(row["meta"]))

    def effective_thinking(self, row: dict[str, Any]) -> float:
        """``n_eff``: thinking tokens plus answer tokens beyond ``answer_cap``; inf when the think block
        was opened and never closed. (A completion with no think block at all has n = 0: skipping
        thinking is a mode question, for ``mode_compliance``.)"""
        p: ParsedCompletion = row["parsed"]
        if think_unclosed(p, row["prompt"]):
            return math.inf
        overflow = max(0, p.answer_tokens - self.answer_cap) if self.answer_cap is not None else 0
        return float(p.thinking_tokens + overflow)


def think_unclosed(parsed: ParsedCompletion, prompt: Any = None) -> bool:
    """Whether a think block was opened (by the completion or a pre-filled ``<think>``) and never closed."""
    return (parsed.think_opened or _prefill(prompt) == "open") and not parsed.think_closed


def think_closed(parsed: ParsedCompletion, prompt: Any = None) -> bool:
    """Whether the thinking ended: the completion closed it, or the prompt pre-filled a closed block
    and the completion opened no new one."""
    if parsed.think_closed:
        return True
    return _prefill(prompt) == "closed" and not parsed.think_opened


# --------------------------------------------------------------------------------------------------
# Correctness, format, mode
# --------------------------------------------------------------------------------------------------
def budget_binds(row: dict[str, Any]) -> bool:
    """Whether a row's thinking is held to a stated budget: a think or auto row with a budget. These are the
    rows ``budget_cutoff`` pays and ``correctness_unbudgeted`` leaves to it."""
    return row["budget"] is not None and (row["mode"] == "think" or row["auto"])


class CorrectnessReward(Reward):
    """``correctness``: 1 if ``grading.is_correct(answer section, gold)`` else 0; None without gold.

    An unclosed think block has an empty answer section, hence 0.
    """

    name = "correctness"
    bounds = (0.0, 1.0)

    def row(self, row):
        c = self.correct(row)
        return None if c is None else float(c)


class UnbudgetedCorrectnessReward(CorrectnessReward):
    """``correctness_unbudgeted``: ``correctness`` on rows without a stated budget (thinking off, free
    thinking); None on the rows ``budget_cutoff`` pays (a stated budget), so that with it a right answer
    past the budget earns no more than a wrong one.

    Why: with plain ``correctness`` a right answer over the budget still earns 1 more than a wrong one,
    so in a group of rollouts that run over, GRPO's group-relative advantage could push towards them.
    Measured against the eighth CPU proof's GRPO, from the same SFT: within budget at 32 94.8 % against
    94.5 %, the drift unchanged (results/grpo-unbudgeted-correctness-experiment-cpu-smollm2-135m/)."""

    name = "correctness_unbudgeted"
    bounds = (0.0, 1.0)

    def row(self, row):
        return None if budget_binds(row) else super().row(row)


class FormatReward(Reward):
    """``format``: 1 if the completion is well formed, else 0.

    Well formed = exactly one closed think block (the prompt's pre-fill counts: after the no-think
    pre-fill the completion must add no tag, after a pre-filled ``<think>`` it must close it), no
    further think tags after it, and exactly one ``\\boxed{}`` with balanced braces in the answer section.
    """

    name = "format"
    bounds = (0.0, 1.0)

    def row(self, row):
        p: ParsedCompletion = row["parsed"]
        prefill = _prefill(row["prompt"])
        if prefill == "closed":
            block_ok = not p.think_opened and not p.think_closed
        elif prefill == "open":
            block_ok = not p.think_opened and p.think_closed
        else:
            block_ok = p.think_opened and p.think_closed
        boxed_ok = (
            p.answer.count("\\boxed{") + p.answer.count("\\fbox{") == 1
            and extract_boxed(p.answer) is not None
        )
        return float(block_ok and not p.extra_think_tags and boxed_ok)


class ModeComplianceReward(Reward):
    """``mode_compliance``: 1 if the completion obeys the row's mode, else 0.

    no-think rows: no thinking tokens and no think tag after the (empty) block.
    think rows: a closed think block with at least one thinking token.
    """

    name = "mode_compliance"
    bounds = (0.0, 1.0)

    def row(self, row):
        p: ParsedCompletion = row["parsed"]
        if row["mode"] == "no_think":
            return float(p.no_think_compliant)
        return float(think_closed(p, row["prompt"]) and p.thinking_tokens > 0)


class NoThinkBonusReward(Reward):
    """``no_think_bonus`` (AdaptThink's ``delta * 1[y_1 = </think>]``, Zhang et al. 2025, Eq. 4): 1 when an
    auto row answers without thinking, 0 when it thinks; None on rows that are not auto. Its weight is
    ``delta``, the accuracy a skipped trace may cost (AdaptThink: 0.05): with ``correctness`` at weight 1,
    not thinking wins a group where it is right at least as often, minus ``delta``, as thinking.
    Pair it with ``auto_decision_sampling`` so that every auto group holds both modes."""

    name = "no_think_bonus"
    bounds = (0.0, 1.0)

    def row(self, row):
        if not row["auto"]:
            return None
        return float(row["mode"] == "no_think")


# --------------------------------------------------------------------------------------------------
# Length rewards (n_eff = thinking tokens + answer overflow, B = the row's budget)
# --------------------------------------------------------------------------------------------------
class L1ExactReward(Reward):
    """``l1_exact`` (L1 / LCPO Exact, Aggarwal & Welleck 2025) as published: r = -alpha * |n_eff - B|,
    with **no clamp** (LCPO has none: clamped at -1, every miss beyond 1/alpha tokens would get the same
    value and no gradient towards the budget).

    L1 adds this to the correctness reward (use ``correctness`` alongside). The one deliberate
    difference from L1: n counts thinking tokens (plus answer tokens beyond ``answer_cap``), not the
    whole output, because the project's budgets are thinking budgets (what L1's users asked for, their
    issue #23). An unclosed think block enters with its real length (the thinking tokens it wrote, as
    L1 counts a truncated output). None on no-think rows and rows without a budget.
    """

    name = "l1_exact"
    bounds = (-math.inf, 0.0)
    params = ("length_alpha",)

    def row(self, row):
        if row["mode"] != "think" or row["budget"] is None:
            return None
        n = self.effective_thinking(row)
        if math.isinf(n):  # unclosed: its real length, not an infinite one
            n = float(row["parsed"].thinking_tokens)
        return -self.length_alpha * abs(n - row["budget"])


class L1MaxReward(Reward):
    """``l1_max`` (L1 / LCPO Max): r = correct * clip(alpha * (B - n_eff) + delta, 0, 1).

    A correct answer exactly at the budget earns delta, shorter earns more, longer less, and nothing
    from ``(delta / alpha)`` tokens past the budget on. Unclosed think (n = inf): 0. None on no-think
    rows and rows without a budget or gold answer.
    """

    name = "l1_max"
    bounds = (0.0, 1.0)
    params = ("length_alpha", "l1_delta")

    def row(self, row):
        if row["mode"] != "think" or row["budget"] is None:
            return None
        correct = self.correct(row)
        if correct is None:
            return None
        n = self.effective_thinking(row)
        if not correct or math.isinf(n):
            return 0.0
        return min(1.0, max(0.0, self.length_alpha * (row["budget"] - n) + self.l1_delta))


class BudgetCutoffReward(Reward):
    """``budget_cutoff`` (ThinkPrune's hard cap): r = 0 if n_eff > B (or unclosed) else correctness.

    None on no-think rows and rows without a budget or gold answer. An auto row with a budget that
    answers without thinking is within it (n_eff = answer overflow only) and gets its correctness as
    well: were it None there, a right answer would pay twice when the model thinks and once when it does
    not, and GRPO would move auto mode towards thinking on problems it answers as well without (seen in
    results/auto-warmup-experiment-cpu-smollm2-135m/: P(think) on single steps 0.02 -> 0.92 in 20 steps).
    """

    name = "budget_cutoff"
    bounds = (0.0, 1.0)

    def row(self, row):
        if not budget_binds(row):
            return None
        correct = self.correct(row)
        if correct is None:
            return None
        return float(correct) if self.effective_thinking(row) <= row["budget"] else 0.0


class SoftOverlongReward(Reward):
    """``soft_overlong`` (DAPO's soft overlong punishment, Eq. 13) on thinking tokens vs the budget:
    with cache C = ceil(ratio * B): r = 0 for n_eff <= B - C, (B - C - n_eff) / C on the ramp, -1 past B
    (and for an unclosed think). Computed by TRL's own ``get_soft_overlong_punishment(B, C)``.

    None on no-think rows and rows without a budget.
    """

    name = "soft_overlong"
    bounds = (-1.0, 0.0)
    params = ("soft_punish_cache_ratio",)

    def row(self, row):
        if row["mode"] != "think" or row["budget"] is None:
            return None
        from trl.rewards import get_soft_overlong_punishment

        budget = row["budget"]
        n = self.effective_thinking(row)
        if math.isinf(n):
            return -1.0
        cache = max(1, min(budget, math.ceil(self.soft_punish_cache_ratio * budget)))
        # TRL's reward only reads len() of each id list: a range of n_eff stands in for the thinking.
        return get_soft_overlong_punishment(budget, cache)(completion_ids=[range(int(n))])[0]


class GroupLengthReward(Reward):
    """``group_length`` (Kimi k1.5 length reward) as published: within a group (rows with the same
    prompt), lambda = 0.5 - (len - min_len) / (max_len - min_len) over every sample's real length;
    correct rows get lambda, wrong ones min(0, lambda). A group whose lengths are all equal gets 0.

    ``len`` is n_eff (thinking tokens plus answer tokens beyond ``answer_cap``: the project counts
    thinking, Kimi the whole response). An unclosed think block enters with its real length (the
    thinking tokens it wrote), so a runaway sample stretches the range as it does in Kimi's formula
    instead of being squeezed to "the longest + 1"; having no answer, it is wrong (at most 0).
    None on no-think rows and rows without a gold answer.

    Groups are formed from the rows this process sees; with several processes keep
    ``per_device_train_batch_size * steps_per_generation`` a multiple of ``num_generations`` so that
    no group is split (``train/rl.py`` warns otherwise).
    """

    name = "group_length"
    bounds = (-0.5, 0.5)

    def batch(self, rows):
        out: list[float | None] = [None] * len(rows)
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if row["mode"] == "think":
                groups.setdefault(str(row["prompt"]), []).append(i)
        for members in groups.values():
            lengths = {}
            for i in members:
                n = self.effective_thinking(rows[i])
                lengths[i] = n if math.isfinite(n) else float(rows[i]["parsed"].thinking_tokens)
            lo, hi = min(lengths.values()), max(lengths.values())
            for i in members:
                try:
                    correct = self.correct(rows[i])
                except Exception:
                    logger.exception("group_length: scoring failed")
                    correct = None
                if correct is None:
                    continue
                lam = 0.0 if hi == lo else 0.5 - (lengths[i] - lo) / (hi - lo)
                out[i] = lam if correct and math.isfinite(self.effective_thinking(rows[i])) else min(0.0, lam)
        return out


class CosineReward(Reward):
    """``cosine`` ("Demystifying Long CoT", Yeo et al. 2025; TRL's ``get_cosine_scaled_reward`` idea on
    thinking tokens): with L = B (or ``cosine_max_len`` for think rows without a budget) and
    progress = n_eff / L,  r = v_lo + 0.5 * (v_hi - v_lo) * (1 + cos(pi * progress)),
    (v_lo, v_hi) = (min_correct, max_correct) for correct answers (short is better) and
    (max_wrong, min_wrong) for wrong ones (long is penalised less). n_eff > L or an unclosed think
    gets ``cosine_exceed_value``. None on no-think rows and rows without a gold answer.
    """

    name = "cosine"
    params = (
        "cosine_max_len",
        "cosine_min_value_wrong",
        "cosine_max_value_wrong",
        "cosine_min_value_correct",
        "cosine_max_value_correct",
        "cosine_exceed_value",
    )

    @property
    def bounds(self) -> tuple[float, float]:  # type: ignore[override]
        lo = min(self.cosine_min_value_wrong, self.cosine_exceed_value)
        return lo, max(self.cosine_max_value_correct, self.cosine_exceed_value)

    def row(self, row):
        if row["mode"] != "think":
            return None
        correct = self.correct(row)
        if correct is None:
            return None
        limit = row["budget"] if row["budget"] is not None else self.cosine_max_len
        n = self.effective_thinking(row)
        if n > limit:
            return self.cosine_exceed_value
        cosine = math.cos(math.pi * n / limit)
        if correct:
            lo, hi = self.cosine_min_value_correct, self.cosine_max_value_correct
        else:
            lo, hi = self.cosine_max_value_wrong, self.cosine_min_value_wrong
        return lo + 0.5 * (hi - lo) * (1.0 + cosine)


class GranularityReward(Reward):
    """``granularity``: 1 when the thinking is the trace the data stage would train for this row, by
    shape: as many arithmetic lines as its target (``target_lines``: the finest sound trace that fits
    the budget, 0 for the result alone; :func:`thinkbudget.data.target_lines_of`), every one correct
    (:func:`thinkbudget.traces.check_lines`, the evaluation's step correctness); else 0.

    Why: correctness and the budget terms pay a right answer within the budget, whatever the trace; on
    a problem whose full trace does not fit they cannot tell a coarser complete solution from a guess,
    and a harsher over-budget penalty taught guessing everywhere
    (``results/grpo-budgeted-experiment-cpu-smollm2-135m``). This term pays the budget's decision
    itself: a full trace where it fits, a coarser one where that fits, the result alone where nothing
    does, and a full trace on every free-thinking row, so it cannot be met by never reasoning.
    An unclosed think block, and an empty one, get 0. None on thinking-off rows and rows without a target.
    """

    name = "granularity"
    bounds = (0.0, 1.0)

    def row(self, row):
        target = row["target_lines"]
        if row["mode"] != "think" or target is None or (isinstance(target, float) and math.isnan(target)):
            return None
        p: ParsedCompletion = row["parsed"]
        if think_unclosed(p, row["prompt"]):
            return 0.0
        check = check_lines(p.thinking)
        # A result must be stated: an empty think block is not the result alone ("= 52").
        return float(check.lines == int(target) and check.all_correct and check.result is not None)


class AnswerLengthReward(Reward):
    """``answer_length``: r = -min(1, max(0, answer_tokens - answer_cap) / answer_cap), on every row.

    Reasoning moved after ``</think>`` (or a no-think answer that is really a worked solution) costs
    up to -1 at twice the cap. An unclosed think has an empty answer section (0 here; the length
    rewards punish it). None when ``answer_cap`` is None.
    """

    name = "answer_length"
    bounds = (-1.0, 0.0)

    def row(self, row):
        if self.answer_cap is None:
            return None
        over = max(0, row["parsed"].answer_tokens - self.answer_cap)
        return -min(1.0, over / self.answer_cap)


REWARDS: dict[str, type[Reward]] = {
    cls.name: cls
    for cls in (
        CorrectnessReward,
        FormatReward,
        ModeComplianceReward,
        NoThinkBonusReward,
        L1ExactReward,
        L1MaxReward,
        BudgetCutoffReward,
        UnbudgetedCorrectnessReward,
        SoftOverlongReward,
        GroupLengthReward,
        CosineReward,
        GranularityReward,
        AnswerLengthReward,
    )
}
"""Registry: reward name -> class. The key is the reward's ``__name__`` (what TRL logs)."""


def check_reward_names(names: Sequence[str]) -> list[str]:
    """Return ``names`` as a list, or raise ``ValueError`` listing the valid reward names."""
    names = list(names) if not isinstance(names, str) else [names]
    if not names:
        raise ValueError(f"reward_funcs must name at least one reward; valid names: {', '.join(REWARDS)}")
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"reward_funcs: unknown reward(s) {unknown}; valid names: {', '.join(REWARDS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"reward_funcs: {names} names a reward twice")
    return names


def get_reward_funcs(
    names: Sequence[str], tokenizer: Any, params: RewardParams | None = None
) -> list[Reward]:
    """Build the named rewards with ``params`` (validated) for ``tokenizer`` (the policy's tokenizer).

    A GRPO recipe's names were checked once, when it was parsed (``RLScriptArguments``), so
    :func:`check_reward_names` runs here only to explain a name the registry lacks."""
    names = [names] if isinstance(names, str) else list(names)
    if not names or any(n not in REWARDS for n in names):
        check_reward_names(names)  # raises, listing the valid names
    params = params or RewardParams()
    params.validate()
    values = {f.name: getattr(params, f.name) for f in fields(RewardParams)}
    funcs = []
    for name in names:
        cls = REWARDS[name]
        funcs.append(cls(tokenizer, answer_cap=values["answer_cap"], **{p: values[p] for p in cls.params}))
    return funcs


def completion_stats(
    completion_ids: Sequence[Sequence[int]],
    tokenizer: Any,
    prompts: Sequence[Any] | None = None,
    **columns: Any,
) -> list[dict[str, Any]]:
    """Per-row facts the trainer logs (same parser, same scorer and caches as the rewards).

    Each dict: ``mode`` (an auto row's: the mode it chose), ``auto``, ``budget`` (int or None), ``thinking_tokens``, ``answer_tokens``,
    ``within_budget`` (closed and thinking <= budget; None without a budget), ``correct`` (None
    without gold), ``no_think_compliant`` (None on think rows), ``at_target`` (the ``granularity``
    reward's verdict; None where it does not apply).
    """
    helper = CorrectnessReward(tokenizer)
    shape = GranularityReward(tokenizer)
    out = []
    for row in build_rows(tokenizer, prompts, None, completion_ids, columns):
        parsed = row["parsed"]
        try:
            correct = helper.correct(row)
        except Exception:
            logger.exception("scoring failed while computing completion stats")
            correct = None
        closed = think_closed(parsed, row["prompt"])
        out.append(
            {
                "mode": row["mode"],
                "auto": row["auto"],
                "budget": row["budget"],
                "thinking_tokens": parsed.thinking_tokens,
                "answer_tokens": parsed.answer_tokens,
                "think_closed": closed,
                "within_budget": None
                if row["budget"] is None
                else parsed.within_budget(row["budget"], closed=closed),
                "correct": correct,
                "no_think_compliant": None if row["mode"] != "no_think" else parsed.no_think_compliant,
                "at_target": shape.row(row),
            }
        )
    return out
