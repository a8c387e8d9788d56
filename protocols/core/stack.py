"""A stack is data: an ordered list of layer specs, outermost first, built by the factories that each
layer module registers next to its class.

    specs = parse("clip(bound=1) > randk(fraction=0.25) > skellam(noise_multiplier=1) > two-server(rule=multi_krum, f=2)")
    protocol = build(specs, StackContext(dim=62, participants=10))

A registration names the layer, its fields (type, default, range) and what the layer is (`Traits`: who
sees what, what it outputs). `check(specs)` validates every field without building; `build` calls the
factories outermost first. A factory gets its validated fields, the context at its position (what the
outer layers decided: the clip bound, the dimension, the discretization scale) and `inner`, which builds
the rest of the stack from the context the factory passes on; a leaf (a protection) gets no `inner`.
Every error is a `StackError` naming the position, the layer, the field and the value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from protocols.core.protocol import Protocol
from protocols.core.stack_spec import NAME, LayerSpec, StackError, format_specs, from_tables, parse  # noqa: F401  (the spec side, here too)

REQUIRED = object()  # a Field without a default (None: the factory derives it from the context)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a layer: its type (int, float, str, bool), default (REQUIRED, or None: derived), an
    accepted range (`check`, described by `expect`) or `choices`."""

    kind: type
    default: object = REQUIRED
    check: Callable[[object], bool] | None = None
    expect: str = ""
    choices: tuple | None = None

    def coerce(self, name: str, value: object) -> object:
        if value is None and self.default is None:
            return None
        if value is None and self.choices is not None and "none" in self.choices:
            value = "none"  # an unquoted `none` for a field whose choices spell it
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (self.kind in (int, float) and isinstance(value, bool)):
            raise TypeError(f"expected {self.kind.__name__}, found {type(value).__name__} {value!r}")
        if self.kind is float and not math.isfinite(value):
            raise ValueError(f"must be finite, found {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{name} must be one of {list(self.choices)}, found {value!r}")
        if self.check is not None and not self.check(value):
            raise ValueError(f"{name} must be {self.expect}, found {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class Traits:
    """What a layer is, read without building it.

    `observers` (a protection): observer -> view (`fl.privacy`: clear, aggregate, released, own share, final
    model); `output` (a protection): "sum" of the included inputs, "mean" (a rule's output) or "model" (the
    hidden-state model). `clips`: a client-side clip a skipping client can leave out. `shares`: clients send
    additive shares. `all_stages`: every masking Stage exists (else the round ends at MASKED_INPUT).
    `robust`: a robust rule with its own f. `needs_initial`: built from the initial model. `local_noise`,
    `central_noise`: local or central DP. `splits`: runs with remote clients (Flower) today."""

    observers: Mapping[str, str] | None = None
    output: str | None = None
    clips: bool = False
    shares: bool = False
    all_stages: bool = False
    robust: bool = False
    needs_initial: bool = False
    local_noise: bool = False
    central_noise: bool = False
    splits: bool = True


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    factory: Callable[..., Protocol]
    fields: Mapping[str, Field]
    leaf: bool
    traits: Callable[[dict], Traits]
    ring_bits: Callable[[dict, StackContext], int] | None
    ring_noise: bool
    flow: Mapping[str, str]
    about: str


REGISTRY: dict[str, Entry] = {}


def register(name: str, *, fields: Mapping[str, Field] | None = None, leaf: bool = False,
             traits: Traits | Callable[[dict], Traits] = Traits(),
             ring_bits: Callable[[dict, StackContext], int] | None = None, ring_noise: bool = False, flow: Mapping[str, str] | None = None,
             about: str = "") -> Callable:
    """Decorator: registers `factory(values, ctx, inner)` (a leaf: `factory(values, ctx)`) as layer `name`.

    `ring_bits(values, ctx)`: the ring Z_2^bits a ring protocol works in (outer layers size their scale for it).
    `ring_noise`: the layer adds integer noise of its field `noise_multiplier` in the ring (a discretize layer
    outside sizes its scale for it). `flow`: what the layer takes -> what it gives its inner layer, "floats"
    (update units) or "ring" (elements of Z_2^bits); default {"floats": "floats"} (a protection: {"floats": ""}).

    Raises:
        ValueError: if `name` is taken or not a layer name.
    """
    if not NAME.fullmatch(name):
        raise ValueError(f"layer name must match {NAME.pattern}, found {name!r}")

    def add(factory: Callable[..., Protocol]) -> Callable[..., Protocol]:
        if name in REGISTRY:
            raise ValueError(f"layer {name!r} is already registered (by {REGISTRY[name].factory.__module__})")
        REGISTRY[name] = Entry(name, factory, dict(fields or {}), leaf, traits if callable(traits) else (lambda values: traits), ring_bits,
                               ring_noise, dict(flow or {"floats": "" if leaf else "floats"}), about)
        return factory

    return add


def validated(spec: LayerSpec, position: int) -> tuple[Entry, dict]:
    """The registry entry of `spec` and its field values with defaults (None: derived by the factory).

    Raises:
        StackError: for an unknown layer, an unknown or missing field, or a value of the wrong type or range.
    """
    entry = REGISTRY.get(spec.layer)
    if entry is None:
        raise StackError(f"unknown layer; known: {', '.join(sorted(REGISTRY))}", layer=spec.layer, position=position)
    values = {}
    for key, value in spec.fields:
        if key not in entry.fields:
            raise StackError(f"unknown field; {spec.layer} takes {', '.join(entry.fields) or 'no fields'}", layer=spec.layer,
                             position=position, field=key)
        try:
            values[key] = entry.fields[key].coerce(key, value)
        except (TypeError, ValueError) as exc:
            raise StackError(str(exc), layer=spec.layer, position=position, field=key) from None
    for key, spec_field in entry.fields.items():
        if key not in values:
            if spec_field.default is REQUIRED:
                raise StackError("is required", layer=spec.layer, position=position, field=key)
            values[key] = spec_field.default
    return entry, values


def check(specs: Iterable[LayerSpec], inputs: str = "floats") -> tuple[tuple[Entry, dict], ...]:
    """Validates every spec and the order without building anything: exactly one leaf, innermost, and each
    layer takes what the layer outside it gives (`inputs`, "floats" or "ring", for the outermost).

    Raises:
        StackError: naming the position and layer at fault.
    """
    specs = tuple(specs)
    if not specs:
        raise StackError("a stack needs at least one layer")
    out = tuple(validated(s, i) for i, s in enumerate(specs, start=1))
    for i, (entry, _) in enumerate(out, start=1):
        if entry.leaf and i < len(out):
            raise StackError(f"is a protection (innermost only), but {len(out) - i} layer(s) follow it", layer=entry.name, position=i)
    if not out[-1][0].leaf:
        raise StackError(f"the innermost layer must be a protection ({', '.join(sorted(n for n, e in REGISTRY.items() if e.leaf))})",
                         layer=out[-1][0].name, position=len(out))
    kind = inputs
    for i, (entry, _) in enumerate(out, start=1):
        if kind not in entry.flow:
            given = "the stack's inputs are" if i == 1 else f"the layer outside it ({out[i - 2][0].name}) gives"
            fix = "; put discretize or a noise layer (skellam, ddg) outside it" if kind == "floats" else ""
            raise StackError(f"takes {' or '.join(entry.flow)}, but {given} {kind}{fix}", layer=entry.name, position=i)
        kind = entry.flow[kind]
    return out


@dataclass(frozen=True, slots=True)
class StackTraits:
    """The traits of a whole stack: the protection's observers and output, and whether any layer clips,
    adds local or central noise, runs a robust rule (and its f, None: the context's), or cannot split."""

    observers: Mapping[str, str]
    output: str
    clips: bool
    shares: bool
    all_stages: bool
    robust: bool
    robust_f: int | None
    needs_initial: bool
    local_noise: bool
    central_noise: bool
    splits: bool


def traits(specs: Iterable[LayerSpec]) -> StackTraits:
    """What `specs` will be once built (`check`ed first). Local noise before a protection whose server sees
    the clear inputs turns every view into each client's own noise share."""
    checked = check(specs)
    layer_traits = [entry.traits(values) for entry, values in checked]
    leaf = layer_traits[-1]
    observers = dict(leaf.observers or {})
    local = any(t.local_noise for t in layer_traits)
    if local and "clear" in observers.values():
        observers = {name: "own share" for name in observers}
    robust = [values for (_, values), t in zip(checked, layer_traits, strict=True) if t.robust]
    return StackTraits(observers=observers, output=leaf.output or "sum", clips=any(t.clips for t in layer_traits),
                       shares=any(t.shares for t in layer_traits), all_stages=leaf.all_stages, robust=bool(robust),
                       robust_f=robust[0].get("f") if robust else None, needs_initial=any(t.needs_initial for t in layer_traits),
                       local_noise=local, central_noise=any(t.central_noise for t in layer_traits),
                       splits=all(t.splits for t in layer_traits))


@dataclass(frozen=True)
class StackContext:
    """What factories derive from. Set by the caller: `dim` (update length), `participants` m a round,
    `expected` survivors the noise is planned for (None: m), `dropout` (expected fraction), `delta`,
    `byzantine` (clients that may be Byzantine among the participants: their noise shares are not counted),
    `f` (a robust rule's default), `initial` (the hidden-state model). Set by outer layers for the inner
    ones: `clip` (L2 bound, update units), `scale` (integer units per update unit), `beta` (conditional
    rounding), `norm_bound` (L2 bound of what reaches the protection, ring units; None: unbounded, e.g. noised),
    `clip_bounds_input` (False once a layer changed the inputs after the clip: noise shares, stochastic quantization),
    `noise_std` (per-coordinate stddev, update units, of the float Gaussian noise each input carries from layers between
    the clip and here), `clip_dropped_by` (the layer between that left no bound from the clip: top-k's error feedback,
    an adaptive clip's moving norm; "" if none), `rotated` (True inside a random rotation: each coordinate about
    N(0, ||x||**2 / d); top-k makes it False again). A clip layer resets clip_bounds_input, noise_std and clip_dropped_by."""

    dim: int
    participants: int
    expected: int | None = None
    dropout: float = 0.0
    delta: float = 1e-5
    byzantine: int = 0
    f: int = 1
    initial: np.ndarray | None = field(default=None, repr=False, compare=False)
    clip: float | None = None
    scale: float | None = None
    beta: float | None = None
    norm_bound: float | None = None
    clip_bounds_input: bool = True
    noise_std: float = 0.0
    clip_dropped_by: str = ""
    rotated: bool = False
    rest: tuple[LayerSpec, ...] = ()  # the specs inside the layer being built
    position: int = 0  # of the layer being built (1 = outermost)
    layer: str = ""  # its name

    def __post_init__(self) -> None:
        if self.dim < 1 or self.participants < 1 or (self.expected is not None and self.expected < 1):
            raise ValueError(f"need dim >= 1, participants >= 1, expected >= 1 or None; found {self.dim}, {self.participants}, "
                             f"{self.expected}")

    def replace(self, **changes) -> StackContext:
        return dataclasses.replace(self, **changes)

    @property
    def survivors(self) -> int:
        return self.expected or self.participants

    def require(self, name: str, why: str) -> object:
        """The context value `name`, or a StackError naming this layer and why it needs it."""
        value = getattr(self, name)
        if value is None:
            raise StackError(f"needs {why}", layer=self.layer, position=self.position)
        return value

    def ring_bits(self) -> int:
        """The ring of the first ring protocol inside this position (for a scale sized to it).

        Raises:
            StackError: if none of the inner layers works in a ring.
        """
        for offset, spec in enumerate(self.rest, start=1):
            entry, values = validated(spec, self.position + offset)
            if entry.ring_bits is not None:
                return entry.ring_bits(values, self)
        raise StackError(f"needs a ring protocol inside it (one of {', '.join(sorted(n for n, e in REGISTRY.items() if e.ring_bits))})",
                         layer=self.layer, position=self.position)

    def need_inputs(self, floors: Mapping[str, tuple[str, int]], *, rows: int | None = None, given: str = "the participants") -> None:
        """Refuses a protection whose round needs at least max(floors) inputs (field -> (what sets the floor, the floor)),
        e.g. a robust rule's 2f + 1 or a min_clients, but gets `rows` (default: the participants, described by `given`)
        with every client present: it would abort every round (reviews 12, 13).

        Raises:
            StackError: naming the field with the largest floor, every floor and `rows`.
        """
        rows = self.participants if rows is None else rows
        field, (_, need) = max(floors.items(), key=lambda item: item[1][1])
        if rows < need:
            named = ", ".join(f"{what} = {floor}" for what, floor in floors.values())
            raise StackError(f"the round needs >= {need} inputs ({named}), found {rows} ({given})", layer=self.layer, position=self.position,
                             field=field)

    def _noise_specs_inside(self) -> list[dict]:
        """Every distributed-noise layer's field values inside this position (its defaults filled in), outermost first."""
        specs = []
        for spec in self.rest:
            entry = REGISTRY.get(spec.layer)
            if entry is not None and entry.ring_noise:
                specs.append({"layer": spec.layer, **{name: f.default for name, f in entry.fields.items() if f.default is not REQUIRED}, **dict(spec.fields)})
        return specs

    def noise_layers_inside(self) -> list[tuple[float, str]]:
        """(noise_multiplier, mechanism) of every distributed-noise layer inside this position, outermost first (the
        mechanism: its `mechanism` field, else its name, "skellam" or "ddg")."""
        return [(float(spec.get("noise_multiplier", 0.0)), spec.get("mechanism", spec["layer"])) for spec in self._noise_specs_inside()]

    def wrap_probability_inside(self, own: float) -> float:
        """The smallest wrap_probability among `own` and the distributed-noise layers inside this position: the layer that
        chooses the ring's scale meets theirs too (review 23: an inner layer's own field was ignored)."""
        return min([own, *(float(spec["wrap_probability"]) for spec in self._noise_specs_inside() if "wrap_probability" in spec)])

    def noise_inside(self) -> float | None:
        """The noise multiplier of all the distributed-noise layers inside this position together, sqrt(sum z_i**2)
        (independent noises add their variances; review 21: the first layer's alone under-sized the ring), or None."""
        layers = self.noise_layers_inside()
        return math.sqrt(sum(z**2 for z, _ in layers)) if layers else None




@dataclass(frozen=True, slots=True)
class BuiltLayer:
    """One spec as built: the spec as given, and every protocol object it made with its parameters."""

    position: int
    spec: LayerSpec
    built: tuple[dict, ...]

    def to_dict(self) -> dict:
        return {"position": self.position, "given": self.spec.to_dict(), "built": list(self.built)}


def build(specs: Iterable[LayerSpec], context: StackContext, *, record: list[BuiltLayer] | None = None, inputs: str = "floats") -> Protocol:
    """The protocol of `specs` (outermost first) for `context` and `inputs` (see `check`); appends each layer
    as built to `record`.

    Raises:
        StackError: naming the position, layer and field, for what `check` refuses and for what a
            factory cannot derive (e.g. a ring too small for the participants and dimension).
    """
    specs = tuple(specs)
    checked = check(specs, inputs)
    built: dict[int, Protocol] = {}

    def at(i: int, ctx: StackContext) -> Protocol:
        if i >= len(specs):
            raise StackError("needs an inner layer", layer=specs[-1].layer, position=len(specs))
        entry, values = checked[i]
        ctx = ctx.replace(rest=specs[i + 1 :], position=i + 1, layer=entry.name)
        try:
            protocol = entry.factory(values, ctx) if entry.leaf else entry.factory(values, ctx, lambda inner: at(i + 1, inner))
        except StackError:
            raise
        except (TypeError, ValueError) as exc:  # a class's own check, e.g. a threshold the participants cannot meet
            raise StackError(str(exc), layer=entry.name, position=i + 1) from None
        built[i] = protocol
        return protocol

    top = at(0, context)
    if record is not None:
        for i, spec in enumerate(specs):
            stop = built.get(i + 1)
            objects, layer = [], built.get(i)
            while layer is not None and layer is not stop:  # a spec may build several objects (skellam: rotation, discretize, noise)
                objects.append(describe(layer))
                layer = getattr(layer, "inner", None)
            record.append(BuiltLayer(i + 1, spec, tuple(objects)))
    return top


def describe(protocol: Protocol) -> dict:
    """{"class": ..., scalar parameters}: the dataclass fields of `protocol` that are numbers, strings,
    booleans or None (not the inner layer, arrays or private state)."""
    out: dict = {"class": type(protocol).__name__}
    if dataclasses.is_dataclass(protocol):
        for f in dataclasses.fields(protocol):
            value = getattr(protocol, f.name, None)
            if f.name.startswith("_") or f.name == "inner":
                continue
            if isinstance(value, (bool, int, float, str)) or value is None:
                out[f.name] = value
            elif isinstance(value, dict) and all(isinstance(v, (bool, int, float, str)) for v in value.values()):
                out[f.name] = dict(value)
    return out


def innermost(protocol: Protocol) -> Protocol:
    """The protection at the bottom of a stack of layers."""
    while hasattr(protocol, "inner"):
        protocol = protocol.inner
    return protocol


def uncounted(ctx: StackContext, protection: Protocol) -> int:
    """Noise shares of m participants that do not count: as many Byzantine clients as can be among them,
    plus those the innermost protection declares may collude with the server (its `declared_colluding(m)`,
    none if it declares nothing), at most m."""
    m = ctx.participants
    declared = getattr(innermost(protection), "declared_colluding", None)
    return min(m, min(m, ctx.byzantine) + (declared(m) if declared is not None else 0))
