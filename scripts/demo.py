"""Ask one question four ways: thinking off, thinking on, thinking on with a token budget, and auto mode.

    python scripts/demo.py                                   # the embedded default, SmolLM2-135M-Instruct
    python scripts/demo.py --model runs/main-gpu/rl --question "What is 17 * 24?" --budget 64

Prints the thinking and answer token counts (the project's one parser) for each setting, which is
the quickest way to see whether a checkpoint honours the thinking controls.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from thinkbudget.demo import demo_answers, demo_table
from thinkbudget.models import DEFAULT_MODEL, load_model_and_tokenizer, resolve_model_path
from thinkbudget.protocol import validate_budget
from thinkbudget.run_folders import setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="alias, hub id or checkpoint path")
    parser.add_argument(
        "--question", default="Tom has 12 apples, buys 30 more and gives away 7. How many are left?"
    )
    parser.add_argument("--gold", default="35", help="gold answer, to mark correctness ('' for none)")
    parser.add_argument(
        "--budget", type=int, default=32, help="thinking budget for the third setting (tokens)"
    )
    parser.add_argument("--max_new_tokens", type=int, default=192, help="generation cap per answer (tokens)")
    args = parser.parse_args(argv)
    # Every argument is checked before the model loads.
    try:
        validate_budget(args.budget, field="--budget")
        validate_budget(args.max_new_tokens, field="--max_new_tokens")
        model_path = resolve_model_path(args.model)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    setup_logging()
    model, tokenizer = load_model_and_tokenizer(model_path, dtype="auto")
    rows = demo_answers(
        model,
        tokenizer,
        args.question,
        args.budget,
        gold=args.gold or None,
        max_new_tokens=args.max_new_tokens,
    )
    Console().print(demo_table(f"{args.model}", args.question, args.gold or None, rows))


if __name__ == "__main__":
    main()
