"""A whole frontier run: scorer data -> scorer -> held-out samples -> the compute frontier.

    python scripts/frontier_run.py --recipe configs/frontier/cpu.yaml --checkpoint runs/main-cpu-proof/rl
    python scripts/frontier_run.py --recipe configs/frontier/cpu.yaml --dry-run     # print the commands

Five real command lines, run as logged subprocesses from the repository root (``--dry-run`` prints
them, so each can be copied and run alone), into one run folder (default ``runs/frontier-<recipe>``):

1. ``scorer_data``: ``eval/evaluate.py --split train``: N answers per training problem of the checkpoint;
2. ``scorer``: ``accelerate launch train/scorer.py`` on those answers (or the recipe's ``scorer_script``,
   ``train/process_scorer.py``);
3. ``eval``: ``eval/evaluate.py`` on held-out problems, N samples each (the frontier's largest n);
4. ``frontier``: ``eval/frontier.py --scorer``: frontier.png / frontier.md / frontier.json in ``eval/``;
5. ``targets``: ``scripts/frontier_targets.py``: every target reached or not, in ``targets/``.

The job runner is the main job's (:mod:`thinkbudget.jobs`): the run folder must be new, empty or one
that a frontier run created (never the repository or a folder of another job); a rerun skips finished
stages and continues a killed evaluation from its samples.jsonl; ``--force STAGE`` redoes one and those
after it. ``run.json`` records the recipe, checkpoint, commit, machine, command and the wall time of
each stage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from thinkbudget.frontier import FrontierRecipe, load_frontier_recipe
from thinkbudget.jobs import Job, add_job_arguments, run_job, training_command
from thinkbudget.recipes import cli_flags
from thinkbudget.run_folders import REPO_ROOT
from thinkbudget.stages import Stage

console = Console(stderr=True)
STAGES = ("scorer_data", "scorer", "eval", "frontier", "targets")


def build_stages(recipe: FrontierRecipe, checkpoint: str, run: Path) -> list[Stage]:
    """The five stages in order, with the commands the recipe resolves to."""

    def config(spec) -> list[str]:
        return ["--config", spec.recipe] if spec.recipe else []

    data, scorer, held_out = run / "scorer-data", run / "scorer", run / "eval"
    frontier = held_out / "frontier.json"
    return [
        Stage(
            "scorer_data",
            "answers to training problems, labelled by the scorer",
            data,
            data / "results.json",
            command=["python", "eval/evaluate.py", *config(recipe.scorer_data), "--model", checkpoint]
            + ["--split", "train", "--output", str(data), *cli_flags(recipe.scorer_data.overrides)],
            resumes="samples",
        ),
        Stage(
            "scorer",
            "train the scorer",
            scorer,
            scorer / "run_summary.json",
            needs=["scorer_data"],
            command=[
                *training_command(recipe.scorer_script, None, recipe.accelerate_args),
                *config(recipe.scorer),
            ]
            + ["--data_dirs", str(data), "--model_name_or_path", checkpoint, "--output_dir", str(scorer)]
            + cli_flags(recipe.scorer.overrides),
        ),
        Stage(
            "eval",
            "held-out answers, N per problem",
            held_out,
            held_out / "results.json",
            command=[
                "python",
                "eval/evaluate.py",
                *config(recipe.eval),
                "--model",
                checkpoint,
                "--split",
                "test",
            ]
            + ["--output", str(held_out), *cli_flags(recipe.eval.overrides)],
            resumes="samples",
        ),
        Stage(
            "frontier",
            "the compute frontier",
            frontier,  # written into the evaluation folder: only its own file is cleared
            frontier,
            needs=["scorer", "eval"],
            command=["python", "eval/frontier.py", *config(recipe.frontier), "--eval_dirs", str(held_out)]
            + ["--scorer", str(scorer), *cli_flags(recipe.frontier.overrides)],
        ),
        Stage(
            "targets",
            "every target reached or not, computed from the frontier's JSON",
            run / "targets",
            run / "targets" / "targets.json",
            needs=["frontier"],
            command=[
                "python",
                "scripts/frontier_targets.py",
                str(run),
                "--output",
                str(run / "targets" / "targets"),
            ]
            + (["--time_limit_min", str(recipe.time_limit_min)] if recipe.time_limit_min else []),
        ),
    ]


def main(args: argparse.Namespace) -> int:
    # Every command runs from the repository root; paths given by the caller are theirs.
    run = Path(args.run_dir).resolve() if args.run_dir else None
    recipe_path = str(Path(args.recipe).resolve()) if Path(args.recipe).is_file() else args.recipe
    checkpoint = (
        str(Path(args.checkpoint).resolve()) if args.checkpoint and Path(args.checkpoint).exists() else None
    )
    os.chdir(REPO_ROOT)
    recipe = load_frontier_recipe(recipe_path)
    checkpoint = checkpoint or args.checkpoint or recipe.checkpoint
    run = run or Path(f"runs/frontier-{Path(args.recipe).stem}")
    if not args.dry_run and not Path(checkpoint).exists():
        raise SystemExit(f"checkpoint {checkpoint} does not exist (--checkpoint PATH)")
    job = Job(
        "frontier",
        run,
        build_stages(recipe, checkpoint, run),
        summary="run.json",
        info={"recipe": recipe.source, "description": recipe.description, "checkpoint": checkpoint},
    )
    console.rule(f"[bold]frontier run[/bold]: {recipe.source} on {checkpoint}, run folder {run}")
    code = run_job(
        job, force=args.force, only=args.only, dry_run=args.dry_run, verbose=args.verbose, console=console
    )
    if code or args.dry_run:
        return code
    console.rule("[bold]done[/bold]")
    for f in ("eval/frontier.png", "eval/frontier.md", "eval/frontier.json", "targets/targets.md"):
        console.print(f"  {run / f}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="configs/frontier/cpu.yaml", help="a frontier recipe YAML")
    parser.add_argument("--checkpoint", help="the policy checkpoint (default: the recipe's)")
    parser.add_argument("--run-dir", help="run folder (default runs/frontier-<recipe name>)")
    add_job_arguments(parser, STAGES)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
