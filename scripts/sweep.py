"""Sweep a training recipe over a grid, evaluate every final checkpoint, rank the runs on a Pareto figure.

    python scripts/sweep.py configs/sweeps/smoke.yaml                  # runs one after another (local)
    python scripts/sweep.py configs/sweeps/budgets.yaml --dry-run      # print the commands
    python scripts/sweep.py configs/sweeps/budgets.yaml --launcher slurm [--no-submit]
    python scripts/sweep.py configs/sweeps/budgets.yaml --report-only  # figure and table from what finished

Each grid point gets ``<output_root>/<name>-<hash>/`` with its resolved ``config.yaml``; finished runs
(trained and evaluated) are skipped. See ``thinkbudget/sweep.py`` for the sweep file's format and
``docs/scaling.md`` for multi-GPU and multi-node use.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from thinkbudget.jobs import Job, check_not_shared, claim_run_dir, run_job, shell_join
from thinkbudget.run_folders import REPO_ROOT, check_creatable
from thinkbudget.sweep import (
    check_reuse,
    eval_command,
    load_sweep,
    plan_runs,
    report_sbatch_script,
    run_stages,
    sbatch_script,
    train_command,
    write_config,
    write_report,
)

console = Console(stderr=True)


def run_local(spec, runs) -> list[str]:
    """Train and evaluate each unfinished run in turn, each run folder a job of the one runner
    (thinkbudget/jobs.py: its own folder, the one rule per stage); return the names of runs that failed."""
    failed = []
    for i, run in enumerate(runs, 1):
        if run.trained and run.evaluated:
            console.print(f"[dim]({i}/{len(runs)}) {run.name}: finished, skipped[/dim]")
            continue
        console.print(f"[bold]({i}/{len(runs)}) {run.name}[/bold]  [dim]{run.dir}[/dim]")
        claim_run_dir(run.dir, "sweep", flag="run folder")  # before config.yaml is written into it
        write_config(run)
        job = Job("sweep", run.dir, run_stages(spec, run), summary="run.json", log_dir=run.dir)
        if run_job(job, console=console):
            failed.append(run.name)
    return failed


def submit_slurm(spec, runs, sweep_file: str, submit: bool) -> None:
    """Write the sbatch array (unfinished runs only) and the report job; submit both unless told not to."""
    todo = [r for r in runs if not (r.trained and r.evaluated)]
    spec.root.mkdir(parents=True, exist_ok=True)
    (spec.root / "slurm").mkdir(exist_ok=True)
    array_file, report_file = spec.root / "sweep.sbatch", spec.root / "report.sbatch"
    for run in todo:
        claim_run_dir(run.dir, "sweep", flag="run folder")
        write_config(run)
    if todo:
        array_file.write_text(sbatch_script(spec, todo, sweep_file))
    report_file.write_text(report_sbatch_script(spec, sweep_file))
    console.print(f"wrote {array_file if todo else '(no array: every run has finished)'} and {report_file}")
    if not submit:
        console.print("--no-submit: submit with  sbatch " + (f"{array_file}" if todo else str(report_file)))
        return
    if shutil.which("sbatch") is None:
        raise SystemExit("--launcher slurm: sbatch is not on PATH (use --no-submit to only write the files)")
    dependency = []
    if todo:
        job = subprocess.run(
            ["sbatch", "--parsable", str(array_file)], check=True, capture_output=True, text=True
        )
        job_id = job.stdout.strip().split(";")[0]
        console.print(f"submitted array job {job_id} ({len(todo)} runs)")
        dependency = [f"--dependency=afterany:{job_id}"]
    rep = subprocess.run(
        ["sbatch", "--parsable", *dependency, str(report_file)], check=True, capture_output=True, text=True
    )
    console.print(f"submitted report job {rep.stdout.strip()}")


def main(args: argparse.Namespace) -> int:
    # Paths given on the command line are the caller's; everything else is relative to the repository
    # root, where every command runs.
    sweep_file = Path(args.sweep).resolve()
    os.chdir(REPO_ROOT)
    args.sweep = str(
        sweep_file.relative_to(REPO_ROOT) if sweep_file.is_relative_to(REPO_ROOT) else sweep_file
    )
    spec = load_sweep(args.sweep)
    if args.output_root:
        spec.output_root = str(Path(args.output_root).resolve())
    runs = plan_runs(spec)  # unknown grid keys fail here, before any run starts
    for run in runs:
        check_reuse(run)  # a folder from another grid is never silently reused
    report_dir = spec.root / "report"
    console.rule(f"[bold]sweep {spec.name}[/bold]: {len(runs)} runs under {spec.root}")
    if args.dry_run:
        for run in runs:
            state = "finished" if run.trained and run.evaluated else "trained" if run.trained else "to run"
            print(f"# {run.name} ({state})")
            if not run.trained:
                print(shell_join(train_command(spec, run)))
            if not (run.trained and run.evaluated):
                print(shell_join(eval_command(spec, run)))
        if args.launcher == "slurm":
            todo = [r for r in runs if not (r.trained and r.evaluated)]
            print(f"# sbatch file ({spec.root / 'sweep.sbatch'}):")
            print(sbatch_script(spec, todo or runs, args.sweep))
        print(f"# report: {report_dir / 'pareto.png'}, {report_dir / 'pareto.md'}")
        return 0
    check_not_shared(spec.root, "output_root")  # run folders are deleted and rewritten: never the repository
    check_creatable(spec.root, what="output_root")  # an unwritable folder fails now, with its name
    if args.launcher == "slurm" and not args.report_only:
        submit_slurm(spec, runs, args.sweep, submit=not args.no_submit)
        return 0
    failed = [] if args.report_only else run_local(spec, runs)
    png, table = write_report(spec, runs, report_dir)
    console.rule("[bold]report[/bold]")
    console.print(f"  {png}\n  {table}")
    if failed:
        console.print(
            f"[red]{len(failed)} runs failed: {', '.join(failed)} (see their train.log / eval.log)[/red]"
        )
        return 1
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", help="sweep file, e.g. configs/sweeps/budgets.yaml")
    parser.add_argument(
        "--launcher",
        choices=["local", "slurm"],
        default="local",
        help="local: one run after another here; slurm: an sbatch array, one job per run",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands (and the sbatch file), run nothing"
    )
    parser.add_argument(
        "--no-submit", action="store_true", help="with --launcher slurm: write the sbatch files only"
    )
    parser.add_argument("--report-only", action="store_true", help="only write the Pareto figure and table")
    parser.add_argument(
        "--output-root", help="folder of the run folders (default: the sweep file's output_root)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
