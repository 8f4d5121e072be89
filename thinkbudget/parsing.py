"""The one parser: split any completion into thinking and answer, counted in **tokens**.

Every length in the project (SFT trace fitting, RL length rewards, evaluation metrics, budget
forcing) comes from here, so the number a reward optimises is the number evaluation reports.

Rules (also the docstring of the tests):
- The thinking block is the text between a leading ``<think>`` (optional: with the no-think
  pre-fill, or a model that skipped the tag, there is none) and the *first* ``</think>``.
- No ``</think>``: if the completion opened ``<think>`` all of it is (unclosed) thinking and the
  answer is empty; otherwise there is no think block and all of it is the answer.
- ``thinking_tokens`` = tokens strictly between the tags; a whitespace-only block counts 0, so the
  empty block ``<think>\\n\\n</think>`` is "no thinking".
- ``answer_tokens`` = tokens after ``</think>`` with surrounding whitespace and end-of-sequence /
  padding tokens removed. It is reported separately so reasoning moved after ``</think>`` is seen.
- Further think tags after the first ``</think>`` (nested or repeated blocks) set ``extra_think_tags``.
- It never raises on model output: unknown token ids, huge strings and stray tags are data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN
from thinkbudget.scoring import extract_boxed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParsedCompletion:
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int
    think_opened: bool
    think_closed: bool
    extra_think_tags: bool
    boxed_answer: str | None

    @property
    def total_tokens(self) -> int:
        return self.thinking_tokens + self.answer_tokens

    @property
    def has_boxed(self) -> bool:
        return self.boxed_answer is not None

    def thinking_in_no_think(self) -> bool:
        """True when a no-think answer nevertheless contains thinking (a mode violation)."""
        return self.thinking_tokens > 0

    def within_budget(self, budget: int | None) -> bool:
        """Thinking fits ``budget`` tokens *and* the think block was closed.

        Deliberately strict: a completion without a closed block (unclosed, or no block at all, e.g. a
        model that never opened ``<think>``, so budget forcing had nothing to cut) never counts as within
        budget, so format failures cannot inflate the within-budget share. ``budget=None`` always fits.
        """
        if budget is None:
            return True
        return self.think_closed and self.thinking_tokens <= budget

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_tokens"] = self.total_tokens
        return d


class CompletionParser:
    """Parses completions for one tokenizer (token ids of the think tags are looked up once)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.open_id = _single_token_id(tokenizer, THINK_OPEN)
        self.close_id = _single_token_id(tokenizer, THINK_CLOSE)
        self.stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
        self._ws_cache: dict[int, bool] = {}

    # -- counting -----------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (no special tokens added)."""
        if not text:
            return 0
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def thinking_token_count(self, thinking: str) -> int:
        """Tokens a thinking text costs against a budget (0 for a whitespace-only block)."""
        return 0 if not thinking.strip() else self.count_tokens(thinking)

    # -- parsing ------------------------------------------------------------------------------
    def parse(self, completion: str | Sequence[int]) -> ParsedCompletion:
        """Parse completion text or token ids. Token ids are counted exactly as generated."""
        try:
            if isinstance(completion, str):
                return self._parse_text(completion)
            return self._parse_ids([int(i) for i in completion])
        except Exception:  # never raise on model output; log and treat as an empty answer
            logger.exception("unparseable completion (treated as empty): %r", str(completion)[:200])
            return ParsedCompletion("", "", 0, 0, False, False, False, None)

    def _parse_text(self, text: str) -> ParsedCompletion:
        stripped = text.lstrip()
        opened = stripped.startswith(THINK_OPEN)
        body = stripped[len(THINK_OPEN) :] if opened else text
        cut = body.find(THINK_CLOSE)
        if cut >= 0:
            thinking, answer, closed = body[:cut], body[cut + len(THINK_CLOSE) :], True
        elif opened:
            thinking, answer, closed = body, "", False
        else:
            thinking, answer, closed = "", body, False
        answer = self._strip_stop_text(answer).strip()
        return ParsedCompletion(
            thinking=thinking.strip(),
            answer=answer,
            thinking_tokens=self.thinking_token_count(thinking),
            answer_tokens=self.count_tokens(answer),
            think_opened=opened,
            think_closed=closed,
            extra_think_tags=THINK_OPEN in answer or THINK_CLOSE in answer,
            boxed_answer=extract_boxed(answer),
        )

    def _parse_ids(self, ids: list[int]) -> ParsedCompletion:
        # Everything after the first end-of-sequence/pad token is padding, not output.
        for k, i in enumerate(ids):
            if i in self.stop_ids:
                ids = ids[:k]
                break
        start = 0
        while start < len(ids) and self._is_ws(ids[start]):
            start += 1
        opened = start < len(ids) and ids[start] == self.open_id
        body = ids[start + 1 :] if opened else ids
        if self.close_id in body:
            cut = body.index(self.close_id)
            think_ids, answer_ids, closed = body[:cut], body[cut + 1 :], True
        elif opened:
            think_ids, answer_ids, closed = body, [], False
        else:
            think_ids, answer_ids, closed = [], body, False
        thinking = self._decode(think_ids)
        answer_ids = self._strip_ws_ids(answer_ids)
        answer = self._decode(answer_ids)
        return ParsedCompletion(
            thinking=thinking.strip(),
            answer=answer.strip(),
            thinking_tokens=0 if not thinking.strip() else len(think_ids),
            answer_tokens=len(answer_ids),
            think_opened=opened,
            think_closed=closed,
            extra_think_tags=self.open_id in answer_ids or self.close_id in answer_ids,
            boxed_answer=extract_boxed(answer),
        )

    # -- helpers ------------------------------------------------------------------------------
    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        vocab = len(self.tokenizer)
        return self.tokenizer.decode([i for i in ids if 0 <= i < vocab], skip_special_tokens=False)

    def _is_ws(self, token_id: int) -> bool:
        if token_id not in self._ws_cache:
            self._ws_cache[token_id] = not self._decode([token_id]).strip()
        return self._ws_cache[token_id]

    def _strip_ws_ids(self, ids: list[int]) -> list[int]:
        lo, hi = 0, len(ids)
        while lo < hi and self._is_ws(ids[lo]):
            lo += 1
        while hi > lo and self._is_ws(ids[hi - 1]):
            hi -= 1
        return ids[lo:hi]

    def _strip_stop_text(self, text: str) -> str:
        for tok in (self.tokenizer.eos_token, self.tokenizer.pad_token):
            if tok and tok in text:
                text = text[: text.index(tok)]
        return text


def _single_token_id(tokenizer: Any, token: str) -> int:
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(
            f"tokenizer splits {token!r} into {len(ids)} tokens; load models through "
            "thinkbudget.models.load_model_and_tokenizer (it adds the think tokens)"
        )
    return ids[0]


_PARSERS: dict[int, CompletionParser] = {}


def get_parser(tokenizer: Any) -> CompletionParser:
    """The cached parser for ``tokenizer``."""
    key = id(tokenizer)
    if key not in _PARSERS or _PARSERS[key].tokenizer is not tokenizer:
        _PARSERS[key] = CompletionParser(tokenizer)
    return _PARSERS[key]


def parse_completion(completion: str | Sequence[int], tokenizer: Any) -> ParsedCompletion:
    """Parse one completion (text or token ids) with ``tokenizer``'s token counts."""
    return get_parser(tokenizer).parse(completion)
