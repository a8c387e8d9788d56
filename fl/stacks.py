"""The experiment's stack: a preset name or a spec string ("clip(bound=1) > skellam(noise_multiplier=1) > secagg+"),
read into layer specs (`protocols.core.stack`) and built for a round's participants.

The presets are data: lists of (layer, fields), outermost first, where a value "$name" is the experiment's
field `name` (clip, rule, noise_multiplier, mechanism, bits). The experiment loop never switches on a name:
what it needs to know (the output is a model, a sum or a mean; who observes what; a robust rule's f) comes
from the specs' `traits`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

from protocols import Protocol
from protocols.core.stack import REGISTRY, BuiltLayer, LayerSpec, StackContext, StackError, StackTraits, build, check, parse, traits

_CLIP = ("clip", {"bound": "$clip"})
_DDP = ("ddp", {"mechanism": "$mechanism", "noise_multiplier": "$noise_multiplier"})
PRESETS: dict[str, tuple[tuple[str, dict], ...]] = {
    "plain": (("plain", {}),),
    "secagg+": (_CLIP, ("discretize", {"fit": "scaled"}), ("secagg+", {"bits": 32, "active": "$active"})),
    "ddp+secagg+": (_CLIP, _DDP, ("secagg+", {"bits": "$bits", "active": "$active"})),
    "robust": (("robust", {"rule": "$rule"}),),
    "central-dp": (_CLIP, ("central-dp", {"noise_multiplier": "$noise_multiplier"}), ("robust", {"rule": "$rule"})),
    "local-dp": (_CLIP, ("local-dp", {"noise_multiplier": "$noise_multiplier"}), ("robust", {"rule": "$rule"})),
    "ckks": (_CLIP, ("ckks", {})),
    "ckks-robust": (_CLIP, ("ckks-robust", {"rule": "$rule"})),
    "two-server": (_CLIP, ("discretize", {}), ("two-server", {"rule": "$rule"})),
    "ddp+two-server": (_CLIP, _DDP, ("two-server", {"rule": "$rule", "bits": "$bits"})),
    "hidden-state": (_CLIP, ("gaussian", {"noise_multiplier": "$noise_multiplier"}), ("hidden-state", {})),
}
# the presets whose rule is the experiment's `rule`, and the rules their layer accepts
PRESET_RULES: dict[str, tuple[str, ...]] = {
    name: REGISTRY[layer].fields["rule"].choices for name, specs in PRESETS.items() for layer, fields in specs if fields.get("rule") == "$rule"
}
# stand-ins for the "$name" values, to read a preset's traits without an experiment (they take no part in them)
TRAIT_VALUES = {"clip": 1.0, "rule": "krum", "noise_multiplier": 1.0, "mechanism": "skellam", "bits": 20, "active": False}


def preset_specs(name: str, values: object) -> tuple[LayerSpec, ...]:
    """The specs of preset `name`, with each "$field" read from `values` (an experiment config or a mapping)."""
    def value(v: object) -> object:
        if isinstance(v, str) and v.startswith("$"):
            return values[v[1:]] if isinstance(values, Mapping) else getattr(values, v[1:])
        return v

    return tuple(LayerSpec(layer, tuple((k, value(v)) for k, v in fields.items())) for layer, fields in PRESETS[name])


def preset_fields(name: str) -> tuple[str, ...]:
    """The experiment fields preset `name` reads (its "$field" values), sorted: e.g. ("clip", "rule") for two-server."""
    return tuple(sorted({v[1:] for _, fields in PRESETS[name] for v in fields.values() if isinstance(v, str) and v.startswith("$")}))


def is_preset(stack: str) -> bool:
    return stack in PRESETS


def stack_specs(config: object) -> tuple[LayerSpec, ...]:
    """`config.stack` as specs: a preset with the config's values, or the parsed spec string.

    Raises:
        StackError: naming the position and layer, with the presets listed when `stack` is neither.
    """
    if is_preset(config.stack):
        return preset_specs(config.stack, config)
    try:
        return parse(config.stack)
    except StackError as exc:
        raise StackError(f"stack must be one of the presets ({', '.join(PRESETS)}) or layers like 'clip(bound=1) > secagg+', "
                         f"found {config.stack!r}: {exc}") from None


def checked_specs(config: object) -> tuple[LayerSpec, ...]:
    """`stack_specs`, every field validated (`protocols.core.stack.check`).

    Raises:
        StackError: "stack must be one of ..." for an unknown layer, else naming the position, layer and field.
    """
    specs = stack_specs(config)
    try:
        check(specs)
    except StackError as exc:
        if exc.field is None and "unknown layer" in str(exc):
            raise StackError(f"stack must be one of the presets ({', '.join(PRESETS)}) or layers like 'clip(bound=1) > secagg+', "
                             f"found {config.stack!r}: {exc}", layer=exc.layer, position=exc.position) from None
        raise
    return specs


def preset_traits(name: str) -> StackTraits:
    """The traits of preset `name` (observers, output, ...), which take no experiment values."""
    return traits(preset_specs(name, TRAIT_VALUES))


def context(config: object, dim: int, initial: np.ndarray | None, participants: int, robust_f: int) -> StackContext:
    """What the factories derive from: noise shares are planned for the expected survivors of
    `config.participants`, and the shares of possibly Byzantine clients are not counted."""
    return StackContext(dim=dim, participants=participants, expected=max(1, math.floor(config.participants * (1 - config.dropout))),
                        dropout=config.dropout, delta=config.delta, byzantine=config.byzantine_clients, f=robust_f, initial=initial)


def build_specs(specs: tuple[LayerSpec, ...], ctx: StackContext) -> tuple[Protocol, list[BuiltLayer]]:
    """The built protocol and each layer as built (every derived parameter)."""
    record: list[BuiltLayer] = []
    return build(specs, ctx, record=record), record


def label(stack: str) -> str:
    """A file-name-safe name: the preset, or the layer names joined by '-' ("clip-randk-skellam-two-server")."""
    if is_preset(stack):
        return stack
    names = [re.sub(r"[^A-Za-z0-9+_-]", "", part.split("(")[0].strip()) for part in re.split(r">(?![^(]*\))", stack)]
    return "-".join(n for n in names if n)[:80] or "stack"
