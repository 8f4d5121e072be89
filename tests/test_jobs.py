"""The one job runner (thinkbudget/jobs.py) under the main job, the frontier run and the sweep alike:
each refuses the repository (`--run-dir .`), a folder holding tracked files, a folder it does not own
and another job's folder before it writes or deletes anything; and the runner itself continues a
killed stage, refuses to continue one that another command left, reruns what --force names and
records every stage in the job's summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from thinkbudget.jobs import RUN_MARKER, Job, check_run_dir, claim_run_dir, remove_owned, run_job, run_logged
from thinkbudget.stages import Stage, StageChanged

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import frontier_run as frontier_script  # noqa: E402
import pipeline as pipeline_script  # noqa: E402
import sweep as sweep_script  # noqa: E402

GUARDED = ["eval/evaluate.py", "data/prepare.py", "README.md"]  # what `--run-dir .` once deleted


def _snapshot() -> dict[str, bytes]:
    return {p: (ROOT / p).read_bytes() for p in GUARDED}


def _main_job(run_dir: str) -> int:
    args = ["--profile", "smoke", "--run-dir", run_dir, "--only", "data"]
    return pipeline_script.main(pipeline_script.parse_args(args))


def _frontier_run(run_dir: str) -> int:
    # Every stage's output lies inside the run folder (eval/ for the held-out samples).
    args = ["--recipe", "configs/frontier/cpu.yaml", "--checkpoint", "README.md", "--run-dir", run_dir]
    return frontier_script.main(frontier_script.parse_args(args))


def _sweep(output_root: str) -> int:
    args = ["configs/sweeps/smoke.yaml", "--output-root", output_root]
    return sweep_script.main(sweep_script.parse_args(args))


JOBS = {"main": _main_job, "frontier": _frontier_run, "sweep": _sweep}


@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize(
    "run_dir, refusal", [(".", "is the repository"), ("eval", "holds files tracked by git")]
)
def test_no_job_runs_in_the_repository_or_a_tracked_folder(job, run_dir, refusal, monkeypatch):
    monkeypatch.chdir(ROOT)
    before = _snapshot()
    with pytest.raises(SystemExit, match=refusal):
        JOBS[job](run_dir)
    assert _snapshot() == before


@pytest.mark.parametrize("job", ["main", "frontier"])
def test_a_job_refuses_a_folder_it_does_not_own(job, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "eval").mkdir()
    (mine / "eval" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not created by a thinkbudget job"):
        JOBS[job](str(mine))
    other = "frontier" if job == "main" else "main"
    (mine / RUN_MARKER).write_text(json.dumps({"job": other}))
    with pytest.raises(SystemExit, match=f"run folder of a {other} job"):
        JOBS[job](str(mine))
    assert (mine / "eval" / "keep.txt").read_text() == "mine"


def test_a_sweep_refuses_a_run_folder_it_does_not_own(tmp_path, monkeypatch):
    from thinkbudget.sweep import load_sweep, plan_runs

    monkeypatch.chdir(ROOT)
    spec = load_sweep("configs/sweeps/smoke.yaml")
    spec.output_root = str(tmp_path / "sweeps")
    run = plan_runs(spec)[0]
    run.dir.mkdir(parents=True)
    (run.dir / "model").mkdir()
    (run.dir / "model" / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not created by a thinkbudget job"):
        _sweep(spec.output_root)
    assert (run.dir / "model" / "keep.txt").read_text() == "mine"
    assert not (run.dir / "config.yaml").exists()


def test_an_old_main_job_marker_is_the_main_jobs(tmp_path):
    """Run folders written before the marker named its job belong to the main job."""
    old = tmp_path / "old"
    old.mkdir()
    (old / RUN_MARKER).write_text('{"created_by": "scripts/pipeline.py"}')
    assert check_run_dir(old, "main") is True
    with pytest.raises(SystemExit, match="run folder of a main job"):
        check_run_dir(old, "sweep")


def test_remove_owned_deletes_only_strictly_inside(tmp_path):
    owned = tmp_path / "owned"
    claim_run_dir(owned, "main")
    assert json.loads((owned / RUN_MARKER).read_text())["job"] == "main"
    (owned / "data").mkdir()
    (tmp_path / "outside").mkdir()
    for path in (owned, tmp_path / "outside", owned / ".." / "outside"):
        with pytest.raises(RuntimeError, match="refusing to delete"):
            remove_owned(owned, path)
    remove_owned(owned, owned / "data")
    assert not (owned / "data").exists() and (tmp_path / "outside").is_dir()


# --------------------------------------------------------------------------------------------
# The runner itself, with stages whose commands are tiny Python programs
# --------------------------------------------------------------------------------------------
TRAIN = (
    "import json, os, sys; out = sys.argv[1]; os.makedirs(out, exist_ok=True); "
    "open(os.path.join(out, 'args.txt'), 'a').write(' '.join(sys.argv[2:]) + '\\n'); "
    "json.dump({'seconds': 1}, open(os.path.join(out, 'run_summary.json'), 'w'))"
)


def _job(run_dir: Path, lr: str = "1e-5") -> Job:
    out = run_dir / "model"
    train = Stage(
        "train",
        "train",
        out,
        out / "run_summary.json",
        command=["python", "-c", TRAIN, str(out), "--learning_rate", lr],
        resumes="checkpoint",
    )
    report_file = run_dir / "report.txt"
    report = Stage(
        "report",
        "report",
        report_file,
        report_file,
        needs=["train"],
        run=lambda: report_file.write_text("{}"),
    )
    return Job("sweep", run_dir, [train, report], summary="run.json", info={"what": "test"})


def _kill_leaving_a_checkpoint(run_dir: Path) -> None:
    (run_dir / "model" / "run_summary.json").unlink()
    (run_dir / "model" / "checkpoint-2").mkdir()
    (run_dir / "model" / "checkpoint-2" / "trainer_state.json").write_text("{}")


def test_runner_runs_records_skips_and_continues(tmp_path):
    run_dir = tmp_path / "run"
    job = _job(run_dir)
    assert run_job(job) == 0
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["what"] == "test" and summary["commit"] and summary["command"]
    assert [summary["stages"][s]["status"] for s in ("train", "report")] == ["ran", "ran"]
    assert all(summary["stages"][s]["commit"] == summary["commit"] for s in ("train", "report"))
    assert (run_dir / "logs" / "train.log").is_file() and (run_dir / "logs" / "train.command.json").is_file()
    # Finished: skipped. Killed with a checkpoint: continued with the resume flags.
    assert run_job(job) == 0
    assert json.loads((run_dir / "run.json").read_text())["stages"]["train"]["status"] == "ran"
    _kill_leaving_a_checkpoint(run_dir)
    assert run_job(job) == 0
    args = (run_dir / "model" / "args.txt").read_text().splitlines()
    assert args == ["--learning_rate 1e-5", "--learning_rate 1e-5 --resume_from_checkpoint true"]
    assert json.loads((run_dir / "run.json").read_text())["stages"]["train"]["status"] == "resumed"


# A stage that, like `accelerate launch`, starts the process doing the work: that child touches 200 MiB,
# frees them and lives on (the peak is a high-water mark, not the memory held at the end).
_HOLDS_200_MIB = (
    "import time; b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); del b; time.sleep(1.5)"
)
_LAUNCHER = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {_HOLDS_200_MIB!r}], check=True)"


def test_a_stage_records_the_peak_memory_of_the_process_under_it(tmp_path):
    small = run_logged(
        [sys.executable, "-c", "import time; time.sleep(0.3)"], tmp_path / "small.log", label="small"
    )
    big = run_logged([sys.executable, "-c", _LAUNCHER], tmp_path / "big.log", label="big")
    assert small.peak_rss_mb is not None and small.peak_rss_mb < 150
    assert 200 <= big.peak_rss_mb < 300  # the grandchild's peak plus the launcher's own
    run_dir = tmp_path / "run"
    assert run_job(_job(run_dir)) == 0
    stages = json.loads((run_dir / "run.json").read_text())["stages"]
    assert stages["train"]["peak_rss_mb"] is None or stages["train"]["peak_rss_mb"] < 150
    assert stages["report"]["peak_rss_mb"] > 0  # in-process: the job process's own peak


def test_runner_refuses_to_continue_what_another_command_left(tmp_path):
    run_dir = tmp_path / "run"
    assert run_job(_job(run_dir)) == 0
    _kill_leaving_a_checkpoint(run_dir)
    with pytest.raises(StageChanged, match=r"--learning_rate: 1e-5 -> 3e-5.*--force train"):
        run_job(_job(run_dir, lr="3e-5"))
    assert (run_dir / "model" / "checkpoint-2").is_dir()  # nothing deleted
    assert run_job(_job(run_dir, lr="3e-5"), force=["train"]) == 0  # --force starts it clean
    assert (run_dir / "model" / "args.txt").read_text().splitlines() == ["--learning_rate 3e-5"]
    assert not (run_dir / "model" / "checkpoint-2").exists()


def test_runner_reports_a_failed_stage_and_an_unknown_name(tmp_path):
    run_dir = tmp_path / "run"
    job = _job(run_dir)
    job.stages[0].command = ["python", "-c", "import sys; print('boom'); sys.exit(3)"]
    assert run_job(job) == 1
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["stages"]["train"]["status"] == "failed"
    assert "boom" in (run_dir / "logs" / "train.log").read_text()
    with pytest.raises(SystemExit, match="unknown stage 'trian'; stages: train, report"):
        run_job(job, force=["trian"])
    with pytest.raises(SystemExit, match="report needs train to finish first"):
        run_job(job, only=["report"])


def test_dry_run_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    assert run_job(_job(run_dir), dry_run=True) == 0
    assert not run_dir.exists()


# --------------------------------------------------------------------------------------------
# How a stage starts a training script
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "extra", "expected"),
    [
        # one process on the CPU: no launcher process beside the trainer
        (None, ["--num_processes", "1", "--cpu"], ["python", "s.py", "--use_cpu", "true"]),
        (None, ["--cpu", "--num_processes", "1"], ["python", "s.py", "--use_cpu", "true"]),
        (None, ["--cpu", "--num_processes=1"], ["python", "s.py", "--use_cpu", "true"]),
        (None, ["--cpu"], ["python", "s.py", "--use_cpu", "true"]),
        # anything else keeps accelerate
        (
            None,
            ["--num_processes", "2", "--cpu"],
            ["accelerate", "launch", "--num_processes", "2", "--cpu", "s.py"],
        ),
        (None, ["--num_processes", "1"], ["accelerate", "launch", "--num_processes", "1", "s.py"]),
        (
            None,
            ["--num_processes", "1", "--cpu", "--mixed_precision", "no"],
            ["accelerate", "launch", "--num_processes", "1", "--cpu", "--mixed_precision", "no", "s.py"],
        ),
        ("c.yaml", ["--cpu"], ["accelerate", "launch", "--config_file", "c.yaml", "--cpu", "s.py"]),
        (None, [], ["accelerate", "launch", "s.py"]),
    ],
)
def test_training_command(config, extra, expected):
    from thinkbudget.jobs import training_command

    assert training_command("s.py", config, extra) == expected
