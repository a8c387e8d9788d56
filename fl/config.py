"""Experiment configurations from TOML files and `key=value` overrides, validated with messages that
name the bad field and its value."""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path

from fl.experiment import STACK_RULES, STACKS, ExperimentConfig
from fl.training import LocalConfig
from protocols.core.stack import StackError, format_specs, from_tables

LOCAL_KEYS = tuple(f.name for f in dataclasses.fields(LocalConfig))  # epochs, batch_size, lr
TOP_KEYS = tuple(f.name for f in dataclasses.fields(ExperimentConfig) if f.name != "local")
RULE_KEYS = ("rule", "f")  # only for the stacks of STACK_RULES
_HINTS = {**typing.get_type_hints(ExperimentConfig), **typing.get_type_hints(LocalConfig)}
_LOCAL_CHECKS = {"epochs": (lambda v: v >= 1, ">= 1"), "batch_size": (lambda v: v is None or v >= 1, ">= 1 or none"), "lr": (lambda v: v > 0, "> 0"),
                 "threads": (lambda v: v >= 1, ">= 1"), "workers": (lambda v: v >= 0, ">= 0 (0: one a core)"),
                 "fedprox_mu": (lambda v: v >= 0, ">= 0")}

FIELDS = {  # what each field means, for `--help`
    "data": "breast_cancer, digits, ill_conditioned, synthetic, or a .npz/.csv file (last column: integer label)",
    "model": "logreg, mlp or cnn", "hidden": "width of the MLP's hidden layer", "clients": "number of clients",
    "rounds": "training rounds", "sample_fraction": "fraction of clients taking part a round (a fixed number)",
    "partition": "iid, dirichlet (with alpha) or natural (synthetic only)", "alpha": "Dirichlet concentration (small: skewed)",
    "stack": f"protocol stack: a preset ({', '.join(STACKS)}) or layers, outermost first: 'clip(bound=1) > skellam(noise_multiplier=1) > secagg+' "
             "(a TOML file: [[stack]] tables; `secagg layers` lists every layer and its fields)",
    "rule": f"robust rule of the presets {', '.join(STACK_RULES)} (a layer list sets its rule and f in its layers)",
    "byzantine": "fraction of clients, and of each round's participants (floored), that attack",
    "attackers": "instead of byzantine: exact number of attackers a round", "f": "the rule's f (none: derived from the attackers)",
    "attack": "alie, ipm, sign_flipping, gaussian, mimic, label_flipping", "alie_z": "ALIE's z (none: Baruch et al.'s)",
    "ipm_epsilon": "IPM's epsilon", "byzantine_protocol": "attackers deviate: none, skip-clip, drop, shares-<mode> (two-server)",
    "byzantine_drop_stage": "with byzantine_protocol=drop: the stage they stop at (advertise_keys .. unmasking)", "gaussian_sigma": "Gaussian attack's sigma (update units)",
    "mistaken": "fraction of clients with mislabelled data", "mislabel_fraction": "fraction of a mistaken client's labels that are wrong",
    "mislabel_kind": "uniform, class_pair (systematic) or per_class rates", "synthetic_alpha": "Synthetic(alpha, beta): model spread",
    "synthetic_beta": "Synthetic(alpha, beta): input spread", "synthetic_samples": "samples a synthetic client",
    "dropout": "fraction of participants that drop", "clip": "L2 clipping bound", "noise_multiplier": "DP noise stddev / clip",
    "mechanism": "skellam or ddg", "bits": "ring Z_2^bits of the DP stacks", "delta": "DP delta", "test_fraction": "held-out test fraction",
    "seed": "simulation seed", "data_seed": "split, partition, roles, sampling (none: seed)", "model_seed": "model init, minibatches (none: seed)",
    "protocol_seed": "dropouts and protocol secrets (none: seed)", "engine": "in-process, flower-sim or flower-deployment",
    "active": "masking stacks: against an active server (signatures under long-term client keys, consistency check)",
    "epochs": "local epochs", "batch_size": "local minibatch size (none: full batch)", "lr": "local learning rate",
    "fedprox_mu": "FedProx: local loss + mu/2 ||w - w_global||^2 (0: off)",
    "client_momentum": "beta in [0, 1): each client sends m <- beta m + (1 - beta) u, kept across its rounds (0: off)",
    "server_lr": "server step: params <- params + server_lr v", "server_momentum": "server step: v <- server_momentum v + aggregate",
}


def _coerce(key: str, value):
    """`value` as the field's type (strings from the command line included); `none` for optional fields."""
    hint = _HINTS[key]
    optional = isinstance(hint, types.UnionType) and type(None) in hint.__args__
    kind = next(a for a in hint.__args__ if a is not type(None)) if optional else hint
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if optional and text in ("none", "full"):
            return None
        if kind is bool:
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"field {key!r}: expected true or false, found {value!r}")
            return text in ("true", "1", "yes")
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"field {key!r}: expected {'an integer' if kind is int else kind.__name__}{' or none' if optional else ''}, found {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not (optional and value is None) and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise ValueError(f"field {key!r}: expected {kind.__name__}, found {type(value).__name__} {value!r}")
    return value


def config_from(values: dict, base: ExperimentConfig | None = None) -> ExperimentConfig:
    """`base` (default: the embedded default) with `values` applied.

    Raises:
        ValueError: naming the field, for an unknown key, a wrong type or an out-of-range value, and for
            `rule` or `f` given with a stack that takes no robust rule.
    """
    base = base or ExperimentConfig()
    top, local = {}, {}
    for key, value in values.items():
        if key in LOCAL_KEYS:
            local[key] = _coerce(key, value)
            ok, bound = _LOCAL_CHECKS[key]
            if not ok(local[key]):
                raise ValueError(f"invalid configuration: {key} must be {bound}, found {local[key]}")
        elif key in TOP_KEYS:
            top[key] = _coerce(key, value)
        else:
            raise ValueError(f"unknown field {key!r}; known: {', '.join(TOP_KEYS + LOCAL_KEYS)}")
    stack = top.get("stack", base.stack)
    for key in RULE_KEYS:
        if key in top and stack not in STACK_RULES:
            raise ValueError(f"field {key!r}: stack {stack!r} takes no robust rule (only {', '.join(STACK_RULES)}), found {key}={top[key]!r}")
    try:
        return dataclasses.replace(base, local=dataclasses.replace(base.local, **local), **top)
    except ValueError as exc:
        raise ValueError(f"invalid configuration: {exc}") from None


def for_stack(values: dict, stack: str) -> dict:
    """`values` without `rule` and `f` when `stack` takes no robust rule (how compare and sweep share one
    set of fields among stacks with and without a rule)."""
    return {k: v for k, v in values.items() if stack in STACK_RULES or k not in RULE_KEYS}


def load_toml(path: str | Path) -> dict:
    """The key/value table of a TOML file ([local] sub-table keys are accepted too; a [sweep] table is
    left for `load_sweep_table`).

    Raises:
        ValueError: naming the file, if it is not a readable file or does not parse.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {path}: {'a directory, not a TOML file' if path.is_dir() else 'no such file'}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    flat = {k: v for k, v in data.items() if k not in ("local", "sweep")}
    flat.update(data.get("local", {}))
    if isinstance(flat.get("stack"), list):  # [[stack]] tables, outermost first: kept as the string `parse` reads back
        try:
            flat["stack"] = format_specs(from_tables(flat["stack"]))
        except StackError as exc:
            raise ValueError(f"{path}: [[stack]]: {exc}") from None
    return flat


def load_sweep_table(path: str | Path | None) -> dict:
    """The [sweep] table of a TOML file ({} without a file or a table): field = [values], and seeds = k."""
    if path is None:
        return {}
    load_toml(path)  # the same checks and messages
    table = tomllib.loads(Path(path).read_text()).get("sweep", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [sweep] must be a table of field = [values], found {table!r}")
    return table


def parse_overrides(pairs: list[str]) -> dict:
    """["rounds=5", "stack=robust"] -> {"rounds": "5", "stack": "robust"}."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, found {pair!r}")
        out[key.strip()] = value.strip()
    return out


def fields_help(defaults: dict) -> str:
    """One line a field: name=default (`defaults` over the dataclass defaults) and what it means."""
    base = ExperimentConfig()
    current = {**{k: getattr(base, k) for k in TOP_KEYS}, **{k: getattr(base.local, k) for k in LOCAL_KEYS}, **defaults}
    keys = (*TOP_KEYS, *LOCAL_KEYS)
    width = max(len(f"{k}={current[k]}") for k in keys)
    return "fields (--set KEY=VALUE or a TOML file; the default shown):\n" + "\n".join(
        f"  {f'{k}={current[k]}':<{width}}  {FIELDS.get(k, '')}".rstrip() for k in keys)
