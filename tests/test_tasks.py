"""Tasks: every step of every synthetic trace is recomputed, gold answers score correct, GSM8K and
JSONL parsing, reasoning-gym loading, and train/test disjointness for every source."""

from __future__ import annotations

import ast
import json
import operator
import random

import pytest

from thinkbudget import tasks
from thinkbudget.grading import is_correct
from thinkbudget.tasks import JsonlTaskSpec, Problem, load_problems, parse_gsm8k_solution

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def evaluate(expr: str) -> int:
    """Integer value of an expression over + - * and parentheses (nothing else is accepted)."""

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        raise ValueError(f"unexpected syntax in {expr!r}: {ast.dump(node)}")

    return ev(ast.parse(expr, mode="eval"))


def count_ops(expr: str) -> int:
    return sum(isinstance(n, ast.BinOp) for n in ast.walk(ast.parse(expr, mode="eval")))


def count_innermost_ops(expr: str) -> int:
    """Operations whose both operands are numbers (the ones evaluated first)."""
    nodes = ast.walk(ast.parse(expr, mode="eval"))
    return sum(
        isinstance(n, ast.BinOp) and not isinstance(n.left, ast.BinOp) and not isinstance(n.right, ast.BinOp)
        for n in nodes
    )


def question_expr(p: Problem) -> str:
    assert p.question.startswith("Compute ") and p.question.endswith(".")
    return p.question[len("Compute ") : -1]


def check_equation_lines(trace: str) -> list[int]:
    """Every line is ``e1 = e2 = ... = v``, all parts equal; returns each line's final value."""
    values = []
    for line in trace.splitlines():
        parts = [evaluate(part) for part in line.split(" = ")]
        assert len(parts) >= 2 and len(set(parts)) == 1, f"wrong arithmetic in line {line!r}"
        values.append(parts[-1])
    return values


def answer_scores(p: Problem) -> bool:
    return is_correct(f"The answer is \\boxed{{{p.answer}}}.", p.answer, task=p.task, meta=p.meta)


# -- synthetic traces ---------------------------------------------------------------------------
def verify_chain(p: Problem) -> None:
    expr = question_expr(p)
    answer = int(p.answer)
    assert evaluate(expr) == answer
    tokens = expr.split()
    first, ops = int(tokens[0]), tokens[1:]
    steps = (1, 1) if p.task == "step" else tasks.CHAIN_STEPS
    assert len(ops) == 2 * p.meta["steps"] and steps[0] <= p.meta["steps"] <= steps[1]
    # Every operand is one digit and the running value never leaves 0-99.
    value = first
    for sign, x in zip(ops[::2], ops[1::2]):
        assert sign in "+-" and 1 <= int(x) <= 9
        value = value + int(x) if sign == "+" else value - int(x)
        assert tasks.CHAIN_RANGE[0] <= value <= tasks.CHAIN_RANGE[1]
    # terse: the full trace's lines without spaces, second after it (the same steps in fewer tokens).
    assert list(p.traces)[:2] == ["full", tasks.TERSE]
    assert p.traces[tasks.TERSE] == p.traces["full"].replace(" ", "")
    n_lines = []
    for gran, trace in p.traces.items():
        if gran == tasks.TERSE:
            continue
        lines = trace.splitlines()
        # The first line restates the start, the others continue from the previous line's result.
        assert lines[0].startswith(f"{first} ") and all(line[0] in "+-" for line in lines[1:]), gran
        values, previous = [], first
        for line in lines:
            lhs, _, rhs = line.rpartition(" = ")
            lhs = lhs if line is lines[0] else f"{previous} {lhs}"
            assert evaluate(lhs) == int(rhs), f"wrong arithmetic in {line!r}"
            values.append(previous := int(rhs))
        assert values[-1] == answer, gran
        # The lines together consume exactly the question's operations, in order, `group` at a time.
        written = [tok for line in lines for tok in line.rpartition(" = ")[0].split()]
        assert written == [str(first), *ops], gran
        group = 1 if gran == "full" else int(gran.split("-")[0])
        assert len(lines) == -(-p.meta["steps"] // group), gran
        n_lines.append(len(lines))
    assert n_lines == sorted(n_lines, reverse=True) and len(set(n_lines)) == len(n_lines)  # finest first


def verify_multiply(p: Problem) -> None:
    a, b = (int(x) for x in question_expr(p).split(" * "))
    assert a * b == int(p.answer)
    for gran, trace in p.traces.items():
        values = check_equation_lines(trace)
        assert values[-1] == int(p.answer), gran
        lines = trace.splitlines()
        # Partial-product lines multiply `a` by the place-value parts of `b`, which sum to `b`.
        products = [line for line in lines if line.startswith(f"{a} * ")]
        assert sum(int(line.split(" = ")[0].split(" * ")[1]) for line in products) == b, gran
        if len(products) > 1:
            assert lines[-1].split(" = ")[0] == " + ".join(str(v) for v in values[: len(products)]), gran


def verify_nested(p: Problem) -> None:
    expr, answer = question_expr(p), int(p.answer)
    assert evaluate(expr) == answer
    for gran, trace in p.traces.items():
        lines = trace.splitlines()
        assert all(line.startswith("= ") for line in lines), gran
        ops = [count_ops(expr)] + [count_ops(line[2:]) for line in lines]
        for line in lines:
            assert evaluate(line[2:]) == answer, f"{gran}: {line!r} != {answer}"
        steps = [x - y for x, y in zip(ops, ops[1:])]
        assert ops[-1] == 0 and all(s >= 1 for s in steps), gran
        if gran == "full":
            assert all(s == 1 for s in steps), "full traces evaluate one operation per line"
        else:  # condensed: each line evaluates exactly the innermost operations of the previous one
            previous = [expr] + [line[2:] for line in lines[:-1]]
            assert steps == [count_innermost_ops(e) for e in previous], gran
    assert count_ops(expr) == p.meta["operations"]


VERIFIERS = {"chain": verify_chain, "multiply": verify_multiply, "nested": verify_nested}


@pytest.mark.parametrize("task", sorted(VERIFIERS))
@pytest.mark.parametrize("split", ["train", "test"])
def test_synthetic_traces_recompute(task, split):
    problems = load_problems(task, split, n=150, seed=3)
    assert len(problems) == 150
    for p in problems:
        assert p.task == task and next(iter(p.traces)) == "full"
        expected = {"chain": {tasks.chain_granularity(g) for g in tasks.CHAIN_GROUPS} | {tasks.TERSE}}
        assert set(p.traces) <= expected.get(task, {"full", "condensed"})
        VERIFIERS[task](p)
        assert answer_scores(p)
        json.dumps(p.meta)


@pytest.mark.parametrize("task", sorted(VERIFIERS))
def test_synthetic_traces_fuzz_seeds(task):
    """Random seeds: every generated trace is still correct arithmetic."""
    for seed in random.Random(task).sample(range(10**6), 5):
        for p in load_problems(task, "train", n=40, seed=seed):
            VERIFIERS[task](p)


@pytest.mark.parametrize("task", sorted(VERIFIERS))
def test_difficulty_is_graded(task):
    problems = load_problems(task, "train", n=300)
    levels = {p.meta["difficulty"] for p in problems}
    assert len(levels) >= 4
    by_level = {}
    for p in problems:
        by_level.setdefault(p.meta["difficulty"], []).append(len(p.traces["full"]))
    lo, hi = min(by_level), max(by_level)
    assert sum(by_level[hi]) / len(by_level[hi]) > sum(by_level[lo]) / len(by_level[lo])


def test_literal_traces():
    """Hand-checked examples pin the trace formats."""
    rng = random.Random("pin")
    # Regenerating the same RNG state gives the same problem: the generators are pure.
    assert tasks.gen_chain(random.Random(1)) == tasks.gen_chain(random.Random(1))
    q, a, traces, _ = tasks.gen_nested(rng)
    assert evaluate(q[len("Compute ") : -1]) == int(a)
    tree = ("*", ("+", 3, 4), ("-", 5, 2))
    assert tasks._render(tree) == "(3 + 4) * (5 - 2)"
    assert tasks._render(tasks._reduce_one(tree)[0]) == "7 * (5 - 2)"
    assert tasks._render(tasks._reduce_level(tree)) == "7 * 3"


@pytest.mark.parametrize("task", ["chain", "multiply", "nested", "gsm8k"])
def test_granularities_have_strictly_different_token_lengths(task, tokenizer):
    """Traces run finest first, each coarser one strictly shorter in tokens (what lets the data stage
    choose a coarser complete solution under a smaller budget). The chain's terse trace is strictly
    shorter than its full one, and no longer than the next coarser granularity only some of the time
    (two operations a line cost about as many tokens as two terse lines), so it is left out of the
    strict order: whichever of the two fits first is the finer."""
    from thinkbudget.parsing import get_parser

    parser = get_parser(tokenizer)
    problems = load_problems(task, "train", n=200)
    with_coarser = [p for p in problems if len(p.traces) > 1]
    assert len(with_coarser) >= 0.4 * len(problems)
    for p in with_coarser:
        lengths = [parser.thinking_token_count(t) for g, t in p.traces.items() if g != tasks.TERSE]
        assert all(a > b for a, b in zip(lengths, lengths[1:])), (p, lengths)
        if tasks.TERSE in p.traces:
            assert parser.thinking_token_count(p.traces[tasks.TERSE]) < lengths[0]


def test_chain_spans_every_budget(tokenizer):
    """Chain problems run from a few thinking tokens to more than the largest budget (128), and the
    number of steps decides it."""
    from thinkbudget.traces import trace_thinking_tokens

    problems = load_problems("chain", "train", n=400)
    by_steps: dict[int, list[int]] = {}
    for p in problems:
        by_steps.setdefault(p.meta["steps"], []).append(trace_thinking_tokens(p.traces["full"], tokenizer))
    steps = sorted(by_steps)
    assert steps[0] == tasks.CHAIN_STEPS[0] and steps[-1] == tasks.CHAIN_STEPS[1]
    assert max(by_steps[steps[0]]) <= 24 and min(by_steps[steps[-1]]) > 128
    means = [sum(v) / len(v) for _, v in sorted(by_steps.items())]
    assert means == sorted(means)


def test_chain_literal():
    """Hand-checked: the line format of each granularity."""
    ops = [("+", 8), ("-", 6), ("+", 3)]
    assert tasks.chain_lines(47, ops, 1) == ["47 + 8 = 55", "- 6 = 49", "+ 3 = 52"]
    assert tasks.chain_lines(47, ops, 2) == ["47 + 8 - 6 = 49", "+ 3 = 52"]
    assert tasks.chain_lines(47, ops, 6) == ["47 + 8 - 6 + 3 = 52"]
    assert [tasks.chain_granularity(g) for g in (1, 2, 6)] == ["full", "2-per-line", "6-per-line"]
    assert tasks.chain_lines(47, ops, 1, terse=True) == ["47+8=55", "-6=49", "+3=52"]
    assert tasks.chain_lines(47, ops, 2, terse=True) == ["47+8-6=49", "+3=52"]


# -- splits, determinism, names -----------------------------------------------------------------
SPLIT_TASKS = ["chain", "multiply", "nested", "gsm8k", "rg/leg_counting"]


@pytest.mark.parametrize("task", SPLIT_TASKS)
def test_splits_disjoint_and_deduplicated(task):
    train = load_problems(task, "train", n=120, seed=0)
    test = load_problems(task, "test", n=60, seed=0)
    other_seed_test = load_problems(task, "test", n=60, seed=7)
    train_q = {p.question for p in train}
    assert len(train_q) == len(train) == 120
    assert len({p.question for p in test}) == len(test) == 60
    assert not train_q & {p.question for p in test}
    assert not train_q & {p.question for p in other_seed_test}
    assert not {p.id for p in train} & {p.id for p in test}


@pytest.mark.parametrize("task", SPLIT_TASKS)
def test_deterministic_from_seed(task):
    assert load_problems(task, "train", n=20, seed=5) == load_problems(task, "train", n=20, seed=5)
    assert load_problems(task, "train", n=20, seed=5) != load_problems(task, "train", n=20, seed=6)


@pytest.mark.parametrize("task", SPLIT_TASKS)
def test_first_problems_do_not_depend_on_n(task):
    """Asking for more problems extends the list: problem k is the same for every n > k."""
    few, many = load_problems(task, "test", n=5, seed=2), load_problems(task, "test", n=250, seed=2)
    assert many[:5] == few


def test_split_rule_is_a_function_of_the_question():
    questions = [f"Compute {i} + {i}." for i in range(2000)]
    splits = [tasks.split_of(q) for q in questions]
    assert splits == [tasks.split_of(q) for q in questions]
    assert 0.15 < splits.count("test") / len(splits) < 0.25  # TEST_FRACTION = 0.2


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match="unknown task 'chian'") as e:
        load_problems("chian", "train", n=1)
    msg = str(e.value)
    for name in ("chain", "multiply", "nested", "gsm8k", "rg/<name> for any of", "leg_counting", "jsonl:"):
        assert name in msg
    with pytest.raises(ValueError, match="rg/<name>"):
        load_problems("rg/not_a_dataset", "train", n=1)


def test_bad_split_and_n():
    with pytest.raises(ValueError, match="split"):
        load_problems("chain", "validation", n=1)
    with pytest.raises(ValueError, match="n must be"):
        load_problems("chain", "train", n=-1)
    assert load_problems("chain", "train", n=0) == []


def test_list_tasks():
    names = tasks.list_tasks()
    assert names[:6] == ["chain", "multiply", "nested", "step", "synthetic", "gsm8k"]
    assert "rg/leg_counting" in names and "rg/basic_arithmetic" in names
    for name in names[:8]:
        assert tasks.validate_task_name(name) == name


# -- GSM8K --------------------------------------------------------------------------------------
GSM8K_CASES = [
    (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72",
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.",
        "48/2 = 24\n48+24 = 72",
        "72",
    ),
    (
        "He pays 1000*2 = $<<1000*2=2000>>2000.\nSo $2,000 total.\n#### 2,000",
        "He pays 1000*2 = $2000.\nSo $2,000 total.",
        "1000*2 = 2000",
        "2000",
    ),
    (
        "No annotations here.\nSo the total is 5.\n####   -5 ",
        "No annotations here.\nSo the total is 5.",
        "So the total is 5.",
        "-5",
    ),
    (
        "She had 1,234,567 cents.\n#### 1,234,567",
        "She had 1,234,567 cents.",
        "She had 1,234,567 cents.",
        "1234567",
    ),
]


@pytest.mark.parametrize("solution,full,condensed,gold", GSM8K_CASES)
def test_parse_gsm8k_solution(solution, full, condensed, gold):
    assert parse_gsm8k_solution(solution) == (full, condensed, gold)


def test_parse_gsm8k_solution_without_answer_line():
    with pytest.raises(ValueError, match="####"):
        parse_gsm8k_solution("no final answer")


def test_gsm8k_local_files():
    train, test = load_problems("gsm8k", "train"), load_problems("gsm8k", "test")
    assert len(train) == 7473 and len(test) == 1319
    for p in train[:300] + test[:100]:
        assert "<<" not in p.traces["full"] and "####" not in p.traces["full"]
        assert p.answer.lstrip("-").isdigit()
        assert answer_scores(p)


def test_gsm8k_dir_override(tmp_path, monkeypatch):
    rows = {
        "train": [{"question": "Q1?", "answer": "1+1 = <<1+1=2>>2\n#### 2"}],
        "test": [{"question": "Q2?", "answer": "3*3 = <<3*3=9>>9 apples\nso 9\n#### 9"}],
    }
    for split, rs in rows.items():
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
    monkeypatch.setenv("THINKBUDGET_GSM8K_DIR", str(tmp_path))
    (p,) = load_problems("gsm8k", "test")
    assert (p.question, p.answer, p.traces) == (
        "Q2?",
        "9",
        {"full": "3*3 = 9 apples\nso 9", "condensed": "3*3 = 9"},
    )
    (tmp_path / "train.jsonl").write_text('{"question": "Q1?"}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl:1: missing field 'answer'"):
        load_problems("gsm8k", "train")


# -- reasoning-gym ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["leg_counting", "basic_arithmetic", "number_sorting"])
def test_reasoning_gym_tasks(name):
    problems = load_problems(f"rg/{name}", "train", n=12, seed=1)
    assert len(problems) == 12
    for p in problems:
        assert p.traces == {} and p.task == f"rg/{name}"
        assert json.loads(json.dumps(p.meta)) == p.meta  # JSON-serialisable as is
        assert answer_scores(p), p
        assert not is_correct(
            "The answer is \\boxed{definitely wrong 12345}.", p.answer, task=p.task, meta=p.meta
        )


def test_to_jsonable():
    assert tasks.to_jsonable({"a": (1, 2), "b": {3}, 4: None, "c": object}) == {
        "a": [1, 2],
        "b": [3],
        "4": None,
        "c": str(object),
    }


# -- user JSONL ---------------------------------------------------------------------------------
def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_spec_parsing():
    assert JsonlTaskSpec.parse("jsonl:/a/b.jsonl") == JsonlTaskSpec("/a/b.jsonl")
    spec = JsonlTaskSpec.parse("jsonl:/a/b.jsonl?question=q&answer=a&reasoning=r&test=/a/t.jsonl")
    assert (spec.question, spec.answer, spec.reasoning, spec.test_path, spec.reasoning_required) == (
        "q",
        "a",
        "r",
        "/a/t.jsonl",
        True,
    )
    with pytest.raises(ValueError, match="unknown option"):
        JsonlTaskSpec.parse("jsonl:/a/b.jsonl?prompt=p")


def test_jsonl_task_custom_fields_and_splits(tmp_path):
    rows = [
        {"q": f"What is {i} + 1?", "a": i + 1, "r": f"{i} + 1 = {i + 1}\nSo it is {i + 1}."}
        for i in range(200)
    ]
    path = write_jsonl(tmp_path / "mine.jsonl", rows + rows[:5])  # duplicates are dropped
    task = f"jsonl:{path}?question=q&answer=a&reasoning=r"
    train, test = load_problems(task, "train"), load_problems(task, "test")
    assert len(train) + len(test) == 200 and test
    assert not {p.question for p in train} & {p.question for p in test}
    p = train[0]
    assert p.task == task and p.traces["condensed"] in p.traces["full"] and answer_scores(p)
    assert load_problems(task, "train", n=5, seed=1) == load_problems(task, "train", n=5, seed=1)

    # With test=, the two files are the two splits.
    test_path = write_jsonl(tmp_path / "t.jsonl", [{"question": "Q?", "answer": "4"}])
    spec = f"jsonl:{path}?question=q&answer=a&test={test_path}"
    with pytest.raises(ValueError, match=r"t\.jsonl:1: missing field 'q'"):
        load_problems(spec, "test")
    both = write_jsonl(tmp_path / "both.jsonl", [{"question": "Q?", "answer": "4"}])
    (only,) = load_problems(f"jsonl:{both}?test={test_path}", "test")
    assert (only.question, only.answer, only.traces) == ("Q?", "4", {})


def test_jsonl_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_problems(f"jsonl:{tmp_path / 'missing.jsonl'}", "train")
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [{"question": "a", "answer": "1"}, "", '{"question": "b", "answer": ']
    )
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: malformed JSON"):
        load_problems(f"jsonl:{bad}", "train")
    missing = write_jsonl(tmp_path / "m.jsonl", [{"question": "a", "answer": "1"}, {"question": "b"}])
    with pytest.raises(ValueError, match=r"m\.jsonl:2: missing field 'answer'"):
        load_problems(f"jsonl:{missing}", "train")
    no_reasoning = write_jsonl(tmp_path / "n.jsonl", [{"question": "a", "answer": "1"}])
    with pytest.raises(ValueError, match=r"n\.jsonl:1: missing field 'why'"):
        load_problems(f"jsonl:{no_reasoning}?reasoning=why", "train")
    not_object = write_jsonl(tmp_path / "o.jsonl", ["[1, 2]"])
    with pytest.raises(ValueError, match=r"o\.jsonl:1: expected a JSON object"):
        load_problems(f"jsonl:{not_object}", "train")


def test_synthetic_takes_the_three_families_in_turn():
    mixed = tasks.load_problems("synthetic", "test", n=7)
    assert [p.task for p in mixed] == ["chain", "multiply", "nested", "chain", "multiply", "nested", "chain"]
    # the same problems, in the same order, as each family's own test split
    for family in ("chain", "multiply", "nested"):
        own = tasks.load_problems(family, "test", n=3)
        assert [p.id for p in mixed if p.task == family] == [p.id for p in own][
            : len([p for p in mixed if p.task == family])
        ]
    assert all(p.id in {q.id for q in tasks.load_problems("synthetic", "test", n=30)} for p in mixed)


def test_step_is_one_chain_step():
    """The step family: one chain operation, checked like a chain, with a literal pin; about 1,600
    distinct problems in all, enough for 200 held-out ones and disjoint splits."""
    assert tasks.gen_step(random.Random(1)) == (
        "Compute 27 - 2.",
        "25",
        {"full": "27 - 2 = 25", "terse": "27-2=25"},
        {"difficulty": 1, "operands": 2, "steps": 1},
    )
    train, test = load_problems("step", "train", n=1000), load_problems("step", "test", n=200)
    for p in train + test:
        assert p.task == "step" and p.meta["steps"] == 1 and set(p.traces) == {"full", tasks.TERSE}
        verify_chain(p)
    assert not {p.question for p in train} & {p.question for p in test}


def test_chain_draws_unchanged_by_the_step_family():
    """gen_chain and gen_step share one body; the chain's draws (and so every prepared dataset) are
    pinned by a literal."""
    q, a, traces, meta = tasks.gen_chain(random.Random(1))
    assert (q, a, meta["steps"]) == ("Compute 82 - 2 - 2 - 8 + 7 - 2 - 1.", "74", 6)
    assert traces["terse"].splitlines()[:2] == ["82-2=80", "-2=78"]


def test_mix_takes_its_families_in_turn():
    mixed = load_problems("mix:step+chain", "test", n=5)
    assert [p.task for p in mixed] == ["step", "chain", "step", "chain", "step"]
    assert [p.id for p in mixed if p.task == "step"] == [p.id for p in load_problems("step", "test", n=3)]
    assert [p.id for p in mixed if p.task == "chain"] == [p.id for p in load_problems("chain", "test", n=2)]
    assert tasks.validate_task_name("mix:chain+nested+step") == "mix:chain+nested+step"


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("mix:step+chian", r"unknown families \['chian'\].*chain, step, multiply, nested"),
        ("mix:step", "two or more different families"),
        ("mix:step+step", "two or more different families"),
        ("mix:step+gsm8k", r"unknown families \['gsm8k'\]"),
    ],
)
def test_mix_errors_name_the_bad_part(task, message):
    with pytest.raises(ValueError, match=message):
        load_problems(task, "test", n=2)
