"""Small pieces every entry point shares: config parsing, run folders, provenance, logging."""

from __future__ import annotations

import difflib
import json
import logging
import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]


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

    args = list(sys.argv[1:] if args is None else args)
    if "--config" in args:
        path = Path(args[args.index("--config") + 1])
        if not path.is_file():
            raise SystemExit(f"config file {path} does not exist")
        try:
            config = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise SystemExit(f"{path}: not valid YAML: {e}") from e
        if not isinstance(config, dict):
            raise SystemExit(f"{path}: must be a YAML mapping of field: value")
        valid = {f.name for t in dataclass_types for f in fields(t)} | {"env"}
        unknown = [k for k in config if k not in valid]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, valid, n=3)
                hints.append(f"  {k!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
            raise SystemExit(f"{path}: unknown config keys:\n" + "\n".join(hints))
    return TrlParser(list(dataclass_types)).parse_args_and_config(args=args)


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
    """Refuse an output directory that already holds another run's checkpoints or results, unless
    ``overwrite`` is asked for or the run is resuming from it."""
    out = Path(output_dir)
    if out.is_dir() and not overwrite and not resuming:
        taken = sorted(
            p.name for p in out.iterdir() if p.name.startswith("checkpoint-") or p.name == "model.safetensors"
        )
        if taken:
            raise SystemExit(
                f"output directory {out} already holds a run ({', '.join(taken[:3])}...); pass "
                "--overwrite_output_dir true to replace it or --resume_from_checkpoint to continue it"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


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


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON so that a reader (or a kill) never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)


def command_line() -> str:
    """The command that started this process, for provenance records."""
    return " ".join([Path(sys.executable).name, *sys.argv])
