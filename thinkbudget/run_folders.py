"""Small pieces every entry point shares: config parsing, run folders, provenance, logging."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True
    )


def parse_config(dataclass_types: Sequence[type], args: Sequence[str] | None = None) -> tuple[Any, ...]:
    """``TrlParser(...).parse_args_and_config()`` with errors that name the file and the bad keys.

    The YAML sets defaults, CLI flags override, and a key that no dataclass has is an error before
    anything loads (TRL's default), reported with the closest valid names.
    """
    from trl import TrlParser

    args = normalize_config_flag(list(sys.argv[1:] if args is None else args))
    if "--config" in args:
        from thinkbudget.recipes import check_values, class_field_types, load_yaml_mapping, reject_unknown

        path = Path(args[args.index("--config") + 1])
        config = load_yaml_mapping(path)
        valid = [f.name for t in dataclass_types for f in fields(t)] + ["env"]
        reject_unknown(config, valid, str(path), list_valid=False)

        check_values(
            class_field_types(dataclass_types), {k: v for k, v in config.items() if k != "env"}, str(path)
        )
    parsed = TrlParser(list(dataclass_types)).parse_args_and_config(args=args)
    check_choices(parsed)
    return parsed


def run_entry_point(
    main: Callable[..., T], config_classes: Sequence[type], argv: Sequence[str] | None = None
) -> T:
    """The start of every trainer's ``cli()``: parse ``argv`` (default: the command line) into
    ``config_classes`` and return ``main(*configs)``. Bad input exits with a message, not a traceback."""
    die_with_parent()  # a stage whose pipeline is gone must not train
    setup_logging()
    try:
        configs = parse_config(config_classes, argv)
    except ValueError as e:  # a field's own check (__post_init__) while parsing
        raise SystemExit(f"invalid config: {e}") from None
    return main(*configs)


def check_choices(instances: Sequence[Any]) -> None:
    """Fields whose metadata lists ``choices`` must hold one of them (argparse checks the command line,
    but values from the YAML file reach the dataclass unchecked): ``dtype: float13`` fails here, before
    any data or model loads."""
    for obj in instances:
        if not dataclasses.is_dataclass(obj):
            continue
        for f in fields(obj):
            choices = f.metadata.get("choices") if f.metadata else None
            value = getattr(obj, f.name, None)
            if choices and value is not None and not isinstance(value, list | dict) and value not in choices:
                raise SystemExit(f"{f.name}: {value!r} is not one of {', '.join(map(str, choices))}")


def normalize_config_flag(args: list[str]) -> list[str]:
    """``--config=PATH`` becomes ``--config PATH`` (TrlParser only looks for the separate form); a
    ``--config`` without a path, or given twice, is an error that says so."""
    out: list[str] = []
    for a in args:
        if a.startswith("--config="):
            out += ["--config", a[len("--config=") :]]
        else:
            out.append(a)
    positions = [i for i, a in enumerate(out) if a == "--config"]
    if len(positions) > 1:
        raise SystemExit(
            "--config is given more than once; pass one recipe file (and override fields with flags)"
        )
    if positions:
        i = positions[0]
        if i + 1 >= len(out) or not out[i + 1] or out[i + 1].startswith("--"):
            raise SystemExit("--config needs a file path: --config configs/<stage>/<recipe>.yaml")
    return out


def die_with_parent() -> None:
    """When ``$THINKBUDGET_DIE_WITH_PARENT`` is set (the pipeline and the sweep set it for their stage
    commands), ask Linux to kill this process when its parent dies, so that a killed pipeline never
    leaves a stage running behind it (``accelerate launch`` children included: each entry point calls
    this at start). Elsewhere, or without the variable, nothing happens (``nohup`` keeps working)."""
    if not os.environ.get("THINKBUDGET_DIE_WITH_PARENT") or not sys.platform.startswith("linux"):
        return
    set_parent_death_signal()


def set_parent_death_signal(parent_pid: int | None = None) -> None:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)`` for this process (Linux). With ``parent_pid`` (known when
    called between fork and exec), exit at once if that parent died before the call."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


@dataclass
class RunFolderArguments:
    """Run-folder fields shared by the SFT and GRPO configs (placed before TRL's config class in the
    bases, so these definitions win): one help text and one default each, written once."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Replace a run already in output_dir (true/false); without it such a folder is refused."
        },
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "Continue a killed run: a checkpoint-N folder (path), or `true` for the newest complete "
            "checkpoint-N in output_dir."
        },
    )
    activation_checkpointing: bool | None = field(
        default=False,
        metadata={
            "help": "Recompute activations in the backward pass (true/false): less memory, ~20 %% slower."
        },
    )
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of activation_checkpointing (true/false)."}
    )
    save_strategy: str = field(
        default="steps", metadata={"help": "When to write checkpoint-N: steps, epoch or no."}
    )
    save_total_limit: int | None = field(
        default=3, metadata={"help": "Keep at most this many checkpoint-N folders (count); None keeps all."}
    )
    report_to: None | str | list[str] = field(
        default="tensorboard",
        metadata={"help": "Where metrics go: tensorboard (under output_dir/runs), none, ..."},
    )

    def __post_init__(self) -> None:
        # bf16 unset = bf16 autocast wherever it is fast, CPUs with native bf16 included (and use_cpu on a
        # machine without a GPU, so that --bf16 true on a CPU works): see thinkbudget.hardware.
        from thinkbudget.hardware import resolve_training_precision

        self.bf16, self.use_cpu = resolve_training_precision(self.bf16, self.fp16, self.use_cpu)
        super().__post_init__()


def check_output_dir(output_dir: str | os.PathLike, *, overwrite: bool, resuming: bool = False) -> Path:
    """Check a training run's output directory before anything loads; create nothing.

    Refused: a path that is a file or cannot be created; a folder that holds another run's checkpoints
    or final model unless ``overwrite`` is asked for or the run is resuming from it; ``overwrite`` and
    resuming together (they contradict each other); resuming a run that already finished (its
    ``run_summary.json`` is written last: training again would go past ``max_steps`` and replace the
    final model). :func:`clear_output_dir` makes the folder ready right before training starts.
    """
    out = Path(output_dir)
    if overwrite and resuming:
        raise SystemExit(
            "--overwrite_output_dir true and --resume_from_checkpoint contradict each other: overwrite starts "
            "the run afresh (its old checkpoints are deleted), resume continues it; pass one of them"
        )
    if out.exists() and not out.is_dir():
        raise SystemExit(f"output_dir {out} is a file, not a folder")
    if resuming and stage_finished(out / RUN_SUMMARY):
        raise SystemExit(
            f"output_dir {out} holds a finished run ({RUN_SUMMARY} is written last), so there is nothing to "
            "resume: resuming would train past max_steps and replace the final model. Start a new run from "
            f"it (--model_name_or_path {out} --output_dir NEW) or pass --overwrite_output_dir true to retrain"
        )
    if out.is_dir() and not overwrite and not resuming:
        taken = sorted(
            p.name
            for p in out.iterdir()
            if p.name.startswith("checkpoint-") or p.name in ("model.safetensors", RUN_SUMMARY)
        )
        if taken:
            raise SystemExit(
                f"output directory {out} already holds a run ({', '.join(taken[:3])}...); pass "
                "--overwrite_output_dir true to replace it or --resume_from_checkpoint true to continue it"
            )
    check_creatable(out, what="output_dir")
    return out


def check_creatable(path: str | os.PathLike, *, what: str) -> None:
    """Raise ``SystemExit`` naming ``what`` when the folder ``path`` neither exists as a writable
    folder nor can be created (its nearest existing parent is not a writable folder)."""
    path = Path(path).absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise SystemExit(f"{what} {path}: {probe} is a file, so the folder cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SystemExit(f"{what} {path}: cannot write into {probe} (permission denied)")
    import tempfile

    try:  # permissions can lie (root, read-only mounts, /proc): try it, and leave nothing behind
        with tempfile.TemporaryDirectory(dir=probe, prefix=".thinkbudget-probe-"):
            pass
    except OSError as e:
        raise SystemExit(f"{what} {path}: cannot create a folder in {probe} ({e.strerror or e})") from None


def make_dir(path: str | os.PathLike, *, what: str) -> Path:
    """``mkdir -p`` with an error that names ``what`` instead of a traceback."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"{what} {path}: cannot create the folder ({e.strerror or e})") from None
    return path


def clear_output_dir(output_dir: str | os.PathLike, *, overwrite: bool, resuming: bool) -> Path:
    """Make ``output_dir`` ready for training, right before the trainer starts (after every check).

    ``overwrite``: the old run's ``checkpoint-N`` folders, ``adapter/`` and ``run_summary.json`` are
    deleted, so a later ``--resume_from_checkpoint true`` can never pick a checkpoint of the old run.
    Always: ``checkpoint-N`` folders a kill left half-written (no ``trainer_state.json``) and stray
    temporary files are deleted, so a checkpoint rewritten at the same step starts from an empty folder.
    """
    import shutil

    out = make_dir(output_dir, what="output_dir")
    for entry in list(out.iterdir()):
        old_run = overwrite and (
            (entry.is_dir() and _checkpoint_step(entry) >= 0)
            or entry.name in ("adapter", RUN_SUMMARY)
            or entry.name.startswith("tmp-checkpoint-")
        )
        unfinished = (
            entry.is_dir() and _checkpoint_step(entry) >= 0 and not (entry / "trainer_state.json").is_file()
        )
        if old_run or unfinished or entry.name.startswith("tmp-checkpoint-"):
            logger.info("removing %s (%s)", entry, "old run" if old_run else "left by a kill")
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for stray in [*out.glob("*.tmp*"), *out.glob(".*.tmp*"), *out.glob("checkpoint-*/*.tmp*")]:
        if stray.is_file():
            stray.unlink()
    return out


def check_training_length(max_steps: int | None, num_train_epochs: float | None) -> None:
    """A run that would take no optimizer step is an error (it would save the untrained model as a
    finished run)."""
    if (max_steps is None or max_steps <= 0) and (num_train_epochs is None or num_train_epochs <= 0):
        raise SystemExit(
            f"nothing to train: max_steps={max_steps} and num_train_epochs={num_train_epochs}; set "
            "max_steps > 0 (optimizer steps) or num_train_epochs > 0"
        )


RUN_SUMMARY = "run_summary.json"


# Values of --resume_from_checkpoint that mean "the newest complete checkpoint in output_dir".
RESUME_LATEST = ("true", "last", "latest")


def _checkpoint_step(path: Path) -> int:
    m = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(m.group(1)) if m else -1


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """``checkpoint-N`` folders in ``output_dir`` that were written to the end, oldest first.

    transformers writes ``trainer_state.json`` last, so a folder without it (a run killed while
    saving) is skipped rather than resumed from.
    """
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [p for p in out.iterdir() if p.is_dir() and _checkpoint_step(p) >= 0]
    return sorted((p for p in found if (p / "trainer_state.json").is_file()), key=_checkpoint_step)


def resolve_resume(resume_from_checkpoint: str | None, output_dir: str) -> str | None:
    """The checkpoint to resume from: ``true``/``last`` = newest complete ``checkpoint-N`` in
    ``output_dir``; a path must be a checkpoint folder; empty/``false`` = a fresh run."""
    value = (resume_from_checkpoint or "").strip()
    if value.lower() in ("", "false", "none", "no"):
        return None
    if value.lower() in RESUME_LATEST:
        found = complete_checkpoints(output_dir)
        if not found:
            raise SystemExit(
                f"resume_from_checkpoint: no complete checkpoint-N folder in output_dir {output_dir}"
            )
        return str(found[-1])
    if not (Path(value) / "trainer_state.json").is_file():
        raise SystemExit(
            f"resume_from_checkpoint: {value} is not a complete checkpoint folder (no trainer_state.json)"
        )
    return value


def git_commit() -> str:
    """The repository's HEAD commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except Exception:
        return "unknown"


def device_description() -> str:
    """A human-readable name of the compute device (GPU name, or CPU with core count)."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file so that a reader (or a kill) never sees half of it: a temporary file beside
    it, renamed over it (the temporary file is removed if writing fails)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON so that a reader (or a kill) never sees half a file."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------------------------
# "Is this stage finished?": one answer for the pipeline, the sweep and the entry points
# --------------------------------------------------------------------------------------------
def read_json_object(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stage_finished(marker: str | os.PathLike) -> bool:
    """Whether the output marker of a stage says that the stage finished.

    Every stage writes its marker last (atomically), so existence is the first condition; a JSON
    marker must also parse as an object, and one that carries a ``complete`` flag must say ``true``.
    An evaluation's ``results.json`` is written with ``complete: false`` *before* generation (so a
    killed evaluation folder still names its model and settings): it counts as finished only with
    ``complete: true`` and its ``rows``. Non-JSON markers (a Markdown report) must be non-empty.
    """
    path = Path(marker)
    if not path.is_file():
        return False
    if path.suffix != ".json":
        try:
            return path.stat().st_size > 0
        except OSError:
            return False
    data = read_json_object(path)
    if data is None:
        return False
    if path.name == "results.json":
        return data.get("complete") is True and isinstance(data.get("rows"), list)
    return data.get("complete", True) is True


def command_line() -> str:
    """The command that started this process, for provenance records."""
    return " ".join([Path(sys.executable).name, *sys.argv])


def write_run_summary(
    trainer: Any,
    out: str | os.PathLike,
    stage: str,
    facts: dict[str, Any],
    *,
    script_args: Any,
    training_args: Any,
    model_args: Any,
) -> dict[str, Any]:
    """The ``run_summary.json`` of a training stage (``train/sft.py``, ``train/rl.py``, ``train/scorer.py``).

    ``{"stage", "output_dir", **facts, "commit", "device", "num_processes", "command", "config"}``: the
    stage's own figures in ``facts``, then the provenance every stage records the same way. Written by
    the main process only; returned on every process."""
    summary = {
        "stage": stage,
        "output_dir": str(out),
        **facts,
        "commit": git_commit(),
        "device": device_description(),
        "num_processes": trainer.accelerator.num_processes,
        "command": command_line(),
        "config": {
            "script": dataclasses.asdict(script_args),
            "training": training_args.to_dict(),
            "model": dataclasses.asdict(model_args),
        },
    }
    if trainer.accelerator.is_main_process:
        write_json_atomic(Path(out) / "run_summary.json", summary)
    return summary


def start_training_run(model_name_or_path: str, training_args: Any) -> tuple[str, str | None, Path]:
    """The checks every trainer makes before anything loads, in one place: the training length, the
    model (an alias, a local folder, or a hub id that is reachable), the checkpoint to resume from and
    the output folder. Returns ``(model_path, resume, output_dir)``; a bad value exits naming it."""
    from thinkbudget.models import resolve_model_path

    check_training_length(training_args.max_steps, training_args.num_train_epochs)
    try:
        model_path = resolve_model_path(model_name_or_path)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"model_name_or_path: {e}") from None
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    out = check_output_dir(
        training_args.output_dir, overwrite=training_args.overwrite_output_dir, resuming=resume is not None
    )
    return model_path, resume, out
