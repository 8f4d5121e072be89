"""One job runner for every multi-stage job: the main job, the frontier run and each run of a sweep.

A job is a run folder and its stages (:class:`thinkbudget.stages.Stage`). :func:`run_job`:

1. **claims the run folder** (:func:`claim_run_dir`): a marker file names the job that owns it. Since a
   stage that starts clean deletes its output first, a job works only in a folder it owns: a new or
   empty folder, or one holding its own marker. It refuses, before writing or deleting anything, the
   repository itself (or a folder holding it), a folder holding files tracked by git, a folder with
   files but no marker, and a folder another kind of job owns (a frontier run pointed at a main-job
   folder would otherwise clear that job's ``eval/``);
2. **plans each stage** with the one rule of :func:`thinkbudget.stages.plan_stage` (skip, continue or
   start) and clears a stage's output only through :func:`remove_owned`, strictly inside the folder;
3. **runs each stage** as a logged subprocess (:func:`run_logged`) or in-process, checks its marker,
   and records its status, wall time and peak resident memory, with the job's provenance, in the job's
   summary file.

The sweep's sbatch array runs the same rule and the same ownership check through
``python -m thinkbudget.stages --run-dir``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkbudget.run_folders import (
    REPO_ROOT,
    check_creatable,
    command_line,
    device_description,
    git_commit,
    make_dir,
    read_json_object,
    set_parent_death_signal,
    stage_finished,
    write_json_atomic,
)
from thinkbudget.stages import Stage, begin_stage, downstream, plan_stage

RUN_MARKER = ".thinkbudget-run"
JOBS = ("main", "frontier", "sweep")  # the kinds of job that own a run folder


# --------------------------------------------------------------------------------------------
# Commands run as logged subprocesses
# --------------------------------------------------------------------------------------------
def single_cpu_process(extra: Sequence[str]) -> bool:
    """Whether ``accelerate launch`` arguments ask for exactly one process on the CPU and nothing else
    (``--num_processes 1 --cpu``, in any order, ``--num_processes=1`` too)."""
    args = [a for x in extra for a in str(x).split("=", 1)]
    if "--cpu" not in args:
        return False
    rest = [a for a in args if a != "--cpu"]
    return rest in ([], ["--num_processes", "1"])


def accelerate_command(script: str, accelerate_config: str | None, extra: Sequence[str] = ()) -> list[str]:
    """``accelerate launch [--config_file F] [extra] script``. Without a config file accelerate runs one
    process on whatever device it finds (its defaults)."""
    cmd = ["accelerate", "launch"]
    if accelerate_config:
        cmd += ["--config_file", accelerate_config]
    return [*cmd, *extra, script]


def training_command(script: str, accelerate_config: str | None, extra: Sequence[str] = ()) -> list[str]:
    """How a job stage starts a training script: :func:`accelerate_command`, except for one process on
    the CPU (``extra`` is ``--num_processes 1 --cpu``, no config file), which runs as ``python script
    --use_cpu true``: the same run (the trainers read ``use_cpu``; torch uses the physical cores, as
    accelerate would set them) without the launcher's own process, which stays resident beside the
    trainer (~250 MB that the stage's peak memory counts, ``results/cpu-memory.md``)."""
    if accelerate_config is None and single_cpu_process(extra):
        return ["python", script, "--use_cpu", "true"]
    return accelerate_command(script, accelerate_config, extra)


def executable(cmd: Sequence[str]) -> list[str]:
    """``cmd`` with ``python`` and ``accelerate`` pointing into the running interpreter's environment, so
    that commands printed in their short form also run from a venv that is not activated."""
    cmd = list(cmd)
    if cmd and cmd[0] == "python":
        cmd[0] = sys.executable
    elif cmd and cmd[0] == "accelerate":
        sibling = Path(sys.executable).parent / "accelerate"
        cmd[0] = str(sibling) if sibling.is_file() else (shutil.which("accelerate") or "accelerate")
    return cmd


def shell_join(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


class StageFailed(RuntimeError):
    """A stage's command exited non-zero; the message holds the end of its log."""


@dataclass(frozen=True)
class StageRun:
    """What one stage's command cost: wall ``seconds`` and ``peak_rss_mb``, the largest resident memory
    (MiB) that the command's process tree held at once (None where ``/proc`` is not there to read)."""

    seconds: float
    peak_rss_mb: float | None


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids += [int(x) for x in task.read_text().split()]
        except OSError:
            pass
    return kids


def _high_water_kib(pid: int) -> int:
    """``VmHWM`` of one process (KiB): the peak of its own resident set since it started its program,
    so a sample taken late still sees an earlier peak (and the parent's pages a fork copied do not count,
    unlike ``ru_maxrss``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class PeakMemory:
    """Samples the peak resident memory of a process and everything under it (``accelerate launch`` ->
    the trainer) twice a second: the largest sum of the processes' ``VmHWM`` seen, an upper bound of
    what the tree held at once. Linux only (``/proc``); :meth:`stop` returns None elsewhere, and for a
    command that ended before the first sample."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        import threading

        self.pid, self.interval, self._kib = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if Path(f"/proc/{pid}/status").exists():
            self._thread.start()

    def sample(self) -> None:
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += _children(pid)
        self._kib = max(self._kib, sum(_high_water_kib(p) for p in tree))

    def _run(self) -> None:
        self.sample()
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> float | None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        return round(self._kib / 1024, 1) if self._kib else None


def own_peak_rss_mb() -> float | None:
    """This process's peak resident memory so far (MiB): what an in-process stage can report."""
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(kib / (1024 * 1024 if sys.platform == "darwin" else 1024), 1) if kib > 0 else None


def run_logged(
    cmd: Sequence[str],
    log_path: str | os.PathLike,
    *,
    label: str,
    echo: bool = False,
    env: dict[str, str] | None = None,
    console: Any = None,
) -> StageRun:
    """Run ``cmd`` from the repository root with its output in ``log_path``; return its wall seconds
    and peak resident memory (:class:`StageRun`).

    A rich spinner shows the elapsed time and the command's latest output line (progress bars end
    lines with ``\\r``, so both ``\\r`` and ``\\n`` end a line). ``echo`` also copies the output to the
    console. Raises :class:`StageFailed` with the log's last lines when the command fails.
    """
    from rich.console import Console
    from rich.text import Text

    console = console or Console(stderr=True)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # The stage dies with this process (a killed job leaves no stage running): the direct child by its
    # parent-death signal, its own children (accelerate launch -> python) because every entry point
    # asks for the same signal when THINKBUDGET_DIE_WITH_PARENT is set.
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "THINKBUDGET_DIE_WITH_PARENT": "1", **(env or {})}
    parent = os.getpid()
    start = time.time()
    last = ""
    with open(log_path, "wb") as log:
        log.write(f"$ {shell_join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            executable(cmd),
            cwd=REPO_ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: set_parent_death_signal(parent))
            if sys.platform.startswith("linux")
            else None,
        )
        memory = PeakMemory(proc.pid)
        with console.status(f"[bold]{label}[/bold]", spinner="dots") as status:
            buffer = b""
            while True:
                chunk = proc.stdout.read1(4096)
                if not chunk:
                    break
                log.write(chunk)
                log.flush()
                if echo:
                    console.out(chunk.decode(errors="replace"), end="", highlight=False)
                buffer = (buffer + chunk)[-4096:]
                pieces = [p for p in re.split(rb"[\r\n]", buffer) if p.strip()]
                if pieces:
                    last = pieces[-1].decode(errors="replace").strip()
                elapsed = time.time() - start
                status.update(Text.assemble((label, "bold"), f"  {elapsed:5.0f}s  ", (last[-100:], "dim")))
        code = proc.wait()
    peak = memory.stop()
    seconds = time.time() - start
    if code != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise StageFailed(f"{label} failed (exit code {code}); log: {log_path}\n" + "\n".join(tail))
    return StageRun(seconds, peak)


# --------------------------------------------------------------------------------------------
# Run-folder ownership: a job deletes only what it created
# --------------------------------------------------------------------------------------------
def _holds_tracked_files(path: Path) -> bool:
    """Whether ``path`` (resolved) is, or holds, a file that git tracks in this repository."""
    if not path.is_relative_to(REPO_ROOT):
        return False
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-files", "--", str(path.relative_to(REPO_ROOT)) or "."],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return False  # no git (an unpacked release): the marker and emptiness checks still hold
    return out.returncode == 0 and bool(out.stdout.strip())


def check_not_shared(path: Path, flag: str) -> None:
    """Raise ``SystemExit`` when ``path`` is the repository, a folder holding it, or a folder holding files
    tracked by git: no job writes run folders there (a stage's output is deleted before it reruns)."""
    resolved = path.resolve()
    if REPO_ROOT.is_relative_to(resolved):
        raise SystemExit(
            f"{flag} {path} is the repository (or a folder holding it): a job deletes a stage's output "
            "before it reruns the stage, so it works only in a folder of its own. Choose e.g. runs/<name>."
        )
    if _holds_tracked_files(resolved):
        raise SystemExit(
            f"{flag} {path} holds files tracked by git; a job writes and deletes only in a folder of its "
            "own. Choose a new folder (e.g. under runs/)."
        )


def marker_job(run_dir: Path) -> str | None:
    """The kind of job whose marker ``run_dir`` holds, or None. (A marker written before the marker named
    its job was written by the main job, ``created_by: scripts/pipeline.py``.)"""
    marker = run_dir / RUN_MARKER
    if not marker.is_file():
        return None
    info = read_json_object(marker) or {}
    return info.get("job") or "main"


def check_run_dir(run_dir: Path, job: str, flag: str = "--run-dir") -> bool:
    """Whether ``run_dir`` may be the run folder of a ``job``; raises ``SystemExit`` naming the reason
    when it may not (see the module docstring). Returns True when the job already owns it."""
    if job not in JOBS:
        raise ValueError(f"job must be one of {', '.join(JOBS)}, got {job!r}")
    check_not_shared(run_dir, flag)
    owner = marker_job(run_dir)
    if owner is not None:
        if owner != job:
            raise SystemExit(
                f"{flag} {run_dir} is the run folder of a {owner} job ({run_dir / RUN_MARKER}); this {job} "
                "job will not write or delete anything in it. Choose another folder."
            )
        return True
    if run_dir.exists() and not run_dir.is_dir():
        raise SystemExit(f"{flag} {run_dir} is a file, not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise SystemExit(
            f"{flag} {run_dir} already exists and was not created by a thinkbudget job (it has no "
            f"{RUN_MARKER} marker), so the {job} job will not write or delete anything in it. Choose a new "
            f'or empty folder. (A run folder of an earlier version: `echo \'{{"job": "{job}"}}\' > '
            f"{run_dir / RUN_MARKER}` adopts it.)"
        )
    check_creatable(run_dir, what=flag)
    return False


def claim_run_dir(run_dir: Path, job: str, flag: str = "--run-dir", **info: Any) -> None:
    """Create ``run_dir`` (checked by :func:`check_run_dir`) with the marker naming ``job``."""
    if check_run_dir(run_dir, job, flag):
        return
    make_dir(run_dir, what=flag)
    write_json_atomic(
        run_dir / RUN_MARKER,
        {"job": job, "created_by": command_line(), "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info},
    )


def remove_owned(run_dir: Path, path: Path) -> None:
    """Delete ``path`` (a stage's output) only when it lies strictly inside a run folder that a job
    owns; anything else is a bug and raises instead of deleting."""
    root, target = run_dir.resolve(), path.resolve()
    if not (run_dir / RUN_MARKER).is_file() or target == root or not target.is_relative_to(root):
        raise RuntimeError(f"refusing to delete {path}: not inside a run folder a job owns ({run_dir})")
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------
@dataclass
class Job:
    """A run folder and its stages. ``job`` is the kind (:data:`JOBS`) that owns the folder;
    ``summary`` the file (in the folder) that records each stage's status and wall time and, at the
    end, the provenance; ``info`` what the summary says about the job (profile, recipe, checkpoint).
    Logs and command records go to ``log_dir`` (default ``<run_dir>/logs``)."""

    job: str
    run_dir: Path
    stages: list[Stage]
    summary: str
    info: dict[str, Any] = field(default_factory=dict)
    log_dir: Path | None = None

    def log(self, stage: Stage) -> Path:
        return (self.log_dir or self.run_dir / "logs") / f"{stage.name}.log"

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


def add_job_arguments(parser: Any, stages: Sequence[str] = ()) -> None:
    """The job runner's flags (``--force``, ``--only``, ``--dry-run``, ``--verbose``) on ``parser``:
    the same for the main job and the frontier run."""
    names = f": {', '.join(stages)}" if stages else ""
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STAGE",
        help=f"rerun STAGE and every stage after it that uses its output (repeatable; 'all'){names}",
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


def run_job(
    job: Job,
    *,
    force: Sequence[str] = (),
    only: Sequence[str] = (),
    dry_run: bool = False,
    verbose: bool = False,
    console: Any = None,
) -> int:
    """Run ``job``'s stages by the one rule; return 0, or 1 when a stage failed (its log's end printed).

    ``force`` reruns the named stages and every stage that uses their output (``all``: every stage);
    ``only`` runs just the named ones (the stages they need must have finished). ``dry_run`` checks the
    folder and prints each stage's plan and command without claiming, writing or deleting anything."""
    from rich.console import Console

    console = console or Console(stderr=True)
    names = job.stage_names()
    for name in [*force, *only]:
        if name not in names and name != "all":
            raise SystemExit(f"unknown stage {name!r}; stages: {', '.join(names)}, all")
    if dry_run:
        check_run_dir(job.run_dir, job.job)
    else:
        claim_run_dir(job.run_dir, job.job)
    forced = set(names) if "all" in force else downstream(job.stages, set(force))
    selected = set(only) if only else set(names)
    summary = job.run_dir / job.summary
    timings: dict[str, dict] = {}
    if summary.is_file() and not dry_run:
        timings = (read_json_object(summary) or {}).get("stages", {})
    job_start = time.time()
    by_name = {s.name: s for s in job.stages}
    for stage in job.stages:
        log = job.log(stage)
        record = log.with_suffix(".command.json")  # the command it last started with (thinkbudget.stages)
        plan = plan_stage(stage, forced=stage.name in forced, record=record)
        if stage.name not in selected or plan.action == "skip":
            why = plan.note if plan.action == "skip" else "not selected"
            console.print(f"[dim]- {stage.name}: skipped ({why})[/dim]", highlight=False)
            if dry_run and stage.command:
                console.print(f"[dim]  {shell_join(stage.command)}[/dim]", soft_wrap=True, highlight=False)
            if plan.action == "skip" and not dry_run:
                timings.setdefault(stage.name, {"status": "finished earlier", "seconds": None})
            continue
        if dry_run:
            what = shell_join(plan.command) if plan.command else f"(in-process) {stage.description}"
            console.print(f"- {stage.name}: {what}", soft_wrap=True, highlight=False)
            continue
        missing = [n for n in stage.needs if n in by_name and not stage_finished(by_name[n].marker)]
        if missing:
            raise SystemExit(
                f"stage {stage.name} needs {', '.join(missing)} to finish first (run without --only)"
            )
        begin_stage(stage, plan, record, remove=lambda path: remove_owned(job.run_dir, path))
        where = f"  [dim](log: {log})[/dim]" if stage.command else ""
        console.print(f"[bold]> {stage.name}[/bold]: {stage.description}{where}")
        if plan.note:
            console.print(f"  {plan.note}", highlight=False)
        start = time.time()
        try:
            if plan.command:
                peak = run_logged(
                    plan.command, log, label=stage.name, echo=verbose, console=console
                ).peak_rss_mb
            else:
                stage.run()
                peak = own_peak_rss_mb()  # the job process's peak so far: an upper bound for this stage
            if not stage_finished(stage.marker):
                raise StageFailed(f"{stage.name} exited without writing a finished {stage.marker}")
        except StageFailed as e:
            console.print(f"[red]{e}[/red]", highlight=False)
            timings[stage.name] = {
                "status": "failed",
                "seconds": round(time.time() - start, 1),
                "log": str(log),
            }
            write_json_atomic(summary, {**job.info, "stages": timings})
            return 1
        seconds = time.time() - start
        timings[stage.name] = {
            "status": "resumed" if plan.action == "continue" else "ran",
            "seconds": round(seconds, 1),
            "peak_rss_mb": peak,
            "log": str(log) if plan.command else None,
            "command": plan.command,
            # A run resumed after a code change holds stages of several commits: each says its own.
            "commit": git_commit(),
        }
        write_json_atomic(summary, {**job.info, "stages": timings})
        held = f", peak {peak / 1024:.1f} GiB resident" if peak else ""
        console.print(f"[green]  {stage.name} done in {seconds:.0f}s{held}[/green]")
    if dry_run:
        return 0
    ran = [t["seconds"] for t in timings.values() if t.get("seconds") is not None]
    write_json_atomic(
        summary,
        {
            **job.info,
            "commit": git_commit(),
            "device": device_description(),
            "command": command_line(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "wall_seconds_this_call": round(time.time() - job_start, 1),
            "total_seconds": round(sum(ran), 1),
            "stages": timings,
        },
    )
    return 0
