"""When a stage of a multi-step job is skipped, continued or started over: one rule for every job.

The main job (``scripts/pipeline.py``), the frontier run (``scripts/frontier_run.py``) and a sweep
(``scripts/sweep.py``: locally, and in its sbatch array through ``python -m thinkbudget.stages``) decide
each stage the same way, in :func:`plan_stage`, and run it with the one job runner
(:mod:`thinkbudget.jobs`):

* **skip** it when its marker says it finished (:func:`~thinkbudget.run_folders.stage_finished`) and
  it is not forced;
* **continue** it when a killed run left something to continue from (training: a complete
  ``checkpoint-N``; an evaluation: its ``samples.jsonl``), with ``--resume_from_checkpoint true`` for
  training (an evaluation resumes by itself);
* otherwise **start** it clean: its output is removed first.

Each stage's command, and the content of every config file it names, is recorded next to its log when
it starts (:func:`command_record`). A stage whose leftovers came from a *different* command is never
continued, since that would train one checkpoint on two recipes: :class:`StageChanged` names the
difference and the way out (``--force STAGE``). A finished stage whose command changed is skipped with a
note naming the difference, so that a run folder never silently mixes two recipes.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkbudget.run_folders import complete_checkpoints, read_json_object, stage_finished, write_json_atomic

RESUMES = ("checkpoint", "samples")  # what a killed stage can continue from; None: nothing
CONFIG_FLAGS = ("--config", "--config_file")  # flags whose file's content is part of the command
RESUME_FLAGS = ["--resume_from_checkpoint", "true"]


class StageChanged(SystemExit):
    """A killed stage's leftovers came from another command: continuing would mix two recipes."""


@dataclass
class Stage:
    """One step of a job. ``marker`` says when it has finished; ``output`` (a folder or a file) is
    removed before the stage starts clean. ``resumes`` is what a killed run of it leaves to continue
    from (``"checkpoint"``, ``"samples"`` or None). Either ``command`` (a subprocess, recorded) or
    ``run`` (in-process, small) does the work; ``needs`` names the stages whose output it reads."""

    name: str
    description: str
    output: Path
    marker: Path
    needs: list[str] = field(default_factory=list)
    command: list[str] | None = None
    run: Callable[[], None] | None = None
    resumes: str | None = None

    def __post_init__(self) -> None:
        if self.resumes is not None and self.resumes not in RESUMES:
            raise ValueError(f"stage {self.name}: resumes={self.resumes!r}; choose one of {RESUMES} or None")
        if (self.command is None) == (self.run is None):
            raise ValueError(f"stage {self.name}: give exactly one of command and run")

    def leftover(self) -> str | None:
        """What a killed run of this stage left to continue from, or None."""
        if self.resumes == "checkpoint":
            found = complete_checkpoints(self.output) if self.output.is_dir() else []
            return found[-1].name if found else None
        if self.resumes == "samples" and (self.output / "samples.jsonl").is_file():
            return "samples.jsonl"
        return None


@dataclass
class Plan:
    """What to do with a stage: ``action`` is ``skip``, ``continue`` or ``start``; ``command`` is the
    command to run (with the resume flags when continuing training); ``note`` says why, for the log."""

    action: str
    command: list[str] | None
    note: str = ""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def command_record(command: Sequence[str]) -> dict[str, Any]:
    """The command and a hash of each config file it names (a recipe edited in place is a change)."""
    configs = {}
    for flag, value in zip(command, command[1:]):
        if flag in CONFIG_FLAGS and Path(value).is_file():
            configs[value] = _sha256(Path(value))
    return {"command": list(command), "configs": configs}


def _flags(command: Sequence[str]) -> dict[str, str]:
    """``--key value ...`` as a mapping (words before the first flag under the key ``""``)."""
    out: dict[str, list[str]] = {"": []}
    key = ""
    for word in command:
        if word.startswith("--"):
            key = word
            out.setdefault(key, [])
        else:
            out[key].append(word)
    return {k: " ".join(v) for k, v in out.items()}


def record_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two :func:`command_record` results, one readable item per flag or file."""
    before, after = _flags(old.get("command") or []), _flags(new.get("command") or [])
    diffs = []
    for key in [*before, *(k for k in after if k not in before)]:
        if before.get(key) != after.get(key):
            name = key or "program"
            diffs.append(f"{name}: {before.get(key, '(absent)')!s} -> {after.get(key, '(absent)')!s}")
    old_cfg, new_cfg = old.get("configs") or {}, new.get("configs") or {}
    for path in sorted(set(old_cfg) & set(new_cfg)):
        if old_cfg[path] != new_cfg[path]:
            diffs.append(f"{path}: edited since")
    return diffs


def plan_stage(stage: Stage, *, forced: bool, record: Path) -> Plan:
    """Skip, continue or start ``stage`` (see the module docstring); ``record`` is where its command
    was recorded when it last started. Raises :class:`StageChanged` rather than continue what another
    command left."""
    finished = stage_finished(stage.marker)
    old = read_json_object(record) if stage.command else None
    changed = record_differences(old, command_record(stage.command)) if old and stage.command else []
    if finished and not forced:
        note = "finished"
        if changed:
            note += f" by a different command ({'; '.join(changed)}); `--force {stage.name}` redoes it"
        return Plan("skip", None, note)
    left = None if forced else stage.leftover()
    if left is None:
        return Plan("start", stage.command, "forced" if forced else "")
    if changed:
        raise StageChanged(
            f"stage {stage.name}: {stage.output} holds a killed run ({left}) of a different command: "
            f"{'; '.join(changed)}. Continuing it would mix two recipes in one result. "
            f"Rerun with `--force {stage.name}` to start it again, or restore the old settings."
        )
    command = (
        [*stage.command, *RESUME_FLAGS] if stage.command and stage.resumes == "checkpoint" else stage.command
    )
    note = f"continuing the run a kill interrupted ({left})"
    if stage.command and old is None:
        note += "; no record of the command that left it"
    return Plan("continue", command, note)


def begin_stage(stage: Stage, plan: Plan, record: Path, remove: Callable[[Path], None]) -> None:
    """Before a stage runs: clear its output when it starts clean (through ``remove``: the job runner's
    :func:`thinkbudget.jobs.remove_owned`, which deletes only inside the folder the job owns), and
    record its command."""
    if plan.action == "skip":
        return
    if plan.action == "start" and stage.output.exists():
        remove(stage.output)
    if stage.command:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(record, command_record(stage.command))


def downstream(stages: Sequence[Stage], names: set[str]) -> set[str]:
    """``names`` plus every stage that needs one of them, directly or not (stages in dependency order)."""
    out = set(names)
    for stage in stages:
        if out & set(stage.needs):
            out.add(stage.name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m thinkbudget.stages --run-dir D --output O --marker M --record R [--resumes K] -- COMMAND...``:
    the rule above for a shell script (the sweep's sbatch array). Checks that the run folder ``D`` is a
    sweep's own (thinkbudget.jobs: never the repository, tracked files or another job's folder), clears
    (only inside it) or keeps the output, records the command, and prints ``skip``, ``continue`` or
    ``start``; a changed command exits 2 with the difference."""
    from thinkbudget.jobs import claim_run_dir, remove_owned

    parser = argparse.ArgumentParser(prog="python -m thinkbudget.stages", description=main.__doc__)
    parser.add_argument("--run-dir", required=True, type=Path, help="the sweep run's folder (its own)")
    parser.add_argument("--name", default="stage", help="the stage's name, for messages")
    parser.add_argument("--output", required=True, type=Path, help="the stage's output folder")
    parser.add_argument("--marker", required=True, type=Path, help="the file that says it finished")
    parser.add_argument("--record", required=True, type=Path, help="where its command is recorded")
    parser.add_argument("--resumes", choices=RESUMES, help="what a killed run of it continues from")
    parser.add_argument("--force", action="store_true", help="start it again even if it finished")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the stage's command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the stage's command after --")
    stage = Stage(args.name, args.name, args.output, args.marker, command=command, resumes=args.resumes)
    claim_run_dir(args.run_dir, "sweep")
    try:
        plan = plan_stage(stage, forced=args.force, record=args.record)
    except StageChanged as e:
        print(e, file=sys.stderr)
        return 2
    begin_stage(stage, plan, args.record, remove=lambda path: remove_owned(args.run_dir, path))
    if plan.note:
        print(f"{args.name}: {plan.note}", file=sys.stderr)
    print(plan.action)
    return 0


if __name__ == "__main__":
    sys.exit(main())
