"""Each rule once: the parsed completion's own rules are what rewards, GRPO's rollout metrics and
evaluation report (the reward that is optimised is the metric that is reported)."""

from __future__ import annotations

from pathlib import Path

import pytest

from thinkbudget import evaluation as ev
from thinkbudget.eval_config import EvalArguments
from thinkbudget.parsing import parse_completion
from thinkbudget.protocol import ANSWER_CAP, build_messages, render_prompt
from thinkbudget.rewards import RewardParams, completion_stats, get_reward_funcs
from thinkbudget.rl import rollout_metrics
from thinkbudget.tasks import Problem

ROOT = Path(__file__).resolve().parents[1]
PROBLEM = Problem("p1", "chain", "Compute 2 + 3.", "5")
ANSWER = "The answer is \\boxed{5}."
B = 10


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def _stats(tokenizer, prompt: str, text: str, *, mode: str, budget: int | None) -> dict:
    (stats,) = completion_stats(
        [_ids(tokenizer, text)], tokenizer, prompts=[prompt], answer=["5"], budget=[budget], mode=[mode]
    )
    return stats


def _eval_record(tokenizer, method: str, budget: int | None, text: str) -> dict:
    cond = ev.Condition("chain", method, budget)
    prompt = ev.build_prompt(tokenizer, PROBLEM.question, cond)
    return ev.make_record(
        tokenizer,
        condition=cond,
        problem=PROBLEM,
        sample_idx=0,
        prompt=prompt,
        token_ids=_ids(tokenizer, text),
        finish_reason="stop",
    )


# After the pre-filled empty think block (thinking off): the answer alone, thinking written anyway
# (a further think block), and thinking closed by a stray </think>.
NO_THINK_CASES = [
    (ANSWER, True),
    ("<think>\nstep step step\n</think>\n\n" + ANSWER, False),
    ("step step step\n</think>\n\n" + ANSWER, False),
]


@pytest.mark.parametrize(("text", "compliant"), NO_THINK_CASES)
def test_no_think_compliance_is_one_rule(tokenizer, text, compliant):
    prompt = render_prompt(tokenizer, build_messages(PROBLEM.question), enable_thinking=False)
    parsed = parse_completion(_ids(tokenizer, text), tokenizer)  # as GRPO parses: the completion alone
    assert parsed.no_think_compliant is compliant
    (mode_compliance,) = get_reward_funcs(["mode_compliance"], tokenizer)
    (reward,) = mode_compliance(
        prompts=[prompt], completions=[text], completion_ids=[_ids(tokenizer, text)], mode=["no_think"]
    )
    assert reward == float(compliant)
    stats = _stats(tokenizer, prompt, text, mode="no_think", budget=None)
    assert stats["no_think_compliant"] is compliant
    assert ("thinkbudget/no_think/compliance", float(compliant)) in rollout_metrics([stats])
    record = _eval_record(tokenizer, "no_think", None, text)  # evaluation parses prefill + completion
    assert record["flags"]["thinking_in_no_think"] is (not compliant)
    (row,) = ev.aggregate([record], [ev.Condition("chain", "no_think", None)], ci_resamples=10)
    assert row["no_think_compliance"] == float(compliant)
    assert row["thinking_in_no_think_rate"] == float(not compliant)


def _thinking(n: int) -> str:
    """A closed think block with exactly ``n`` thinking tokens (two newlines + n-2 words)."""
    return "<think>\n" + " ".join(["step"] * (n - 2)) + "\n</think>\n\n"


@pytest.mark.parametrize(
    ("text", "within"),
    [
        (_thinking(6) + ANSWER, True),
        (_thinking(B) + ANSWER, True),
        (_thinking(14) + ANSWER, False),
        ("<think>\nstep step", False),  # unclosed: never within budget
    ],
)
def test_within_budget_is_one_rule(tokenizer, text, within):
    prompt = render_prompt(tokenizer, build_messages(PROBLEM.question), thinking_budget=B)
    parsed = parse_completion(_ids(tokenizer, text), tokenizer)
    assert parsed.within_budget(B) is within
    assert parsed.within_budget(None) is True
    stats = _stats(tokenizer, prompt, text, mode="think", budget=B)
    assert stats["within_budget"] is within
    assert (f"thinkbudget/budget_{B}/within_budget", float(within)) in rollout_metrics([stats])
    record = _eval_record(tokenizer, "budget_prompt", B, text)
    assert record["within_budget"] is within
    (row,) = ev.aggregate([record], [ev.Condition("chain", "budget_prompt", B)], ci_resamples=10)
    assert row["within_budget_rate"] == float(within)


def test_answer_cap_is_one_name_and_one_value(tokenizer):
    assert RewardParams().answer_cap == EvalArguments().answer_cap == ANSWER_CAP
    assert not hasattr(EvalArguments(), "answer_token_cap")
    long_answer = _thinking(4) + " ".join(["word"] * (ANSWER_CAP + 8)) + " " + ANSWER
    record = _eval_record(tokenizer, "think", None, long_answer)  # evaluation's default cap
    assert record["answer_tokens"] > ANSWER_CAP and record["flags"]["reasoning_after_think"]


def test_one_yaml_loader_for_recipes_profiles_and_sweeps(tmp_path):
    from thinkbudget import data
    from thinkbudget.pipeline import load_profile
    from thinkbudget.run_folders import parse_config
    from thinkbudget.sweep import load_sweep

    bad_key = tmp_path / "c.yaml"
    bad_key.write_text("taskz: [chain]\n")
    with pytest.raises(SystemExit, match=r"c\.yaml: unknown keys:\n  'taskz' \(did you mean tasks"):
        parse_config(data.CONFIG_CLASSES, ["--config", str(bad_key)])
    with pytest.raises(SystemExit, match=r"c\.yaml: unknown keys:\n  'taskz'"):
        load_profile(str(bad_key))
    with pytest.raises(SystemExit, match=r"c\.yaml: unknown keys:\n  'taskz'"):
        load_sweep(str(bad_key))
    not_yaml = tmp_path / "n.yaml"
    not_yaml.write_text("tasks: [chain\n")
    for load in (lambda p: parse_config(data.CONFIG_CLASSES, ["--config", p]), load_profile, load_sweep):
        with pytest.raises(SystemExit, match=r"n\.yaml: not valid YAML"):
            load(str(not_yaml))


def test_one_run_summary_for_every_training_stage(tmp_path):
    import dataclasses
    import json
    from types import SimpleNamespace

    from thinkbudget.run_folders import write_run_summary

    @dataclasses.dataclass
    class Args:
        x: int = 1

    class Training:
        def to_dict(self):
            return {"lr": 0.1}

    for main_process in (True, False):
        out = tmp_path / f"run-{main_process}"
        out.mkdir()
        trainer = SimpleNamespace(accelerator=SimpleNamespace(num_processes=2, is_main_process=main_process))
        summary = write_run_summary(
            trainer,
            out,
            "sft",
            {"global_step": 3},
            script_args=Args(),
            training_args=Training(),
            model_args=Args(2),
        )
        assert list(summary)[:3] == ["stage", "output_dir", "global_step"]
        assert list(summary)[3:] == ["commit", "device", "num_processes", "command", "config"]
        assert summary["config"] == {"script": {"x": 1}, "training": {"lr": 0.1}, "model": {"x": 2}}
        written = out / "run_summary.json"
        assert written.is_file() is main_process
        if main_process:
            assert json.loads(written.read_text()) == summary
    for script in ("train/sft.py", "train/rl.py", "train/scorer.py"):
        text = (ROOT / script).read_text()
        assert "write_run_summary(" in text and '"run_summary.json"' not in text, script


def test_a_prepared_dataset_is_the_mix_grpo_checks_its_rows_budgets_once(tmp_path):
    from thinkbudget import rl
    from thinkbudget.run_folders import parse_config

    smoke = str(ROOT / "configs" / "rl" / "smoke.yaml")
    with pytest.raises(ValueError, match="budgets"):  # the mix is the data stage's: no budgets here
        parse_config(
            rl.CONFIG_CLASSES, ["--config", smoke, "--dataset_path", str(tmp_path), "--budgets", "16"]
        )
    script, training, _ = parse_config(
        rl.CONFIG_CLASSES,
        ["--config", smoke, "--dataset_path", str(tmp_path), "--max_completion_length", "40"],
    )
    rl.validate_run(script, training)  # the recipe holds no budget to check: the rows' budgets are
    with pytest.raises(ValueError, match="budgets up to 64 tokens"):
        rl.check_dataset_budgets({"budget": [16, None, 64]}, training.max_completion_length)
    rl.check_dataset_budgets({"budget": [16, None, 24]}, training.max_completion_length)
    sources = "".join((ROOT / f).read_text() for f in ("train/rl.py", "thinkbudget/rl.py"))
    assert sources.count("leave room for </think>") == 1  # one budget check, one message


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "configs" / "data").glob("*.yaml")))
def test_every_data_recipe_parses_and_each_pipeline_profile_names_one(recipe):
    import dataclasses

    from thinkbudget import data
    from thinkbudget.pipeline import available_profiles, load_profile
    from thinkbudget.run_folders import parse_config

    _, mix = parse_config(data.CONFIG_CLASSES, ["--config", str(ROOT / "configs" / "data" / recipe)])
    assert mix.tasks and not hasattr(mix, "dataset_path")
    mix_fields = {f.name for f in dataclasses.fields(data.DataMixArguments)}
    for name in available_profiles():  # the data stage owns the mix: a recipe, no mix overrides
        profile = load_profile(name)
        assert profile.data.recipe and not profile.data.overrides, name
        assert not mix_fields & {*profile.sft.overrides, *profile.rl.overrides}, name


@pytest.mark.parametrize(
    ("stage", "name", "data_recipe"),
    [
        ("sft", "smollm2-135m", "configs/data/sft.yaml"),
        ("rl", "smollm2-135m", "configs/data/rl.yaml"),
        ("sft", "smoke", "configs/data/smoke.yaml"),
        ("rl", "smoke", "configs/data/smoke.yaml"),
    ],
)
def test_a_training_recipe_names_a_prepared_dataset_and_says_how_to_write_it(
    stage, name, data_recipe, monkeypatch
):
    import dataclasses

    import yaml

    from thinkbudget import data, rl, sft
    from thinkbudget.run_folders import parse_config

    recipe = yaml.safe_load((ROOT / "configs" / stage / f"{name}.yaml").read_text())
    mix_fields = {f.name for f in dataclasses.fields(data.DataMixArguments)}
    assert not mix_fields & set(recipe), f"{stage} recipe repeats the mix: {mix_fields & set(recipe)}"
    written = yaml.safe_load((ROOT / data_recipe).read_text())["output_dir"]
    assert recipe["dataset_path"] == written
    monkeypatch.chdir(ROOT)  # the recipe's relative dataset_path, as from the repository root
    if (ROOT / written).is_dir():
        pytest.skip(f"{written} is prepared in this checkout")
    classes = (sft if stage == "sft" else rl).CONFIG_CLASSES
    with pytest.raises(
        ValueError,
        match=rf"not a folder; prepare it first:\n  python data/prepare.py --config {data_recipe}$",
    ):
        parse_config(classes, ["--config", f"configs/{stage}/{name}.yaml"])
    assert data.prepare_command("/elsewhere/mix") == (
        "python data/prepare.py --config configs/data/<mix>.yaml --output_dir /elsewhere/mix"
    )


def test_rollout_metrics_at_target_per_budget():
    """The share of rollouts at their target's granularity is logged in the row's budget bucket (and the
    no-budget one), only where the row has a target: the curve of what the granularity reward pays."""
    base = {"answer_tokens": 5, "correct": True, "thinking_tokens": 20, "within_budget": True}
    stats = [
        base | {"mode": "think", "budget": 32, "at_target": 1.0},
        base | {"mode": "think", "budget": None, "within_budget": None, "at_target": 0.0},
        base | {"mode": "think", "budget": 64, "at_target": None},  # no target: nothing logged
        base | {"mode": "no_think", "budget": None, "no_think_compliant": True, "at_target": None},
    ]
    shape = [(k, v) for k, v in rollout_metrics(stats) if k.endswith("/at_target")]
    assert shape == [("thinkbudget/budget_32/at_target", 1.0), ("thinkbudget/no_budget/at_target", 0.0)]
    assert not [k for k, _ in rollout_metrics([{**stats[0]} | {"at_target": None}]) if "at_target" in k]
