"""The demo question: one problem answered with thinking off, on, on under a small budget, and in auto mode.

The main job asks it before and after training (``scripts/pipeline.py``: the ``demo_before`` and
``demo_after`` stages) and ``scripts/demo.py`` asks it of any checkpoint; token counts come from the one
parser (:mod:`thinkbudget.parsing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class DemoSpec:
    """The question shown before and after training: ``question``/``answer`` given, or the test
    problem number ``index`` of ``task``. Generation is greedy, at most ``max_new_tokens`` tokens."""

    task: str = "chain"
    index: int = 0
    question: str | None = None
    answer: str | None = None
    budget: int = 32
    max_new_tokens: int = 256


def demo_answers(
    model: Any,
    tokenizer: Any,
    question: str,
    budget: int,
    *,
    gold: str | None = None,
    max_new_tokens: int = 256,
    system: str | None = None,
) -> list[dict[str, Any]]:
    """Answer ``question`` four ways with greedy decoding and count the tokens with the one parser.

    Returns one dict per setting (``setting``: ``"thinking off"``, ``"thinking on"``, ``"budget N"``,
    ``"auto"``: the model decides whether to think; a model trained without auto rows thinks)
    with ``enable_thinking``, ``thinking_budget`` (tokens or None), ``completion`` (the generated text;
    with thinking off the prompt already holds the empty think block), ``thinking``, ``answer``,
    ``thinking_tokens``, ``answer_tokens``, ``think_closed``, ``within_budget`` and, when ``gold`` is
    given, ``correct``. ``budget`` and ``max_new_tokens`` are in tokens.
    """
    import torch

    from thinkbudget.grading import is_correct
    from thinkbudget.parsing import parse_completion
    from thinkbudget.protocol import build_messages, encode_prompt, render_prompt, validate_budget

    budget = validate_budget(budget, field="budget")
    messages = build_messages(question, system=system)
    settings = [
        ("thinking off", False, None),
        ("thinking on", True, None),
        (f"budget {budget}", True, budget),
        ("auto", "auto", None),
    ]
    device = next(model.parameters()).device
    results = []
    for setting, enable, setting_budget in settings:
        prompt = render_prompt(tokenizer, messages, enable_thinking=enable, thinking_budget=setting_budget)
        prompt_ids = torch.tensor([encode_prompt(tokenizer, prompt)], device=device)
        inputs = {"input_ids": prompt_ids, "attention_mask": torch.ones_like(prompt_ids)}
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        ids = out[0, inputs["input_ids"].shape[1] :].tolist()
        parsed = parse_completion(ids, tokenizer)
        row = {
            "setting": setting,
            "enable_thinking": enable,
            "thinking_budget": setting_budget,
            "completion": tokenizer.decode(ids, skip_special_tokens=True),
            "thinking": parsed.thinking,
            "answer": parsed.answer,
            "thinking_tokens": parsed.thinking_tokens,
            "answer_tokens": parsed.answer_tokens,
            "think_closed": parsed.think_closed,
            "within_budget": parsed.within_budget(setting_budget),
        }
        if gold is not None:
            row["correct"] = is_correct(parsed.answer, gold)
        results.append(row)
    return results


def run_demo(spec: DemoSpec, model_name: str, out: Path, title: str, console: Any) -> None:
    """Answer ``spec``'s question four ways with ``model_name``, print the table, keep the rows in ``out``."""
    from transformers.utils import logging as hf_logging

    from thinkbudget.models import load_model_and_tokenizer
    from thinkbudget.run_folders import write_json_atomic

    hf_logging.disable_progress_bar()
    question, gold = demo_question(spec)
    model, tokenizer = load_model_and_tokenizer(model_name, dtype="float32")
    rows = demo_answers(
        model, tokenizer, question, spec.budget, gold=gold, max_new_tokens=spec.max_new_tokens
    )
    console.print(demo_table(f"{title}: {model_name}", question, gold, rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"model": model_name, "question": question, "gold": gold, "rows": rows})


def demo_question(spec: DemoSpec) -> tuple[str, str | None]:
    """The demo's question and gold answer: given in the profile, or a test problem of ``spec.task``."""
    if spec.question:
        return spec.question, spec.answer
    from thinkbudget.tasks import load_problems

    problems = load_problems(spec.task, "test", n=spec.index + 1, seed=0)
    problem = problems[spec.index]
    return problem.question, problem.answer


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if not text:
        return "(nothing but whitespace)"
    return text[:limit] + ("…" if len(text) > limit else "")


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "-")


def demo_table(title: str, question: str, gold: str | None, rows: list[dict[str, Any]]) -> Any:
    """A rich table of :func:`demo_answers` rows: token counts and what the model wrote (shortened)."""
    from rich.table import Table

    caption = f"Q: {question}" + (f"  (gold: {gold})" if gold else "")
    table = Table(title=title, caption=caption, caption_justify="left")
    for name in ("setting", "thinking\ntokens", "answer\ntokens", "within\nbudget", "correct"):
        table.add_column(name, justify="left" if name == "setting" else "right")
    table.add_column("output (shortened)", overflow="fold", min_width=24)
    for r in rows:
        within = _yes_no(r["within_budget"]) if r["thinking_budget"] is not None else "-"
        table.add_row(
            r["setting"],
            str(r["thinking_tokens"]),
            str(r["answer_tokens"]),
            within,
            _yes_no(r.get("correct")),
            _shorten(r["completion"], 160),
        )
    return table


def demo_markdown(title: str, question: str, gold: str | None, rows: list[dict[str, Any]]) -> str:
    """The same as :func:`demo_table`, as Markdown for the run folder's README."""
    lines = [f"### {title}", "", f"Q: {question}" + (f" (gold: {gold})" if gold else ""), ""]
    lines += ["| setting | thinking tokens | answer tokens | within budget | correct | output (shortened) |"]
    lines += ["|---|---:|---:|---|---|---|"]
    for r in rows:
        within = _yes_no(r["within_budget"]) if r["thinking_budget"] is not None else "-"
        text = _shorten(r["completion"], 200).replace("|", "\\|")
        lines.append(
            f"| {r['setting']} | {r['thinking_tokens']} | {r['answer_tokens']} | {within} | "
            f"{_yes_no(r.get('correct'))} | {text} |"
        )
    return "\n".join(lines) + "\n"
