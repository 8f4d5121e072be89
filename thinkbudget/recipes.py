"""Recipes: the one loader of the YAML files the project reads, and the checks of their keys and values
against the entry points that read them.

Every YAML goes through :func:`load_yaml_mapping` and :func:`reject_unknown`: the entry points'
``--config`` (:func:`thinkbudget.run_folders.parse_config`), the main job's profiles
(:mod:`thinkbudget.pipeline`), the sweeps and the frontier recipes. :func:`check_values` checks that
each value can fill its dataclass field (``learning_rate: fast`` fails before anything loads).

A job file (profile, sweep, frontier recipe) sets keys of entry points that it runs later as
subprocesses; :func:`check_config_keys` and :func:`check_config_values` check them against the entry
point's real config dataclasses (:func:`config_classes`) before anything runs, and :func:`cli_flags`
turns them into the ``--key value`` flags of the command line.

(The config *classes* live beside the code that uses them: :mod:`thinkbudget.data`, :mod:`thinkbudget.sft`,
:mod:`thinkbudget.rl`, :mod:`thinkbudget.scorer`, :mod:`thinkbudget.eval_config`.)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thinkbudget.run_folders import REPO_ROOT


# --------------------------------------------------------------------------------------------
def load_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file that must hold a mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SystemExit(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: must be a YAML mapping of key: value")
    return data


def unknown_key_lines(unknown: Sequence[Any], valid: Sequence[str]) -> str:
    """One line per unknown key, with the closest valid names."""
    lines = []
    for k in unknown:
        close = difflib.get_close_matches(str(k), list(valid), n=3)
        lines.append(f"  {k!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return "\n".join(lines)


def reject_unknown(
    mapping: dict[str, Any], valid: Sequence[str], where: str, *, list_valid: bool = True
) -> None:
    """Raise naming ``where`` and each key of ``mapping`` that is not in ``valid`` (with close matches);
    ``list_valid`` adds every valid key (off for training configs, which have hundreds)."""
    unknown = [k for k in mapping if k not in valid]
    if not unknown:
        return
    tail = f"\nvalid keys: {', '.join(valid)}" if list_valid else ""
    raise SystemExit(f"{where}: unknown keys:\n" + unknown_key_lines(unknown, valid) + tail)


def dataclass_from_mapping(cls: type, mapping: dict[str, Any], where: str) -> Any:
    """``cls(**mapping)`` after rejecting keys ``cls`` does not have."""
    reject_unknown(mapping, [f.name for f in dataclasses.fields(cls)], where)
    return cls(**mapping)


def class_field_types(classes: Sequence[type]) -> dict[str, tuple[Any, tuple | None]]:
    """Field name -> (type hint, choices or None) of dataclasses (hints that do not resolve: ``Any``)."""
    import typing

    out: dict[str, tuple[Any, tuple | None]] = {}
    for cls in classes:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # a forward reference that does not resolve: check that field's type loosely
            hints = {}
        for f in dataclasses.fields(cls):
            hint = hints.get(f.name, f.type if not isinstance(f.type, str) else Any)
            choices = f.metadata.get("choices") if f.metadata else None
            out.setdefault(f.name, (hint, tuple(choices) if choices else None))
    return out


def _float_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def value_fits(value: Any, hint: Any) -> bool:
    """Whether a YAML value can fill a field annotated ``hint`` (loosely: strings that parse as the
    type count, as they do on the command line; unknown annotations accept anything)."""
    import enum
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(value_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool) or (
            isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0")
        )
    if hint is int:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.strip().lstrip("+-").isdigit()
        )
    if hint is float:
        return _float_like(value)
    if hint is str:
        return isinstance(value, str | int | float | bool)
    if origin in (list, tuple, set) or hint in (list, tuple):
        item = args[0] if args else Any
        items = value if isinstance(value, list | tuple) else [value]
        return all(value_fits(v, item) for v in items)
    if origin is dict or hint is dict:
        return isinstance(value, dict | str)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = {m.value for m in hint} | {m.name for m in hint}
        return value in members or (
            isinstance(value, str) and value.lower() in {str(m).lower() for m in members}
        )
    return True


def _type_name(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if not hasattr(hint, "__args__") else None
    return text or str(hint).replace("typing.", "")


def check_values(
    types_: dict[str, tuple[Any, tuple | None]], values: dict[str, Any], where: str, what: str = ""
) -> None:
    """:func:`check_config_values` against field types from :func:`class_field_types`."""
    bad = []
    for key, value in values.items():
        if key not in types_ or value is None:
            continue
        hint, choices = types_[key]
        if choices and not isinstance(value, list | dict) and value not in choices:
            bad.append(f"  {key}: {value!r} is not one of {', '.join(map(str, choices))}")
        elif not value_fits(value, hint):
            bad.append(f"  {key}: {value!r} is not a valid {_type_name(hint)}")
    if bad:
        raise SystemExit(f"{where}: values of the wrong type{what}:\n" + "\n".join(bad))


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
    "train/process_scorer.py": "thinkbudget.process_scorer",
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


# --------------------------------------------------------------------------------------------
# Job files: the main job's profiles, frontier recipes and sweeps, read by one loader
# --------------------------------------------------------------------------------------------
@dataclass
class StageSpec:
    """One stage of a job file: the recipe YAML its entry point reads and the overrides put on top
    (``--key value`` flags)."""

    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def load_job_file(
    path: str | os.PathLike,
    cls: type,
    *,
    required: Sequence[str],
    sections: dict[str, type] | None = None,
    files: Sequence[str] = (),
    loader_fields: Sequence[str] = ("name", "source"),
) -> dict[str, Any]:
    """The keyword arguments of ``cls`` read from the job file ``path``: unknown keys (at the top or in
    a section), missing required keys, sections that are not mappings and named files that do not
    exist are errors naming the file and the key. ``sections`` maps a key to the dataclass its mapping
    fills (with a ``recipe``, that file must exist); ``files`` are top-level keys naming files (paths
    relative to the repository root, or as given). ``loader_fields`` of ``cls`` are set by the caller,
    not by the file."""
    where = str(path)
    raw = load_yaml_mapping(path)
    reject_unknown(raw, [f.name for f in dataclasses.fields(cls) if f.name not in loader_fields], where)
    for key in required:
        if key not in raw:
            raise SystemExit(f"{where}: missing required key {key!r}")
    kwargs = dict(raw)
    for key, section_cls in (sections or {}).items():
        section = raw.get(key) or {}
        if not isinstance(section, dict):
            raise SystemExit(f"{where}: {key!r} must be a mapping")
        spec = dataclass_from_mapping(section_cls, section, f"{where} [{key}]")
        recipe = getattr(spec, "recipe", None)
        if recipe and not _file_exists(recipe):
            raise SystemExit(f"{where}: {key}.recipe {recipe} does not exist")
        if not isinstance(getattr(spec, "overrides", {}), dict):
            raise SystemExit(f"{where}: {key}.overrides must be a mapping of field: value")
        kwargs[key] = spec
    for key in files:
        named = kwargs.get(key)
        if named and not _file_exists(named):
            raise SystemExit(f"{where}: {key} {named} does not exist")
    return kwargs


def _file_exists(path: str) -> bool:
    return (REPO_ROOT / path).is_file() or Path(path).is_file()


def check_stage_keys(
    script: str | os.PathLike, where: str, overrides: dict[str, Any], recipe: str | None = None
) -> dict[str, Any]:
    """A job file's keys and values for ``script`` (its overrides, and its recipe file when it names
    one) checked against the entry point's config classes, before anything runs. Returns the recipe's
    mapping (``{}`` without one), so that a caller that builds on it reads the file once."""
    check_config_keys(script, list(overrides), where)
    check_config_values(script, overrides, where)
    if not recipe:
        return {}
    values = load_yaml_mapping(recipe if Path(recipe).is_file() else REPO_ROOT / recipe)
    check_config_keys(script, list(values), recipe)
    check_config_values(script, values, recipe)
    return values
