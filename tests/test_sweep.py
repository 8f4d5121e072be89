"""Sweeps: grid expansion, run names, key validation against the real config classes, reuse checks,
dry-run output, skip-if-finished, the sbatch file, the Pareto front and report, and (slow) the 2-point
smoke grid end to end on CPU."""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from thinkbudget.evaluation import pareto_front
from thinkbudget.sweep import (
    check_reuse,
    expand_grid,
    format_value,
    load_sweep,
    plan_runs,
    point_hash,
    run_name,
    sbatch_script,
    write_config,
    write_report,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import sweep as sweep_script  # noqa: E402

SAFE_NAME = re.compile(r"^[A-Za-z0-9._=+-]+-[0-9a-f]{8}$")


def write_sweep(tmp_path: Path, **changes) -> Path:
    """A small sweep over the SFT smoke recipe (train/sft.py exists on every checkout)."""
    spec = {
        "name": "t",
        "script": "train/sft.py",
        "recipe": "configs/sft/smoke.yaml",
        "model_name_or_path": "tiny-llama",
        "output_root": str(tmp_path / "runs"),
        "accelerate_args": ["--num_processes", "1", "--cpu"],
        "overrides": {"max_steps": 1},
        "grid": {
            "learning_rate": [1.0e-3, 3.0e-4],
            "lora_target_modules": [["q_proj", "v_proj"], ["q_proj"]],
        },
        "eval": {"tasks": "chain", "budgets": "off,32", "limit": 2},
    }
    spec.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------
# Grid expansion and naming (pure functions)
# ---------------------------------------------------------------------------------------------
def test_expand_grid_is_the_cartesian_product_in_file_order():
    points = expand_grid({"a": [1, 2], "b": ["x", "y", "z"]})
    assert [v for _, v in points] == [{"a": a, "b": b} for a, b in itertools.product([1, 2], ["x", "y", "z"])]
    assert all(labels == values for labels, values in points)
    assert expand_grid({"a": [1]}) == [({"a": 1}, {"a": 1})]


def test_expand_grid_groups_set_several_fields_and_are_named():
    grid = {
        "reward": [
            {"name": "exact", "reward_funcs": ["l1_exact"], "alpha": 3e-4},
            {"reward_funcs": ["l1_max"], "delta": 0.5},
        ],
        "learning_rate": [1e-6, 2e-6],
    }
    points = expand_grid(grid, fields=["learning_rate", "reward_funcs", "alpha", "delta"])
    assert len(points) == 4
    labels, values = points[0]
    assert labels == {"reward": "exact", "learning_rate": 1e-6}
    assert values == {"reward_funcs": ["l1_exact"], "alpha": 3e-4, "learning_rate": 1e-6}
    labels, values = points[3]
    assert labels["reward"] == {"reward_funcs": ["l1_max"], "delta": 0.5}
    assert values == {"reward_funcs": ["l1_max"], "delta": 0.5, "learning_rate": 2e-6}
    # A mapping-valued *field* (key in fields) is a value, not a group.
    points = expand_grid({"model_init_kwargs": [{"a": 1}]}, fields=["model_init_kwargs"])
    assert points == [({"model_init_kwargs": {"a": 1}}, {"model_init_kwargs": {"a": 1}})]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3e-6, "3e-06"),
        (0.0003, "0.0003"),
        (1.0, "1"),
        (True, "true"),
        (False, "false"),
        (256, "256"),
        ([32, 64, 128], "32+64+128"),
        ("l1_max", "l1_max"),
        ("rg/leg counting", "rg-leg-counting"),
        ({"learning_rate": 1e-5, "x": [1, 2]}, "lr=1e-05+x=1+2"),
        (None, "None"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_run_name_is_readable_stable_and_distinct():
    name = run_name(
        {"learning_rate": 1e-6, "reward_funcs": ["l1_max"]},
        {"learning_rate": 1e-6, "reward_funcs": ["l1_max"]},
    )
    assert name.startswith("lr=1e-06_reward=l1_max-")
    assert SAFE_NAME.match(name)
    assert point_hash({"a": 1, "b": 2}) == point_hash({"b": 2, "a": 1})
    names = {run_name(lab, val) for lab, val in expand_grid({"a": [1, 2, 3], "b": [0.1, 0.2]})}
    assert len(names) == 6


def test_run_names_of_random_values_are_path_safe_and_bounded():
    rng = random.Random(0)
    alphabet = string.printable + "äé→/\\ "
    for _ in range(300):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        name = run_name({"k": value}, {"k": value})
        assert SAFE_NAME.match(name), name
        assert len(name) <= 96 + 9


# ---------------------------------------------------------------------------------------------
# Pareto front (pure function)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("points", "front"),
    [
        ([], []),
        ([(10, 0.5)], [True]),
        ([(10, 0.5), (20, 0.6), (30, 0.55)], [True, True, False]),  # more tokens, less accuracy
        ([(10, 0.5), (10, 0.5)], [True, True]),  # exact ties are both on the front
        ([(10, 0.5), (10, 0.4)], [True, False]),  # same tokens, lower accuracy
        ([(5, 0.9), (10, 0.5), (20, 0.6)], [True, False, False]),  # one point beats all
        ([(0, 0.0), (100, 1.0)], [True, True]),
    ],
)
def test_pareto_front_literal_cases(points, front):
    assert pareto_front(points) == front


def test_pareto_front_on_random_points():
    rng = random.Random(1)
    for _ in range(200):
        pts = [
            (rng.choice([0, 10, 20, 30, rng.uniform(0, 50)]), rng.choice([0.0, 0.5, 1.0, rng.random()]))
            for _ in range(rng.randint(1, 12))
        ]
        flags = pareto_front(pts)
        front = [p for p, f in zip(pts, flags) if f]
        assert front, "a non-empty set always has a front"

        def beats(q, p):
            return q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1])

        for p, f in zip(pts, flags):
            assert f == (not any(beats(q, p) for q in pts))
            if not f:
                assert any(beats(q, p) for q in front)


# ---------------------------------------------------------------------------------------------
# The sweep file and key validation against the real config classes
# ---------------------------------------------------------------------------------------------
def test_load_sweep_rejects_bad_files(tmp_path):
    with pytest.raises(SystemExit, match="grdi"):
        load_sweep(write_sweep(tmp_path, grdi={"a": [1]}))
    with pytest.raises(SystemExit, match="learning_rate.*at least one value"):
        load_sweep(write_sweep(tmp_path, grid={"learning_rate": 1e-3}))
    with pytest.raises(SystemExit, match="recipe configs/sft/nope.yaml does not exist"):
        load_sweep(write_sweep(tmp_path, recipe="configs/sft/nope.yaml"))
    with pytest.raises(SystemExit, match="accelerate_config configs/accelerate/nope.yaml does not exist"):
        load_sweep(write_sweep(tmp_path, accelerate_config="configs/accelerate/nope.yaml"))
    with pytest.raises(SystemExit, match=r"(?s)\[slurm\].*gpus"):
        load_sweep(write_sweep(tmp_path, slurm={"gpus": 8}))
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nrecipe: configs/sft/smoke.yaml\ngrid: {}\n")
    with pytest.raises(SystemExit, match="missing required key 'model_name_or_path'"):
        load_sweep(path)


def test_unknown_grid_key_fails_before_any_run_naming_the_key(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, grid={"learning_rate": [1e-3], "lenght_alpha": [0.1, 0.2]}))
    with pytest.raises(SystemExit, match="'lenght_alpha'") as e:
        plan_runs(spec)
    assert "train/sft.py" in str(e.value)
    assert not (tmp_path / "runs").exists()  # nothing was created
    # a typo close to a real field gets a suggestion
    spec = load_sweep(write_sweep(tmp_path, grid={"learning_rat": [1e-3]}))
    with pytest.raises(SystemExit, match="did you mean learning_rate"):
        plan_runs(spec)
    # inside a group, and in the fixed overrides
    spec = load_sweep(write_sweep(tmp_path, grid={"mix": [{"name": "a", "max_length": 256, "nope": 1}]}))
    with pytest.raises(SystemExit, match="'nope'"):
        plan_runs(spec)
    spec = load_sweep(write_sweep(tmp_path, overrides={"max_stpes": 1}))
    with pytest.raises(SystemExit, match=r"(?s)\[overrides\].*'max_stpes'"):
        plan_runs(spec)


def test_plan_runs_resolves_recipe_overrides_and_grid(tmp_path):
    spec = load_sweep(write_sweep(tmp_path))
    runs = plan_runs(spec)
    recipe = yaml.safe_load((ROOT / "configs/sft/smoke.yaml").read_text())
    assert len(runs) == 4
    assert len({r.dir for r in runs}) == 4
    for run in runs:
        assert run.dir.parent == tmp_path / "runs"
        assert SAFE_NAME.match(run.name)
        assert run.config["max_steps"] == 1  # the sweep's override beats the recipe's 6
        assert run.config["learning_rate"] == run.values["learning_rate"]
        assert run.config["lora_target_modules"] == run.values["lora_target_modules"]
        assert run.config["model_name_or_path"] == "tiny-llama"
        assert run.config["output_dir"] == str(run.dir / "model")
        assert run.config["per_device_train_batch_size"] == recipe["per_device_train_batch_size"]
    assert runs[0].name.startswith("lr=0.001_lora_target_modules=q_proj+v_proj-")


def test_a_folder_from_another_grid_is_not_reused(tmp_path):
    spec = load_sweep(write_sweep(tmp_path))
    run = plan_runs(spec)[0]
    write_config(run)
    check_reuse(run)  # same config: fine
    # the same grid point, but the fixed overrides changed: same folder name, different config
    other = plan_runs(load_sweep(write_sweep(tmp_path, overrides={"max_steps": 2})))[0]
    assert other.dir == run.dir
    with pytest.raises(SystemExit, match=r"different config \(max_steps: 1 -> 2\)"):
        check_reuse(other)
    with pytest.raises(SystemExit, match="different config"):
        sweep_script.main(sweep_script.parse_args([str(tmp_path / "sweep.yaml"), "--dry-run"]))


# ---------------------------------------------------------------------------------------------
# Dry run, skipping finished runs, slurm
# ---------------------------------------------------------------------------------------------
def fake_finished(run, accuracy: float = 0.5, tokens: float = 20.0) -> None:
    """Markers and a results.json shaped like eval/evaluate.py's, for the skip and report logic."""
    write_config(run)
    run.model_dir.mkdir(parents=True, exist_ok=True)
    (run.model_dir / "run_summary.json").write_text("{}")
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in ("chain", "gsm8k"):
        rows.append(
            {
                "task": task,
                "mode": "no_think",
                "method": "default",
                "budget": "off",
                "budget_label": "off",
                "n": 4,
                "accuracy": accuracy / 2,
                "mean_thinking_tokens": 0.0,
                "mean_total_tokens": 5.0,
                "within_budget_rate": None,
            }
        )
        for budget, scale in ((32, 1.0), (None, 2.0)):
            rows.append(
                {
                    "task": task,
                    "mode": "think",
                    "method": "default",
                    "budget": budget,
                    "budget_label": str(budget or "none"),
                    "n": 4,
                    "accuracy": accuracy,
                    "mean_thinking_tokens": tokens * scale,
                    "mean_total_tokens": tokens * scale + 5,
                    "within_budget_rate": 0.75,
                }
            )
    (run.eval_dir / "results.json").write_text(json.dumps({"complete": True, "rows": rows}))


def test_dry_run_prints_commands_and_skips_finished_runs(tmp_path, capsys):
    sweep_file = write_sweep(tmp_path)
    runs = plan_runs(load_sweep(sweep_file))
    fake_finished(runs[1])
    assert sweep_script.main(sweep_script.parse_args([str(sweep_file), "--dry-run"])) == 0
    out = capsys.readouterr().out
    assert f"# {runs[0].name} (to run)" in out
    assert f"# {runs[1].name} (finished)" in out
    train = f"accelerate launch --num_processes 1 --cpu train/sft.py --config {runs[0].dir}/config.yaml"
    assert train in out
    assert (
        f"eval/evaluate.py --model {runs[0].dir}/model --output {runs[0].dir}/eval --tasks chain --budgets off,32 --limit 2"
        in out
    )
    assert f"--config {runs[1].dir}/config.yaml" not in out  # finished: nothing to run
    assert out.count("accelerate launch") == 3
    assert not runs[0].dir.exists()  # a dry run writes nothing


def test_local_launcher_skips_finished_runs_and_writes_the_report(tmp_path):
    sweep_file = write_sweep(tmp_path)
    runs = plan_runs(load_sweep(sweep_file))
    for i, run in enumerate(runs):
        fake_finished(run, accuracy=0.2 * (i + 1), tokens=10.0 * (i + 1))
    before = {r.name: (r.dir / "config.yaml").stat().st_mtime_ns for r in runs}
    assert sweep_script.main(sweep_script.parse_args([str(sweep_file)])) == 0
    assert not any((r.dir / "train.log").exists() for r in runs)  # nothing was launched
    assert before == {r.name: (r.dir / "config.yaml").stat().st_mtime_ns for r in runs}
    report = tmp_path / "runs" / "report"
    assert (report / "pareto.png").stat().st_size > 0
    table = (report / "pareto.md").read_text()
    ranked = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [line.split("|")[1].strip() for line in ranked] == ["1", "2", "3", "4"]
    assert runs[-1].name in ranked[0]  # highest accuracy first
    points = json.loads((report / "points.json").read_text())["points"]
    # tasks pooled: one point per run and budget setting (off, 32, none)
    assert len(points) == 12
    assert {p["budget"] for p in points} == {"off", "32", "none"}
    assert all(p["n"] == 8 for p in points)


def test_report_marks_the_pareto_front(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, grid={"learning_rate": [1e-3, 2e-3]}))
    runs = plan_runs(spec)
    fake_finished(runs[0], accuracy=0.8, tokens=10.0)  # dominates the other run at every budget
    fake_finished(runs[1], accuracy=0.4, tokens=30.0)
    write_report(spec, runs, tmp_path / "report")
    points = json.loads((tmp_path / "report" / "points.json").read_text())["points"]
    assert all(p["pareto"] for p in points if p["run"] == runs[0].name and p["budget"] != "none")
    assert not any(p["pareto"] for p in points if p["run"] == runs[1].name)


def test_slurm_no_submit_writes_an_sbatch_array(tmp_path):
    sweep_file = write_sweep(
        tmp_path,
        slurm={
            "nodes": 2,
            "gpus_per_node": 4,
            "partition": "gpu",
            "setup": ["source .venv/bin/activate"],
            "max_parallel": 2,
        },
    )
    runs = plan_runs(load_sweep(sweep_file))
    fake_finished(runs[0])
    assert (
        sweep_script.main(sweep_script.parse_args([str(sweep_file), "--launcher", "slurm", "--no-submit"]))
        == 0
    )
    text = (tmp_path / "runs" / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0-2%2" in text  # the finished run is left out
    assert (
        "#SBATCH --nodes=2" in text
        and "#SBATCH --gpus-per-node=4" in text
        and "#SBATCH --partition=gpu" in text
    )
    assert runs[0].name not in text and all(r.name in text for r in runs[1:])
    assert 'MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in text
    assert "NUM_PROCESSES=$((SLURM_NNODES * 4))" in text
    assert (
        "srun --ntasks-per-node=1 bash -c 'accelerate launch --num_processes 1 --cpu "
        '--num_machines "$SLURM_NNODES" --num_processes "$NUM_PROCESSES" --machine_rank "$SLURM_NODEID" '
        '--main_process_ip "$MAIN_IP" --main_process_port 29500 train/sft.py --config "$RUN/config.yaml" $RESUME\''
    ) in text
    assert 'python eval/evaluate.py --model "$RUN/model" --output "$RUN/eval" --tasks chain' in text
    assert "source .venv/bin/activate" in text
    assert all((r.dir / "config.yaml").is_file() for r in runs)
    report = (tmp_path / "runs" / "report.sbatch").read_text()
    assert "scripts/sweep.py" in report and "--report-only" in report
    for f in ("sweep.sbatch", "report.sbatch"):
        subprocess.run(["bash", "-n", str(tmp_path / "runs" / f)], check=True)  # valid shell


def test_slurm_needs_sbatch_unless_no_submit(tmp_path, monkeypatch):
    sweep_file = write_sweep(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="sbatch is not on PATH"):
        sweep_script.main(sweep_script.parse_args([str(sweep_file), "--launcher", "slurm"]))


def test_sbatch_of_a_single_node_run(tmp_path):
    spec = load_sweep(
        write_sweep(tmp_path, accelerate_args=[], accelerate_config="configs/accelerate/ddp.yaml")
    )
    text = sbatch_script(spec, plan_runs(spec)[:1], "configs/sweeps/x.yaml")
    assert "#SBATCH --array=0-0\n" in text
    assert (
        'accelerate launch --config_file configs/accelerate/ddp.yaml --num_machines "$SLURM_NNODES"' in text
    )


# ---------------------------------------------------------------------------------------------
# The shipped sweep files
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["budgets", "smoke"])
def test_shipped_sweeps_validate(name):
    spec = load_sweep(ROOT / "configs" / "sweeps" / f"{name}.yaml")
    runs = plan_runs(spec)
    assert len(runs) >= 2
    assert spec.script == "train/rl.py"


@pytest.mark.slow
def test_smoke_sweep_end_to_end(tmp_path, smoke_data):
    """The 2-point smoke grid: GRPO on the tiny model, evaluation, Pareto figure and table (CPU)."""
    spec = yaml.safe_load((ROOT / "configs/sweeps/smoke.yaml").read_text())
    spec["overrides"]["dataset_path"] = smoke_data  # the smoke mix, prepared for this session
    sweep_file = tmp_path / "smoke-sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    cmd = [sys.executable, "scripts/sweep.py", str(sweep_file), "--output-root", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = sorted(p for p in tmp_path.iterdir() if (p / "config.yaml").is_file())
    assert len(runs) == 2
    for run in runs:
        assert (run / "model" / "run_summary.json").is_file()
        assert json.loads((run / "eval" / "results.json").read_text())["rows"]
    assert (tmp_path / "report" / "pareto.png").stat().st_size > 0
    table = (tmp_path / "report" / "pareto.md").read_text()
    assert all(run.name in table for run in runs)
    # a rerun skips both finished runs
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert again.stderr.count("finished, skipped") == 2
