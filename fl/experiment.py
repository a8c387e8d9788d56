"""The federated round loop: clients train locally, Byzantine and mistaken clients misbehave, some drop,
and a protocol stack from `protocols` aggregates the updates; the server applies the decoded aggregate.

The loop only calls `secure_sum(updates, protocol=stack, dropouts=...)`, so clients could live anywhere a
transport can reach. Each round records accuracy, loss, who was included, every layer's report, this round's
epsilon of the noise that reached the output, and each observer's cumulative epsilon.

Simulation conventions: every random choice, the protocols' secrets included, comes from three seeds
(reproducible runs; never for real data), each defaulting to `config.seed`: `data_seed` (split, partition,
who is Byzantine or mistaken, their labels, who takes part each round, attack noise), `model_seed` (initial
model, minibatch order) and `protocol_seed` (dropouts, the protocols' secrets). Each round draws a fixed
number of participants (`participation="fixed"`), with exactly `attackers_per_round` Byzantine clients among
them, or lets each client join with probability `sample_fraction` ("poisson"; the attackers among them vary).
The cumulative epsilon is per observer (`fl.privacy`): the server, which samples, never gets amplification by
sampling; the released model gets the without-replacement bound under fixed-size sampling.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fl.adversaries import ATTACKS, MISLABEL_KINDS, UPDATE_ATTACKS, attack, byzantine_counts, draw_round, flip_labels, mislabel
from fl.datasets import Dataset, check_data, federate
from fl.models import build, get_flat
from fl.momentum import ClientMomentum, ServerMomentum
from fl.privacy import ObserverEpsilon, RoundNoise, epsilon_by_observer
from fl.stacks import PRESET_RULES, PRESETS, build_specs, checked_specs, context, preset_traits
from fl.training import LocalConfig, evaluate, local_updates, start_workers
from protocols import Aborted, Deviation, DropoutSchedule, LayerReport, Protocol, ProtocolError, Stage, secure_sum
from protocols.accounting import ConvexSmooth, HiddenStateEpsilon, Mechanism, last_iterate_epsilon
from protocols.byzantine_shares import BYZANTINE_SHARE_MODES, ByzantineShares
from protocols.core.stack import BuiltLayer, LayerSpec, StackTraits, innermost, traits
from protocols.layers import AdaptiveClip
from protocols.layers.noise import MECHANISMS
from protocols.robust import RULES
from secagg import SeededRandomness

# The preset names, and the presets by trait (read from their specs: `fl.stacks`).
STACKS = tuple(PRESETS)
MEAN_STACKS = tuple(s for s in STACKS if preset_traits(s).output == "mean")  # these return the rule's output; "hidden-state" the model; the others a sum
PARTICIPATION = ("fixed", "poisson")
ENGINES = ("in-process", "flower-sim", "flower-deployment")
FLOWER_STACKS = tuple(s for s in STACKS if preset_traits(s).splits)  # their protocols split a round (protocols.core.protocol)
SHARE_STACKS = tuple(s for s in STACKS if preset_traits(s).shares)  # their clients send additive shares (protocols.byzantine_shares)
CLIP_STACKS = tuple(s for s in STACKS if preset_traits(s).clips)  # a client-side clip layer to skip
MASKING_STACKS = tuple(s for s in STACKS if preset_traits(s).all_stages)  # every Stage exists; the other stacks end at MASKED_INPUT
SHARE_MODES = tuple(m for m in BYZANTINE_SHARE_MODES if m not in ("replayed", "honest-copy"))  # these need a victim sending first
BYZANTINE_PROTOCOL = ("none", "skip-clip", "drop", *(f"shares-{m}" for m in SHARE_MODES))
DROP_STAGES = ("none", *(s.name.lower() for s in Stage))
STACK_RULES = PRESET_RULES  # the presets that take the experiment's rule, and the rules each accepts


class DeviationUnsupported(ValueError):
    """The config asks Byzantine clients for a protocol deviation the stack has no hook for."""


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment. Fractions are of all clients; `sample_fraction` picks a fixed number of participants a round
    (`participation="fixed"`) or is each client's probability of joining a round ("poisson")."""

    data: str = "breast_cancer"
    model: str = "logreg"
    hidden: int = 64  # width of the MLP's hidden layer
    clients: int = 20
    rounds: int = 10
    sample_fraction: float = 1.0
    participation: str = "fixed"
    partition: str = "iid"
    alpha: float = 0.5
    local: LocalConfig = field(default_factory=lambda: LocalConfig(epochs=1, batch_size=16, lr=0.1))
    client_momentum: float = 0.0  # beta: each client sends m <- beta m + (1 - beta) u, kept across its rounds (fl.momentum)
    server_lr: float = 1.0  # the server applies v <- server_momentum v + g; params <- params + server_lr v
    server_momentum: float = 0.0
    stack: str = "secagg+"  # a preset name (STACKS) or layers, outermost first: "clip(bound=1) > skellam(noise_multiplier=1) > secagg+"
    rule: str = "krum"
    byzantine: float = 0.0  # fraction of the clients, and of each round's participants (floored), that attack
    attackers: int | None = None  # instead: exactly this many attackers among each round's participants
    f: int | None = None  # the robust rule's f (default: attackers a round, at least 1, below participants / 2)
    attack: str = "alie"
    alie_z: float | None = None  # ALIE's z (default: Baruch et al.'s z from participants and attackers)
    ipm_epsilon: float = 0.1
    gaussian_sigma: float = 200.0  # update units
    byzantine_protocol: str = "none"  # how attackers deviate from the protocol (BYZANTINE_PROTOCOL; see `_deviations`)
    byzantine_drop_stage: str = "none"  # with byzantine_protocol="drop": the Stage (lower case) they stop sending at
    mistaken: float = 0.0
    mislabel_fraction: float = 0.5
    mislabel_kind: str = "uniform"  # uniform, class_pair (systematic) or per_class rates
    synthetic_alpha: float = 1.0  # data="synthetic": Synthetic(alpha, beta) of Li et al.; alpha moves the models apart
    synthetic_beta: float = 1.0  # and beta the inputs
    synthetic_samples: int = 100  # samples a synthetic client
    dropout: float = 0.0
    clip: float = 1.0
    noise_multiplier: float = 0.5
    mechanism: str = "skellam"
    bits: int = 20
    delta: float = 1e-5
    test_fraction: float = 0.2
    seed: int = 0
    data_seed: int | None = None  # None: seed
    model_seed: int | None = None
    protocol_seed: int | None = None
    active: bool = False  # masking stacks: signed messages and a consistency check against an active server
    engine: str = "in-process"

    def __post_init__(self) -> None:
        stack = self.traits  # validates every layer's fields (StackError, a ValueError naming the position, layer and field)
        rules = STACK_RULES.get(self.stack, tuple(sorted(RULES)))
        checks = [
            (self.rule in rules, f"rule must be one of {list(rules)} for stack {self.stack!r}, found {self.rule!r}"),
            (self.attack in ATTACKS, f"attack must be one of {sorted(ATTACKS)}, found {self.attack!r}"),
            (self.mislabel_kind in MISLABEL_KINDS, f"mislabel_kind must be one of {MISLABEL_KINDS}, found {self.mislabel_kind!r}"),
            (self.clients >= 3, f"clients must be >= 3, found {self.clients}"),
            (self.hidden >= 1, f"hidden must be >= 1, found {self.hidden}"),
            (self.rounds >= 1, f"rounds must be >= 1, found {self.rounds}"),
            (0 < self.sample_fraction <= 1, f"sample_fraction must be in (0, 1], found {self.sample_fraction}"),
            (self.participation in PARTICIPATION, f"participation must be one of {PARTICIPATION}, found {self.participation!r}"),
            (self.participation == "fixed" or (self.engine == "in-process" and stack.output != "model"),
             f"participation 'poisson' runs in process and not with hidden-state (its encrypted model lives in one protocol sized "
             f"for a fixed count), found engine {self.engine!r}, stack {self.stack!r}"),
            (0 <= self.byzantine < 0.5, f"byzantine must be in [0, 0.5), found {self.byzantine}"),
            (self.attackers is None or self.byzantine == 0, f"set byzantine or attackers, not both; found byzantine={self.byzantine}, attackers={self.attackers}"),
            (self.attackers is None or self.participation == "fixed", f"attackers (an exact count a round) needs participation 'fixed', found {self.participation!r}"),
            (self.attackers is None or 0 <= self.attackers < self.participants, f"attackers must be in [0, participants={self.participants}), found {self.attackers}"),
            (self.f is None or 0 <= self.f <= (self.participants - 1) // 2, f"f must be in [0, {(self.participants - 1) // 2}] for {self.participants} participants, found {self.f}"),
            (self.alie_z is None or self.alie_z >= 0, f"alie_z must be >= 0, found {self.alie_z}"),
            (self.ipm_epsilon > 0 and self.gaussian_sigma > 0, f"ipm_epsilon and gaussian_sigma must be > 0, found {self.ipm_epsilon}, {self.gaussian_sigma}"),
            (self.synthetic_alpha >= 0 and self.synthetic_beta >= 0 and self.synthetic_samples >= 2,
             f"synthetic_alpha, synthetic_beta must be >= 0 and synthetic_samples >= 2, found {self.synthetic_alpha}, {self.synthetic_beta}, {self.synthetic_samples}"),
            (0 <= self.mistaken <= 1, f"mistaken must be in [0, 1], found {self.mistaken}"),
            (0 <= self.mislabel_fraction <= 1, f"mislabel_fraction must be in [0, 1], found {self.mislabel_fraction}"),
            (0 <= self.client_momentum < 1, f"client_momentum must be in [0, 1), found {self.client_momentum}"),
            (self.client_momentum == 0 or self.engine == "in-process",
             f"client_momentum keeps each client's state in the in-process loop: engine must be 'in-process', found {self.engine!r}"),
            (self.client_momentum == 0 or stack.output != "model",
             f"stack 'hidden-state': its last-iterate bound assumes each round's input is one step at the released model, "
             f"so client_momentum must be 0, found {self.client_momentum}"),
            (self.server_lr > 0 and 0 <= self.server_momentum < 1,
             f"server_lr must be > 0 and server_momentum in [0, 1), found server_lr={self.server_lr}, server_momentum={self.server_momentum}"),
            (stack.output != "model" or (self.server_lr == 1 and self.server_momentum == 0),
             f"stack 'hidden-state': the key holder releases the model, so server_lr must be 1 and server_momentum 0, "
             f"found server_lr={self.server_lr}, server_momentum={self.server_momentum}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), found {self.dropout}"),
            (self.clip > 0, f"clip must be > 0, found {self.clip}"),
            (self.noise_multiplier >= 0, f"noise_multiplier must be >= 0, found {self.noise_multiplier}"),
            (2 <= self.bits <= 62, f"bits must be in [2, 62], found {self.bits}"),
            (0 < self.delta < 1, f"delta must be in (0, 1), found {self.delta}"),
            (self.mechanism in MECHANISMS, f"mechanism must be one of {MECHANISMS}, found {self.mechanism!r}"),
            (0 < self.test_fraction < 1, f"test_fraction must be in (0, 1), found {self.test_fraction}"),
            (self.engine in ENGINES, f"engine must be one of {ENGINES}, found {self.engine!r}"),
            (not self.active or self.stack in MASKING_STACKS, f"active applies to the stacks {MASKING_STACKS}, found stack {self.stack!r}"),
            (self.engine == "in-process" or stack.splits,
             f"engine {self.engine!r} runs the stacks whose layers split (presets {FLOWER_STACKS}), found stack {self.stack!r}"),
            (self.engine == "in-process" or stack.output != "model" or self.sample_fraction == 1,
             f"stack {self.stack!r} on engine {self.engine!r}: the key holder seals each model to the round's participants only, "
             f"so every client must take part every round: sample_fraction must be 1, found {self.sample_fraction}"),
            (self.engine == "in-process" or self.byzantine == 0,
             f"engine {self.engine!r} cannot run byzantine clients (their attacks need every honest update), found byzantine={self.byzantine}"),
            (self.engine == "in-process" or not self.attackers, f"engine {self.engine!r} cannot run byzantine clients, found attackers={self.attackers}"),
            (self.engine == "in-process" or self.model_seed in (None, self.seed),
             f"engine {self.engine!r} orders minibatches by seed: model_seed must be unset or equal to seed={self.seed}, found {self.model_seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self._check_deviation()
        check_data(self.data, self.partition)

    def _check_deviation(self) -> None:
        """Validates byzantine_protocol and byzantine_drop_stage (ValueError), and that the stack has the hook
        (DeviationUnsupported)."""
        how, stage = self.byzantine_protocol, self.byzantine_drop_stage
        if how not in BYZANTINE_PROTOCOL:
            raise ValueError(f"byzantine_protocol must be one of {BYZANTINE_PROTOCOL}, found {how!r}")
        if stage not in DROP_STAGES or (how == "drop") != (stage != "none"):
            raise ValueError(f"byzantine_drop_stage must be one of {DROP_STAGES[1:]} with byzantine_protocol 'drop' and 'none' "
                             f"otherwise, found {stage!r} with byzantine_protocol {how!r}")
        if how != "none" and self.byzantine == 0 and not self.attackers:
            raise ValueError(f"byzantine_protocol {how!r} needs Byzantine clients: set byzantine > 0 or attackers >= 1")
        if how == "skip-clip" and not self.traits.clips:
            raise DeviationUnsupported(f"byzantine_protocol 'skip-clip': stack {self.stack!r} has no client-side clip layer (stacks {CLIP_STACKS})")
        if how.startswith("shares-") and not self.traits.shares:
            raise DeviationUnsupported(f"byzantine_protocol {how!r}: stack {self.stack!r} sends no additive shares (stacks {SHARE_STACKS})")
        if how == "drop" and not self.traits.all_stages and Stage[stage.upper()] > Stage.MASKED_INPUT:
            raise DeviationUnsupported(f"byzantine_drop_stage {stage!r}: stack {self.stack!r} ends at masked_input (later stages: {MASKING_STACKS})")

    @cached_property
    def specs(self) -> tuple[LayerSpec, ...]:
        """The stack as given: a preset's specs with this config's values, or the parsed spec string (validated)."""
        return checked_specs(self)

    @cached_property
    def traits(self) -> StackTraits:
        """What the stack is (its observers, output, robust rule...), read from its specs (`protocols.core.stack.traits`)."""
        return traits(self.specs)

    @property
    def participants(self) -> int:
        """Participants a round (fixed), or the expected number (poisson), at least 3."""
        return max(3, round(self.sample_fraction * self.clients))

    @property
    def byzantine_clients(self) -> int:
        """Byzantine clients in the population (`fl.adversaries.byzantine_counts`)."""
        return byzantine_counts(self.clients, self.participants, self.byzantine, self.attackers)[0]

    @property
    def seeds(self) -> dict[str, int]:
        """{"data": ..., "model": ..., "protocol": ...}: each seed field, or `seed` where unset."""
        return {kind: self.seed if value is None else value for kind, value in
                (("data", self.data_seed), ("model", self.model_seed), ("protocol", self.protocol_seed))}

    @property
    def attackers_per_round(self) -> int:
        """The exact number of Byzantine clients among each round's participants (fixed participation)."""
        return byzantine_counts(self.clients, self.participants, self.byzantine, self.attackers)[1]


@dataclass(frozen=True)
class RoundRecord:
    round: int
    loss: float
    accuracy: float
    included: tuple[int, ...]  # participant positions whose updates reached the aggregate
    byzantine: tuple[int, ...]  # client ids that attacked this round
    reports: tuple[LayerReport, ...]
    epsilon: float | None  # this round's, from the noise that reached the output, against the aggregate (None: no noise layer)
    cumulative_epsilon: float | None  # epsilon_by_observer["released model"]'s epsilon (None: no noise layer in the stack)
    epsilon_by_observer: dict[str, ObserverEpsilon] = field(default_factory=dict)  # each observer's cumulative epsilon, bound, assumptions
    aborted: str = ""  # why the round aborted: the model did not change; past "sample" it counts against the servers (fl.privacy)
    deviations: tuple[dict, ...] = ()  # each attacker's protocol deviation: client, position, deviation, rejected (the error, or ""), included


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    rounds: list[RoundRecord] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C stopped the run; `rounds` holds every round that completed
    stack_built: list[BuiltLayer] = field(default_factory=list)  # each layer as first built: its spec and every derived parameter

    @property
    def epsilon_by_observer(self) -> dict[str, ObserverEpsilon]:
        """Each observer's cumulative epsilon after the last round (empty before any)."""
        return self.rounds[-1].epsilon_by_observer if self.rounds else {}


def robust_f(config: ExperimentConfig) -> int:
    """The robust rules' f of the context: `config.f`, else the attackers a round, at least 1, below participants / 2."""
    if config.f is not None:
        return config.f
    m = config.participants
    expected = config.attackers if config.attackers is not None else math.ceil(config.byzantine * m)
    return min((m - 1) // 2, max(1, expected))  # n > 2f always


def build_stack(config: ExperimentConfig, dim: int, initial: np.ndarray | None = None, *, participants: int | None = None,
                record: list[BuiltLayer] | None = None) -> Protocol:
    """The protocol of `config.specs`, sized for `participants` a round (default `config.participants`;
    `initial`: the hidden-state model); appends each layer as built to `record` (`fl.stacks.context`: noise
    shares are planned for the expected survivors, without those of possibly Byzantine or colluding clients)."""
    protocol, built = build_specs(config.specs, context(config, dim, initial, participants or config.participants, robust_f(config)))
    if record is not None:
        record.extend(built)
    return protocol


def _hidden_state_epsilon(config: ExperimentConfig, mechanisms: list, rounds: int, feature_norm: float) -> HiddenStateEpsilon:
    """The final model's epsilon against the aggregator. Last-iterate when each round is one full-batch gradient
    step on logistic regression: softmax cross-entropy is convex and smooth with beta <= max ||(x, 1)||**2 / 2
    (clipping is assumed not to bind, which the clip layer's report lets one check). Otherwise the distributed-DP
    composition of every round (a client in every round: conservative)."""
    weakest = min(mechanisms, key=lambda mech: mech.noise_multiplier)
    one_step = config.local.epochs == 1 and config.local.batch_size is None
    assumptions = ConvexSmooth(smoothness=0.5 * feature_norm**2, learning_rate=config.local.lr) if config.model == "logreg" and one_step else None
    return last_iterate_epsilon(weakest, rounds=rounds, assumptions=assumptions, delta=config.delta)


def _setup(config: ExperimentConfig) -> tuple:
    """(rng, train, test, local data a client, Byzantine client ids, model): deterministic from the config,
    so every engine (and every Flower node) derives the same partitions, mislabelled clients and model."""
    seeds = config.seeds
    rng = np.random.default_rng(seeds["data"])
    train, test, parts = federate(config.data, config.clients, partition=config.partition, alpha=config.alpha, test_fraction=config.test_fraction,
                                  seed=seeds["data"], synthetic_alpha=config.synthetic_alpha, synthetic_beta=config.synthetic_beta,
                                  synthetic_samples=config.synthetic_samples)
    roles = rng.permutation(config.clients)
    byzantine = set(roles[: byzantine_counts(config.clients, config.participants, config.byzantine, config.attackers)[0]].tolist())
    mistaken = set(roles[len(byzantine) : len(byzantine) + int(config.mistaken * config.clients)].tolist())
    local_data = []
    for c, part in enumerate(parts):
        data = train.subset(part)
        if c in mistaken:
            data = Dataset(data.name, data.x, mislabel(data.y, config.mislabel_fraction, data.num_classes, rng=rng, kind=config.mislabel_kind), data.num_classes)
        if c in byzantine and config.attack == "label_flipping":
            data = Dataset(data.name, data.x, flip_labels(data.y, data.num_classes), data.num_classes)
        local_data.append(data)
    model = build(config.model, train.x.shape[1], train.num_classes, hidden=config.hidden, seed=seeds["model"])
    return rng, train, test, local_data, byzantine, model


def evaluation_set(config: ExperimentConfig) -> Dataset:
    """The test set the experiment evaluates each round's model on, as a remote node derives it."""
    return _setup(config)[2]


def local_datasets(config: ExperimentConfig) -> tuple[list[Dataset], object]:
    """Every client's local data and the initial model, as a remote node derives them."""
    _, _, _, local_data, _, model = _setup(config)
    return local_data, model


def run_experiment(config: ExperimentConfig, on_round: Callable[[RoundRecord], None] | None = None, *, remote=None,
                   build: Callable[..., Protocol] | None = None) -> ExperimentResult:
    """Runs `config.rounds` rounds; calls `on_round` after each (for progress). Ctrl-C (KeyboardInterrupt)
    between or during rounds returns the result so far, marked `interrupted`, with every completed round. A protocol
    error that stops a round (any `ProtocolError`: too few clients, a party's abort, a key holder or dealer refusing the
    request, e.g. fewer than 2f + 1 inputs within the norm bound) records that round as aborted (`RoundRecord.aborted`,
    the model kept, the noise its clients sent counted against the parties that saw it) and the next round runs.

    On a Flower engine the rounds run through `fl.flower_engine`, which calls back here with `remote`, the
    object that aggregates a round over Flower; `fl.run_commands.run_on_engine` picks the engine. `build` makes the
    stack in place of `build_stack` (same arguments). Row i of a round is client `chosen[i]`, the id that keys the
    state a layer keeps for a client across rounds (`protocols.core.identity`).
    """
    if config.engine == "flower-sim" and remote is None:
        raise ValueError("engine 'flower-sim' runs through Flower's simulation engine: fl.run_commands.run_on_engine (or `secagg run --engine flower-sim`)")
    if config.engine == "flower-deployment" and remote is None:
        raise ValueError("engine 'flower-deployment' runs under Flower's SuperLink: `secagg flower-app DIR`, then `flwr run DIR` (see README)")
    if remote is None:
        start_workers(config.local, config.participants)
    rng, train, test, local_data, byzantine, model = _setup(config)
    params = get_flat(model)
    stacks: dict[int, Protocol] = {}  # one a participant count (Poisson participation varies it)
    held: dict[int, dict] = {}  # in process, what the stack keeps for each client id between rounds (Protocol.client_state)
    feature_norm = float(np.sqrt(np.max(np.sum(train.x.astype(np.float64) ** 2, axis=1)) + 1.0))
    result = ExperimentResult(config)
    output = config.traits.output  # "model" (hidden state: the key holder releases it), "mean" (a rule's) or "sum"
    noise_rounds: list[RoundNoise] = []
    aborted_noise: list = []  # the own-share mechanism (or None) of each round that aborted after client data was sent
    minimum = _minimum_participants(config)
    seeds = config.seeds
    momentum, server = ClientMomentum(config.client_momentum), ServerMomentum(config.server_lr, config.server_momentum)
    try:
        for r in range(1, config.rounds + 1):
            chosen = _sample(config, rng, byzantine)
            attackers = [i for i, c in enumerate(chosen) if c in byzantine]
            dropouts = DropoutSchedule.random(len(chosen), config.dropout, SeededRandomness(seeds["protocol"] * 7919 + r))
            try:
                if len(chosen) < minimum:
                    raise Aborted(f"{len(chosen)} clients joined, fewer than the {minimum} this stack needs", party="server", stage="sample")
                if len(chosen) not in stacks:
                    built = {} if build else {"record": result.stack_built if not result.stack_built else None}
                    stacks[len(chosen)] = (build or build_stack)(config, len(params), params, participants=len(chosen), **built)
                stack = stacks[len(chosen)]
                if remote is not None:  # the clients train and protect their updates on their own nodes
                    out = remote.aggregate(r, chosen, params, stack, dropouts, seeds["protocol"] * 104_729 + r)
                else:
                    updates = local_updates(model, params, [local_data[c] for c in chosen], config.local,
                                            seeds=[seeds["model"] * 100_003 + r * 1_009 + int(c) for c in chosen])
                    updates = momentum.step(chosen, updates)  # what each client sends; attacks replace the attackers' rows
                    honest = [i for i in range(len(chosen)) if i not in attackers]
                    if attackers and honest and config.attack in UPDATE_ATTACKS:
                        updates[attackers] = attack(config.attack, updates[honest], len(attackers), n=len(chosen), rng=rng, alie_z=config.alie_z,
                                                    ipm_epsilon=config.ipm_epsilon, gaussian_sigma=config.gaussian_sigma)
                    deviations = _deviations(config, stack, attackers, rng)
                    for c in chosen:  # each client's state between rounds, whichever stack object (participant count) runs this one
                        stack.restore_client_state(int(c), held.get(int(c), {}))
                    try:
                        out = secure_sum(updates.astype(np.float32), protocol=stack, dropouts=dropouts, seed=seeds["protocol"] * 104_729 + r,
                                         deviations=deviations, clients=chosen)
                    finally:  # kept as the clients left it, as a remote client's node keeps it (fl.flower_engine), even if the round aborts
                        held.update({int(c): stack.client_state(int(c)) for c in chosen})
            except ProtocolError as exc:  # any party stopped the round (Aborted, BelowThreshold, a key holder's or dealer's Refused, ...):
                # the model stays, the run goes on; the parties may have seen data-dependent values
                loss, accuracy = (remote.evaluate if remote is not None else evaluate)(model, params, test)
                if exc.stage not in NOTHING_SENT:
                    own = _noise_layer(stacks[len(chosen)])
                    aborted_noise.append(own.share_mechanism() if own is not None else None)
                    adaptive = _adaptive_clip(stacks[len(chosen)])
                    while adaptive is not None:  # each count may have been opened before the abort (reviews 10, 11): one share, an upper bound
                        count = _noise_layer(adaptive.count)
                        aborted_noise.append(count.share_mechanism() if count is not None else None)
                        adaptive = _adaptive_clip(adaptive.inner)
                by_observer = _epsilon_by_observer(config, noise_rounds, r, feature_norm, aborted_noise)
                result.rounds.append(RoundRecord(round=r, loss=loss, accuracy=accuracy, included=(), byzantine=tuple(int(chosen[i]) for i in attackers),
                                                 reports=(), epsilon=None, cumulative_epsilon=_headline(by_observer, noise_rounds),
                                                 epsilon_by_observer=by_observer, aborted=str(exc),
                                                 deviations=_what_attackers_did(config, chosen, attackers, None)))
                if on_round is not None:
                    on_round(result.rounds[-1])
                continue
            if output == "model":
                params = out.result.astype(np.float32)  # the model the key holder released to the clients (NaN at a remote aggregator)
            else:
                aggregate = out.result if output == "mean" else out.result / _denominator(config, len(out.included))
                params = server.step(params, aggregate)
            loss, accuracy = (remote.evaluate if remote is not None else evaluate)(model, params, test)
            queries = [rep.guarantee for rep in out.reports if rep.layer == AdaptiveClip.name]  # its noisy count: a query of its own
            noise = next((rep.guarantee for rep in out.reports if rep.guarantee.epsilon is not None and rep.layer != AdaptiveClip.name), None)
            if noise is not None or queries:  # dp_mechanism None: every share that arrived was uncounted, no DP this round
                own = _noise_layer(stack) if noise is not None else None  # no noise on the update beside a count: no DP for the model
                noise_rounds.append(RoundNoise(noise.dp_mechanism if noise else None, own.share_mechanism() if own is not None else None,
                                               int(noise.parameters.get("uncounted_shares", 0)) if noise else 0))
                # composed with the update's, for every observer: the count is masked and summed on its own (secagg+ or secagg,
                # never selected), so even an own-share observer sees only its noisy sum: its own share is the query's mechanism
                noise_rounds.extend(RoundNoise(q.dp_mechanism, q.dp_mechanism) for q in queries)
            else:  # a completed round released its update with no noise: every observer of it is infinite (review 16: with none
                noise_rounds.append(RoundNoise(None, None))  # recorded, a noiseless run read as "nothing released", epsilon 0)
            by_observer = _epsilon_by_observer(config, noise_rounds, r, feature_norm, aborted_noise)
            record = RoundRecord(
                round=r, loss=loss, accuracy=accuracy, included=out.included, byzantine=tuple(int(chosen[i]) for i in attackers),
                reports=out.reports, epsilon=noise.epsilon if noise else None, cumulative_epsilon=_headline(by_observer, noise_rounds),
                epsilon_by_observer=by_observer, deviations=_what_attackers_did(config, chosen, attackers, out),
            )
            result.rounds.append(record)
            if on_round is not None:
                on_round(record)
    except KeyboardInterrupt:
        result.interrupted = True
    return result


def _deviations(config: ExperimentConfig, stack: Protocol, attackers: list[int], rng: np.random.Generator) -> dict[int, Deviation]:
    """The protocol deviation of each attacker position (`config.byzantine_protocol`): "skip-clip" sends the raw
    attack update (no clip, no noise, no norm condition on rounding), "shares-<mode>" rewrites its shares
    (`ByzantineShares` of that mode, at a position drawn from `rng`), "drop" stops at `byzantine_drop_stage`."""
    how = config.byzantine_protocol
    if how == "none":
        return {}
    if how == "skip-clip":
        return {i: Deviation(skip_protection=True) for i in attackers}
    if how == "drop":
        return {i: Deviation(drop=Stage[config.byzantine_drop_stage.upper()]) for i in attackers}
    two_server = innermost(stack)
    return {i: Deviation(tamper=ByzantineShares(i, how.removeprefix("shares-"), int(rng.integers(0, 2**20)),
                                                bound=two_server.squared_bound or 0, bits=two_server.bits).tamper) for i in attackers}


def _what_attackers_did(config: ExperimentConfig, chosen: np.ndarray, attackers: list[int], out) -> tuple[dict, ...]:
    """One entry an attacker when it deviated from the protocol: what it did, the error the protocol rejected it
    with ("" if none; `out` None: the round aborted) and whether its input reached the aggregate."""
    if config.byzantine_protocol == "none":
        return ()
    rejected = {} if out is None else {e.party: f"{type(e).__name__}: {e}" for e in reversed(out.rejected) if hasattr(e, "party")}
    return tuple({"client": int(chosen[i]), "position": i, "deviation": config.byzantine_protocol,
                  "rejected": rejected.get(f"client {i}", ""), "included": out is not None and i in out.included} for i in attackers)


def _sample(config: ExperimentConfig, rng: np.random.Generator, byzantine) -> np.ndarray:
    """This round's participants (sorted client ids): a fixed number with exactly `attackers_per_round` of the
    Byzantine ids among them, or each client with probability sample_fraction."""
    if config.participation == "poisson":
        return np.flatnonzero(rng.random(config.clients) < config.sample_fraction)
    return draw_round(rng, config.clients, config.participants, np.array(sorted(byzantine), dtype=np.int64), config.attackers_per_round)


def _minimum_participants(config: ExperimentConfig) -> int:
    """Fewer participants abort the round: 3, and more than 2f for a robust rule."""
    stack = config.traits
    if not stack.robust:
        return 3
    return max(3, 2 * (robust_f(config) if stack.robust_f is None else stack.robust_f) + 1)


def _denominator(config: ExperimentConfig, included: int) -> float:
    """What a sum stack's aggregate is divided by: the included count, or under Poisson participation the
    expected count q * clients, fixed, so that the released update is a post-processing of the noisy sum."""
    return config.sample_fraction * config.clients if config.participation == "poisson" else max(included, 1)


def _layer_of(stack: Protocol, matches: Callable[[Protocol], bool]):
    """The outermost layer of `stack` (following `.inner`) that `matches`, or None."""
    layer = stack
    while layer is not None and not matches(layer):
        layer = getattr(layer, "inner", None)
    return layer


def _noise_layer(stack: Protocol):
    """The layer of `stack` whose clients add noise (it has `share_mechanism`), or None."""
    return _layer_of(stack, lambda layer: hasattr(layer, "share_mechanism"))


def _adaptive_clip(stack: Protocol) -> AdaptiveClip | None:
    return _layer_of(stack, lambda layer: isinstance(layer, AdaptiveClip))


def _final_model_epsilon(config: ExperimentConfig, noise_rounds: list[RoundNoise], feature_norm: float) -> tuple[float, str]:
    """The hidden-state last iterate's (epsilon, bound and reason): one noisy step a completed round (an aborted
    round added no noise, so it does not count as one)."""
    hidden = _hidden_state_epsilon(config, [n.aggregate for n in noise_rounds], len(noise_rounds), feature_norm)
    return hidden.epsilon, f"{hidden.bound}: {hidden.reason}"


def _epsilon_by_observer(config: ExperimentConfig, noise_rounds: list[RoundNoise], rounds: int, feature_norm: float,
                         aborted: Sequence[Mechanism | None] = ()) -> dict[str, ObserverEpsilon]:
    final = None
    if config.traits.output == "model" and noise_rounds and all(n.aggregate is not None for n in noise_rounds):
        final = functools.partial(_final_model_epsilon, config, noise_rounds, feature_norm)
    return epsilon_by_observer(config.traits, noise_rounds, delta=config.delta, participation=config.participation,
                               sampling_rate=_sampling_rate(config), byzantine_clients=config.byzantine_clients, final_model=final,
                               aborted=aborted)


NOTHING_SENT = ("sample",)  # abort stages before any client sent data: such a round counts against no observer


def _sampling_rate(config: ExperimentConfig) -> float:
    """An honest client's probability of taking part in a round: q under Poisson participation; under fixed
    participation (m - a) / (N - b), capped at 1, since `draw_round` gives exactly a of the m places to the b
    Byzantine clients and draws the other m - a from the N - b honest ones without replacement (above m / N
    whenever a / m < b / N)."""
    if config.participation == "poisson":
        return config.sample_fraction
    honest = config.clients - config.byzantine_clients
    return min(1.0, (config.participants - config.attackers_per_round) / honest) if honest > 0 else 1.0


def _headline(by_observer: dict[str, ObserverEpsilon], noise_rounds: list[RoundNoise]) -> float | None:
    """The released model's epsilon (the one in progress lines and the compare table), None for a stack without noise."""
    noisy = any(n.aggregate is not None or n.own_share is not None for n in noise_rounds)
    return by_observer["released model"].epsilon if noisy else None
