"""The main job: data -> SFT -> GRPO -> evaluation of base, SFT, RL and budget forcing -> one figure.

    python scripts/pipeline.py                      # profile from the hardware (gpu or cpu)
    python scripts/pipeline.py --profile cpu --dry-run
    python scripts/pipeline.py --force rl           # rerun GRPO and everything after it

Every stage is the real command line (``python data/prepare.py``, ``accelerate launch train/sft.py``,
``accelerate launch train/rl.py``, ``python eval/evaluate.py``, ``python eval/plot.py``) run as a
subprocess from the repository root, so each one can be copied from ``--dry-run`` and run on its own.
Each stage writes into the run folder (default ``runs/main-<profile>``) and logs to ``logs/<stage>.log``;
a stage is finished when its marker file exists, and a rerun skips finished stages. Before and after
training one question is answered with thinking off, on, and on under a small budget.
Profiles live in ``configs/pipeline/<name>.yaml`` (``cpu``: a smoke run on 2 cores; ``gpu``: the full
default recipes; ``smoke``: the tiny random model, for tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
from thinkbudget.run_folders import (
    REPO_ROOT,
    command_line,
    complete_checkpoints,
    git_commit,
    stage_finished,
    write_json_atomic,
)

console = Console(stderr=True)
# Stages whose killed run continues from its newest complete checkpoint-N instead of starting over.
RESUMABLE_TRAINING = ("sft", "rl")
EVAL_MODELS = ("base", "sft", "rl", "forcing")
EVAL_LABELS = {"base": "base", "sft": "SFT", "rl": "SFT+GRPO", "forcing": "SFT + budget forcing"}


@dataclass
class Stage:
    """One step of the job. ``marker`` says when it has finished (:func:`thinkbudget.run_folders.stage_finished`:
    an evaluation's results.json must say ``complete``). Before a stage (re)runs, ``output`` is cleared,
    except where the stage continues what a kill left: SFT and GRPO resume from their newest complete
    checkpoint, an evaluation from its samples.jsonl (``--force`` always starts clean). Either
    ``command`` (a subprocess) or ``run`` (in-process, small) does the work."""

    name: str
    description: str
    output: Path
    marker: Path
    needs: list[str] = field(default_factory=list)
    command: list[str] | None = None
    run: Callable[[], None] | None = None


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
        flags = {**profile.eval.overrides, **(profile.eval.forcing if key == "forcing" else {})}
        stages.append(
            Stage(
                f"eval_{key}",
                f"evaluate {EVAL_LABELS[key]}",
                out,
                out / "results.json",
                needs=[] if key == "base" else ["rl" if key == "rl" else "sft"],
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


def continues_after_kill(stage: Stage, forced: set[str]) -> str | None:
    """What an unfinished, unforced stage continues from instead of starting clean: the newest complete
    checkpoint of SFT or GRPO, or the samples an evaluation already wrote. None: start clean."""
    if stage.name in forced or stage_finished(stage.marker):
        return None
    if stage.name in RESUMABLE_TRAINING:
        found = complete_checkpoints(stage.output)
        return found[-1].name if found else None
    if stage.name.startswith("eval_") and (stage.output / "samples.jsonl").is_file():
        return "samples.jsonl"
    return None


def downstream(stages: list[Stage], names: set[str]) -> set[str]:
    """``names`` plus every stage that needs one of them, directly or not."""
    out = set(names)
    for stage in stages:  # stages are in dependency order, so one pass suffices
        if out & set(stage.needs):
            out.add(stage.name)
    return out


def write_readme(profile: Profile, run_dir: Path, timings: dict[str, dict]) -> Path:
    """The run folder's README: the smoke notice, where the figure and table are, timings, demos."""
    lines = [f"# Main job: profile `{profile.name}`", "", f"> {profile.notice}", ""]
    table = run_dir / "report" / "results.md"
    figures = sorted((run_dir / "report").glob("*.png"))
    lines += ["## Results", ""]
    lines += [f"- Figure: `{f.relative_to(run_dir)}`" for f in figures]
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
        done = stage_finished(stage.marker) and stage.name not in forced
        command, resume = stage.command, continues_after_kill(stage, forced)
        if resume and stage.name in RESUMABLE_TRAINING:
            command = [*stage.command, "--resume_from_checkpoint", "true"]
        if stage.name not in selected or done:
            why = "finished" if done else "not selected"
            console.print(f"[dim]- {stage.name}: skipped ({why})[/dim]")
            if args.dry_run and stage.command:
                console.print(f"[dim]  {shell_join(stage.command)}[/dim]", soft_wrap=True)
            if done:
                timings.setdefault(stage.name, {"status": "finished earlier", "seconds": None})
            continue
        if args.dry_run:
            what = shell_join(command) if command else f"(in-process) {stage.description}"
            console.print(f"- {stage.name}: {what}", soft_wrap=True, highlight=False)
            continue
        missing = [n for n in stage.needs if not stage_finished(by_name[n].marker)]
        if missing:
            raise SystemExit(
                f"stage {stage.name} needs {', '.join(missing)} to finish first (run without --only)"
            )
        if resume:
            console.print(f"[bold]> {stage.name}[/bold]: continuing the run a kill interrupted ({resume})")
        elif stage.output.exists():
            remove_owned(run_dir, stage.output)  # an unfinished or forced stage starts clean
        where = f"  [dim](log: {log})[/dim]" if command else ""
        console.print(f"[bold]> {stage.name}[/bold]: {stage.description}{where}")
        start = time.time()
        try:
            if command:
                seconds = run_logged(command, log, label=stage.name, echo=args.verbose, console=console)
            else:
                stage.run()
                seconds = time.time() - start
        except StageFailed as e:
            console.print(f"[red]{e}[/red]", highlight=False)
            timings[stage.name] = {"status": "failed", "seconds": time.time() - start, "log": str(log)}
            write_json_atomic(summary_path, {"profile": profile.name, "stages": timings})
            return 1
        if not stage_finished(stage.marker):
            console.print(f"[red]{stage.name} exited without writing a finished {stage.marker}[/red]")
            timings[stage.name] = {"status": "failed", "seconds": time.time() - start, "log": str(log)}
            write_json_atomic(summary_path, {"profile": profile.name, "stages": timings})
            return 1
        timings[stage.name] = {
            "status": "resumed" if resume else "ran",
            "seconds": round(seconds, 1),
            "log": str(log) if command else None,
            "command": command,
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
