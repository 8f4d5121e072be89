"""Config files: one loader for YAML recipes and profiles, with unknown keys and wrong types named.

Every YAML the project reads goes through :func:`load_yaml_mapping` and :func:`reject_unknown`: the
entry points' ``--config`` (:func:`thinkbudget.run_folders.parse_config`), the main job's profiles
(:mod:`thinkbudget.pipeline`), the sweeps and the frontier recipes. :func:`check_values` checks that
each value can fill its dataclass field (``learning_rate: fast`` fails before anything loads).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


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
