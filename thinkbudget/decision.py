"""Auto mode in GRPO: the decision to think, sampled as AdaptThink samples it.

An auto prompt (:mod:`thinkbudget.protocol`, ``enable_thinking="auto"`` or ``/auto_think``) leaves the
model to decide at one token: the first one after ``<think>``, which is ``"\\n\\n"`` for the empty block
(``<think>\\n\\n</think>``, no thinking) and ``"\\n"`` for a trace. Sampled on-policy, the decision
collapses: once a model prefers one mode, a GRPO group rarely holds the other, and then no advantage
says which mode pays. AdaptThink (Zhang et al. 2025, "AdaptThink: Reasoning Models Can Learn When to
Think", arXiv:2505.13417, Sec. 3.2) samples the decision token from a fixed distribution instead,
``pi_IS``: half of each group is forced to answer without thinking and half to think, the rest of every
completion is sampled from the policy, and the loss takes ``pi_IS`` (1/2) as the old policy of that one
token, so PPO's ratio ``pi_theta / pi_IS`` is the importance weight and PPO's clipping bounds it. With the
reward ``no_think_bonus`` (``delta * 1[no thinking]``, :mod:`thinkbudget.rewards`) the objective is
AdaptThink's: skip thinking where it costs less than ``delta`` accuracy (the per-prompt reference
accuracy of their Eq. 4 is a constant within a group and cancels in GRPO's advantage).

This module holds the token-level pieces (which tokens are forced, which row of a group gets which
branch, the policy's probability of thinking read off the forced rows); the trainer
(:class:`thinkbudget.rl.ThinkBudgetGRPOTrainer`) applies them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN

BRANCHES = ("no_think", "think")
IS_LOGP = math.log(0.5)  # log pi_IS of the forced decision token: each branch is drawn for half a group


@dataclass(frozen=True)
class DecisionTokens:
    """The forced starts of an auto completion: ``<think>`` and the decision token, per branch.

    ``position`` is the decision token's index in the completion (the same in both branches)."""

    no_think: tuple[int, ...]
    think: tuple[int, ...]

    @property
    def position(self) -> int:
        return len(self.no_think) - 1

    def prefix(self, branch: str) -> list[int]:
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {branch!r}")
        return list(self.no_think if branch == "no_think" else self.think)


def decision_tokens(tokenizer: Any) -> DecisionTokens:
    """Where the empty block and a trace part ways in ``tokenizer``'s ids: the shared ``<think>`` tokens
    plus the first token that differs (``"\\n\\n"`` against ``"\\n"`` for SmolLM2's tokenizer).

    ``ValueError`` when the two starts do not split into whole tokens (a tokenizer that merges the
    newline with what follows it cannot force the decision without forcing content)."""
    empty = tokenizer.encode(f"{THINK_OPEN}\n\n{THINK_CLOSE}", add_special_tokens=False)
    trace = tokenizer.encode(f"{THINK_OPEN}\n1", add_special_tokens=False)
    k = next((i for i, (a, b) in enumerate(zip(empty, trace)) if a != b), min(len(empty), len(trace)))
    no_think, think = tuple(empty[: k + 1]), tuple(trace[: k + 1])
    decoded = (tokenizer.decode(list(no_think)), tokenizer.decode(list(think)))
    if k >= min(len(empty), len(trace)) or decoded != (f"{THINK_OPEN}\n\n", f"{THINK_OPEN}\n"):
        raise ValueError(
            f"auto decision sampling: this tokenizer does not split {THINK_OPEN!r} + newline(s) into whole "
            f"tokens (empty block starts {decoded[0]!r}, a trace {decoded[1]!r}); set "
            "auto_decision_sampling: false to sample the decision on-policy"
        )
    return DecisionTokens(no_think, think)


def plan_branches(modes: Sequence[Any], prompts: Sequence[Any]) -> list[str | None]:
    """The forced branch of each rollout: None for rows that are not auto, and within each run of
    consecutive identical auto prompts (a GRPO group: TRL repeats a prompt ``num_generations`` times in a
    row) ``no_think``, ``think``, ``no_think``, ... so an even group is split in halves."""
    out: list[str | None] = []
    run = 0
    for i, (mode, prompt) in enumerate(zip(modes, prompts, strict=True)):
        if mode != "auto":
            out.append(None)
            run = 0
            continue
        run = run + 1 if i > 0 and out[-1] is not None and prompts[i - 1] == prompt else 1
        out.append(BRANCHES[(run - 1) % 2])
    return out


def p_think(no_think_logp: float) -> float:
    """The policy's probability of thinking at an auto prompt, read off a row forced to the empty block:
    one minus the probability of its decision token (the only way not to think)."""
    return 1.0 - math.exp(no_think_logp)
