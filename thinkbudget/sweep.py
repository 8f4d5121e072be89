"""Budget sweeps: a base recipe times a grid, one run folder per grid point, a Pareto report.

A sweep file (``configs/sweeps/*.yaml``) names an entry point (``train/rl.py``), its recipe, the
checkpoint every run starts from, fixed ``overrides`` and a ``grid``. Each grid key is a config field
of the entry point (checked against its real config dataclasses before anything runs) with a list of
values; the runs are the cartesian product. A key that is *not* a field but whose values are all
mappings is a *group*: each choice sets several fields at once (e.g. a reward variant with its own
α and δ), with an optional ``name`` used in run names.

Each run lives in ``<output_root>/<readable name>-<hash>/``: ``config.yaml`` (the recipe with
everything applied: the file the trainer reads), ``model/`` (the trainer's output), ``eval/`` (the
evaluation of the final checkpoint) and logs. The hash covers the grid values; a folder whose stored
config differs from the one the sweep resolves now (another grid, an edited recipe) is an error, never
silently reused. The report plots accuracy against mean thinking tokens, one point per run and
budget, marks the Pareto front and ranks the runs in a Markdown table.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thinkbudget.evaluation import pareto_front
from thinkbudget.jobs import accelerate_command
from thinkbudget.recipes import (
    check_config_keys,
    check_config_values,
    check_stage_keys,
    cli_flags,
    config_fields,
    load_job_file,
)
from thinkbudget.run_folders import REPO_ROOT, read_json_object, stage_finished
from thinkbudget.stages import Stage

logger = logging.getLogger(__name__)

# Short forms of common keys, so that run names stay readable.
ABBREVIATIONS = {
    "learning_rate": "lr",
    "reward_funcs": "reward",
    "reward_weights": "rw",
    "num_generations": "gens",
    "max_completion_length": "maxlen",
    "per_device_train_batch_size": "bs",
    "gradient_accumulation_steps": "ga",
    "budget_weights": "bw",
    "rl_budget_weights": "rlbw",
    "max_steps": "steps",
    "temperature": "temp",
}
EVAL_SCRIPT = "eval/evaluate.py"
MAX_READABLE_CHARS = 96
HASH_CHARS = 8
TRAIN_MARKER = "run_summary.json"
EVAL_MARKER = "results.json"


# --------------------------------------------------------------------------------------------
# The sweep file
# --------------------------------------------------------------------------------------------
@dataclass
class SlurmSpec:
    """How ``--launcher slurm`` asks for machines. ``time`` is HH:MM:SS; ``setup`` are shell lines run
    before each job (e.g. ``source .venv/bin/activate``); ``extra`` are additional ``#SBATCH`` options."""

    nodes: int = 1
    gpus_per_node: int = 1
    cpus_per_task: int = 16
    time: str = "04:00:00"
    partition: str | None = None
    max_parallel: int | None = None
    main_process_port: int = 29500
    setup: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)


@dataclass
class SweepSpec:
    """A sweep file. Paths are relative to the repository root. ``accelerate_config`` (a file in
    ``configs/accelerate/``) and ``accelerate_args`` go to ``accelerate launch``; under slurm the
    topology flags (machines, processes, rank, main process) are added after them and win."""

    name: str
    recipe: str
    model_name_or_path: str
    grid: dict[str, list[Any]]
    script: str = "train/rl.py"
    output_root: str | None = None
    accelerate_config: str | None = None
    accelerate_args: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    slurm: SlurmSpec = field(default_factory=SlurmSpec)
    source: str = ""

    @property
    def root(self) -> Path:
        return Path(self.output_root or f"runs/sweeps/{self.name}")


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Read a sweep file with the job-file loader (:mod:`thinkbudget.recipes`); unknown or missing keys
    are errors naming the file. (Grid keys and values are checked against the entry point by
    :func:`plan_runs`.)"""
    where = str(path)
    kwargs = load_job_file(
        path,
        SweepSpec,
        required=("name", "recipe", "model_name_or_path", "grid"),
        sections={"slurm": SlurmSpec},
        files=("recipe", "accelerate_config"),
        loader_fields=("source",),
    )
    if not isinstance(kwargs["grid"], dict) or not kwargs["grid"]:
        raise SystemExit(f"{where}: 'grid' must be a non-empty mapping of key: [values]")
    for key, values in kwargs["grid"].items():
        if not isinstance(values, list) or not values:
            raise SystemExit(f"{where}: grid key {key!r} must list at least one value, got {values!r}")
    for key in ("overrides", "eval"):
        if not isinstance(kwargs.get(key) or {}, dict):
            raise SystemExit(f"{where}: {key!r} must be a mapping")
    spec = SweepSpec(**kwargs, source=where)
    spec.overrides = spec.overrides or {}
    spec.eval = spec.eval or {}
    return spec


# --------------------------------------------------------------------------------------------
# Grid expansion and naming
# --------------------------------------------------------------------------------------------
def is_group(key: str, values: Sequence[Any], fields: Sequence[str]) -> bool:
    """A grid entry that sets several fields per choice: not a field itself, every choice a mapping."""
    return key not in fields and all(isinstance(v, dict) for v in values)


def expand_grid(grid: dict[str, list[Any]], fields: Sequence[str] = ()) -> list[tuple[dict, dict]]:
    """The cartesian product of ``grid`` in file order.

    Returns ``(labels, values)`` per point: ``labels`` maps each grid key to what names the choice
    (a group's ``name``, else its fields), ``values`` maps config fields to the values they get.
    """
    points = []
    for combo in itertools.product(*grid.values()):
        labels: dict[str, Any] = {}
        values: dict[str, Any] = {}
        for key, choice in zip(grid, combo):
            if is_group(key, grid[key], fields):
                choice = dict(choice)
                name = choice.pop("name", None)
                labels[key] = name if name is not None else choice
                values.update(choice)
            else:
                labels[key] = choice
                values[key] = choice
        points.append((labels, values))
    return points


def format_value(value: Any) -> str:
    """A grid value as a short, path-safe string: ``3e-06``, ``32+64``, ``true``, ``a=1+b=2``."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, list | tuple):
        text = "+".join(format_value(v) for v in value)
    elif isinstance(value, dict):
        text = "+".join(f"{ABBREVIATIONS.get(k, k)}={format_value(v)}" for k, v in value.items())
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", text)


def point_hash(values: dict[str, Any]) -> str:
    """A short stable hash of a point's config values (key order does not matter)."""
    blob = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:HASH_CHARS]


def run_name(labels: dict[str, Any], values: dict[str, Any]) -> str:
    """``lr=1e-06_reward=l1_max-1a2b3c4d``: the grid choices, readable, then the hash of the values."""
    readable = "_".join(f"{ABBREVIATIONS.get(k, k)}={format_value(v)}" for k, v in labels.items())
    return f"{readable[:MAX_READABLE_CHARS]}-{point_hash(values)}"


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------
@dataclass
class Run:
    name: str
    dir: Path
    labels: dict[str, Any]
    values: dict[str, Any]
    config: dict[str, Any]

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"

    @property
    def eval_dir(self) -> Path:
        return self.dir / "eval"

    @property
    def trained(self) -> bool:
        return stage_finished(self.model_dir / TRAIN_MARKER)

    @property
    def evaluated(self) -> bool:
        """The evaluation says it is complete (a killed one leaves ``complete: false`` and no rows)."""
        return stage_finished(self.eval_dir / EVAL_MARKER)


def _normalised(config: dict[str, Any]) -> dict[str, Any]:
    """The config as it reads back from YAML (tuples become lists, and so on)."""
    return yaml.safe_load(yaml.safe_dump(config, sort_keys=False))


def plan_runs(spec: SweepSpec) -> list[Run]:
    """Validate the grid and overrides against the entry point's config fields, then resolve every
    run's config: recipe, then ``overrides``, then the grid values, then the start checkpoint and
    output folder. Raises before anything runs when a key is unknown."""
    fields = config_fields(spec.script)
    group_keys: list[str] = []
    for key, values in spec.grid.items():
        if is_group(key, values, fields):
            for choice in values:
                group_keys += [k for k in choice if k != "name"]
    field_keys = [k for k in spec.grid if not is_group(k, spec.grid[k], fields)]
    recipe = check_stage_keys(spec.script, f"{spec.source} [overrides]", spec.overrides, spec.recipe)
    check_stage_keys(
        EVAL_SCRIPT, f"{spec.source} [eval]", {k: v for k, v in spec.eval.items() if k != "config"}
    )
    check_config_keys(spec.script, field_keys + group_keys, f"{spec.source} [grid]")

    runs, seen = [], {}
    for labels, values in expand_grid(spec.grid, fields):
        name = run_name(labels, values)
        if name in seen:
            raise SystemExit(f"{spec.source}: grid points {seen[name]} and {labels} give the same run {name}")
        seen[name] = labels
        run_dir = spec.root / name
        config = copy.deepcopy(recipe)
        config.update(copy.deepcopy(spec.overrides))
        config.update(copy.deepcopy(values))
        config["model_name_or_path"] = spec.model_name_or_path
        config["output_dir"] = str(run_dir / "model")
        # Values of the wrong type (learning_rate: fast) fail now, naming the run and the key.
        check_config_values(spec.script, values, f"{spec.source} [grid, run {name}]")
        runs.append(Run(name, run_dir, labels, values, _normalised(config)))
    return runs


def check_reuse(run: Run) -> None:
    """A run folder holding another config must not be reused: raise naming the differing keys."""
    if not run.config_path.is_file():
        return
    stored = yaml.safe_load(run.config_path.read_text()) or {}
    if stored == run.config:
        return
    keys = sorted(k for k in set(stored) | set(run.config) if stored.get(k) != run.config.get(k))
    diffs = ", ".join(f"{k}: {stored.get(k)!r} -> {run.config.get(k)!r}" for k in keys[:6])
    raise SystemExit(
        f"{run.dir} holds a run with a different config ({diffs}); it belongs to another grid or recipe. "
        "Delete the folder or set another output_root."
    )


def write_config(run: Run) -> None:
    run.dir.mkdir(parents=True, exist_ok=True)
    run.config_path.write_text(yaml.safe_dump(run.config, sort_keys=False))


def train_command(spec: SweepSpec, run: Run) -> list[str]:
    """``accelerate launch [--config_file F] [accelerate_args] <script> --config <run>/config.yaml``."""
    launch = accelerate_command(spec.script, spec.accelerate_config, spec.accelerate_args)
    return [*launch, "--config", str(run.config_path)]


def eval_command(spec: SweepSpec, run: Run) -> list[str]:
    """``python eval/evaluate.py --model <run>/model --output <run>/eval`` plus the sweep's eval flags."""
    return [
        "python",
        "eval/evaluate.py",
        "--model",
        str(run.model_dir),
        "--output",
        str(run.eval_dir),
        *cli_flags(spec.eval),
    ]


def run_stages(spec: SweepSpec, run: Run) -> list[Stage]:
    """A run's two stages for :mod:`thinkbudget.stages` (the rule the main job uses too): training,
    which continues from its newest complete checkpoint after a kill, then the evaluation, which
    continues from its samples.jsonl. Logs and commands are kept in ``<run>/<stage>.log`` and
    ``<run>/<stage>.command.json``."""
    return [
        Stage(
            "train",
            f"train {run.name}",
            run.model_dir,
            run.model_dir / TRAIN_MARKER,
            command=train_command(spec, run),
            resumes="checkpoint",
        ),
        Stage(
            "eval",
            f"evaluate {run.name}",
            run.eval_dir,
            run.eval_dir / EVAL_MARKER,
            needs=["train"],
            command=eval_command(spec, run),
            resumes="samples",
        ),
    ]


# --------------------------------------------------------------------------------------------
# Slurm
# --------------------------------------------------------------------------------------------
def sbatch_value(value: Any) -> str:
    """A value on an ``#SBATCH`` line (sbatch reads those itself): double-quoted when it holds
    whitespace or quotes."""
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]*", text) and text:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _shell_words(words: Sequence[str]) -> str:
    """Words for a bash line: each quoted, except that ``$RUN`` inside one is left to the shell."""
    return " ".join(
        f'"{w}"' if "$RUN" in w and re.fullmatch(r"[A-Za-z0-9_$/.=-]*", w) else shlex.quote(w) for w in words
    )


def sbatch_script(spec: SweepSpec, runs: Sequence[Run], sweep_file: str) -> str:
    """An sbatch array script, one task per run. Each task trains with ``accelerate launch`` on
    ``nodes`` x ``gpus_per_node`` GPUs (one launcher per node through ``srun``; rank from
    ``$SLURM_NODEID``, main process on the first host of ``scontrol show hostnames``), then evaluates
    on the first node. Finished steps are skipped when a task is requeued; a requeued task whose
    training was cut off resumes from its newest complete checkpoint.

    Every value from the sweep file (paths, ``accelerate_args``, eval flags) is quoted with
    ``shlex.quote``, so none of it is ever expanded or run by the shell. ``slurm.setup`` lines are
    shell commands by design and are written as they are."""
    s = spec.slurm
    root = spec.root
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={sbatch_value(f'thinkbudget-{spec.name}')}",
        f"#SBATCH --array=0-{len(runs) - 1}" + (f"%{s.max_parallel}" if s.max_parallel else ""),
        f"#SBATCH --nodes={s.nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={s.gpus_per_node}",
        f"#SBATCH --cpus-per-task={s.cpus_per_task}",
        f"#SBATCH --time={sbatch_value(s.time)}",
        f"#SBATCH --output={sbatch_value(f'{root}/slurm/%A_%a.out')}",
    ]
    if s.partition:
        lines.append(f"#SBATCH --partition={sbatch_value(s.partition)}")
    lines += [f"#SBATCH {e}" for e in s.extra]
    lines += [
        f"# Written by scripts/sweep.py from {sweep_file}: {len(runs)} runs. Submit from the repository root.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(REPO_ROOT))}",
        *s.setup,
        "export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}",
        "RUNS=(",
        *[f"  {shlex.quote(str(r.dir))}" for r in runs],
        ")",
        "RUN=${RUNS[$SLURM_ARRAY_TASK_ID]}",
        'MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f"NUM_PROCESSES=$((SLURM_NNODES * {s.gpus_per_node}))",
        "export RUN MAIN_IP NUM_PROCESSES",
    ]
    # The commands of a run whose folder is "$RUN" (the task's run, expanded by the shell): the same
    # commands the local launcher records, so either launcher continues what the other started.
    train, evaluate = run_stages(spec, dataclasses.replace(runs[0], dir=Path("$RUN")))
    lines += [
        "# Skip, continue or start each stage by the rule of thinkbudget/stages.py (the main job's too): a",
        "# requeued task continues training from its newest complete checkpoint; a stage left by a",
        "# different command stops the task with the difference instead of mixing two recipes.",
        'TRAIN=$(python -m thinkbudget.stages --run-dir "$RUN" --name "train $RUN" --output "$RUN/model" \\',
        f'  --marker "$RUN/model/{TRAIN_MARKER}" --record "$RUN/train.command.json" --resumes checkpoint \\',
        f"  -- {_shell_words(train.command)})",
        'RESUME=""',
        'if [ "$TRAIN" = continue ]; then RESUME="--resume_from_checkpoint true"; fi',
        "export RESUME",
        'if [ "$TRAIN" != skip ]; then',
    ]
    launch = accelerate_command(spec.script, spec.accelerate_config, spec.accelerate_args)
    # The node-local command is one single-quoted word for `bash -c`: the outer shell expands nothing in
    # it; the inner bash on each node expands only the variables written here ($SLURM_NODEID per node).
    topology = (
        '--num_machines "$SLURM_NNODES" --num_processes "$NUM_PROCESSES" --machine_rank "$SLURM_NODEID" '
        f'--main_process_ip "$MAIN_IP" --main_process_port {int(s.main_process_port)}'
    )
    head, script = shlex.join(launch[:-1]), shlex.quote(launch[-1])
    node_cmd = f'{head} {topology} {script} --config "$RUN/config.yaml" $RESUME'
    lines.append(f"  srun --ntasks-per-node=1 bash -c {shlex.quote(node_cmd)}")
    local_eval = _shell_words(evaluate.command)
    lines += [
        "fi",
        'EVAL=$(python -m thinkbudget.stages --run-dir "$RUN" --name "eval $RUN" --output "$RUN/eval" \\',
        f'  --marker "$RUN/eval/{EVAL_MARKER}" --record "$RUN/eval.command.json" --resumes samples \\',
        f"  -- {local_eval})",
        f'if [ "$EVAL" != skip ]; then {local_eval}; fi',
        "",
    ]
    return "\n".join(lines)


def report_sbatch_script(spec: SweepSpec, sweep_file: str) -> str:
    """A one-node CPU job that writes the Pareto report once the array has finished."""
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={sbatch_value(f'thinkbudget-{spec.name}-report')}",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        "#SBATCH --time=00:30:00",
        f"#SBATCH --output={sbatch_value(f'{spec.root}/slurm/report_%j.out')}",
    ]
    if spec.slurm.partition:
        lines.append(f"#SBATCH --partition={sbatch_value(spec.slurm.partition)}")
    lines += [f"#SBATCH {e}" for e in spec.slurm.extra]
    lines += [
        "set -euo pipefail",
        f"cd {shlex.quote(str(REPO_ROOT))}",
        *spec.slurm.setup,
        f"python scripts/sweep.py {shlex.quote(sweep_file)} --report-only",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Results and the Pareto report
# --------------------------------------------------------------------------------------------
def run_points(run: Run) -> list[dict[str, Any]]:
    """One point per (method, budget setting) of a run's evaluation, tasks pooled (weighted by n)."""
    rows = (read_json_object(run.eval_dir / EVAL_MARKER) or {}).get("rows") or []
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("method", "default"), str(row["budget_label"])), []).append(row)
    points = []
    for (method, budget), group in groups.items():
        n = sum(r["n"] for r in group)
        if n == 0:
            continue

        def mean(key: str, group=group, n=n) -> float | None:
            vals = [(r.get(key), r["n"]) for r in group if r.get(key) is not None]
            return sum(v * w for v, w in vals) / sum(w for _, w in vals) if vals else None

        points.append(
            {
                "run": run.name,
                "method": method,
                "budget": budget,
                "n": n,
                "accuracy": mean("accuracy"),
                "mean_thinking_tokens": mean("mean_thinking_tokens"),
                "mean_total_tokens": mean("mean_total_tokens"),
                "within_budget_rate": mean("within_budget_rate"),
            }
        )
    return points


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def write_report(spec: SweepSpec, runs: Sequence[Run], out_dir: Path) -> tuple[Path, Path]:
    """The Pareto figure (PNG) and the ranking table (Markdown) over all evaluated runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluated = [r for r in runs if r.evaluated]
    if not evaluated:
        raise SystemExit(f"no run of {spec.source} has been evaluated yet; nothing to report")
    points = [p for r in evaluated for p in run_points(r)]
    usable = [p for p in points if p["accuracy"] is not None and p["mean_thinking_tokens"] is not None]
    front = pareto_front([(p["mean_thinking_tokens"], p["accuracy"]) for p in usable])
    for p, f in zip(usable, front):
        p["pareto"] = f
    out_dir.mkdir(parents=True, exist_ok=True)

    # Annotate points with their budget, and with the method too when a budget has several methods.
    one_method = len({(p["run"], p["budget"]) for p in usable}) == len(usable)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = "osD^vP*Xh<>"
    for i, run in enumerate(evaluated):
        mine = [p for p in usable if p["run"] == run.name]
        ax.scatter(
            [p["mean_thinking_tokens"] for p in mine],
            [p["accuracy"] for p in mine],
            marker=markers[i % len(markers)],
            s=40,
            label=run.name,
            alpha=0.8,
        )
        for p in mine:
            ax.annotate(
                p["budget"] if one_method else f"{p['method']} {p['budget']}",
                (p["mean_thinking_tokens"], p["accuracy"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    on_front = sorted((p for p in usable if p["pareto"]), key=lambda p: p["mean_thinking_tokens"])
    if on_front:
        ax.step(
            [p["mean_thinking_tokens"] for p in on_front],
            [p["accuracy"] for p in on_front],
            where="post",
            color="black",
            linestyle="--",
            linewidth=1,
            label="Pareto front",
        )
        ax.scatter(
            [p["mean_thinking_tokens"] for p in on_front],
            [p["accuracy"] for p in on_front],
            s=140,
            facecolors="none",
            edgecolors="black",
            linewidths=1.2,
        )
    ax.set_xlabel("mean thinking tokens (per answer)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"sweep {spec.name}: accuracy vs thinking tokens (labels: budget setting)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    png = out_dir / "pareto.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)

    ranking = []
    for run in evaluated:
        mine = [p for p in usable if p["run"] == run.name]
        budgeted = [p for p in mine if p["budget"] not in ("off", "none")] or mine
        within = [p["within_budget_rate"] for p in budgeted if p["within_budget_rate"] is not None]
        ranking.append(
            {
                "run": run.name,
                "labels": run.labels,
                "mean_accuracy": sum(p["accuracy"] for p in budgeted) / len(budgeted) if budgeted else None,
                "mean_thinking_tokens": sum(p["mean_thinking_tokens"] for p in budgeted) / len(budgeted)
                if budgeted
                else None,
                "within_budget_rate": sum(within) / len(within) if within else None,
                "pareto_points": sum(p["pareto"] for p in mine),
            }
        )
    ranking.sort(key=lambda r: (-(r["mean_accuracy"] or 0), r["mean_thinking_tokens"] or 0))
    md = [
        f"# Sweep `{spec.name}`",
        "",
        f"Sweep file `{spec.source}`, {len(evaluated)} of {len(runs)} runs evaluated. "
        "Runs are ranked by mean accuracy over the budgeted settings (ties: fewer thinking tokens). "
        "Tokens are counted by `thinkbudget.parsing`.",
        "",
        f"![Pareto figure]({png.name})",
        "",
        "| rank | run | "
        + " | ".join(spec.grid)
        + " | mean accuracy | mean thinking tokens | within budget | points on front |",
        "|---:|---|" + "---|" * len(spec.grid) + "---:|---:|---:|---:|",
    ]
    for i, r in enumerate(ranking, 1):
        cells = [format_value(r["labels"][k]) for k in spec.grid]
        md.append(
            f"| {i} | `{r['run']}` | " + " | ".join(cells) + f" | {_fmt(r['mean_accuracy'])} | "
            f"{_fmt(r['mean_thinking_tokens'], 4)} | {_fmt(r['within_budget_rate'])} | {r['pareto_points']} |"
        )
    md += [
        "",
        "## Every point",
        "",
        "| run | method | budget | n | accuracy | mean thinking tokens | "
        "mean total tokens | within budget | Pareto |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in sorted(usable, key=lambda p: (p["run"], p["method"], p["mean_thinking_tokens"])):
        md.append(
            f"| `{p['run']}` | {p['method']} | {p['budget']} | {p['n']} | {_fmt(p['accuracy'])} | "
            f"{_fmt(p['mean_thinking_tokens'], 4)} | {_fmt(p['mean_total_tokens'], 4)} | "
            f"{_fmt(p['within_budget_rate'])} | {'yes' if p['pareto'] else ''} |"
        )
    table = out_dir / "pareto.md"
    table.write_text("\n".join(md) + "\n")
    (out_dir / "points.json").write_text(
        json.dumps({"ranking": ranking, "points": usable}, indent=2, default=str)
    )
    return png, table
