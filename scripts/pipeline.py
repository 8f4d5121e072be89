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
from pathlib import Path

from rich.console import Console

from thinkbudget.demo import demo_markdown, run_demo
from thinkbudget.jobs import Job, add_job_arguments, run_job, training_command
from thinkbudget.pipeline import Profile, auto_profile, available_profiles, check_profile_keys, load_profile
from thinkbudget.recipes import cli_flags
from thinkbudget.run_folders import REPO_ROOT, command_line, git_commit
from thinkbudget.stages import Stage

console = Console(stderr=True)
EVAL_MODELS = ("base", "sft", "rl", "forcing")
EVAL_LABELS = {
    "base": "base",
    "sft": "SFT",
    "rl": "SFT+GRPO",
    "forcing": "SFT + budget forcing",
    "control": "SFT+GRPO's switches",  # eval.control: not in the overlays, read by the targets only
}


def recipe(spec) -> list[str]:
    """``--config FILE`` when a profile section names its recipe."""
    return ["--config", spec.recipe] if spec.recipe else []


def build_stages(profile: Profile, run_dir: Path) -> list[Stage]:
    """The job's stages in order, with the commands that the profile resolves to: training, the
    evaluations, then the reports."""
    return [
        *training_stages(profile, run_dir),
        *eval_stages(profile, run_dir),
        *report_stages(profile, run_dir),
    ]


def training_stages(profile: Profile, run_dir: Path) -> list[Stage]:
    """The demo before training, the data, SFT and GRPO."""
    acc, acc_args = profile.accelerate_config, profile.accelerate_args
    data_dir, sft_dir, rl_dir = run_dir / "data", run_dir / "sft", run_dir / "rl"
    return [
        Stage(
            "demo_before",
            f"demo question on {profile.model}",
            run_dir / "demo" / "before.json",
            run_dir / "demo" / "before.json",
            run=lambda: run_demo(
                profile.demo, profile.model, run_dir / "demo" / "before.json", "Before training", console
            ),
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
                *training_command("train/sft.py", acc, acc_args),
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
                *training_command("train/rl.py", acc, acc_args),
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


def eval_stages(profile: Profile, run_dir: Path) -> list[Stage]:
    """eval/evaluate.py for the base model, SFT, SFT+GRPO and SFT with budget forcing."""
    sft_dir, rl_dir = run_dir / "sft", run_dir / "rl"
    models = {
        "base": profile.model,
        "sft": str(sft_dir),
        "rl": str(rl_dir),
        "forcing": str(sft_dir),
        "control": str(rl_dir),
    }
    stages = []
    for key in (*EVAL_MODELS, *(["control"] if profile.eval.control else [])):
        out = run_dir / "eval" / key
        flags = profile.eval.model_overrides(key)
        stages.append(
            Stage(
                f"eval_{key}",
                f"evaluate {EVAL_LABELS[key]}",
                out,
                out / "results.json",
                needs=[] if key == "base" else ["rl" if key in ("rl", "control") else "sft"],
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
    return stages


def report_stages(profile: Profile, run_dir: Path) -> list[Stage]:
    """The overlay figure and table, the compute frontier, the targets, and the demo after training."""
    report, rl_dir = run_dir / "report", run_dir / "rl"
    return [
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
            needs=[f"eval_{k}" for k in EVAL_MODELS] + (["eval_control"] if profile.eval.control else []),
            command=[
                "python",
                "scripts/proof_targets.py",
                str(run_dir),
                "--output",
                str(report / "targets" / "targets"),
                *(["--time_limit_min", str(profile.time_limit_min)] if profile.time_limit_min else []),
                *(["--memory_limit_gib", str(profile.memory_limit_gib)] if profile.memory_limit_gib else []),
            ],
        ),
        Stage(
            "demo_after",
            "demo question on the RL model",
            run_dir / "demo" / "after.json",
            run_dir / "demo" / "after.json",
            needs=["rl"],
            run=lambda: run_demo(
                profile.demo, str(rl_dir), run_dir / "demo" / "after.json", "After training", console
            ),
        ),
    ]


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
        args.profile = auto_profile()
    if args.profile.endswith((".yaml", ".yml")):
        args.profile = str(Path(args.profile).resolve())
    # Every command runs from the repository root; a --run-dir given by the caller is theirs.
    run_dir = Path(args.run_dir).resolve() if args.run_dir else None
    os.chdir(REPO_ROOT)
    profile = load_profile(args.profile)
    run_dir = run_dir or Path(f"runs/main-{profile.name}")
    job = Job(
        "main",
        run_dir,
        build_stages(profile, run_dir),
        summary="pipeline.json",
        info={"profile": profile.name, "smoke": profile.smoke, "notice": profile.notice},
    )
    check_profile_keys(profile)  # overrides no stage understands fail now, not after an hour of SFT
    console.rule(f"[bold]thinkbudget main job[/bold]: profile {profile.name}, run folder {run_dir}")
    console.print(f"[yellow]{profile.notice}[/yellow]" if profile.smoke else profile.notice)
    code = run_job(
        job, force=args.force, only=args.only, dry_run=args.dry_run, verbose=args.verbose, console=console
    )
    if code or args.dry_run:
        return code
    timings = json.loads((run_dir / "pipeline.json").read_text())["stages"]
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
    add_job_arguments(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
