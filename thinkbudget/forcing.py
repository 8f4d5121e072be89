"""Budget forcing: end thinking at the budget, token by token.

One logits processor serves evaluation's s1-style budget forcing and the RL stage's
budget-constrained rollouts (Elastic Reasoning): once a row has produced ``B`` thinking tokens
without closing the block, the next token is forced to be ``</think>`` and the model then writes its
answer. Thinking tokens are counted by the parser's own rule (:class:`thinkbudget.parsing.ThinkScanner`:
text before ``<think>`` counts, tags written as sub-word pieces are tags), so the parser then counts
exactly ``B`` thinking tokens for that row. A row that has already stopped (end-of-sequence; the
padding ``generate`` feeds it afterwards) is never counted or forced.

Each row's budget is read back out of its own prompt (the protocol's fixed budget sentence), so the
processor needs no side channel and works inside any ``generate`` call, TRL's included. Rows whose
prompt states no budget are left alone unless ``default_budget`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from thinkbudget.parsing import ThinkScanner, get_parser
from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN, parse_budget_from_prompt


def budget_spent(scanner: ThinkScanner, generated: Sequence[int] | torch.Tensor, budget: int) -> bool:
    """Feed a row's scanner the tokens it has not seen of ``generated`` (everything the row generated so
    far: a list or a 1-D tensor); True when the row is thinking and has ``budget`` thinking tokens: its next token is forced.
    A closed block or a stopped row is never forced."""
    if scanner.n < len(generated) and not (scanner.finished or scanner.closed):
        new = generated[scanner.n :]
        scanner.feed(new.tolist() if isinstance(new, torch.Tensor) else list(new))
    thinking = scanner.thinking  # None: not thinking (not opened, closed, or the row has stopped)
    return thinking is not None and thinking >= budget


def force_token(scores: torch.Tensor, row: int, token: int) -> None:
    """Leave ``token`` the only possible next token of ``row`` (its log-probability becomes 0)."""
    scores[row] = torch.finfo(scores.dtype).min
    scores[row, token] = 0.0


class ThinkingBudgetProcessor(LogitsProcessor):
    """Force ``</think>`` once a row has ``budget`` thinking tokens.

    Args:
        tokenizer: the tokenizer (with single-token think tags).
        budgets: per-row budgets in tokens (None = no forcing for that row). If omitted, each row's
            budget is parsed from its prompt on the first call.
        default_budget: budget in tokens for rows whose prompt states none (None = leave them).
        generated_before: per row, how many of the input's last tokens the model already generated
            (a row continued from an earlier call): they count as generated, not as prompt.

    ``fired`` lists the rows forced so far (each row at most once); ``fired_at`` maps each forced row
    to the number of tokens this call had generated when it was first forced.
    """

    def __init__(
        self,
        tokenizer: Any,
        budgets: Sequence[int | None] | None = None,
        default_budget: int | None = None,
        generated_before: Sequence[int] | None = None,
    ):
        self.tokenizer = tokenizer
        self.parser = get_parser(tokenizer)
        self.open_id = tokenizer.convert_tokens_to_ids(THINK_OPEN)
        self.close_id = tokenizer.convert_tokens_to_ids(THINK_CLOSE)
        self.budgets = list(budgets) if budgets is not None else None
        self.default_budget = default_budget
        self.prompt_len: int | None = None
        self.prefilled: list[bool] = []  # prompt already ends with <think> (s1-style pre-fill)
        self.scanners: list[ThinkScanner] = []
        self.fired: list[int] = []  # rows forced so far (for logging and tests)
        self.fired_at: dict[int, int] = {}  # row -> generated tokens (this call) when first forced
        self.generated_before = list(generated_before) if generated_before is not None else None

    def _setup(self, input_ids: torch.LongTensor) -> None:
        self.prompt_len = input_ids.shape[1]
        if self.budgets is None:
            texts = self.tokenizer.batch_decode(input_ids, skip_special_tokens=False)
            self.budgets = [parse_budget_from_prompt(t) for t in texts]
        self.budgets = [b if b is not None else self.default_budget for b in self.budgets]
        if len(self.budgets) != input_ids.shape[0]:
            raise ValueError(f"got {len(self.budgets)} budgets for a batch of {input_ids.shape[0]} rows")
        before = self.generated_before or [0] * input_ids.shape[0]
        if len(before) != input_ids.shape[0]:
            raise ValueError(f"got {len(before)} generated_before for a batch of {input_ids.shape[0]} rows")
        self.generated_before = before
        # Left-padded batches: a prompt pre-filled with "<think>" ends with it (before the tokens a
        # continued row generated in earlier calls).
        self.prefilled = [
            bool(input_ids[row, self.prompt_len - 1 - b] == self.open_id) for row, b in enumerate(before)
        ]
        self.scanners = [ThinkScanner(self.parser, prefilled=p) for p in self.prefilled]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_len is None:
            self._setup(input_ids)
        step = input_ids.shape[1] - self.prompt_len
        for row, budget in enumerate(self.budgets):
            if budget is None:
                continue
            generated = input_ids[row, self.prompt_len - self.generated_before[row] :]
            if budget_spent(self.scanners[row], generated, budget):
                force_token(scores, row, self.close_id)
                if row not in self.fired:
                    self.fired.append(row)
                self.fired_at.setdefault(row, step)
        return scores
