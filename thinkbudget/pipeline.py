"""The main job's building blocks: hardware profiles, stages run as logged subprocesses, the demo.

``scripts/pipeline.py`` chains the real command lines (``data/prepare.py``, ``accelerate launch
train/sft.py``, ``accelerate launch train/rl.py``, ``eval/evaluate.py``, ``eval/plot.py``) into one run
folder. This module holds what it needs and what ``thinkbudget.sweep`` shares with it:

- :class:`Profile`: one YAML under ``configs/pipeline/`` per hardware profile (per-stage recipe and
  overrides), with unknown keys rejected by name.
- :func:`config_fields` / :func:`check_config_keys`: the fields of an entry point's real config
  dataclasses, so an override that no stage understands fails before anything runs.
- :func:`cli_flags`, :func:`run_logged`: overrides as ``--key value`` flags; a subprocess whose output
  goes to a log file while a spinner shows its latest line.
- :func:`demo_answers`: one question answered with thinking off, on, and on under a budget.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thinkbudget.config import (
    check_values,
    class_field_types,
    dataclass_from_mapping,
    load_yaml_mapping,
    reject_unknown,
    unknown_key_lines,
)
from thinkbudget.run_folders import REPO_ROOT, set_parent_death_signal

logger = logging.getLogger(__name__)

PROFILE_DIR = REPO_ROOT / "configs" / "pipeline"


# --------------------------------------------------------------------------------------------
# Entry points' config classes: the ground truth for which keys a recipe may set
# --------------------------------------------------------------------------------------------
_FIELDS_CACHE: dict[Path, dict[str, type]] = {}


# The project's own entry points and the package module that holds each one's ``CONFIG_CLASSES``.
PROJECT_ENTRY_POINTS = {
    "data/prepare.py": "thinkbudget.data",
    "train/sft.py": "thinkbudget.sft",
    "train/rl.py": "thinkbudget.rl",
    "train/scorer.py": "thinkbudget.scorer",
    "eval/evaluate.py": "thinkbudget.eval_config",
}


def config_classes(script: str | os.PathLike) -> tuple[type, ...]:
    """The config dataclasses an entry point (``train/sft.py``, ``train/rl.py``) parses.

    For the project's own entry points (:data:`PROJECT_ENTRY_POINTS`) they are the ``CONFIG_CLASSES``
    of the package module the script takes them from; no script is loaded. Any other script is **never
    imported or run** (a dry run must not execute user code): its ``CONFIG_CLASSES = (A, B, ...)`` is
    read from its source, and each class is imported from the module the script imports it from
    (``from thinkbudget.rl import ThinkGRPOConfig``); a class defined in the script itself is an error.
    """
    import importlib

    path = (REPO_ROOT / script) if not Path(script).is_absolute() else Path(script)
    if not path.is_file():
        raise SystemExit(f"entry point {script} does not exist")
    own = {(REPO_ROOT / s).resolve(): m for s, m in PROJECT_ENTRY_POINTS.items()}
    module_name = own.get(path.resolve())
    if module_name is None:
        return _classes_named_in_source(path, str(script))
    return tuple(importlib.import_module(module_name).CONFIG_CLASSES)


def _classes_named_in_source(path: Path, script: str) -> tuple[type, ...]:
    """``CONFIG_CLASSES`` of a script that is not one of the project's, found without running it."""
    import ast
    import importlib

    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError) as e:
        raise SystemExit(f"entry point {script}: cannot read its source ({e})") from None
    imported: dict[str, tuple[str, str]] = {}
    names: list[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "CONFIG_CLASSES" for t in targets):
            if isinstance(node.value, ast.Tuple | ast.List) and all(
                isinstance(e, ast.Name) for e in node.value.elts
            ):
                names = [e.id for e in node.value.elts]
    hint = (
        "it must define CONFIG_CLASSES = (A, B, ...) with each class imported from a module "
        "(from thinkbudget.rl import ThinkGRPOConfig), so that its keys can be checked without running it"
    )
    if not names:
        raise SystemExit(
            f"entry point {script} is not one of the project's ({', '.join(PROJECT_ENTRY_POINTS)}): {hint}"
        )
    classes = []
    for n in names:
        if n not in imported:
            raise SystemExit(f"entry point {script}: config class {n} is not imported from a module; {hint}")
        module_name, attr = imported[n]
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise SystemExit(f"entry point {script}: cannot import {attr} from {module_name} ({e})") from None
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise SystemExit(f"entry point {script}: {module_name}.{attr} is not a dataclass")
        classes.append(cls)
    return tuple(classes)


def config_fields(script: str | os.PathLike) -> dict[str, type]:
    """Field name -> owning dataclass for every config field ``script`` accepts."""
    path = Path(script).resolve()
    if path not in _FIELDS_CACHE:
        out: dict[str, type] = {}
        for cls in config_classes(script):
            for f in dataclasses.fields(cls):
                out.setdefault(f.name, cls)
        _FIELDS_CACHE[path] = out
    return _FIELDS_CACHE[path]


def check_config_keys(script: str | os.PathLike, keys: Sequence[str], where: str) -> None:
    """Fail, naming ``where`` and the key, when ``script``'s config dataclasses lack one of ``keys``."""
    valid = config_fields(script)
    unknown = [k for k in keys if k not in valid]
    if not unknown:
        return
    classes = sorted({c.__name__ for c in valid.values()})
    raise SystemExit(
        f"{where}: keys that {script} does not have (its config classes: {', '.join(classes)}):\n"
        + unknown_key_lines(unknown, list(valid))
    )


_TYPES_CACHE: dict[Path, dict[str, Any]] = {}


def config_field_types(script: str | os.PathLike) -> dict[str, tuple[Any, tuple | None]]:
    """Field name -> (type hint, choices or None) for every config field ``script`` accepts."""
    path = Path(script).resolve()
    if path not in _TYPES_CACHE:
        _TYPES_CACHE[path] = class_field_types(config_classes(script))
    return _TYPES_CACHE[path]


def check_config_values(script: str | os.PathLike, values: dict[str, Any], where: str) -> None:
    """Fail, naming ``where``, the key, the value and the expected type, when a value cannot fill its
    config field (``learning_rate: fast``). Unknown keys are :func:`check_config_keys`'s to report."""
    check_values(config_field_types(script), values, where, f" for {script}")


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def cli_flags(overrides: dict[str, Any]) -> list[str]:
    """``{"max_steps": 10, "budgets": [32, 64], "bf16": False}`` -> ``--max_steps 10 --budgets 32 64 --bf16 false``.

    Lists become several values (argparse ``nargs``), booleans ``true``/``false`` (TRL's parser),
    mappings JSON. ``None`` is left out: the recipe's (or the default) value stands.
    """
    flags: list[str] = []
    for key, value in overrides.items():
        if value is None:
            continue
        flags.append(f"--{key}")
        if isinstance(value, bool):
            flags.append(str(value).lower())
        elif isinstance(value, list | tuple):
            flags.extend(_scalar(v) for v in value)
        elif isinstance(value, dict):
            flags.append(json.dumps(value))
        else:
            flags.append(_scalar(value))
    return flags


def _scalar(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def accelerate_command(script: str, accelerate_config: str | None, extra: Sequence[str] = ()) -> list[str]:
    """``accelerate launch [--config_file F] [extra] script``. Without a config file accelerate runs one
    process on whatever device it finds (its defaults), which is what the CPU profiles want."""
    cmd = ["accelerate", "launch"]
    if accelerate_config:
        cmd += ["--config_file", accelerate_config]
    return [*cmd, *extra, script]


def executable(cmd: Sequence[str]) -> list[str]:
    """``cmd`` with ``python`` and ``accelerate`` pointing into the running interpreter's environment, so
    that commands printed in their short form also run from a venv that is not activated."""
    import shutil

    cmd = list(cmd)
    if cmd and cmd[0] == "python":
        cmd[0] = sys.executable
    elif cmd and cmd[0] == "accelerate":
        sibling = Path(sys.executable).parent / "accelerate"
        cmd[0] = str(sibling) if sibling.is_file() else (shutil.which("accelerate") or "accelerate")
    return cmd


def shell_join(cmd: Sequence[str]) -> str:
    import shlex

    return " ".join(shlex.quote(c) for c in cmd)


class StageFailed(RuntimeError):
    """A stage's command exited non-zero; the message holds the end of its log."""


def run_logged(
    cmd: Sequence[str],
    log_path: str | os.PathLike,
    *,
    label: str,
    echo: bool = False,
    env: dict[str, str] | None = None,
    console: Any = None,
) -> float:
    """Run ``cmd`` from the repository root with its output in ``log_path``; return wall seconds.

    A rich spinner shows the elapsed time and the command's latest output line (progress bars end
    lines with ``\\r``, so both ``\\r`` and ``\\n`` end a line). ``echo`` also copies the output to the
    console. Raises :class:`StageFailed` with the log's last lines when the command fails.
    """
    from rich.console import Console
    from rich.text import Text

    console = console or Console(stderr=True)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # The stage dies with this process (a killed pipeline leaves no stage running): the direct child
    # by its parent-death signal, its own children (accelerate launch -> python) because every entry
    # point asks for the same signal when THINKBUDGET_DIE_WITH_PARENT is set.
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
    seconds = time.time() - start
    if code != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise StageFailed(f"{label} failed (exit code {code}); log: {log_path}\n" + "\n".join(tail))
    return seconds


# --------------------------------------------------------------------------------------------
# Run-folder ownership: the pipeline deletes only what it created
# --------------------------------------------------------------------------------------------
RUN_MARKER = ".thinkbudget-run"


def check_run_dir(run_dir: Path) -> bool:
    """Whether ``run_dir`` may be used as a run folder; raises ``SystemExit`` when it may not.

    The pipeline deletes a stage's output folder before it reruns the stage, so it only works in a
    folder it owns: one it created (it holds :data:`RUN_MARKER`), or one that does not exist yet or is
    empty. Returns True when the folder is already owned."""
    if (run_dir / RUN_MARKER).is_file():
        return True
    if run_dir.exists() and not run_dir.is_dir():
        raise SystemExit(f"--run-dir {run_dir} is a file, not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise SystemExit(
            f"--run-dir {run_dir} already exists and was not created by the pipeline (it has no {RUN_MARKER} "
            "marker), so the pipeline will not write or delete anything in it. Choose a new or empty folder. "
            f"(A run folder of an earlier version of the pipeline: `touch {run_dir / RUN_MARKER}` to adopt it.)"
        )
    from thinkbudget.run_folders import check_creatable

    check_creatable(run_dir, what="--run-dir")
    return False


def claim_run_dir(run_dir: Path, profile_name: str) -> None:
    """Create ``run_dir`` (checked by :func:`check_run_dir`) with the ownership marker."""
    from thinkbudget.run_folders import make_dir, write_json_atomic

    if check_run_dir(run_dir):
        return
    make_dir(run_dir, what="--run-dir")
    write_json_atomic(
        run_dir / RUN_MARKER,
        {
            "created_by": "scripts/pipeline.py",
            "profile": profile_name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


def remove_owned(run_dir: Path, path: Path) -> None:
    """Delete ``path`` (a stage's output) only when it lies strictly inside a run folder the pipeline
    owns; anything else is a bug and raises instead of deleting."""
    import shutil

    root, target = run_dir.resolve(), path.resolve()
    if not (run_dir / RUN_MARKER).is_file() or target == root or not target.is_relative_to(root):
        raise RuntimeError(
            f"refusing to delete {path}: not inside a run folder the pipeline owns ({run_dir})"
        )
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()


# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------
@dataclass
class StageSpec:
    """One training/data stage: the recipe YAML it reads and the overrides put on top (CLI flags)."""

    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSpec:
    """``eval/evaluate.py`` for every evaluated model: an optional recipe (``configs/eval/*.yaml``) and
    ``overrides`` (``--key value`` flags); ``forcing`` holds what differs for the budget-forcing run
    (``methods: [budget_forcing]`` and integer ``budgets``); ``base`` and ``sft`` what differs for those
    models (the base model never closes a think block, so its answers run to the token limit; the
    targets are SFT+GRPO's, so the others may run fewer conditions or problems)."""

    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    forcing: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    sft: dict[str, Any] = field(default_factory=dict)

    def model_overrides(self, key: str) -> dict[str, Any]:
        """The flags of the evaluation of one model (``base``, ``sft``, ``rl``, ``forcing``)."""
        return {
            **self.overrides,
            **{"forcing": self.forcing, "base": self.base, "sft": self.sft}.get(key, {}),
        }


@dataclass
class DemoSpec:
    """The question shown before and after training: ``question``/``answer`` given, or the test
    problem number ``index`` of ``task``. Generation is greedy, at most ``max_new_tokens`` tokens."""

    task: str = "chain"
    index: int = 0
    question: str | None = None
    answer: str | None = None
    budget: int = 32
    max_new_tokens: int = 256


@dataclass
class Profile:
    """A hardware profile of the main job (one YAML in ``configs/pipeline/``). ``model`` is the base
    model (alias, hub id or path); ``accelerate_config`` (a file in ``configs/accelerate/``) and
    ``accelerate_args`` (e.g. ``[--num_processes, "1", --cpu]``) go to ``accelerate launch``."""

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
    raw = load_yaml_mapping(path)
    where = str(path)
    sections = {"data": StageSpec, "sft": StageSpec, "rl": StageSpec, "eval": EvalSpec, "demo": DemoSpec}
    top_valid = [f.name for f in dataclasses.fields(Profile) if f.name not in ("name", "source")]
    reject_unknown(raw, top_valid, where)
    for key in ("description", "smoke", "model"):
        if key not in raw:
            raise SystemExit(f"{where}: missing required key {key!r}")
    kwargs: dict[str, Any] = {k: v for k, v in raw.items() if k not in sections}
    for key, cls in sections.items():
        section = raw.get(key) or {}
        if not isinstance(section, dict):
            raise SystemExit(f"{where}: {key!r} must be a mapping")
        kwargs[key] = dataclass_from_mapping(cls, section, f"{where} [{key}]")
    accelerate_config = kwargs.get("accelerate_config")
    if accelerate_config and not (REPO_ROOT / accelerate_config).is_file():
        raise SystemExit(f"{where}: accelerate_config {accelerate_config} does not exist")
    for key in ("data", "sft", "rl", "eval"):
        if not isinstance(kwargs[key].overrides, dict):
            raise SystemExit(f"{where}: {key}.overrides must be a mapping of field: value")
        recipe = kwargs[key].recipe
        if recipe and not (REPO_ROOT / recipe).is_file():
            raise SystemExit(f"{where}: {key}.recipe {recipe} does not exist")
    limit = kwargs.get("time_limit_min")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise SystemExit(f"{where}: time_limit_min must be a positive whole number of minutes, got {limit!r}")
    demo = kwargs["demo"]
    for key in ("budget", "max_new_tokens"):
        value = getattr(demo, key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SystemExit(
                f"{where} [demo]: {key} must be a positive integer number of tokens, got {value!r}"
            )
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
    """Every override in ``profile`` must be a config field of the stage's entry point (checked
    before anything runs, so a typo fails now and not after an hour of SFT)."""
    for key, script in STAGE_SCRIPTS.items():
        spec = getattr(profile, key)
        parts = ("forcing", "base", "sft") if key == "eval" else ()
        keys = [*spec.overrides, *(k for part in parts for k in getattr(spec, part))]
        check_config_keys(script, keys, f"{profile.source} [{key}]")
        check_config_values(script, spec.overrides, f"{profile.source} [{key}]")
        for part in parts:
            check_config_values(script, getattr(spec, part), f"{profile.source} [eval.{part}]")
        if spec.recipe:
            recipe = load_yaml_mapping(REPO_ROOT / spec.recipe)
            check_config_keys(script, list(recipe), spec.recipe)
            check_config_values(script, recipe, spec.recipe)


def auto_profile() -> str:
    """``gpu`` when torch sees a CUDA device, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------------------------
# The demo: one question, thinking off / on / on with a budget
# --------------------------------------------------------------------------------------------
def demo_answers(
    model: Any,
    tokenizer: Any,
    question: str,
    budget: int,
    *,
    gold: str | None = None,
    max_new_tokens: int = 256,
    system: str | None = None,
) -> list[dict[str, Any]]:
    """Answer ``question`` three ways with greedy decoding and count the tokens with the one parser.

    Returns one dict per setting (``setting``: ``"thinking off"``, ``"thinking on"``, ``"budget N"``)
    with ``enable_thinking``, ``thinking_budget`` (tokens or None), ``completion`` (the generated text;
    with thinking off the prompt already holds the empty think block), ``thinking``, ``answer``,
    ``thinking_tokens``, ``answer_tokens``, ``think_closed``, ``within_budget`` and, when ``gold`` is
    given, ``correct``. ``budget`` and ``max_new_tokens`` are in tokens.
    """
    import torch

    from thinkbudget.parsing import parse_completion
    from thinkbudget.protocol import build_messages, encode_prompt, render_prompt, validate_budget
    from thinkbudget.scoring import is_correct

    budget = validate_budget(budget, field="budget")
    messages = build_messages(question, system=system)
    settings = [
        ("thinking off", False, None),
        ("thinking on", True, None),
        (f"budget {budget}", True, budget),
    ]
    device = next(model.parameters()).device
    results = []
    for setting, enable, setting_budget in settings:
        prompt = render_prompt(tokenizer, messages, enable_thinking=enable, thinking_budget=setting_budget)
        prompt_ids = torch.tensor([encode_prompt(tokenizer, prompt)], device=device)
        inputs = {"input_ids": prompt_ids, "attention_mask": torch.ones_like(prompt_ids)}
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        ids = out[0, inputs["input_ids"].shape[1] :].tolist()
        parsed = parse_completion(ids, tokenizer)
        row = {
            "setting": setting,
            "enable_thinking": enable,
            "thinking_budget": setting_budget,
            "completion": tokenizer.decode(ids, skip_special_tokens=True),
            "thinking": parsed.thinking,
            "answer": parsed.answer,
            "thinking_tokens": parsed.thinking_tokens,
            "answer_tokens": parsed.answer_tokens,
            "think_closed": parsed.think_closed,
            "within_budget": parsed.within_budget(setting_budget),
        }
        if gold is not None:
            row["correct"] = is_correct(parsed.answer, gold)
        results.append(row)
    return results


def demo_question(spec: DemoSpec) -> tuple[str, str | None]:
    """The demo's question and gold answer: given in the profile, or a test problem of ``spec.task``."""
    if spec.question:
        return spec.question, spec.answer
    from thinkbudget.tasks import load_problems

    problems = load_problems(spec.task, "test", n=spec.index + 1, seed=0)
    problem = problems[spec.index]
    return problem.question, problem.answer


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if not text:
        return "(nothing but whitespace)"
    return text[:limit] + ("…" if len(text) > limit else "")


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "-")


def demo_table(title: str, question: str, gold: str | None, rows: list[dict[str, Any]]) -> Any:
    """A rich table of :func:`demo_answers` rows: token counts and what the model wrote (shortened)."""
    from rich.table import Table

    caption = f"Q: {question}" + (f"  (gold: {gold})" if gold else "")
    table = Table(title=title, caption=caption, caption_justify="left")
    for name in ("setting", "thinking\ntokens", "answer\ntokens", "within\nbudget", "correct"):
        table.add_column(name, justify="left" if name == "setting" else "right")
    table.add_column("output (shortened)", overflow="fold", min_width=24)
    for r in rows:
        within = _yes_no(r["within_budget"]) if r["thinking_budget"] is not None else "-"
        table.add_row(
            r["setting"],
            str(r["thinking_tokens"]),
            str(r["answer_tokens"]),
            within,
            _yes_no(r.get("correct")),
            _shorten(r["completion"], 160),
        )
    return table


def demo_markdown(title: str, question: str, gold: str | None, rows: list[dict[str, Any]]) -> str:
    """The same as :func:`demo_table`, as Markdown for the run folder's README."""
    lines = [f"### {title}", "", f"Q: {question}" + (f" (gold: {gold})" if gold else ""), ""]
    lines += ["| setting | thinking tokens | answer tokens | within budget | correct | output (shortened) |"]
    lines += ["|---|---:|---:|---|---|---|"]
    for r in rows:
        within = _yes_no(r["within_budget"]) if r["thinking_budget"] is not None else "-"
        text = _shorten(r["completion"], 200).replace("|", "\\|")
        lines.append(
            f"| {r['setting']} | {r['thinking_tokens']} | {r['answer_tokens']} | {within} | "
            f"{_yes_no(r.get('correct'))} | {text} |"
        )
    return "\n".join(lines) + "\n"
