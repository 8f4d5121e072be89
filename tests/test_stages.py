"""One rule for skipping, continuing and starting a stage (thinkbudget/stages.py), shared by the main
job, the frontier run and the sweep (locally and in its sbatch array): a table of cases, the refusal to
continue what a different command left, and the command-line form the sbatch file calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from thinkbudget.jobs import RUN_MARKER, remove_owned
from thinkbudget.stages import (
    RESUME_FLAGS,
    Stage,
    StageChanged,
    command_record,
    downstream,
    plan_stage,
    record_differences,
)
from thinkbudget.stages import begin_stage as _begin_stage

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["accelerate", "launch", "train/rl.py", "--learning_rate", "5e-06", "--output_dir", "out"]


def begin_stage(stage: Stage, plan, record: Path) -> None:
    """The rule's begin_stage in a folder a (sweep) job owns, as the runner calls it."""
    run_dir = record.parent
    if not (run_dir / RUN_MARKER).is_file():
        (run_dir / RUN_MARKER).write_text('{"job": "sweep"}')
    _begin_stage(stage, plan, record, remove=lambda path: remove_owned(run_dir, path))


def _stage(tmp_path: Path, resumes: str | None, command=TRAIN) -> Stage:
    out = tmp_path / "out"
    marker = out / ("results.json" if resumes == "samples" else "run_summary.json")
    return Stage("rl", "GRPO", out, marker, command=list(command), resumes=resumes)


def _leave(tmp_path: Path, what: str) -> None:
    """What a run leaves in the stage's output folder."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    if what == "checkpoint":
        (out / "checkpoint-4").mkdir()
        (out / "checkpoint-4" / "trainer_state.json").write_text("{}")
    elif what == "half checkpoint":  # killed while saving: no trainer_state.json
        (out / "checkpoint-4").mkdir()
    elif what == "samples":
        (out / "samples.jsonl").write_text("{}\n")
        (out / "results.json").write_text('{"complete": false}')
    elif what == "finished training":
        (out / "run_summary.json").write_text('{"seconds": 1}')
    elif what == "finished evaluation":
        (out / "results.json").write_text('{"complete": true, "rows": []}')


@pytest.mark.parametrize(
    "resumes, left, forced, action, command",
    [
        ("checkpoint", None, False, "start", TRAIN),
        ("checkpoint", "checkpoint", False, "continue", [*TRAIN, *RESUME_FLAGS]),
        ("checkpoint", "half checkpoint", False, "start", TRAIN),
        ("checkpoint", "checkpoint", True, "start", TRAIN),
        ("checkpoint", "finished training", False, "skip", None),
        ("checkpoint", "finished training", True, "start", TRAIN),
        ("samples", "samples", False, "continue", TRAIN),  # an evaluation resumes by itself: no flag
        ("samples", "finished evaluation", False, "skip", None),
        (None, "samples", False, "start", TRAIN),  # a stage that cannot resume starts over
    ],
)
def test_plan_table(tmp_path, resumes, left, forced, action, command):
    if left:
        _leave(tmp_path, left)
    plan = plan_stage(_stage(tmp_path, resumes), forced=forced, record=tmp_path / "rl.command.json")
    assert (plan.action, plan.command) == (action, command)


def test_a_kill_left_by_another_command_is_not_continued(tmp_path):
    record = tmp_path / "rl.command.json"
    old = _stage(tmp_path, "checkpoint", [*TRAIN[:-3], "1.5e-05", *TRAIN[-2:]])
    begin_stage(old, plan_stage(old, forced=False, record=record), record)
    _leave(tmp_path, "checkpoint")
    with pytest.raises(StageChanged, match=r"--learning_rate: 1\.5e-05 -> 5e-06.*--force rl"):
        plan_stage(_stage(tmp_path, "checkpoint"), forced=False, record=record)
    # --force starts it again, clean
    new = _stage(tmp_path, "checkpoint")
    plan = plan_stage(new, forced=True, record=record)
    begin_stage(new, plan, record)
    assert plan.action == "start" and not (tmp_path / "out").exists()
    assert json.loads(record.read_text())["command"] == TRAIN


def test_an_edited_recipe_is_a_different_command(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: 1.0e-5\n")
    stage = _stage(tmp_path, "checkpoint", [*TRAIN, "--config", str(recipe)])
    record = tmp_path / "rl.command.json"
    begin_stage(stage, plan_stage(stage, forced=False, record=record), record)
    _leave(tmp_path, "checkpoint")
    assert plan_stage(stage, forced=False, record=record).action == "continue"  # same command, same file
    recipe.write_text("learning_rate: 3.0e-5\n")
    with pytest.raises(StageChanged, match="recipe.yaml: edited since"):
        plan_stage(stage, forced=False, record=record)


def test_a_finished_stage_of_another_command_is_skipped_with_the_difference(tmp_path):
    record = tmp_path / "rl.command.json"
    record.write_text(json.dumps(command_record([*TRAIN, "--max_steps", "8"])))
    _leave(tmp_path, "finished training")
    plan = plan_stage(_stage(tmp_path, "checkpoint"), forced=False, record=record)
    assert plan.action == "skip" and "--max_steps: 8 -> (absent)" in plan.note and "--force rl" in plan.note


def test_begin_stage_clears_only_when_starting(tmp_path):
    record = tmp_path / "rl.command.json"
    _leave(tmp_path, "checkpoint")
    stage = _stage(tmp_path, "checkpoint")
    begin_stage(stage, plan_stage(stage, forced=False, record=record), record)  # continue: kept
    assert (tmp_path / "out" / "checkpoint-4").is_dir()
    begin_stage(stage, plan_stage(stage, forced=True, record=record), record)  # start: removed
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (["a", "--x", "1"], ["a", "--x", "1"], []),
        (["a", "--x", "1"], ["a", "--x", "2"], ["--x: 1 -> 2"]),
        (["a", "--x", "1"], ["a"], ["--x: 1 -> (absent)"]),
        (["a"], ["a", "--y", "b", "c"], ["--y: (absent) -> b c"]),
        (["a", "b.py"], ["a", "c.py"], ["program: a b.py -> a c.py"]),
    ],
)
def test_record_differences(old, new, expected):
    assert record_differences({"command": old}, {"command": new}) == expected


def test_stage_needs_exactly_one_way_to_run_and_a_known_resume(tmp_path):
    with pytest.raises(ValueError, match="exactly one of command and run"):
        Stage("x", "x", tmp_path, tmp_path / "m")
    with pytest.raises(ValueError, match="resumes='weights'"):
        Stage("x", "x", tmp_path, tmp_path / "m", command=["true"], resumes="weights")


def test_downstream_follows_needs():
    stages = [
        Stage("a", "", Path("a"), Path("a"), command=["true"]),
        Stage("b", "", Path("b"), Path("b"), needs=["a"], command=["true"]),
        Stage("c", "", Path("c"), Path("c"), command=["true"]),
        Stage("d", "", Path("d"), Path("d"), needs=["b", "c"], command=["true"]),
    ]
    assert downstream(stages, {"a"}) == {"a", "b", "d"}
    assert downstream(stages, {"c"}) == {"c", "d"}


def _cli(
    tmp_path: Path, *command: str, resumes: str = "checkpoint", run_dir: Path | None = None
) -> subprocess.CompletedProcess:
    out = tmp_path / "out"
    args = ["--run-dir", str(run_dir or tmp_path), "--name", "train", "--output", str(out)]
    args += ["--marker", str(out / "run_summary.json")]
    args += ["--record", str(tmp_path / "train.command.json"), "--resumes", resumes, "--", *command]
    return subprocess.run(
        [sys.executable, "-m", "thinkbudget.stages", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_command_line_form_for_the_sbatch_file(tmp_path):
    assert _cli(tmp_path, *TRAIN).stdout.strip() == "start"
    assert json.loads((tmp_path / RUN_MARKER).read_text())["job"] == "sweep"  # claimed (it was empty)
    _leave(tmp_path, "checkpoint")
    assert _cli(tmp_path, *TRAIN).stdout.strip() == "continue"
    changed = _cli(tmp_path, *TRAIN[:-1], "elsewhere")
    assert changed.returncode == 2 and "--output_dir: out -> elsewhere" in changed.stderr
    _leave(tmp_path, "finished training")
    assert _cli(tmp_path, *TRAIN).stdout.strip() == "skip"


def test_command_line_form_refuses_a_folder_that_is_not_its_own(tmp_path):
    """The sbatch task clears a stage's output only inside a sweep run folder: not one with files and no
    marker, not another job's, not the repository."""
    _leave(tmp_path, "checkpoint")  # files, no marker
    refused = _cli(tmp_path, *TRAIN)
    assert refused.returncode != 0 and "not created by a thinkbudget job" in refused.stderr
    assert (tmp_path / "out" / "checkpoint-4").is_dir()
    (tmp_path / RUN_MARKER).write_text('{"job": "main"}')
    refused = _cli(tmp_path, *TRAIN)
    assert refused.returncode != 0 and "run folder of a main job" in refused.stderr
    refused = _cli(tmp_path, *TRAIN, run_dir=ROOT)
    assert refused.returncode != 0 and "is the repository" in refused.stderr
