"""The main job: data -> SFT -> GRPO -> evaluation of base, SFT, RL and budget forcing -> one figure.

    python scripts/pipeline.py                      # profile from the hardware (gpu or cpu)
    python scripts/pipeline.py --profile cpu --dry-run
    python scripts/pipeline.py --force rl           # rerun GRPO and everything after it

Every stage is the real command line (``python data/prepare.py``, ``accelerate launch train/sft.py``,
``accelerate launch train/rl.py``, ``python eval/evaluate.py``, ``python eval/plot.py``,
``python eval/frontier.py``) run as a
subprocess from the repository root, so each one can be copied from ``--dry-run`` and run on its own.
Each stage writes into the run folder (default ``runs/main-<profile>``) and logs to ``logs/<stage>.log``;
a rerun skips finished stages, continues the ones a kill interrupted and starts the rest clean
(``thinkbudget/stages.py``: one rule for the pipeline, the sweep and the frontier run). Before and after
training one question is answered with thinking off, on, and on under a small budget.
Profiles live in ``configs/pipeline/<name>.yaml`` (``cpu``: ``make demo``, a small real training run on
2 cores; ``cpu-proof``: the two-hour proof; ``gpu``: the full default recipes; ``smoke``: the tiny
random model, for tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from thinkbudget.pipeline import (
    Profile,
    StageFailed,
    accelerate_command,
    available_profiles,
    check_profile_keys,
    check_run_dir,
    claim_run_dir,
    cli_flags,
    demo_answers,
    demo_markdown,
    demo_question,
    demo_table,
    load_profile,
    remove_owned,
    run_logged,
    shell_join,
)
from thinkbudget.run_folders import REPO_ROOT, command_line, git_commit, stage_finished, write_json_atomic
from thinkbudget.stages import Stage, begin_stage, downstream, plan_stage

console = Console(stderr=True)
EVAL_MODELS = ("base", "sft", "rl", "forcing")
EVAL_LABELS = {"base": "base", "sft": "SFT", "rl": "SFT+GRPO", "forcing": "SFT + budget forcing"}


def build_stages(profile: Profile, run_dir: Path) -> list[Stage]:
    """The job's stages in order, with the commands that the profile resolves to."""
    acc, acc_args = profile.accelerate_config, profile.accelerate_args
    data_dir, sft_dir, rl_dir = run_dir / "data", run_dir / "sft", run_dir / "rl"
    models = {"base": profile.model, "sft": str(sft_dir), "rl": str(rl_dir), "forcing": str(sft_dir)}

    def recipe(spec) -> list[str]:
        return ["--config", spec.recipe] if spec.recipe else []

    stages = [
        Stage(
            "demo_before",
            f"demo question on {profile.model}",
            run_dir / "demo" / "before.json",
            run_dir / "demo" / "before.json",
            run=lambda: run_demo(profile, profile.model, run_dir, "before"),
        ),
        Stage(
            "data",
            "prepare the SFT and RL datasets",
            data_dir,
            data_dir / "manifest.json",
            command=[
                "python",
                "data/prepare.py",
                *recipe(profile.data),
                "--output_dir",
                str(data_dir),
                "--model_name_or_path",
                profile.model,
                *cli_flags(profile.data.overrides),
            ],
        ),
        Stage(
            "sft",
            "supervised fine-tuning",
            sft_dir,
            sft_dir / "run_summary.json",
            needs=["data"],
            resumes="checkpoint",
            command=[
                *accelerate_command("train/sft.py", acc, acc_args),
                *recipe(profile.sft),
                "--model_name_or_path",
                profile.model,
                "--dataset_path",
                str(data_dir),
                "--output_dir",
                str(sft_dir),
                *cli_flags(profile.sft.overrides),
            ],
        ),
        Stage(
            "rl",
            "GRPO with length rewards",
            rl_dir,
            rl_dir / "run_summary.json",
            needs=["sft"],
            resumes="checkpoint",
            command=[
                *accelerate_command("train/rl.py", acc, acc_args),
                *recipe(profile.rl),
                "--model_name_or_path",
                str(sft_dir),
                "--dataset_path",
                str(data_dir),
                "--output_dir",
                str(rl_dir),
                *cli_flags(profile.rl.overrides),
            ],
        ),
    ]
    for key in EVAL_MODELS:
        out = run_dir / "eval" / key
        flags = profile.eval.model_overrides(key)
        stages.append(
            Stage(
                f"eval_{key}",
                f"evaluate {EVAL_LABELS[key]}",
                out,
                out / "results.json",
                needs=[] if key == "base" else ["rl" if key == "rl" else "sft"],
                resumes="samples",
                command=[
                    "python",
                    "eval/evaluate.py",
                    *recipe(profile.eval),
                    "--model",
                    models[key],
                    "--output",
                    str(out),
                    *cli_flags(flags),
                ],
            )
        )
    report = run_dir / "report"
    stages += [
        Stage(
            "report",
            "overlay figure and table",
            report,
            report / "results.md",
            needs=[f"eval_{k}" for k in EVAL_MODELS],
            command=[
                "python",
                "eval/plot.py",
                *[str(run_dir / "eval" / k) for k in EVAL_MODELS],
                "--labels",
                *[EVAL_LABELS[k] for k in EVAL_MODELS],
                "--output",
                str(report),
            ],
        ),
        Stage(
            "frontier",
            "compute frontier: accuracy against tokens per problem",
            report / "frontier",
            report / "frontier" / "frontier.json",
            needs=[f"eval_{k}" for k in EVAL_MODELS] + ["report"],  # it writes inside the report
            command=[
                "python",
                "eval/frontier.py",
                "--eval_dirs",
                *[str(run_dir / "eval" / k) for k in EVAL_MODELS],
                "--labels",
                *[EVAL_LABELS[k] for k in EVAL_MODELS],
                "--output",
                str(report / "frontier"),
            ],
        ),
        Stage(
            "targets",
            "accuracy against the budget, and every target reached or not",
            report / "targets",
            report / "targets" / "targets.json",
            needs=[f"eval_{k}" for k in EVAL_MODELS],
            command=[
                "python",
                "scripts/proof_targets.py",
                str(run_dir),
                "--output",
                str(report / "targets" / "targets"),
                *(["--time_limit_min", str(profile.time_limit_min)] if profile.time_limit_min else []),
            ],
        ),
        Stage(
            "demo_after",
            "demo question on the RL model",
            run_dir / "demo" / "after.json",
            run_dir / "demo" / "after.json",
            needs=["rl"],
            run=lambda: run_demo(profile, str(rl_dir), run_dir, "after"),
        ),
    ]
    return stages


def run_demo(profile: Profile, model_name: str, run_dir: Path, which: str) -> None:
    """Answer the profile's demo question three ways, print the table, keep the rows as JSON."""
    from transformers.utils import logging as hf_logging

    from thinkbudget.models import load_model_and_tokenizer

    hf_logging.disable_progress_bar()
    question, gold = demo_question(profile.demo)
    model, tokenizer = load_model_and_tokenizer(model_name, dtype="float32")
    rows = demo_answers(
        model, tokenizer, question, profile.demo.budget, gold=gold, max_new_tokens=profile.demo.max_new_tokens
    )
    title = f"{'Before' if which == 'before' else 'After'} training: {model_name}"
    console.print(demo_table(title, question, gold, rows))
    out = run_dir / "demo" / f"{which}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"model": model_name, "question": question, "gold": gold, "rows": rows})


def write_readme(profile: Profile, run_dir: Path, timings: dict[str, dict]) -> Path:
    """The run folder's README: the smoke notice, where the figure and table are, timings, demos."""
    lines = [f"# Main job: profile `{profile.name}`", "", f"> {profile.notice}", ""]
    table = run_dir / "report" / "results.md"
    figures = sorted((run_dir / "report").glob("*.png"))
    lines += ["## Results", ""]
    lines += [f"- Figure: `{f.relative_to(run_dir)}`" for f in figures]
    frontier = run_dir / "report" / "frontier"
    if (frontier / "frontier.md").is_file():
        lines.append(
            f"- Compute frontier (accuracy against tokens per problem, Pareto front marked): "
            f"`{(frontier / 'frontier.png').relative_to(run_dir)}`, `{(frontier / 'frontier.md').relative_to(run_dir)}`"
        )
    targets = run_dir / "report" / "targets" / "targets.md"
    if targets.is_file():
        lines.append(
            f"- Accuracy against the thinking budget and every target, reached or not: "
            f"`{targets.relative_to(run_dir)}`, `{targets.with_name('accuracy_vs_budget.png').relative_to(run_dir)}`"
        )
    if table.is_file():
        lines += [f"- Table: `{table.relative_to(run_dir)}`", "", table.read_text().strip(), ""]
    lines += ["", "## Stages", "", "| stage | status | wall time (s) | log |", "|---|---|---:|---|"]
    for name, t in timings.items():
        secs = f"{t['seconds']:.0f}" if t.get("seconds") is not None else "-"
        lines.append(f"| {name} | {t['status']} | {secs} | {t.get('log') or '-'} |")
    lines += ["", "## Demo", ""]
    for which in ("before", "after"):
        path = run_dir / "demo" / f"{which}.json"
        if path.is_file():
            d = json.loads(path.read_text())
            lines.append(
                demo_markdown(
                    f"{which.capitalize()} training ({d['model']})", d["question"], d["gold"], d["rows"]
                )
            )
    lines += ["", f"Profile: `{profile.source}`. Commit: `{git_commit()}`. Command: `{command_line()}`.", ""]
    out = run_dir / "README.md"
    out.write_text("\n".join(lines))
    return out


def main(args: argparse.Namespace) -> int:
    if args.profile == "auto":
        from thinkbudget.pipeline import auto_profile

        args.profile = auto_profile()
    if args.profile.endswith((".yaml", ".yml")):
        args.profile = str(Path(args.profile).resolve())
    # Every command runs from the repository root; a --run-dir given by the caller is theirs.
    run_dir = Path(args.run_dir).resolve() if args.run_dir else None
    os.chdir(REPO_ROOT)
    profile = load_profile(args.profile)
    run_dir = run_dir or Path(f"runs/main-{profile.name}")
    stages = build_stages(profile, run_dir)
    names = [s.name for s in stages]
    for name in [*args.force, *args.only]:
        if name not in names and name != "all":
            raise SystemExit(f"unknown stage {name!r}; stages: {', '.join(names)}, all")
    # Overrides no stage understands fail now, not after an hour of SFT.
    check_profile_keys(profile)

    forced = set(names) if "all" in args.force else downstream(stages, set(args.force))
    selected = set(args.only) if args.only else set(names)
    # The pipeline deletes stage outputs, so it works only in a folder it created (checked before anything).
    if args.dry_run:
        check_run_dir(run_dir)
    else:
        claim_run_dir(run_dir, profile.name)
    console.rule(f"[bold]thinkbudget main job[/bold]: profile {profile.name}, run folder {run_dir}")
    console.print(f"[yellow]{profile.notice}[/yellow]" if profile.smoke else profile.notice)

    timings: dict[str, dict] = {}
    summary_path = run_dir / "pipeline.json"
    if summary_path.is_file() and not args.dry_run:
        timings = json.loads(summary_path.read_text()).get("stages", {})
    job_start = time.time()
    by_name = {s.name: s for s in stages}
    for stage in stages:
        log = run_dir / "logs" / f"{stage.name}.log"
        record = log.with_suffix(".command.json")  # the command it last started with (thinkbudget.stages)
        plan = plan_stage(stage, forced=stage.name in forced, record=record)
        if stage.name not in selected or plan.action == "skip":
            why = plan.note if plan.action == "skip" else "not selected"
            console.print(f"[dim]- {stage.name}: skipped ({why})[/dim]", highlight=False)
            if args.dry_run and stage.command:
                console.print(f"[dim]  {shell_join(stage.command)}[/dim]", soft_wrap=True)
            if plan.action == "skip":
                timings.setdefault(stage.name, {"status": "finished earlier", "seconds": None})
            continue
        if args.dry_run:
            what = shell_join(plan.command) if plan.command else f"(in-process) {stage.description}"
            console.print(f"- {stage.name}: {what}", soft_wrap=True, highlight=False)
            continue
        missing = [n for n in stage.needs if not stage_finished(by_name[n].marker)]
        if missing:
            raise SystemExit(
                f"stage {stage.name} needs {', '.join(missing)} to finish first (run without --only)"
            )
        begin_stage(stage, plan, record, remove=lambda path: remove_owned(run_dir, path))
        where = f"  [dim](log: {log})[/dim]" if stage.command else ""
        console.print(f"[bold]> {stage.name}[/bold]: {stage.description}{where}")
        if plan.note:
            console.print(f"  {plan.note}", highlight=False)
        start = time.time()
        try:
            if plan.command:
                run_logged(plan.command, log, label=stage.name, echo=args.verbose, console=console)
            else:
                stage.run()
            if not stage_finished(stage.marker):
                raise StageFailed(f"{stage.name} exited without writing a finished {stage.marker}")
        except StageFailed as e:
            console.print(f"[red]{e}[/red]", highlight=False)
            timings[stage.name] = {"status": "failed", "seconds": time.time() - start, "log": str(log)}
            write_json_atomic(summary_path, {"profile": profile.name, "stages": timings})
            return 1
        seconds = time.time() - start
        timings[stage.name] = {
            "status": "resumed" if plan.action == "continue" else "ran",
            "seconds": round(seconds, 1),
            "log": str(log) if plan.command else None,
            "command": plan.command,
        }
        write_json_atomic(summary_path, {"profile": profile.name, "smoke": profile.smoke, "stages": timings})
        console.print(f"[green]  {stage.name} done in {seconds:.0f}s[/green]")
    if args.dry_run:
        return 0
    write_json_atomic(
        summary_path,
        {
            "profile": profile.name,
            "smoke": profile.smoke,
            "notice": profile.notice,
            "commit": git_commit(),
            "command": command_line(),
            "wall_seconds_this_call": round(time.time() - job_start, 1),
            "stages": timings,
        },
    )
    readme = write_readme(profile, run_dir, timings)
    console.rule("[bold]done[/bold]")
    for f in sorted((run_dir / "report").glob("*")):
        console.print(f"  {f}")
    console.print(f"  {readme}")
    if profile.smoke:
        console.print(f"[yellow]{profile.notice}[/yellow]")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--profile",
        default="auto",
        help=f"auto (gpu if CUDA is available, else cpu), one of {', '.join(available_profiles())}, "
        "or a profile YAML path",
    )
    parser.add_argument("--run-dir", help="run folder (default runs/main-<profile>)")
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STAGE",
        help="rerun STAGE and every stage after it that uses its output (repeatable; 'all')",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="STAGE",
        help="run only STAGE (repeatable); the stages it needs must have finished",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the stages' commands, run nothing")
    parser.add_argument("--verbose", action="store_true", help="copy every stage's output to the console")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
