"""The main job's profiles: one YAML under ``configs/pipeline/`` per hardware profile.

``scripts/pipeline.py`` chains the real command lines (``data/prepare.py``, ``accelerate launch
train/sft.py``, ``accelerate launch train/rl.py``, ``eval/evaluate.py``, ``eval/plot.py``) into one run
folder; a :class:`Profile` says which recipe each stage reads and what it overrides. Unknown keys are
rejected by name when the profile loads (:func:`load_profile`), and every override is checked against
the config classes of the entry point that will read it (:func:`check_profile_keys`) before anything
runs. The runner is :mod:`thinkbudget.jobs`; the demo question is :mod:`thinkbudget.demo`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkbudget.demo import DemoSpec
from thinkbudget.protocol import validate_budget
from thinkbudget.recipes import StageSpec, check_stage_keys, load_job_file
from thinkbudget.run_folders import REPO_ROOT

logger = logging.getLogger(__name__)

PROFILE_DIR = REPO_ROOT / "configs" / "pipeline"


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------
@dataclass
class EvalSpec:
    """``eval/evaluate.py`` for every evaluated model: an optional recipe (``configs/eval/*.yaml``) and
    ``overrides`` (``--key value`` flags); ``forcing`` holds what differs for the budget-forcing run
    (``methods: [budget_forcing]`` and integer ``budgets``); ``base`` and ``sft`` what differs for those
    models (the base model never closes a think block, so its answers run to the token limit; the
    targets are SFT+GRPO's, so the others may run fewer conditions or problems). ``control``, when
    set, adds a second evaluation of SFT+GRPO (``eval/control``) with what differs for it: the switches
    (thinking off on both paths, ``/think``) on enough problems of a task for a 99 % bar (n >= 381),
    where the main evaluation runs that task on fewer problems."""

    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    forcing: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    sft: dict[str, Any] = field(default_factory=dict)
    control: dict[str, Any] = field(default_factory=dict)

    def model_overrides(self, key: str) -> dict[str, Any]:
        """The flags of the evaluation of one model (``base``, ``sft``, ``rl``, ``forcing``, ``control``)."""
        parts = {"forcing": self.forcing, "base": self.base, "sft": self.sft, "control": self.control}
        return {**self.overrides, **parts.get(key, {})}


@dataclass
class Profile:
    """A hardware profile of the main job (one YAML in ``configs/pipeline/``). ``model`` is the base
    model (alias, hub id or path); ``accelerate_config`` (a file in ``configs/accelerate/``) and
    ``accelerate_args`` (e.g. ``[--num_processes, "1", --cpu]``) go to ``accelerate launch``; one process on
    the CPU runs without the launcher (:func:`thinkbudget.jobs.training_command`)."""

    name: str
    description: str
    smoke: bool
    model: str
    accelerate_config: str | None = None
    accelerate_args: list[str] = field(default_factory=list)
    data: StageSpec = field(default_factory=StageSpec)
    sft: StageSpec = field(default_factory=StageSpec)
    rl: StageSpec = field(default_factory=StageSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    demo: DemoSpec = field(default_factory=DemoSpec)
    time_limit_min: int | None = None  # the stages' wall-time target (minutes), checked by the targets stage
    memory_limit_gib: float | None = None  # every stage's peak resident memory target (GiB), checked too
    source: str = ""

    @property
    def notice(self) -> str:
        """What a reader of the results must know: smoke numbers are not results."""
        if self.smoke:
            return (
                f"SMOKE RUN (profile '{self.name}'): tiny step counts and evaluation sizes so that it finishes "
                "quickly on this hardware. The numbers only show that the pipeline runs end to end; "
                "they say nothing about the method."
            )
        return f"Profile '{self.name}': {self.description}"


def profile_path(name: str) -> Path:
    """``configs/pipeline/<name>.yaml``, or ``name`` itself when it is a YAML path."""
    if name.endswith((".yaml", ".yml")):
        return Path(name)
    return PROFILE_DIR / f"{name}.yaml"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name: str) -> Profile:
    """Load and check a profile: unknown keys anywhere are errors naming the file and the key."""
    path = profile_path(name)
    if not path.is_file():
        raise SystemExit(
            f"no pipeline profile {name!r} ({path}); available: {', '.join(available_profiles())}"
        )
    where = str(path)
    sections = {"data": StageSpec, "sft": StageSpec, "rl": StageSpec, "eval": EvalSpec, "demo": DemoSpec}
    kwargs = load_job_file(
        path,
        Profile,
        required=("description", "smoke", "model"),
        sections=sections,
        files=("accelerate_config",),
    )
    # The targets stage's limits: unset, or a positive amount of their unit.
    for key, kinds, what in (
        ("time_limit_min", (int,), "whole number of minutes"),
        ("memory_limit_gib", (int, float), "number of GiB"),
    ):
        v = kwargs.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, kinds) or v <= 0):
            raise SystemExit(f"{where}: {key} must be a positive {what}, got {v!r}")
    demo = kwargs["demo"]
    for key in ("budget", "max_new_tokens"):
        try:
            validate_budget(getattr(demo, key), field=key, strict=True)
        except ValueError as e:
            raise SystemExit(f"{where} [demo]: {e}") from None
    if isinstance(demo.index, bool) or not isinstance(demo.index, int) or demo.index < 0:
        raise SystemExit(f"{where} [demo]: index must be a non-negative integer, got {demo.index!r}")
    return Profile(name=path.stem, source=str(path), **kwargs)


# The entry point each profile section configures (its keys are checked against that script's config classes).
STAGE_SCRIPTS = {
    "data": "data/prepare.py",
    "sft": "train/sft.py",
    "rl": "train/rl.py",
    "eval": "eval/evaluate.py",
}


def check_profile_keys(profile: Profile) -> None:
    """Every override in ``profile`` (and every key of the recipes it names) must be a config field of
    the stage's entry point, with a value of the field's type: checked before anything runs, so a typo
    fails now and not after an hour of SFT."""
    for key, script in STAGE_SCRIPTS.items():
        spec = getattr(profile, key)
        check_stage_keys(script, f"{profile.source} [{key}]", spec.overrides, spec.recipe)
        for part in ("forcing", "base", "sft", "control") if key == "eval" else ():
            check_stage_keys(script, f"{profile.source} [eval.{part}]", getattr(spec, part))


def auto_profile() -> str:
    """``gpu`` when torch sees a CUDA device, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"
