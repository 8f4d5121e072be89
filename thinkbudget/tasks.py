"""Verifiable tasks: problems with integer/string gold answers and step-by-step reasoning traces.

Every source yields :class:`Problem` objects through one entry point, :func:`load_problems`:

- ``chain``, ``multiply``, ``nested``: synthetic arithmetic with graded difficulty where writing the
  steps down helps. Each problem carries correct traces at two granularities, ``"full"`` (every
  step) and ``"condensed"`` (fewer, bigger steps); answer-only is the third granularity and is
  represented by *no* thinking at all. The same problem therefore has traces of different token
  lengths, which is what lets the SFT mix fit a trace under a token budget.
- ``step``: one chain step (``47 + 8``), the problems a small model answers without thinking; outside
  the ``synthetic`` mix. ``mix:<family>+<family>``: generated families in turn (``mix:step+chain``).
- ``gsm8k``: grade-school math from the JSONL files shipped in the repository (``data/gsm8k/``, MIT
  licence; ``$THINKBUDGET_GSM8K_DIR`` points elsewhere), or the hub dataset ``openai/gsm8k`` only
  when those are missing.
  The worked solution (calculator annotations ``<<48/2=24>>`` removed) is the full trace; the
  annotated equations alone are the condensed trace; gold is the number after ``####``.
- ``rg/<name>``: any reasoning-gym dataset (offline generators). No traces; ``meta`` is the entry's
  metadata, which :func:`thinkbudget.grading.is_correct` hands to reasoning-gym's scorer.
- ``jsonl:<path>[?question=q&answer=a&reasoning=r&test=<test path>]``: a user JSONL file. Field names
  default to ``question``, ``answer``, ``reasoning`` (reasoning is optional unless named explicitly).
  With ``test=`` the first file is the train split and the second the test split; otherwise the
  split of a row is decided by the hash of its question, like generated tasks.

Splits never overlap: a generated (or single-file) problem's split is a pure function of the hash
of its question text, so a question can never be in both, whatever the seed. Problems are
deduplicated within a split and generation continues until ``n`` are collected.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import os
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
GRANULARITIES = ("full", "condensed")  # longest first; answer-only = no thinking at all
SYNTHETIC_TASKS = ("chain", "multiply", "nested")
# The held-out synthetic split as one task: the three families in turn (chain, multiply, nested, ...),
# so one `--limit N` gives N synthetic problems per condition. Problems keep their family's task name.
SYNTHETIC_MIX = "synthetic"
# One step of the chain (``47 + 8``): generated like the families above, but outside the "synthetic" mix,
# whose problems it would change. Auto mode's problems that need no thinking.
STEP_TASK = "step"
# ``mix:<family>+<family>[+...]``: generated families in turn, like "synthetic" (``mix:step+chain`` is half
# single steps, half chains: the held-out set on which auto mode must decide). Records keep the mix's name.
MIX_PREFIX = "mix:"
GSM8K_TASK = "gsm8k"
RG_PREFIX = "rg/"
JSONL_PREFIX = "jsonl:"
# Fraction of generated questions that belong to the test split (decided by question hash).
TEST_FRACTION = 0.2
# Default number of problems when ``n`` is None for generators (files give all their rows).
DEFAULT_GENERATED_N = 1000
GSM8K_HUB_NAME = "openai/gsm8k"
_REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Problem:
    """One verifiable problem. ``traces`` maps a granularity (``"full"``, ``"condensed"``) to reasoning
    text and is empty when the source has none; ``meta`` is JSON-serialisable."""

    id: str
    task: str
    question: str
    answer: str
    traces: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Task names and the split rule
# --------------------------------------------------------------------------------------------
def rg_dataset_names() -> list[str]:
    """Names of the reasoning-gym datasets (without the ``rg/`` prefix)."""
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def list_tasks() -> list[str]:
    """Every valid task name (``jsonl:<path>`` specs are accepted too but not listed; reasoning-gym
    families whose scorer evaluates answers as code are left out)."""
    from thinkbudget.grading import unsafe_rg_family

    rg = [RG_PREFIX + n for n in rg_dataset_names() if not unsafe_rg_family(n)]
    return [*SYNTHETIC_TASKS, STEP_TASK, SYNTHETIC_MIX, GSM8K_TASK, *rg]


def describe_valid_tasks() -> str:
    """A one-paragraph list of valid task names for error messages."""
    from thinkbudget.grading import unsafe_rg_family

    safe = [n for n in rg_dataset_names() if not unsafe_rg_family(n)]
    return (
        f"{', '.join(SYNTHETIC_TASKS)}, {STEP_TASK}, {SYNTHETIC_MIX} (the three in turn), "
        f"{MIX_PREFIX}<family>+<family>[+...] (generated families in turn, e.g. {MIX_PREFIX}step+chain), {GSM8K_TASK}, "
        f"{RG_PREFIX}<name> for any of: {', '.join(safe)}; "
        f"or {JSONL_PREFIX}<path>[?question=..&answer=..&reasoning=..&test=..]"
    )


def validate_task_name(task: str) -> str:
    """Return ``task`` if it names a loadable task, else raise ``ValueError`` listing the valid ones.
    Cheap: nothing is generated or read (a JSONL spec is only checked for existence)."""
    if task in GENERATORS or task in (SYNTHETIC_MIX, GSM8K_TASK):
        return task
    if task.startswith(MIX_PREFIX):
        mix_families(task)
        return task
    if task.startswith(RG_PREFIX) and task[len(RG_PREFIX) :] in rg_dataset_names():
        from thinkbudget.grading import UNSAFE_RG_FAMILIES, unsafe_rg_family

        if unsafe_rg_family(task[len(RG_PREFIX) :]):
            raise ValueError(
                f"task {task!r} is refused: its reasoning-gym scorer runs the model's answer through Python's "
                f"eval() (or sympy's parse_expr), so a completion could execute code while being scored. "
                f"Refused families: {', '.join(UNSAFE_RG_FAMILIES)}, composite"
            )
        return task
    if task.startswith(JSONL_PREFIX):
        JsonlTaskSpec.parse(task).check()
        return task
    raise ValueError(f"unknown task {task!r}; valid tasks: {describe_valid_tasks()}")


def mix_families(task: str) -> list[str]:
    """The generated families of a ``mix:a+b`` task, checked: at least two, each generated, none twice;
    else ``ValueError`` naming the bad part and the families there are."""
    parts = task[len(MIX_PREFIX) :].split("+")
    bad = [p for p in parts if p not in GENERATORS]
    if bad or len(parts) < 2 or len(set(parts)) != len(parts):
        why = f"unknown families {bad}" if bad else "it needs two or more different families"
        raise ValueError(
            f"task {task!r}: {why}; a mix is {MIX_PREFIX}<family>+<family>[+...] of: {', '.join(GENERATORS)}"
        )
    return parts


def check_counts_per_task(name: str, counts: list[Any], tasks: list[str], *, minimum: int) -> None:
    """A config field of one count per task (``task_train_problems``, ``task_limits``): empty, or one
    whole number >= ``minimum`` per entry of ``tasks``; else ``ValueError`` naming the field."""
    if not counts:
        return
    if len(counts) != len(tasks):
        raise ValueError(
            f"{name}: has {len(counts)} counts for {len(tasks)} tasks ({', '.join(tasks)}); "
            "give one count per task or none"
        )
    bad = [v for v in counts if isinstance(v, bool) or not isinstance(v, int) or v < minimum]
    if bad:
        kind = "non-negative" if minimum == 0 else f"at least {minimum}"
        raise ValueError(f"{name}: counts must be {kind} integers, got {bad}")


def split_of(question: str) -> str:
    """The split a question belongs to: a pure function of its text (sha256), so train and test
    can never share a question, whatever the seed or the generator."""
    h = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "big")
    return "test" if (h % 10_000) < TEST_FRACTION * 10_000 else "train"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


# --------------------------------------------------------------------------------------------
# Synthetic arithmetic. Each generator returns (question, answer, traces, meta) from an RNG.
# Traces are lines of arithmetic that the tests re-evaluate one by one.
# --------------------------------------------------------------------------------------------
# Chain: the family built for step-by-step mastery by a small model. Each step adds or subtracts one
# digit (1-9) to a running value kept within 0-99, so a step is one of 1,800 facts a 135M model can learn
# reliably, while the number of steps (2-20) spans every budget: the full trace of 2 steps is ~10
# thinking tokens, that of 20 steps ~160 (more than the largest budget, 128). Without a trace the answer
# is a 20-term mental sum; with one, each line is one small fact.
CHAIN_STEPS = (2, 20)  # operations per problem (inclusive)
CHAIN_RANGE = (0, 99)  # the running value never leaves this range
CHAIN_GROUPS = (1, 2, 3, 4, 6)  # operations per line of each granularity, finest first
# The full trace's one-operation lines written without spaces (``-6=49``): the same steps at 6 tokens a
# step instead of 8. Why: SmolLM2-135M gets 99 % of one-operation lines right but only 31-43 % of the
# lines that combine two operations (the fifth CPU proof's samples), so under a budget it can keep its
# steps reliable by writing them tersely, not by making them bigger.
TERSE = "terse"


def chain_lines(start: int, ops: list[tuple[str, int]], group: int, *, terse: bool = False) -> list[str]:
    """The trace lines of a chain, ``group`` operations per line: the first line restates the start
    (``47 + 8 = 55``), the next ones continue from the previous line's result (``- 6 + 3 = 52``), so a
    line costs its operations plus the result (one token per digit). ``terse``: without spaces
    (``47+8=55``, ``-6+3=52``). Every line is checked by :func:`thinkbudget.traces.check_lines`."""
    sep = "" if terse else " "
    lines, acc = [], start
    for i in range(0, len(ops), group):
        chunk = ops[i : i + group]
        for s, x in chunk:
            acc = acc + x if s == "+" else acc - x
        head = f"{start}{sep}" if i == 0 else ""
        lines.append(head + sep.join(f"{s}{sep}{x}" for s, x in chunk) + f"{sep}={sep}{acc}")
    return lines


def chain_granularity(group: int) -> str:
    """The name of a chain granularity: ``full`` (one operation a line) or ``<k>-per-line``."""
    return "full" if group == 1 else f"{group}-per-line"


def trace_granularities() -> tuple[str, ...]:
    """Every granularity a problem's traces can have, by name: the chain family's (``full``, ``terse``,
    ``2-per-line`` ...) and the other tasks' ``condensed`` (the result alone is the data stage's)."""
    return (GRANULARITIES[0], TERSE, *(chain_granularity(g) for g in CHAIN_GROUPS[1:]), *GRANULARITIES[1:])


def gen_chain(rng: random.Random) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    """``47 + 8 - 6 + ...`` with 2 to 20 one-digit operations on a running value kept within 0-99.

    Traces, finest first: ``full`` (one operation a line), ``terse`` (the same lines without spaces,
    :data:`TERSE`), then 2, 3, 4 and 6 operations a line (coarser: fewer written intermediates, each line
    a bigger step) while that saves lines."""
    return _chain(rng, rng.randint(*CHAIN_STEPS))


def gen_step(rng: random.Random) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    """``47 + 8``: one chain step, the easiest problem of the chain's world. Why a family of its own: auto
    mode (issue #21) needs problems that a small model answers as well without thinking as with it, beside
    the chains on which thinking pays; one step is one of the 1,800 facts, answered at a glance."""
    return _chain(rng, 1)


def _chain(rng: random.Random, n_ops: int) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    lo, hi = CHAIN_RANGE
    start = rng.randint(10, hi)
    ops, acc = [], start
    for _ in range(n_ops):
        x = rng.randint(1, 9)
        s = rng.choice("+-")
        if not lo <= (acc + x if s == "+" else acc - x) <= hi:
            s = "-" if s == "+" else "+"  # turn back at the edge of the range
        acc = acc + x if s == "+" else acc - x
        ops.append((s, x))
    traces: dict[str, str] = {}
    n_lines = None
    for group in CHAIN_GROUPS:
        lines = chain_lines(start, ops, group)
        if len(lines) != n_lines:  # a coarser granularity must save lines (and so tokens)
            traces[chain_granularity(group)] = "\n".join(lines)
            n_lines = len(lines)
        if group == 1:
            traces[TERSE] = "\n".join(chain_lines(start, ops, 1, terse=True))
    expr = f"{start} " + " ".join(f"{s} {x}" for s, x in ops)
    meta = {"difficulty": n_ops, "operands": n_ops + 1, "steps": n_ops}
    return f"Compute {expr}.", str(acc), traces, meta


# (digits of a, digits of b) pairs, easiest first.
MULTIPLY_SHAPES = ((2, 1), (2, 2), (3, 1), (3, 2), (3, 3), (4, 2), (4, 3))


def gen_multiply(rng: random.Random) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    """``a * b`` from 2x1 up to 4x3 digits, solved by partial products.

    full: each partial product expanded over the digits of ``a`` (``347 * 6 = 1800 + 240 + 42 = 2082``),
    then the sum; condensed: the partial products only, then the sum."""
    level = rng.randrange(len(MULTIPLY_SHAPES))
    da, db = MULTIPLY_SHAPES[level]
    a = rng.randint(10 ** (da - 1), 10**da - 1)
    b = rng.randint(10 ** (db - 1), 10**db - 1)
    # Place-value parts, most significant first, zeros dropped (they add nothing but tokens).
    a_parts = [int(d) * 10**p for p, d in zip(range(da - 1, -1, -1), str(a)) if d != "0"]
    b_parts = [int(d) * 10**p for p, d in zip(range(db - 1, -1, -1), str(b)) if d != "0"][::-1]
    full, condensed, partials = [], [], []
    for bp in b_parts:
        prod = a * bp
        partials.append(prod)
        pieces = [ap * bp for ap in a_parts]
        mid = f" = {' + '.join(map(str, pieces))}" if len(pieces) > 1 else ""
        full.append(f"{a} * {bp}{mid} = {prod}")
        condensed.append(f"{a} * {bp} = {prod}")
    if len(partials) > 1:
        total = f"{' + '.join(map(str, partials))} = {a * b}"
        full.append(total)
        condensed.append(total)
    traces = {"full": "\n".join(full)}
    if condensed != full:
        traces["condensed"] = "\n".join(condensed)
    return f"Compute {a} * {b}.", str(a * b), traces, {"difficulty": level + 1, "digits": [da, db]}


_OPS: dict[str, Callable[[int, int], int]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _random_tree(rng: random.Random, n_ops: int) -> Any:
    """A random binary expression tree with ``n_ops`` operators; leaves are ints 1..12."""
    if n_ops == 0:
        return rng.randint(1, 12)
    left = rng.randint(0, n_ops - 1)
    return (rng.choice("+-*"), _random_tree(rng, left), _random_tree(rng, n_ops - 1 - left))


def _render(tree: Any, top: bool = True) -> str:
    # Every operation below the top is parenthesised, so the order of evaluation is unambiguous.
    if isinstance(tree, int):
        return str(tree)
    op, a, b = tree
    s = f"{_render(a, False)} {op} {_render(b, False)}"
    return s if top else f"({s})"


def _is_innermost(tree: Any) -> bool:
    return not isinstance(tree, int) and isinstance(tree[1], int) and isinstance(tree[2], int)


def _reduce_one(tree: Any) -> tuple[Any, bool]:
    """Evaluate the leftmost innermost operation."""
    if isinstance(tree, int):
        return tree, False
    op, a, b = tree
    if _is_innermost(tree):
        return _OPS[op](a, b), True
    a2, done = _reduce_one(a)
    if done:
        return (op, a2, b), True
    b2, done = _reduce_one(b)
    return (op, a, b2), done


def _reduce_level(tree: Any) -> Any:
    """Evaluate every innermost operation at once (one nesting level per step)."""
    if isinstance(tree, int):
        return tree
    op, a, b = tree
    if _is_innermost(tree):
        return _OPS[op](a, b)
    return (op, _reduce_level(a), _reduce_level(b))


def gen_nested(rng: random.Random) -> tuple[str, str, dict[str, str], dict[str, Any]]:
    """Nested expressions with parentheses over ``+ - *`` and 2 to 6 operations, evaluated innermost first.

    full: one operation per line, rewriting the expression (``= 7 * (5 - 2)``); condensed: every
    innermost operation of a nesting level at once."""
    n_ops = rng.randint(2, 6)
    tree = _random_tree(rng, n_ops)
    full, t = [], tree
    while not isinstance(t, int):
        t, _ = _reduce_one(t)
        full.append(f"= {_render(t)}")
    condensed, t = [], tree
    while not isinstance(t, int):
        t = _reduce_level(t)
        condensed.append(f"= {_render(t)}")
    traces = {"full": "\n".join(full)}
    if len(condensed) < len(full):
        traces["condensed"] = "\n".join(condensed)
    return f"Compute {_render(tree)}.", str(t), traces, {"difficulty": n_ops, "operations": n_ops}


GENERATORS: dict[str, Callable[[random.Random], tuple[str, str, dict[str, str], dict[str, Any]]]] = {
    "chain": gen_chain,
    STEP_TASK: gen_step,
    "multiply": gen_multiply,
    "nested": gen_nested,
}


def _collect(
    task: str, split: str, n: int, candidates: Iterable[tuple[str, str, dict[str, str], dict[str, Any]]]
) -> list[Problem]:
    """Take candidates whose question hashes into ``split``, without duplicates, until ``n``."""
    seen: set[str] = set()
    out: list[Problem] = []
    for question, answer, traces, meta in candidates:
        if split_of(question) != split or question in seen:
            continue
        seen.add(question)
        out.append(Problem(f"{task}-{_short_hash(question)}", task, question, answer, traces, meta))
        if len(out) == n:
            break
    return out


def _load_synthetic(task: str, split: str, n: int, seed: int) -> list[Problem]:
    rng = random.Random(f"{task}:{seed}")  # a str seed is hashed with sha512: stable across runs
    gen = GENERATORS[task]
    max_draws = max(1000, 200 * n)  # attempts before giving up (the easiest levels repeat quickly)
    problems = _collect(task, split, n, (gen(rng) for _ in range(max_draws)))
    if len(problems) < n:
        raise ValueError(
            f"task {task!r}: only {len(problems)} distinct {split} problems after {max_draws} draws"
        )
    return problems


# --------------------------------------------------------------------------------------------
# GSM8K
# --------------------------------------------------------------------------------------------
_ANNOTATION = re.compile(r"<<([^<>]*)>>")


GSM8K_SHIPPED_DIR = _REPO_ROOT / "data" / "gsm8k"


def gsm8k_dir() -> Path:
    """Folder of the GSM8K JSONL files: ``$THINKBUDGET_GSM8K_DIR``, else the copy shipped in the
    repository (``data/gsm8k/``)."""
    return Path(os.environ.get("THINKBUDGET_GSM8K_DIR") or GSM8K_SHIPPED_DIR)


def parse_gsm8k_solution(solution: str) -> tuple[str, str, str]:
    """``(full trace, condensed trace, gold)`` from a GSM8K worked solution.

    The full trace is the solution without its ``<<a=b>>`` calculator annotations and without the
    ``#### gold`` line; the condensed trace is the annotated equations alone (``48/2 = 24``), or the
    last line of the solution when it has none. Gold is the number after ``####`` without commas."""
    if "####" not in solution:
        raise ValueError(f"GSM8K solution has no '#### <answer>' line: {solution[-80:]!r}")
    body, gold = solution.rsplit("####", 1)
    gold = gold.strip().replace(",", "").replace("$", "").strip()
    equations = [_format_equation(m) for m in _ANNOTATION.findall(body)]
    full = "\n".join(line.strip() for line in _ANNOTATION.sub("", body).strip().splitlines() if line.strip())
    condensed = "\n".join(equations) if equations else (full.splitlines()[-1] if full else "")
    return full, condensed, gold


def _format_equation(annotation: str) -> str:
    lhs, _, rhs = annotation.rpartition("=")
    return f"{lhs.strip()} = {rhs.strip()}" if lhs else annotation.strip()


def _gsm8k_rows(split: str) -> list[dict[str, Any]]:
    path = gsm8k_dir() / f"{split}.jsonl"
    if path.is_file():
        return _read_jsonl(path, ("question", "answer"))
    logger.warning("%s not found; loading %s from the hub", path, GSM8K_HUB_NAME)
    from datasets import load_dataset

    try:
        return [dict(r) for r in load_dataset(GSM8K_HUB_NAME, "main", split=split)]
    except Exception as e:
        raise FileNotFoundError(
            f"GSM8K {split} split: {path} does not exist and the hub copy ({GSM8K_HUB_NAME}) could not be "
            f"loaded ({type(e).__name__}: {e}); set THINKBUDGET_GSM8K_DIR to a folder with train.jsonl/test.jsonl"
        ) from e


def _load_gsm8k(split: str, n: int | None, seed: int) -> list[Problem]:
    problems = []
    for i, row in enumerate(_gsm8k_rows(split)):
        full, condensed, gold = parse_gsm8k_solution(row["answer"])
        traces = {"full": full}
        if condensed and len(condensed) < len(full):
            traces["condensed"] = condensed
        problems.append(Problem(f"gsm8k-{split}-{i}", GSM8K_TASK, row["question"].strip(), gold, traces, {}))
    random.Random(f"gsm8k:{seed}").shuffle(problems)
    return problems if n is None else problems[:n]


# --------------------------------------------------------------------------------------------
# reasoning-gym
# --------------------------------------------------------------------------------------------
def to_jsonable(x: Any) -> Any:
    """``x`` with tuples/sets turned into lists and unknown objects into strings (JSON-safe)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, (set, frozenset)):
        return sorted((to_jsonable(v) for v in x), key=repr)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def _load_rg(task: str, split: str, n: int, seed: int) -> list[Problem]:
    import reasoning_gym

    name = task[len(RG_PREFIX) :]

    def candidates():
        # Fixed-size rounds with their own seeds: the candidate stream does not depend on n, so the
        # first k problems are the same whatever n >= k is asked for (like the other generators).
        round_size, max_rounds = 1000, max(10, 50 * n // 1000)
        for round_ in range(max_rounds):
            dataset = reasoning_gym.create_dataset(name, size=round_size, seed=seed * 1_000_003 + round_)
            for entry in dataset:  # entries are generated lazily, one by one
                yield str(entry["question"]), str(entry["answer"]), {}, to_jsonable(entry["metadata"])

    problems = _collect(task, split, n, candidates())
    if len(problems) < n:
        logger.warning("%s: only %d distinct %s problems could be generated", task, len(problems), split)
    return problems


# --------------------------------------------------------------------------------------------
# User JSONL
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JsonlTaskSpec:
    """A user JSONL task: ``jsonl:<path>[?question=q&answer=a&reasoning=r&test=<test path>]``.

    ``reasoning`` rows become the full trace (and a condensed one: its lines with ``=``, when shorter).
    A reasoning field is optional unless named explicitly in the spec."""

    path: str
    question: str = "question"
    answer: str = "answer"
    reasoning: str = "reasoning"
    test_path: str | None = None
    reasoning_required: bool = False

    @classmethod
    def parse(cls, spec: str) -> JsonlTaskSpec:
        if not spec.startswith(JSONL_PREFIX):
            raise ValueError(f"a JSONL task spec starts with {JSONL_PREFIX!r}, got {spec!r}")
        path, _, query = spec[len(JSONL_PREFIX) :].partition("?")
        opts = dict(parse_qsl(query, keep_blank_values=True))
        valid = {"question", "answer", "reasoning", "test"}
        unknown = sorted(set(opts) - valid)
        if unknown:
            raise ValueError(
                f"JSONL task {spec!r}: unknown option(s) {unknown}; valid options: {sorted(valid)}"
            )
        return cls(
            path=path,
            question=opts.get("question", "question"),
            answer=opts.get("answer", "answer"),
            reasoning=opts.get("reasoning", "reasoning"),
            test_path=opts.get("test"),
            reasoning_required="reasoning" in opts,
        )

    def check(self) -> None:
        for p in (self.path, self.test_path):
            if p is not None and not Path(p).is_file():
                raise FileNotFoundError(f"JSONL task file {p} does not exist")


def _read_jsonl(path: Path, required: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of a JSONL file; errors name the file and line (and the missing field)."""
    if not path.is_file():
        raise FileNotFoundError(f"JSONL file {path} does not exist")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: malformed JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            for name in required:
                if name not in row:
                    raise ValueError(
                        f"{path}:{lineno}: missing field {name!r} (fields present: {sorted(row)})"
                    )
            rows.append({**row, "_line": lineno})
    return rows


def condense_reasoning(text: str) -> str:
    """A shorter trace from free-form reasoning: its lines containing an equation, else its last line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    eq = [ln for ln in lines if "=" in ln]
    return "\n".join(eq) if eq else (lines[-1] if lines else "")


def _load_jsonl(task: str, split: str, n: int | None, seed: int) -> list[Problem]:
    spec = JsonlTaskSpec.parse(task)
    spec.check()
    required = [spec.question, spec.answer] + ([spec.reasoning] if spec.reasoning_required else [])
    if spec.test_path is not None:
        rows = _read_jsonl(Path(spec.path if split == "train" else spec.test_path), required)
    else:
        rows = [r for r in _read_jsonl(Path(spec.path), required) if split_of(str(r[spec.question])) == split]
    problems, seen = [], set()
    for row in rows:
        question = str(row[spec.question]).strip()
        if question in seen:
            continue
        seen.add(question)
        traces = {}
        reasoning = row.get(spec.reasoning)
        if isinstance(reasoning, str) and reasoning.strip():
            traces["full"] = reasoning.strip()
            condensed = condense_reasoning(reasoning)
            if condensed and len(condensed) < len(traces["full"]):
                traces["condensed"] = condensed
        problems.append(
            Problem(
                f"jsonl-{_short_hash(question)}", task, question, str(row[spec.answer]).strip(), traces, {}
            )
        )
    random.Random(f"jsonl:{seed}").shuffle(problems)
    return problems if n is None else problems[:n]


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------
def load_problems(task: str, split: str, n: int | None = None, seed: int = 0) -> list[Problem]:
    """``n`` problems of ``task`` in ``split`` ("train"/"test"), deterministic from ``seed``.

    ``n=None`` gives all rows of a file-backed task and :data:`DEFAULT_GENERATED_N` generated ones.
    Train and test never share a question. Unknown tasks raise ``ValueError`` listing valid names."""
    _check_split(split)
    validate_task_name(task)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError(f"n must be a non-negative integer number of problems or None, got {n!r}")
    if n == 0:
        return []
    if task in GENERATORS:
        return _load_synthetic(task, split, n or DEFAULT_GENERATED_N, seed)
    if task == SYNTHETIC_MIX or task.startswith(MIX_PREFIX):
        families = SYNTHETIC_TASKS if task == SYNTHETIC_MIX else mix_families(task)
        n = n or DEFAULT_GENERATED_N
        k = len(families)
        per_family = [_load_synthetic(t, split, -(-n // k), seed) for t in families]
        return [per_family[i % k][i // k] for i in range(n)]
    if task == GSM8K_TASK:
        return _load_gsm8k(split, n, seed)
    if task.startswith(RG_PREFIX):
        return _load_rg(task, split, n or DEFAULT_GENERATED_N, seed)
    return _load_jsonl(task, split, n, seed)
