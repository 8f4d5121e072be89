"""The data mix: problems from :mod:`thinkbudget.tasks` turned into SFT and RL rows.

Every problem becomes one row (``rows_per_problem`` rows in the SFT training split, each of a different
type) of one of three types, drawn per problem with a seeded RNG:

- **think with a budget** B (``think_budget_ratio``; B drawn from ``budgets``/``budget_weights``):
  the prompt states B, and the SFT target's trace is the *finest* granularity whose thinking fits B
  tokens (counted by :mod:`thinkbudget.parsing` on exactly the text between the think tags); when
  none fits, the coarsest complete solution, the result alone (``= 52``). A smaller budget means a
  coarser but complete solution, never a cut one: every target's arithmetic lines are correct and its
  answer is the trace's conclusion (:mod:`thinkbudget.traces`). A target is never over its budget and
  never an empty think block (:func:`fit_budgeted_row`).
- **think without a budget** (``think_free_ratio``): the full trace.
- ``granularities`` limits the traces a target may use (e.g. only the steps a 135M model gets right),
  and ``budget_margin`` leaves a share of each budget unused, so that the next finer trace still fits.
- With ``plan_line``, every think target of a problem that knows its size (the chain family) opens
  with it (``12 steps``), counted in the budget (:func:`plan_text` says why).
- **no think** (``no_think_ratio``): an empty think block and the answer.
- **auto** (``auto_ratio``): the prompt leaves the decision to the model (``enable_thinking="auto"`` or
  ``/auto_think``), budgeted or not in the proportion of the think rows. The target thinks (the trace a
  think row of that budget gets) where thinking pays for problems of its difficulty, and otherwise answers
  after an empty block that the model writes: the decision table ``auto_decisions`` is *measured* from an
  evaluation (:mod:`thinkbudget.auto`). RL rows drawn auto stay auto: GRPO samples and rewards the
  decision itself (:mod:`thinkbudget.decision`), and each RL row carries ``full_trace_tokens`` (its
  difficulty, :func:`thinkbudget.traces.full_trace_tokens`) for the decision's curves per difficulty.

Each row is also controlled one of two ways (``flag_ratio``): the chat-template keyword arguments
(``enable_thinking``/``thinking_budget``; with thinking off the prompt is pre-filled with the empty
block, so the target is just the answer), or the text flags ``/think``/``/no_think`` (with
``/no_think`` nothing is pre-filled: the target starts with the empty block the model must write).
A flag row with a budget still states it through ``thinking_budget``.

Problems without traces (reasoning-gym) only make no-think SFT rows; in RL they take any type.

RL rows carry no target, but they carry its shape: ``target_lines``, the number of arithmetic lines of
the trace an SFT row of the same type would be trained on (0 for the result alone; None on thinking-off
rows and problems without traces), which the ``granularity`` reward pays for
(:func:`target_lines_of`).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from thinkbudget import auto
from thinkbudget.protocol import (
    boxed,
    build_messages,
    format_response,
    render_prompt,
    validate_budget,
)
from thinkbudget.tasks import (
    Problem,
    check_counts_per_task,
    describe_valid_tasks,
    load_problems,
    trace_granularities,
    validate_task_name,
)
from thinkbudget.traces import check_lines, full_trace_tokens, is_number, same_number, trace_thinking_tokens

logger = logging.getLogger(__name__)

MODES = ("think", "no_think", "auto")
CONTROLS = ("kwargs", "flag")
KINDS = ("sft", "rl")
RATIO_TOLERANCE = 1e-6


@dataclass
class DataMixArguments:
    """What goes into the SFT/RL datasets: the configuration of ``data/prepare.py`` (a data recipe,
    ``configs/data/*.yaml``). The trainers never see these fields; they read the prepared folder.

    The data seed is ``mix_seed`` (not ``seed``) because TRL's training configs already own ``--seed``
    and TrlParser refuses two dataclasses with the same field; ``args.seed`` still reads it."""

    tasks: list[str] = field(
        default_factory=lambda: ["chain", "multiply", "nested", "gsm8k"],
        metadata={
            "help": "Task names: chain, multiply, nested, step, mix:<family>+<family>, gsm8k, rg/<reasoning-gym name>, or "
            "jsonl:<path>[?question=..&answer=..&reasoning=..&test=<path>]."
        },
    )
    num_train_problems: int = field(
        default=2000, metadata={"help": "Training problems per task (count; file tasks may have fewer)."}
    )
    task_train_problems: list[int] = field(
        default_factory=list,
        metadata={
            "help": "Training problems of each task, one count per entry of `tasks` (count); empty = "
            "num_train_problems for every task."
        },
    )
    num_test_problems: int = field(default=200, metadata={"help": "Test problems per task (count)."})
    budgets: list[int] = field(
        default_factory=lambda: [32, 64, 128, 256],
        metadata={"help": "Thinking budgets drawn for budgeted rows (tokens)."},
    )
    budget_weights: list[float] = field(
        default_factory=list,
        metadata={"help": "Relative weights of `budgets` (unitless, one per budget); empty = uniform."},
    )
    rl_budget_weights: list[float] = field(
        default_factory=list,
        metadata={
            "help": "Relative weights of `budgets` in the RL rows only (unitless, one per budget); empty = "
            "budget_weights. GRPO's updates at one budget carry over to the others, so a budget whose "
            "decision drifts can be drawn more often where its penalty acts; the SFT rows do not change."
        },
    )
    think_budget_ratio: float = field(
        default=0.5, metadata={"help": "Fraction of rows thinking under a stated budget (0-1)."}
    )
    think_free_ratio: float = field(
        default=0.25, metadata={"help": "Fraction of rows thinking without a budget (0-1)."}
    )
    no_think_ratio: float = field(
        default=0.25, metadata={"help": "Fraction of rows with thinking off (0-1)."}
    )
    auto_ratio: float = field(
        default=0.0,
        metadata={
            "help": "Fraction of rows in auto mode, where the model decides whether to think (0-1; the four "
            "ratios sum to 1). Needs auto_decisions."
        },
    )
    auto_decisions: str | None = field(
        default=None,
        metadata={
            "help": "Decision table of the auto rows (path, JSON from scripts/auto_decisions.py): per task and "
            "difficulty (full-trace tokens), whether thinking paid in a measured evaluation."
        },
    )
    flag_ratio: float = field(
        default=0.3,
        metadata={
            "help": "Fraction of rows controlled by /think or /no_think text flags instead of template kwargs (0-1)."
        },
    )
    rows_per_problem: int = field(
        default=1,
        metadata={
            "help": "SFT training rows per problem (count), each of a different type (mode and budget). "
            "Seeing one problem with free thinking and with budget 32, say, teaches that the stated budget, "
            "not the problem's length, decides the trace. RL and test splits keep one row per problem."
        },
    )
    mix_seed: int = field(
        default=0, metadata={"help": "Seed of problem generation and row-type draws (integer; data only)."}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message text; None uses the chat template's default."}
    )
    plan_line: bool = field(
        default=False,
        metadata={
            "help": "Think targets of problems that know their size (the chain family) open with it, "
            "e.g. '12 steps' (3-4 tokens, counted in the budget): the model states the size it must "
            "reason through, and the granularity that fits the budget follows from a number it wrote."
        },
    )

    granularities: list[str] = field(
        default_factory=list,
        metadata={
            "help": "The trace granularities a budgeted think target may use (names such as full, terse, "
            "2-per-line, condensed; the result alone is always allowed); empty = all of them. The finest "
            "allowed one that fits the budget (and its margin) is the target; free thinking always "
            "takes the finest trace."
        },
    )
    budget_margin: float = field(
        default=0.0,
        metadata={
            "help": "Share of the budget a budgeted target leaves unused (fraction in [0, 0.5)): its trace "
            "has at most (1 - budget_margin) x budget thinking tokens, so a model that misjudges a "
            "problem's size by a little and writes the next finer trace still stays within the budget."
        },
    )
    task_budget_margins: list[float] = field(
        default_factory=list,
        metadata={
            "help": "budget_margin per task, in the order of tasks (fractions in [0, 0.5)); empty = "
            "budget_margin for every task. Why per task: a model judges a chain's length from its operands, "
            "a word problem's hardly at all, so word problems need a wider margin to stay within the budget."
        },
    )

    def __post_init__(self) -> None:
        self.validate()

    @property
    def seed(self) -> int:
        """Alias of :attr:`mix_seed`."""
        return self.mix_seed

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and its valid values (cheap: nothing loads)."""
        if not self.tasks:
            raise ValueError(f"tasks: must name at least one task; valid tasks: {describe_valid_tasks()}")
        for t in self.tasks:
            try:
                validate_task_name(t)
            except (ValueError, FileNotFoundError) as e:
                raise ValueError(f"tasks: {e}") from None
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks: duplicate task names in {self.tasks}")
        for name in ("num_train_problems", "num_test_problems", "mix_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or (v < 0 and name != "mix_seed"):
                raise ValueError(f"{name}: must be a non-negative integer, got {v!r}")
        check_counts_per_task("task_train_problems", self.task_train_problems, self.tasks, minimum=0)
        for b in self.budgets:
            validate_budget(b, field="budgets: every budget", strict=True)
        if self.think_budget_ratio > 0 and not self.budgets:
            raise ValueError("budgets: must list at least one budget (tokens) when think_budget_ratio > 0")
        for name in ("budget_weights", "rl_budget_weights"):
            weights = getattr(self, name)
            if not weights:
                continue
            if len(weights) != len(self.budgets):
                raise ValueError(
                    f"{name}: has {len(weights)} weights for {len(self.budgets)} budgets {self.budgets}; "
                    "give one weight per budget or none"
                )
            if any(not _is_number(w) or w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(f"{name}: must be non-negative numbers with a positive sum, got {weights}")
        for name in ("think_budget_ratio", "think_free_ratio", "no_think_ratio", "auto_ratio", "flag_ratio"):
            v = getattr(self, name)
            if not _is_number(v) or not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}: must be a fraction in [0, 1], got {v!r}")
        total = self.think_budget_ratio + self.think_free_ratio + self.no_think_ratio + self.auto_ratio
        if abs(total - 1.0) > RATIO_TOLERANCE:
            raise ValueError(
                f"think_budget_ratio + think_free_ratio + no_think_ratio + auto_ratio: must sum to 1, got "
                f"{total:g} ({self.think_budget_ratio} + {self.think_free_ratio} + {self.no_think_ratio} + "
                f"{self.auto_ratio})"
            )
        if self.auto_ratio > 0 and not self.auto_decisions:
            raise ValueError(
                "auto_decisions: required when auto_ratio > 0 (where thinking pays is measured, not guessed):\n"
                f"  {auto.COMMAND}"
            )
        if self.auto_decisions:
            auto.load_decisions(self.auto_decisions)
        if not isinstance(self.plan_line, bool):
            raise ValueError(f"plan_line: must be true or false, got {self.plan_line!r}")
        known = trace_granularities()
        for g in self.granularities:
            if g not in known:
                raise ValueError(f"granularities: unknown granularity {g!r}; valid: {', '.join(known)}")
        if not _is_number(self.budget_margin) or not 0.0 <= self.budget_margin < 0.5:
            raise ValueError(f"budget_margin: must be a fraction in [0, 0.5), got {self.budget_margin!r}")
        if self.task_budget_margins:
            if len(self.task_budget_margins) != len(self.tasks):
                raise ValueError(
                    f"task_budget_margins: has {len(self.task_budget_margins)} margins for {len(self.tasks)} "
                    f"tasks ({', '.join(self.tasks)}); give one margin per task or none (budget_margin for all)"
                )
            bad = [m for m in self.task_budget_margins if not _is_number(m) or not 0.0 <= m < 0.5]
            if bad:
                raise ValueError(
                    f"task_budget_margins: every margin must be a fraction in [0, 0.5), got {bad}"
                )
        n_types = len(row_types(self))
        r = self.rows_per_problem
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= max(n_types, 1):
            raise ValueError(
                f"rows_per_problem: must be a whole number from 1 to {n_types} (the row types with a "
                f"positive share: {', '.join(row_types(self))}), got {r!r}"
            )


DATA_RECIPES = Path(__file__).resolve().parents[1] / "configs" / "data"


def prepare_command(dataset_path: str) -> str:
    """The command that writes ``dataset_path``: the data recipe (``configs/data/*.yaml``) whose
    ``output_dir`` it is, else a data recipe of the reader's choice written to that folder."""
    import yaml

    target = Path(dataset_path)
    for recipe in sorted(DATA_RECIPES.glob("*.yaml")):
        try:
            out = (yaml.safe_load(recipe.read_text()) or {}).get("output_dir")
        except (yaml.YAMLError, OSError, AttributeError):
            continue
        if out and (Path(out) == target or (DATA_RECIPES.parents[1] / out).resolve() == target.resolve()):
            return f"python data/prepare.py --config configs/data/{recipe.name}"
    return f"python data/prepare.py --config configs/data/<mix>.yaml --output_dir {dataset_path}"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def answer_text(answer: str) -> str:
    """The answer section of a training target: ``The answer is \\boxed{42}.``"""
    return f"The answer is {boxed(answer)}."


@dataclass
class PrepareArguments:
    """Where ``data/prepare.py`` writes a data mix, and the tokenizer that counts its tokens."""

    model_name_or_path: str = field(
        default="smollm2-135m",
        metadata={
            "help": "Model alias, hub id or path whose tokenizer counts thinking tokens (and renders prompts)."
        },
    )
    output_dir: str = field(default="data/prepared/default", metadata={"help": "Folder to write (path)."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an existing prepared folder."}
    )
    preview_rows: int = field(default=6, metadata={"help": "Rows per kind written to preview.jsonl (count)."})


# The configuration of data/prepare.py (checked by the main job without loading the script).
CONFIG_CLASSES = (PrepareArguments, DataMixArguments)


@dataclass(frozen=True)
class RowPlan:
    """The drawn type of one row."""

    mode: str  # "think" | "no_think" | "auto"
    control: str  # "kwargs" | "flag"
    budget: int | None


def draw_row_plan(args: DataMixArguments, split: str, problem_id: str) -> RowPlan:
    """The row type of one problem. Seeded by (seed, split, problem id), so a problem's row does not
    depend on which other problems are in the mix."""
    rng = random.Random(f"mix:{args.mix_seed}:{split}:{problem_id}")
    u = rng.random()
    budget = None
    if u < args.think_budget_ratio:
        mode = "think"
        budget = _draw_budget(rng, args)
    elif u < args.think_budget_ratio + args.think_free_ratio:
        mode = "think"
    elif args.auto_ratio <= 0 or u < 1.0 - args.auto_ratio:
        mode = "no_think"
    else:
        mode = "auto"
    control = "flag" if rng.random() < args.flag_ratio else "kwargs"
    if mode == "auto" and rng.random() < auto_budget_share(args):  # drawn after the control: see above
        budget = _draw_budget(rng, args)
    return RowPlan(mode, control, budget)


def _draw_budget(rng: random.Random, args: DataMixArguments) -> int:
    """One budget from ``budgets`` by ``budget_weights`` (uniform when empty): budgeted think and auto rows."""
    return rng.choices(args.budgets, weights=args.budget_weights or None, k=1)[0]


def auto_budget_share(args: DataMixArguments) -> float:
    """The share of auto rows that state a budget: that of the think rows (0 without think rows)."""
    think = args.think_budget_ratio + args.think_free_ratio
    return args.think_budget_ratio / think if think > 0 else 0.0


def row_types(args: DataMixArguments) -> list[str]:
    """The row types that the ratios can draw: ``off``, ``free`` and each budget with a positive weight."""
    types = []
    if args.no_think_ratio > 0:
        types.append("off")
    if args.think_free_ratio > 0:
        types.append("free")
    weights = args.budget_weights or [1.0] * len(args.budgets)
    drawn = [str(b) for b, w in zip(args.budgets, weights) if _is_number(w) and w > 0]
    if args.think_budget_ratio > 0:
        types += drawn
    if args.auto_ratio > 0:
        share = auto_budget_share(args)
        if share < 1:
            types.append("auto")
        if share > 0:
            types += [f"auto {b}" for b in drawn]
    return types


def draw_row_plans(args: DataMixArguments, split: str, problem_id: str, k: int = 1) -> list[RowPlan]:
    """``k`` row plans of one problem with different types (mode and budget). The first is
    :func:`draw_row_plan`'s, so ``k = 1`` is the one-row mix; the others are redrawn from the same
    ratios until their type is new (``k`` is at most the number of types, checked by ``validate``)."""
    plans = [draw_row_plan(args, split, problem_id)]
    for attempt in range(1, 10_000):
        if len(plans) >= k:
            break
        plan = draw_row_plan(args, split, f"{problem_id}#{attempt}")
        if all((plan.mode, plan.budget) != (q.mode, q.budget) for q in plans):
            plans.append(plan)
    if len(plans) < k:
        raise ValueError(f"rows_per_problem: could not draw {k} different row types for {problem_id}")
    return plans


def render_row_prompt(tokenizer: Any, question: str, plan: RowPlan, system_prompt: str | None = None) -> str:
    """The generation prompt for one row type (flag rows put ``/think``, ``/no_think`` or ``/auto_think`` in
    the user turn; keyword rows set ``enable_thinking`` to True, False or ``'auto'``)."""
    flag = (
        {"think": "think", "no_think": "no_think", "auto": "auto_think"}[plan.mode]
        if plan.control == "flag"
        else None
    )
    messages = build_messages(question, system=system_prompt, flag=flag)
    if plan.control == "flag":
        enable_thinking: bool | str = True
    else:
        enable_thinking = "auto" if plan.mode == "auto" else plan.mode == "think"
    return render_prompt(tokenizer, messages, enable_thinking=enable_thinking, thinking_budget=plan.budget)


def auto_thinks(problem: Problem, decisions: dict[str, list[dict[str, Any]]], tokenizer: Any) -> bool:
    """Whether the auto target of ``problem`` thinks: the measured decision for its task and difficulty
    (:func:`thinkbudget.auto.should_think`); a problem without traces has nothing to think with."""
    n = full_trace_tokens(problem.traces, tokenizer)
    if n is None:
        return False
    if problem.task not in decisions:
        raise ValueError(
            f"auto_decisions: no decisions for task {problem.task!r} (it covers {', '.join(decisions) or 'none'}); "
            f"evaluate a model on it with methods no_think and think, then:\n  {auto.COMMAND}"
        )
    return auto.should_think(decisions[problem.task], n)


RESULT = "result"  # the coarsest granularity: the result alone ("= 52"), no written intermediates


def result_trace(answer: str) -> str:
    """The coarsest complete trace: the result stated, nothing derived (``= 52``)."""
    return f"= {answer}"


def trace_is_sound(trace: str, answer: str) -> bool:
    """Every arithmetic line of ``trace`` is correct and, where the answer is a number, the answer is
    the trace's conclusion (its last number): the two rules every SFT target obeys."""
    check = check_lines(trace)
    if not check.all_correct:
        return False
    return not is_number(answer) or same_number(check.result, answer)


def plan_text(problem: Problem) -> str | None:
    """The plan line that opens a problem's think targets under ``plan_line``: its number of steps
    (``12 steps``), or None for a problem that does not know it (GSM8K, reasoning-gym).

    Why: which granularity fits a budget is a function of the problem's size, a length a 135M model
    senses poorly from the prompt (the fourth CPU proof wrote full traces over budget 32 for problems of
    4-9 steps, and never the coarser granularities its targets showed). Written as the first token of
    the trace, the size is supervised on every think row, and the choice of granularity becomes a
    lookup of two numbers the model can read: the budget in the prompt and the size it wrote."""
    steps = problem.meta.get("steps") if problem.meta else None
    return f"{steps} steps" if isinstance(steps, int) and not isinstance(steps, bool) else None


def fit_trace(
    problem: Problem,
    budget: int | None,
    tokenizer: Any,
    *,
    plan: bool = False,
    granularities: Sequence[str] = (),
    margin: float = 0.0,
) -> tuple[str | None, str | None, int]:
    """``(granularity, trace, thinking tokens)`` of the finest sound trace that fits ``budget`` tokens
    (``budget=None``: the finest), counted by the one parser. With ``plan``, every trace (the result
    alone too) opens with the problem's :func:`plan_text` and its tokens count against the budget.
    ``granularities``: the traces a budgeted target may use (empty: all; free thinking always takes the
    finest); ``margin``: the share of the budget a trace leaves unused (it fits ``(1 - margin) x budget``;
    the result alone only has to fit the budget).

    A problem's traces run from finest to coarsest (``full``, then fewer lines with bigger steps); when
    none fits, the coarsest complete solution is the result alone (``= 52``, granularity ``result``).
    A smaller budget therefore means coarser reasoning, never "the first steps that fit, then an answer
    the trace does not support": every target's lines are correct and its answer is the trace's last
    number (:func:`trace_is_sound`; unsound traces are skipped, and a problem with none takes the result).
    The result is a real think block, so SFT never teaches "a small budget means do not think".
    ``(None, None, 0)`` only when not even the result fits (or the problem has no trace)."""

    if not problem.traces:
        return None, None, 0
    head = plan_text(problem) if plan else None
    allowed = budget is None or not granularities  # free thinking: the finest trace, whatever is listed
    candidates = [
        (g, t)
        for g, t in problem.traces.items()
        if t and (allowed or g in granularities) and trace_is_sound(t, problem.answer)
    ]
    candidates.append((RESULT, result_trace(problem.answer)))
    for gran, trace in candidates:
        trace = f"{head}\n{trace}" if head else trace
        n = trace_thinking_tokens(trace, tokenizer)
        room = budget if budget is None or gran == RESULT else (1.0 - margin) * budget
        if room is None or n <= room:
            return gran, trace, n
    return None, None, 0


def target_rule(mix: DataMixArguments | Mapping[str, Any], task: str | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`fit_trace` that a data mix (its arguments, or the ``config.data``
    of a prepared folder's manifest) sets for ``task``'s problems: ``plan``, ``granularities``,
    ``margin`` (the task's entry of ``task_budget_margins`` where the mix lists one, else
    ``budget_margin``). The one reading, so that the report judges samples against the targets SFT was
    trained on."""
    get = mix.get if isinstance(mix, Mapping) else lambda key, default: getattr(mix, key, default)
    margin = get("budget_margin", 0.0) or 0.0
    per_task = list(get("task_budget_margins", ()) or ())
    tasks = list(get("tasks", ()) or ())
    if per_task and task in tasks:
        margin = per_task[tasks.index(task)]
    return {
        "plan": bool(get("plan_line", False)),
        "granularities": tuple(get("granularities", ()) or ()),
        "margin": float(margin),
    }


def fit_budgeted_row(
    problem: Problem, row_plan: RowPlan, budgets: list[int], tokenizer: Any, **rule: Any
) -> tuple[RowPlan, tuple[str | None, str | None, int]]:
    """The plan and trace of a think row. A budgeted row whose budget not even the result fits moves to
    the smallest configured budget that one fits, else to free thinking: a budgeted target is never an
    empty think block. ``rule``: :func:`fit_trace`'s options (:func:`target_rule`)."""
    fit = fit_trace(problem, row_plan.budget, tokenizer, **rule)
    if row_plan.budget is None or fit[0] is not None:
        return row_plan, fit
    for b in sorted(x for x in budgets if x > row_plan.budget):
        fit = fit_trace(problem, b, tokenizer, **rule)
        if fit[0] is not None:
            return RowPlan(row_plan.mode, row_plan.control, b), fit
    free = RowPlan(row_plan.mode, row_plan.control, None)
    return free, fit_trace(problem, None, tokenizer, **rule)


def _problems(args: DataMixArguments, split: str) -> list[Problem]:
    counts = args.task_train_problems or [args.num_train_problems] * len(args.tasks)
    out: list[Problem] = []
    for task, n_train in zip(args.tasks, counts):
        n = n_train if split == "train" else args.num_test_problems
        problems = load_problems(task, split, n=n, seed=args.mix_seed)
        logger.info("%s/%s: %d problems", task, split, len(problems))
        out.extend(problems)
    return out


SFT_COLUMNS = (
    "prompt",
    "completion",
    "id",
    "task",
    "mode",
    "control",
    "budget",
    "thinking_tokens",
    "granularity",
)
RL_COLUMNS = (
    "prompt",
    "question",
    "answer",
    "task",
    "meta",
    "mode",
    "control",
    "budget",
    "id",
    "target_lines",
    "full_trace_tokens",
)


def target_lines_of(problem: Problem, row_plan: RowPlan, tokenizer: Any, **rule: Any) -> int | None:
    """The arithmetic lines of the trace that SFT trains for ``problem`` under ``row_plan`` (the finest sound
    trace that fits its budget, :func:`fit_trace`; 0 for the result alone), counted by
    :func:`thinkbudget.traces.check_lines`: the granularity a GRPO rollout of that row should write. None
    on a thinking-off row, for a problem without traces, or where not even the result fits.

    Why the line count: each coarser granularity of a problem saves lines (``gen_chain`` keeps only
    those), so the count names the granularity, and a completion's count is read by the same parser."""
    if row_plan.mode != "think" or not problem.traces:
        return None
    _, trace, _ = fit_trace(problem, row_plan.budget, tokenizer, **rule)
    return None if trace is None else check_lines(trace).lines


def _features(kind: str):
    from datasets import Features, Value

    ints = {"budget", "thinking_tokens", "target_lines", "full_trace_tokens"}
    cols = SFT_COLUMNS if kind == "sft" else RL_COLUMNS
    return Features({c: Value("int64") if c in ints else Value("string") for c in cols})


def build_sft_dataset(args: DataMixArguments, tokenizer: Any, split: str = "train"):
    """SFT rows (prompt/completion text, no eos) for ``split``; see the module docstring for the mix."""
    from datasets import Dataset

    args.validate()
    rows: dict[str, list[Any]] = {c: [] for c in SFT_COLUMNS}
    k = args.rows_per_problem if split == "train" else 1
    decisions = auto.load_decisions(args.auto_decisions) if args.auto_ratio > 0 else {}
    pairs = [(p, plan) for p in _problems(args, split) for plan in draw_row_plans(args, split, p.id, k)]
    rules = {t: target_rule(args, t) for t in args.tasks}
    for p, plan in tqdm(pairs, desc=f"sft/{split}", mininterval=5, disable=None):
        if not p.traces and plan.mode == "think":
            plan = RowPlan("no_think", plan.control, None)  # nothing to think with: a no-think row
        answer = answer_text(p.answer)
        gran, trace, n_think = None, None, 0
        if plan.mode == "auto" and not auto_thinks(p, decisions, tokenizer):
            completion = format_response(None, answer)  # nothing pre-filled: the model writes the empty block
        elif plan.mode in ("think", "auto"):
            plan, (gran, trace, n_think) = fit_budgeted_row(p, plan, args.budgets, tokenizer, **rules[p.task])
            completion = format_response(trace, answer)
        elif plan.control == "kwargs":
            completion = answer  # the template pre-filled the empty think block
        else:
            completion = format_response(None, answer)  # /no_think: the model writes the empty block
        row = {
            "prompt": render_row_prompt(tokenizer, p.question, plan, args.system_prompt),
            "completion": completion,
            "id": p.id,
            "task": p.task,
            "mode": plan.mode,
            "control": plan.control,
            "budget": plan.budget,
            "thinking_tokens": n_think,
            "granularity": gran or "none",
        }
        for c in SFT_COLUMNS:
            rows[c].append(row[c])
    return Dataset.from_dict(rows, features=_features("sft"))


def build_rl_dataset(args: DataMixArguments, tokenizer: Any, split: str = "train"):
    """RL rows: a per-row rendered prompt (mode/budget applied) with gold answer, task, meta, the
    target's shape (``target_lines``, :func:`target_lines_of`) and the problem's difficulty
    (``full_trace_tokens``; None without traces)."""
    from datasets import Dataset

    args.validate()
    rows: dict[str, list[Any]] = {c: [] for c in RL_COLUMNS}
    rules = {t: target_rule(args, t) for t in args.tasks}
    # The same draws as the SFT rows' first plan, except which budget a budgeted row states.
    rl_mix = replace(args, budget_weights=args.rl_budget_weights) if args.rl_budget_weights else args
    for p in tqdm(_problems(args, split), desc=f"rl/{split}", mininterval=5, disable=None):
        plan = draw_row_plan(rl_mix, split, p.id)
        row = {
            "prompt": render_row_prompt(tokenizer, p.question, plan, args.system_prompt),
            "question": p.question,
            "answer": p.answer,
            "task": p.task,
            "meta": json.dumps(p.meta, sort_keys=True),
            "mode": plan.mode,
            "control": plan.control,
            "budget": plan.budget,
            "id": p.id,
            "target_lines": target_lines_of(p, plan, tokenizer, **rules[p.task]),
            "full_trace_tokens": full_trace_tokens(p.traces, tokenizer),
        }
        for c in RL_COLUMNS:
            rows[c].append(row[c])
    return Dataset.from_dict(rows, features=_features("rl"))


# A Hugging Face dataset name: ``name`` or ``namespace/name``. A local path has a leading ``.``, ``/`` or
# ``~``, or more than one ``/``; the two overlap only for a missing ``folder/name``, which is told both.
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def is_hub_name(dataset_path: str) -> bool:
    """Whether ``dataset_path`` is read as a Hugging Face dataset name rather than a local folder (it is
    not an existing folder, and has the form ``name`` or ``namespace/name``)."""
    return not Path(dataset_path).is_dir() and _HUB_NAME.fullmatch(dataset_path) is not None


def check_dataset_path(dataset_path: str | None) -> None:
    """Raise ``ValueError`` with the command that prepares the data when ``dataset_path`` is unset or a
    missing folder (cheap: nothing loads; a hub name is only checked when it loads)."""
    if not dataset_path:
        raise ValueError(
            "dataset_path: required: a folder written by data/prepare.py or a Hugging Face dataset name; "
            "prepare one first:\n  python data/prepare.py --config configs/data/<mix>.yaml"
        )
    if not Path(dataset_path).is_dir() and not is_hub_name(dataset_path):
        raise ValueError(
            f"dataset_path: {dataset_path} is not a folder; prepare it first:\n  "
            + prepare_command(dataset_path)
        )


@dataclass
class DatasetArguments:
    """The prepared dataset a trainer reads. The mix (tasks, budgets, ratios, seed) is the data stage's
    (:class:`DataMixArguments`, ``data/prepare.py``): a trainer config cannot change it."""

    dataset_path: str | None = field(
        default=None,
        metadata={
            "help": "Required: a folder written by data/prepare.py (path), or a Hugging Face dataset name "
            "with configs sft/rl, splits train/test and the columns data/prepare.py writes."
        },
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming ``dataset_path`` and the prepare command (nothing loads)."""
        check_dataset_path(self.dataset_path)


def load_prepared(dataset_path: str, kind: str, split: str = "train"):
    """The ``kind`` ("sft" or "rl") rows of ``split``: ``<dataset_path>/<kind>/<split>`` of a folder
    written by data/prepare.py, else config ``kind``, split ``split`` of the Hugging Face dataset of that
    name. Raise ``ValueError`` (with the prepare command) when it is missing or lacks a protocol column."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    check_dataset_path(dataset_path)
    if is_hub_name(dataset_path):
        from datasets import load_dataset

        where = f"{dataset_path} (hub dataset, config {kind}, split {split})"
        try:
            ds = load_dataset(dataset_path, kind, split=split)
        except Exception as e:  # offline, unknown name, no such config: say what else it could have meant
            raise ValueError(
                f"dataset_path: {dataset_path} is neither a prepared folder nor a loadable Hugging Face "
                f"dataset ({type(e).__name__}: {e}); prepare it:\n  " + prepare_command(dataset_path)
            ) from None
    else:
        from datasets import load_from_disk

        path = Path(dataset_path) / kind / split
        where = str(path)
        if not path.is_dir():
            raise ValueError(
                f"dataset_path: {path} does not exist; prepare it:\n  " + prepare_command(dataset_path)
            )
        ds = load_from_disk(str(path))
    expected = SFT_COLUMNS if kind == "sft" else RL_COLUMNS
    missing = [c for c in expected if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"dataset_path: {where} lacks columns {missing}; rebuild it:\n  " + prepare_command(dataset_path)
        )
    logger.info("loaded %d %s/%s rows from %s", len(ds), kind, split, where)
    return ds
