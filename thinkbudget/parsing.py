"""The one parser: split any completion into thinking and answer, counted in **tokens**.

Every length in the project (SFT trace fitting, RL length rewards, evaluation metrics, budget
forcing) comes from here, so the number a reward optimises is the number evaluation reports.

Rules (also the docstring of the tests):
- Tags are found in the *text*: ``<think>`` written as one added token or as sub-word pieces
  (``<``, ``think``, ``>``) is the same tag, so parsing token ids and parsing their decoded text give
  one answer. A token that carries part of a tag belongs to the tag (it is neither thinking nor answer).
- Everything from the first end-of-sequence / padding token on is not output (ids and text alike).
- The block is *opened* by the first ``<think>`` that comes before the first ``</think>``. Thinking is
  everything before the first ``</think>`` except that tag, leading whitespace, and the opening tag
  itself: text the model wrote *before* ``<think>`` is thinking too (``text_before_think``), so
  reasoning cannot escape a budget by preceding the tag. Budget forcing counts with the same rule
  (:class:`ThinkScanner`), so a row forced at ``B`` parses as exactly ``B`` thinking tokens.
- No ``<think>`` but a ``</think>`` (the model skipped the tag): everything before it is thinking.
- No ``</think>``: an opened block is (unclosed) thinking and the answer is empty; otherwise there is
  no think block and all of it is the answer.
- ``thinking_tokens`` = tokens of the thinking; a whitespace-only block counts 0, so the empty block
  ``<think>\\n\\n</think>`` is "no thinking".
- ``answer_tokens`` = tokens after ``</think>`` with surrounding whitespace removed. It is reported
  separately so reasoning moved after ``</think>`` is seen.
- Further think tags after the first ``</think>`` (nested or repeated blocks) set ``extra_think_tags``.
- It never raises on model output: unknown token ids, huge strings and stray tags are data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from thinkbudget.grading import extract_boxed
from thinkbudget.protocol import THINK_CLOSE, THINK_OPEN

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
    text_before_think: bool = False  # non-whitespace text before the opening <think> (counted as thinking)

    @property
    def total_tokens(self) -> int:
        return self.thinking_tokens + self.answer_tokens

    @property
    def has_boxed(self) -> bool:
        return self.boxed_answer is not None

    @property
    def no_think_compliant(self) -> bool:
        """Whether this completion obeys thinking *off*: no thinking tokens and no further think tag.

        The one rule for thinking-off compliance: the ``mode_compliance`` reward, the GRPO rollout
        metric ``thinkbudget/no_think/compliance``, evaluation's ``no_think_compliance`` and its
        ``thinking_in_no_think`` flag (the negation) all read it."""
        return self.thinking_tokens == 0 and not self.extra_think_tags

    def within_budget(self, budget: int | None, *, closed: bool | None = None) -> bool:
        """Thinking fits ``budget`` tokens *and* the think block was closed.

        Deliberately strict: a completion without a closed block (unclosed, or no block at all, e.g. a
        model that never opened ``<think>``, so budget forcing had nothing to cut) never counts as within
        budget, so format failures cannot inflate the within-budget share. ``budget=None`` always fits.
        ``closed`` replaces :attr:`think_closed` where the prompt, not the completion, closed the block
        (GRPO parses completions without their prompt: :func:`thinkbudget.rewards.think_closed`).
        The one rule for "within budget": rewards' rollout statistics, evaluation and the demo use it.
        """
        if budget is None:
            return True
        closed = self.think_closed if closed is None else closed
        return closed and self.thinking_tokens <= budget

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_tokens"] = self.total_tokens
        return d


@dataclass(frozen=True)
class ThinkLayout:
    """Where the think tags sit in a token sequence (token indices; a tag may span several tokens).

    ``lead``: the first token with a non-whitespace character (``len`` when none); ``open`` / ``close``:
    ``(first, last)`` token of the opening tag (the first ``<think>`` before the first ``</think>``) and
    of the first ``</think>``, or None."""

    lead: int
    open: tuple[int, int] | None
    close: tuple[int, int] | None


def think_layout(pieces: Sequence[str]) -> ThinkLayout:
    """The :class:`ThinkLayout` of tokens whose decoded texts are ``pieces`` (tags found in the text)."""
    import bisect
    import itertools

    ends = list(itertools.accumulate(len(p) for p in pieces))
    text = "".join(pieces)

    def token_at(c: int) -> int:
        return bisect.bisect_right(ends, c)

    stripped = text.lstrip()
    lead = token_at(len(text) - len(stripped)) if stripped else len(pieces)
    close_c, open_c = text.find(THINK_CLOSE), text.find(THINK_OPEN)
    close = (token_at(close_c), token_at(close_c + len(THINK_CLOSE) - 1)) if close_c >= 0 else None
    opened = open_c >= 0 and (close_c < 0 or open_c < close_c)
    open_ = (token_at(open_c), token_at(open_c + len(THINK_OPEN) - 1)) if opened else None
    return ThinkLayout(lead, open_, close)


class CompletionParser:
    """Parses completions for one tokenizer (the decoded text of each token id is cached)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.open_id = _single_token_id(tokenizer, THINK_OPEN)
        self.close_id = _single_token_id(tokenizer, THINK_CLOSE)
        self.stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
        self.vocab_size = len(tokenizer)
        self._pieces: dict[int, str] = {}

    # -- counting -----------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (no special tokens added)."""
        if not text:
            return 0
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def thinking_token_count(self, thinking: str) -> int:
        """Tokens a thinking text costs against a budget (0 for a whitespace-only block)."""
        return 0 if not thinking.strip() else self.count_tokens(thinking)

    def piece(self, token_id: int) -> str:
        """The text of one token (cached; ids outside the vocabulary are empty)."""
        text = self._pieces.get(token_id)
        if text is None:
            ok = 0 <= token_id < self.vocab_size
            text = self.tokenizer.decode([token_id], skip_special_tokens=False) if ok else ""
            self._pieces[token_id] = text
        return text

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
        text = self._strip_stop_text(text)
        close_c, open_c = text.find(THINK_CLOSE), text.find(THINK_OPEN)
        closed = close_c >= 0
        opened = open_c >= 0 and (not closed or open_c < close_c)
        before = ""
        if opened:
            before = text[:open_c].lstrip()
            inner = text[open_c + len(THINK_OPEN) : close_c if closed else len(text)]
            thinking = before + inner
            count = self.count_tokens(before) + self.count_tokens(inner)
        else:
            thinking = text[:close_c] if closed else ""
            count = self.count_tokens(thinking)
        answer = text[close_c + len(THINK_CLOSE) :] if closed else ("" if opened else text)
        answer = answer.strip()
        return ParsedCompletion(
            thinking=thinking.strip(),
            answer=answer,
            thinking_tokens=count if thinking.strip() else 0,
            answer_tokens=self.count_tokens(answer),
            think_opened=opened,
            think_closed=closed,
            extra_think_tags=THINK_OPEN in answer or THINK_CLOSE in answer,
            boxed_answer=extract_boxed(answer),
            text_before_think=bool(before.strip()),
        )

    def _parse_ids(self, ids: list[int]) -> ParsedCompletion:
        # Everything after the first end-of-sequence/pad token is padding, not output.
        for k, i in enumerate(ids):
            if i in self.stop_ids:
                ids = ids[:k]
                break
        layout = think_layout([self.piece(i) for i in ids])
        before: list[int] = []
        if layout.open is not None:
            before = ids[layout.lead : layout.open[0]]
            body_end = layout.close[0] if layout.close is not None else len(ids)
            think_ids = before + ids[layout.open[1] + 1 : body_end]
        elif layout.close is not None:
            think_ids = ids[: layout.close[0]]
        else:
            think_ids = []
        if layout.close is not None:
            answer_ids = ids[layout.close[1] + 1 :]
        else:
            answer_ids = [] if layout.open is not None else ids
        thinking = self._decode(think_ids)
        answer_ids = self._strip_ws_ids(answer_ids)
        answer = self._decode(answer_ids)
        answer_text = "".join(self.piece(i) for i in answer_ids)
        return ParsedCompletion(
            thinking=thinking.strip(),
            answer=answer.strip(),
            thinking_tokens=0 if not thinking.strip() else len(think_ids),
            answer_tokens=len(answer_ids),
            think_opened=layout.open is not None,
            think_closed=layout.close is not None,
            extra_think_tags=THINK_OPEN in answer_text or THINK_CLOSE in answer_text,
            boxed_answer=extract_boxed(answer),
            text_before_think=bool(self._decode(before).strip()),
        )

    # -- helpers ------------------------------------------------------------------------------
    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return self.tokenizer.decode([i for i in ids if 0 <= i < self.vocab_size], skip_special_tokens=False)

    def _is_ws(self, token_id: int) -> bool:
        return not self.piece(token_id).strip()

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


class ThinkScanner:
    """The parser's thinking count, kept up to date one generated token at a time (budget forcing).

    Feed it a row's generated ids as they come (:meth:`feed`); :attr:`thinking` is the number of
    thinking tokens :meth:`CompletionParser.parse` would count for the ids so far *while the block is
    open* (None before it opens), so forcing ``</think>`` when it reaches ``B`` gives a completion that
    parses as exactly ``B`` thinking tokens: text before ``<think>`` counts, tags written as sub-word
    pieces are tags, leading whitespace does not count. ``prefilled``: the prompt ended with ``<think>``
    (the block is open from the first generated token). ``finished``: an end-of-sequence / padding token
    was generated (the row stopped; what follows is padding, never thinking)."""

    def __init__(self, parser: CompletionParser, prefilled: bool = False):
        self.parser = parser
        self.text = ""
        self.ends: list[int] = []
        self.n = 0
        self.lead: int | None = -1 if prefilled else None
        self.open: tuple[int, int] | None = (-1, -1) if prefilled else None
        self.closed = False
        self.finished = False

    def feed(self, ids: Sequence[int]) -> None:
        for token_id in ids:
            if self.finished or self.closed:
                return
            token_id = int(token_id)
            if token_id in self.parser.stop_ids:
                self.finished = True
                return
            old = len(self.text)
            self.text += self.parser.piece(token_id)
            self.ends.append(len(self.text))
            self.n += 1
            if self.lead is None and self.text.strip():
                self.lead = self._token_at(len(self.text) - len(self.text.lstrip()))
            tail = max(0, old - len(THINK_CLOSE))
            close_c = self.text.find(THINK_CLOSE, tail)
            if self.open is None:
                open_c = self.text.find(THINK_OPEN, max(0, old - len(THINK_OPEN)))
                if open_c >= 0 and (close_c < 0 or open_c < close_c):
                    self.open = (self._token_at(open_c), self._token_at(open_c + len(THINK_OPEN) - 1))
            if close_c >= 0:
                self.closed = True

    def _token_at(self, c: int) -> int:
        import bisect

        return bisect.bisect_right(self.ends, c)

    @property
    def opened(self) -> bool:
        return self.open is not None and self.open[1] < self.n

    @property
    def thinking(self) -> int | None:
        """Thinking tokens so far while the block is open and the row is running, else None."""
        if not self.opened or self.closed or self.finished:
            return None
        return (self.open[0] - (self.lead or 0)) + (self.n - 1 - self.open[1])


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
