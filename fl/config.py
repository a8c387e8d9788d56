"""Experiment configurations from TOML files and `key=value` overrides, validated with messages that
name the bad field."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from fl.experiment import ExperimentConfig
from fl.training import LocalConfig

LOCAL_KEYS = tuple(f.name for f in dataclasses.fields(LocalConfig))  # epochs, batch_size, lr
TOP_KEYS = tuple(f.name for f in dataclasses.fields(ExperimentConfig) if f.name != "local")


def _coerce(key: str, value, default):
    """`value` as the type of the field's default (strings from the command line included)."""
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool:
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"field {key!r}: expected true or false, found {value!r}")
            return text in ("true", "1", "yes")
        if default is None or key == "batch_size":
            return None if text in ("none", "full") else int(value)
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"field {key!r}: expected {kind.__name__}, found {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if default is not None and key != "batch_size" and not isinstance(value, kind):
        raise ValueError(f"field {key!r}: expected {kind.__name__}, found {type(value).__name__} {value!r}")
    return value


def config_from(values: dict, base: ExperimentConfig | None = None) -> ExperimentConfig:
    """`base` (default: the embedded default) with `values` applied.

    Raises:
        ValueError: naming the field, for an unknown key, a wrong type or an out-of-range value.
    """
    base = base or ExperimentConfig()
    top, local = {}, {}
    for key, value in values.items():
        if key in LOCAL_KEYS:
            local[key] = _coerce(key, value, getattr(base.local, key))
        elif key in TOP_KEYS:
            top[key] = _coerce(key, value, getattr(base, key))
        else:
            raise ValueError(f"unknown field {key!r}; known: {', '.join(TOP_KEYS + LOCAL_KEYS)}")
    try:
        return dataclasses.replace(base, local=dataclasses.replace(base.local, **local), **top)
    except ValueError as exc:
        raise ValueError(f"invalid configuration: {exc}") from None


def load_toml(path: str | Path) -> dict:
    """The key/value table of a TOML file ([local] sub-table keys are accepted too).

    Raises:
        ValueError: naming the file, if it does not parse.
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from None
    flat = {k: v for k, v in data.items() if k != "local"}
    flat.update(data.get("local", {}))
    return flat


def parse_overrides(pairs: list[str]) -> dict:
    """["rounds=5", "stack=robust"] -> {"rounds": "5", "stack": "robust"}."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, found {pair!r}")
        out[key.strip()] = value.strip()
    return out
