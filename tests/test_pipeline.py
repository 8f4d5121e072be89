"""The main job: profiles and their key checks, flags, stage commands (dry run), skipping finished
stages and --force, the demo on the tiny model, and (slow) the smoke profile end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from thinkbudget.demo import demo_answers, demo_markdown
from thinkbudget.jobs import accelerate_command, executable
from thinkbudget.pipeline import check_profile_keys, load_profile
from thinkbudget.recipes import cli_flags
from thinkbudget.stages import downstream

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import pipeline as pipeline_script  # noqa: E402

STAGES = [
    "demo_before",
    "data",
    "sft",
    "rl",
    "eval_base",
    "eval_sft",
    "eval_rl",
    "eval_forcing",
    "report",
    "frontier",
    "targets",
    "demo_after",
]


def write_profile(tmp_path: Path, base: str = "smoke", **changes) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "pipeline" / f"{base}.yaml").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def dry_run(capsys, *args: str) -> str:
    assert pipeline_script.main(pipeline_script.parse_args(["--dry-run", *args])) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


# ---------------------------------------------------------------------------------------------
# Flags and commands (pure functions)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "flags"),
    [
        ({}, []),
        ({"max_steps": 10}, ["--max_steps", "10"]),
        ({"bf16": False, "use_peft": True}, ["--bf16", "false", "--use_peft", "true"]),
        ({"budgets": [32, 64]}, ["--budgets", "32", "64"]),
        ({"methods": ["no_think", "think"], "limit": 8}, ["--methods", "no_think", "think", "--limit", "8"]),
        ({"learning_rate": 2e-4}, ["--learning_rate", "0.0002"]),
        ({"budgets": "off,32,none"}, ["--budgets", "off,32,none"]),
        ({"model_init_kwargs": {"a": 1}}, ["--model_init_kwargs", '{"a": 1}']),
        ({"seed": None, "x": 1}, ["--x", "1"]),  # None keeps the recipe's value
        ({"flags": [True, False]}, ["--flags", "true", "false"]),
    ],
)
def test_cli_flags(overrides, flags):
    assert cli_flags(overrides) == flags


def test_accelerate_and_executable():
    assert accelerate_command("train/sft.py", None) == ["accelerate", "launch", "train/sft.py"]
    assert accelerate_command("train/rl.py", "configs/accelerate/ddp.yaml", ["--num_processes", "2"]) == [
        "accelerate",
        "launch",
        "--config_file",
        "configs/accelerate/ddp.yaml",
        "--num_processes",
        "2",
        "train/rl.py",
    ]
    assert executable(["python", "x.py"]) == [sys.executable, "x.py"]
    resolved = executable(["accelerate", "launch", "x.py"])
    assert Path(resolved[0]).name == "accelerate" and resolved[1:] == ["launch", "x.py"]
    assert executable(["bash", "-c", "true"]) == ["bash", "-c", "true"]


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cpu", "cpu-proof", "gpu", "smoke"])
def test_shipped_profiles_load_and_their_keys_exist(name):
    profile = load_profile(name)
    check_profile_keys(profile)  # every override is a real config field of its stage's script
    assert profile.smoke == (name == "smoke")
    assert (profile.name in profile.notice) and (("SMOKE RUN" in profile.notice) == profile.smoke)
    for stage in ("data", "sft", "rl", "eval"):
        assert getattr(profile, stage).recipe, f"{name}: {stage} names no recipe"


@pytest.mark.parametrize("name", ["cpu", "cpu-proof"])
def test_cpu_profiles_start_the_overlong_ramp_where_sft_targets_end(name):
    """The CPU profiles' GRPO penalty ramps over the last ``soft_punish_cache_ratio`` of the budget, and
    their data recipe ends every budgeted SFT target by (1 - margin) of it, the margin of its task: the
    ramp must start where the narrowest margin's targets end, or GRPO pays traces longer than any SFT
    target (the sixth proof: within budget 83 % at 32); a task with a wider margin ends its targets earlier."""
    from thinkbudget.data import target_rule

    profile = load_profile(name)
    rl = profile.rl.overrides
    assert "soft_overlong" in rl["reward_funcs"]
    data = yaml.safe_load((ROOT / profile.data.recipe).read_text())
    margins = [target_rule(data, task)["margin"] for task in data["tasks"]]
    assert rl["soft_punish_cache_ratio"] == min(margins)


def test_profile_errors_name_the_file_and_key(tmp_path):
    with pytest.raises(SystemExit, match="no pipeline profile 'nope'.*available: cpu, cpu-proof, gpu, smoke"):
        load_profile("nope")
    with pytest.raises(SystemExit, match=r"(?s)profile.yaml: unknown keys.*'modle' \(did you mean model"):
        load_profile(str(write_profile(tmp_path, modle="x")))
    with pytest.raises(SystemExit, match=r"(?s)\[sft\]: unknown keys.*'overides'"):
        load_profile(str(write_profile(tmp_path, sft={"overides": {}})))
    with pytest.raises(SystemExit, match="rl.recipe configs/rl/missing.yaml does not exist"):
        load_profile(str(write_profile(tmp_path, rl={"recipe": "configs/rl/missing.yaml"})))
    with pytest.raises(SystemExit, match="accelerate_config configs/accelerate/x.yaml does not exist"):
        load_profile(str(write_profile(tmp_path, accelerate_config="configs/accelerate/x.yaml")))
    for key, bad in [
        ("time_limit_min", 0),
        ("time_limit_min", 2.5),
        ("memory_limit_gib", -1),
        ("memory_limit_gib", "4"),
    ]:
        with pytest.raises(SystemExit, match=rf"profile.yaml: {key} must be a positive"):
            load_profile(str(write_profile(tmp_path, **{key: bad})))
    assert load_profile(str(write_profile(tmp_path, memory_limit_gib=3.5))).memory_limit_gib == 3.5
    raw = yaml.safe_load((ROOT / "configs/pipeline/smoke.yaml").read_text())
    del raw["model"]
    (tmp_path / "p2.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit, match="missing required key 'model'"):
        load_profile(str(tmp_path / "p2.yaml"))


@pytest.mark.parametrize(
    ("section", "bad", "script"),
    [
        ("sft", {"overrides": {"max_stpes": 2}}, "train/sft.py"),
        ("rl", {"overrides": {"length_alhpa": 0.1}}, "train/rl.py"),
        ("data", {"overrides": {"num_train_problem": 4}}, "data/prepare.py"),
        ("eval", {"forcing": {"method": "budget_forcing"}}, "eval/evaluate.py"),
    ],
)
def test_unknown_override_fails_before_any_stage_runs(tmp_path, section, bad, script):
    profile = write_profile(tmp_path, **{section: bad})
    key = next(iter(next(iter(bad.values()))))
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit, match=rf"(?s)\[{section}[\].].*{script}.*'{key}'"):
        pipeline_script.main(
            pipeline_script.parse_args(["--profile", str(profile), "--run-dir", str(run_dir)])
        )
    assert not run_dir.exists()


# ---------------------------------------------------------------------------------------------
# Dry run, skipping, --force
# ---------------------------------------------------------------------------------------------
def test_dry_run_of_the_cpu_profile_prints_every_stage(tmp_path, capsys):
    run_dir = tmp_path / "run"
    out = dry_run(capsys, "--profile", "cpu", "--run-dir", str(run_dir))
    assert "Profile 'cpu': " in out and "SMOKE RUN" not in out
    for stage in STAGES:
        assert f"- {stage}: " in out
    launch = "python"  # one CPU process: no launcher (training_command)
    assert f"- data: python data/prepare.py --config configs/data/cpu.yaml --output_dir {run_dir}/data" in out
    assert (
        f"- sft: {launch} train/sft.py --use_cpu true --config configs/sft/smollm2-135m.yaml --model_name_or_path smollm2-135m "
        f"--dataset_path {run_dir}/data --output_dir {run_dir}/sft --num_train_epochs"
    ) in out
    assert (
        f"- rl: {launch} train/rl.py --use_cpu true --config configs/rl/smollm2-135m.yaml --model_name_or_path {run_dir}/sft "
        f"--dataset_path {run_dir}/data --output_dir {run_dir}/rl --reward_funcs"
    ) in out
    # the data stage owns the mix: no stage after it repeats a mix field
    data_fields = ("--tasks", "--num_train_problems", "--budgets ", "--think_budget_ratio", "--mix_seed")
    for line in out.splitlines():
        if line.startswith(("- sft:", "- rl:")):
            assert not any(f in line for f in data_fields), line
    assert (
        f"- eval_base: python eval/evaluate.py --config configs/eval/default.yaml --model smollm2-135m --output {run_dir}/eval/base"
        in out
    )
    assert f"--model {run_dir}/rl --output {run_dir}/eval/rl" in out
    assert (
        f"--model {run_dir}/sft --output {run_dir}/eval/forcing" in out and "--methods budget_forcing" in out
    )
    assert (
        f"- report: python eval/plot.py {run_dir}/eval/base {run_dir}/eval/sft {run_dir}/eval/rl {run_dir}/eval/forcing"
        in out
    )
    evals = " ".join(f"{run_dir}/eval/{k}" for k in ("base", "sft", "rl", "forcing"))
    assert f"- frontier: python eval/frontier.py --eval_dirs {evals} --labels base SFT SFT+GRPO" in out
    assert not run_dir.exists()  # a dry run writes nothing


def test_control_evaluation_runs_only_where_the_profile_sets_it(tmp_path, capsys):
    run_dir = tmp_path / "proof"
    out = dry_run(capsys, "--profile", "cpu-proof", "--run-dir", str(run_dir))
    control = next(line for line in out.splitlines() if line.startswith("- eval_control: "))
    assert f"--model {run_dir}/rl --output {run_dir}/eval/control --tasks gsm8k --task_limits 400" in control
    # the switches and GSM8K's budgets: the conditions whose bars need more problems than the curve
    assert "--budgets off,32,64,128,none --methods no_think no_think_flag budget_prompt think_flag" in control
    stages = {s.name: s for s in pipeline_script.build_stages(load_profile("cpu-proof"), run_dir)}
    assert stages["eval_control"].needs == ["rl"] and "eval_control" in stages["targets"].needs
    assert not any("eval/control" in c for c in stages["report"].command)
    assert "eval_control" not in stages["report"].needs
    assert "- eval_control: " not in dry_run(capsys, "--profile", "cpu", "--run-dir", str(tmp_path / "demo"))


def test_dry_run_of_the_gpu_profile_uses_the_accelerate_config(tmp_path, capsys):
    out = dry_run(capsys, "--profile", "gpu", "--run-dir", str(tmp_path / "run"))
    assert "accelerate launch --config_file configs/accelerate/single_gpu.yaml train/sft.py" in out
    assert "SMOKE RUN" not in out


def finish(run_dir: Path, *stages: str) -> None:
    """Create the marker files of finished stages (what the real stages write last)."""
    markers = {
        "demo_before": "demo/before.json",
        "data": "data/manifest.json",
        "sft": "sft/run_summary.json",
        "rl": "rl/run_summary.json",
        "eval_base": "eval/base/results.json",
        "eval_sft": "eval/sft/results.json",
        "eval_rl": "eval/rl/results.json",
        "eval_forcing": "eval/forcing/results.json",
        "report": "report/results.md",
        "frontier": "report/frontier/frontier.json",
        "targets": "report/targets/targets.json",
        "demo_after": "demo/after.json",
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".thinkbudget-run").write_text("{}")  # the pipeline made this folder
    for stage in stages:
        path = run_dir / markers[stage]
        path.parent.mkdir(parents=True, exist_ok=True)
        # an evaluation is finished only when its results.json says so
        path.write_text('{"complete": true, "rows": []}' if path.name == "results.json" else "{}")


def test_finished_stages_are_skipped_and_force_reruns_what_follows(tmp_path, capsys):
    run_dir = tmp_path / "run"
    finish(run_dir, "demo_before", "data", "sft", "eval_base")
    out = dry_run(capsys, "--profile", "smoke", "--run-dir", str(run_dir))
    for stage in ("demo_before", "data", "sft", "eval_base"):
        assert f"- {stage}: skipped (finished)" in out
    for stage in ("rl", "eval_sft", "eval_rl", "eval_forcing", "report", "demo_after"):
        assert f"- {stage}: skipped" not in out and f"- {stage}: " in out
    # --force sft: SFT and everything that uses it run again; data and the base evaluation stay done
    out = dry_run(capsys, "--profile", "smoke", "--run-dir", str(run_dir), "--force", "sft")
    assert "- data: skipped (finished)" in out and "- eval_base: skipped (finished)" in out
    assert (
        "- sft: accelerate launch" in out
        and "- eval_sft: python" in out
        and "- demo_after: (in-process)" in out
    )
    out = dry_run(capsys, "--profile", "smoke", "--run-dir", str(run_dir), "--force", "all")
    assert "skipped" not in out
    out = dry_run(capsys, "--profile", "smoke", "--run-dir", str(run_dir), "--only", "eval_rl")
    assert "- eval_rl: python" in out and "- rl: skipped (not selected)" in out


def test_a_killed_stage_of_another_command_is_not_continued(tmp_path, capsys):
    """The pipeline records each stage's command; a checkpoint left by another recipe is not resumed."""
    from thinkbudget.stages import command_record

    run_dir = tmp_path / "run"
    finish(run_dir, "demo_before", "data", "sft")
    (run_dir / "rl" / "checkpoint-2").mkdir(parents=True)
    (run_dir / "rl" / "checkpoint-2" / "trainer_state.json").write_text("{}")
    profile = load_profile("smoke")
    rl = next(s for s in pipeline_script.build_stages(profile, run_dir) if s.name == "rl")
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "rl.command.json").write_text(json.dumps(command_record(rl.command)))
    out = dry_run(capsys, "--profile", "smoke", "--run-dir", str(run_dir))
    assert "--resume_from_checkpoint true" in out  # the same command: continued
    other = [*rl.command, "--learning_rate", "0.1"]
    (run_dir / "logs" / "rl.command.json").write_text(json.dumps(command_record(other)))
    with pytest.raises(
        SystemExit, match=r"stage rl: .* different command: --learning_rate: 0\.1 -> \(absent\)"
    ):
        dry_run(capsys, "--profile", "smoke", "--run-dir", str(run_dir))
    out = dry_run(capsys, "--profile", "smoke", "--run-dir", str(run_dir), "--force", "rl")
    assert "- rl: accelerate launch" in out and "--resume_from_checkpoint" not in out


def test_downstream_closure():
    profile = load_profile("smoke")
    stages = pipeline_script.build_stages(profile, Path("/tmp/x"))
    assert [s.name for s in stages] == STAGES
    assert downstream(stages, {"rl"}) == {
        "rl",
        "eval_rl",
        "report",
        "frontier",
        "targets",
        "demo_after",
    }
    assert downstream(stages, {"data"}) == set(STAGES) - {"demo_before", "eval_base"}
    assert downstream(stages, {"report"}) == {"report", "frontier"}
    assert downstream(stages, {"eval_base"}) == {"eval_base", "report", "frontier", "targets"}


def test_unknown_stage_names_are_errors(tmp_path):
    with pytest.raises(SystemExit, match="unknown stage 'sfy'; stages: demo_before, data, sft"):
        pipeline_script.main(
            pipeline_script.parse_args(["--profile", "smoke", "--run-dir", str(tmp_path), "--force", "sfy"])
        )


def test_only_refuses_a_stage_whose_inputs_are_missing(tmp_path):
    with pytest.raises(SystemExit, match="stage rl needs sft to finish first"):
        pipeline_script.main(
            pipeline_script.parse_args(["--profile", "smoke", "--run-dir", str(tmp_path), "--only", "rl"])
        )


# ---------------------------------------------------------------------------------------------
# The demo, on the real tiny model
# ---------------------------------------------------------------------------------------------
def test_demo_answers_on_the_tiny_model(tiny_model, tokenizer):
    from thinkbudget.parsing import parse_completion

    rows = demo_answers(tiny_model, tokenizer, "Compute 2 + 3.", 8, gold="5", max_new_tokens=12)
    assert [r["setting"] for r in rows] == ["thinking off", "thinking on", "budget 8", "auto"]
    assert [r["enable_thinking"] for r in rows] == [False, True, True, "auto"]
    assert [r["thinking_budget"] for r in rows] == [None, None, 8, None]
    for r in rows:
        parsed = parse_completion(r["completion"], tokenizer)
        assert r["answer"] == parsed.answer and r["thinking"] == parsed.thinking
        assert r["thinking_tokens"] + r["answer_tokens"] <= 12
        assert r["correct"] in (True, False)
        assert r["within_budget"] == (
            r["thinking_budget"] is None or (r["think_closed"] and r["thinking_tokens"] <= 8)
        )
    md = demo_markdown("t", "Compute 2 + 3.", "5", rows)
    assert md.count("\n| ") == 5  # header + 4 settings
    with pytest.raises(ValueError, match="budget must be a positive integer"):
        demo_answers(tiny_model, tokenizer, "q", 0)


# ---------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_profile_end_to_end(tmp_path):
    """Every stage on the tiny model: the figure, the table, the README and the demos are written,
    and a rerun skips every stage."""
    cmd = [sys.executable, "scripts/pipeline.py", "--profile", "smoke", "--run-dir", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "report" / "accuracy_vs_tokens.png").stat().st_size > 0
    table = (tmp_path / "report" / "results.md").read_text()
    for label in ("base", "SFT", "SFT+GRPO", "SFT + budget forcing"):
        assert f"| {label} |" in table
    readme = (tmp_path / "README.md").read_text()
    assert "SMOKE RUN" in readme and "accuracy_vs_tokens.png" in readme and "Before training" in readme
    for which in ("before", "after"):
        demo = json.loads((tmp_path / "demo" / f"{which}.json").read_text())
        assert [r["setting"] for r in demo["rows"]] == ["thinking off", "thinking on", "budget 16", "auto"]
    summary = json.loads((tmp_path / "pipeline.json").read_text())
    assert set(summary["stages"]) == set(STAGES)
    assert all(s["status"] == "ran" for s in summary["stages"].values())
    assert "SMOKE RUN" in done.stderr
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert again.stderr.count("skipped (finished)") == len(STAGES)
