"""The federated round loop: clients train locally, Byzantine and mistaken clients misbehave, some drop,
and a protocol stack from `protocols` aggregates the updates; the server applies the decoded aggregate.

The loop only calls `secure_sum(updates, protocol=stack, dropouts=...)`, so clients could live anywhere a
transport can reach. Each round records accuracy, loss, who was included, every layer's report, and the
epsilon of the noise that reached the output (per round and composed so far).

Simulation conventions: every random choice, the protocols' secrets included, comes from `config.seed`
(reproducible runs; never for real data). A fixed number of participants is drawn each round, and the
cumulative epsilon composes the rounds with Poisson sampling at rate participants / clients, the usual
approximation for fixed-size sampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fl.adversaries import UPDATE_ATTACKS, mislabel
from fl.datasets import Dataset, dirichlet, iid, load
from fl.models import build, get_flat
from fl.training import LocalConfig, evaluate, local_updates
from protocols import Aborted, BelowThreshold, DropoutSchedule, LayerReport, Protocol, SecAggPlus, secure_sum
from protocols.accounting import ConvexSmooth, HiddenStateEpsilon, compose_epsilon, last_iterate_epsilon
from protocols.he_aggregation import CKKSAggregation
from protocols.he_hidden_state import HiddenStateCKKS
from protocols.he_robust import CKKSRobust
from protocols.layers import DiscreteEncode, L2Clip, distributed_dp, distributed_dp_parameters
from protocols.layers.gaussian_shares import GaussianShares
from protocols.layers.noise import MECHANISMS
from protocols.robust import RULES, PlainRobust
from protocols.two_server import RULES as TWO_SERVER_RULES
from protocols.two_server import TwoServerRobust
from secagg import SeededRandomness

STACKS = ("plain", "secagg+", "ddp+secagg+", "robust", "ckks", "ckks-robust", "two-server", "ddp+two-server", "hidden-state")
MEAN_STACKS = ("plain", "robust")  # these return an average; "hidden-state" the model; the others a sum over the included clients
ENGINES = ("in-process", "flower-sim", "flower-deployment")
FLOWER_STACKS = ("plain", "robust", "secagg+", "ddp+secagg+", "ckks")  # their protocols split a round (protocols.protocol)
STACK_RULES = {"robust": tuple(sorted(RULES)), "two-server": TWO_SERVER_RULES, "ddp+two-server": TWO_SERVER_RULES, "ckks-robust": ("krum", "multi_krum")}


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment. Fractions are of all clients; `sample_fraction` picks a fixed number of participants a round."""

    data: str = "breast_cancer"
    model: str = "logreg"
    hidden: int = 64  # width of the MLP's hidden layer
    clients: int = 20
    rounds: int = 10
    sample_fraction: float = 1.0
    partition: str = "iid"
    alpha: float = 0.5
    local: LocalConfig = field(default_factory=lambda: LocalConfig(epochs=1, batch_size=16, lr=0.1))
    stack: str = "secagg+"
    rule: str = "krum"
    byzantine: float = 0.0
    attack: str = "alie"
    mistaken: float = 0.0
    mislabel_fraction: float = 0.5
    dropout: float = 0.0
    clip: float = 1.0
    noise_multiplier: float = 0.5
    mechanism: str = "skellam"
    bits: int = 20
    delta: float = 1e-5
    test_fraction: float = 0.2
    seed: int = 0
    engine: str = "in-process"

    def __post_init__(self) -> None:
        checks = [
            (self.stack in STACKS, f"stack must be one of {STACKS}, found {self.stack!r}"),
            (self.rule in STACK_RULES.get(self.stack, RULES), f"rule must be one of {list(STACK_RULES.get(self.stack, sorted(RULES)))} for stack {self.stack!r}, found {self.rule!r}"),
            (self.attack in UPDATE_ATTACKS, f"attack must be one of {sorted(UPDATE_ATTACKS)}, found {self.attack!r}"),
            (self.partition in ("iid", "dirichlet"), f"partition must be 'iid' or 'dirichlet', found {self.partition!r}"),
            (self.clients >= 3, f"clients must be >= 3, found {self.clients}"),
            (self.hidden >= 1, f"hidden must be >= 1, found {self.hidden}"),
            (self.rounds >= 1, f"rounds must be >= 1, found {self.rounds}"),
            (0 < self.sample_fraction <= 1, f"sample_fraction must be in (0, 1], found {self.sample_fraction}"),
            (0 <= self.byzantine < 0.5, f"byzantine must be in [0, 0.5), found {self.byzantine}"),
            (0 <= self.mistaken <= 1 and 0 <= self.mislabel_fraction <= 1, "mistaken and mislabel_fraction must be in [0, 1]"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), found {self.dropout}"),
            (self.clip > 0 and self.noise_multiplier >= 0, "clip must be > 0 and noise_multiplier >= 0"),
            (self.mechanism in MECHANISMS, f"mechanism must be one of {MECHANISMS}, found {self.mechanism!r}"),
            (0 < self.test_fraction < 1, f"test_fraction must be in (0, 1), found {self.test_fraction}"),
            (self.engine in ENGINES, f"engine must be one of {ENGINES}, found {self.engine!r}"),
            (self.engine == "in-process" or self.stack in FLOWER_STACKS,
             f"engine {self.engine!r} runs the stacks {FLOWER_STACKS}, found stack {self.stack!r}"),
            (self.engine == "in-process" or self.byzantine == 0,
             f"engine {self.engine!r} cannot run byzantine clients (their attacks need every honest update), found byzantine={self.byzantine}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def participants(self) -> int:
        return max(3, round(self.sample_fraction * self.clients))


@dataclass(frozen=True)
class RoundRecord:
    round: int
    loss: float
    accuracy: float
    included: tuple[int, ...]  # participant positions whose updates reached the aggregate
    byzantine: tuple[int, ...]  # client ids that attacked this round
    reports: tuple[LayerReport, ...]
    epsilon: float | None  # this round's, from the noise that reached the output (None: no noise layer)
    cumulative_epsilon: float | None
    epsilon_bound: str = ""  # hidden state: which bound the cumulative epsilon is (last-iterate or distributed DP) and why
    aborted: str = ""  # why the round aborted (too few clients survived): nothing was revealed and the model did not change


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    rounds: list[RoundRecord] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C stopped the run; `rounds` holds every round that completed


def _split(data: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    order = np.random.default_rng(seed).permutation(len(data.y))
    cut = int(round(len(order) * (1 - test_fraction)))
    train, test = data.subset(order[:cut]), data.subset(order[cut:])
    mean, std = train.x.mean(axis=0), train.x.std(axis=0)
    return train.standardized(mean, std), test.standardized(mean, std)


def _robust_f(config: ExperimentConfig) -> int:
    m = config.participants
    return min((m - 1) // 2, max(1, math.ceil(config.byzantine * m)))  # n > 2f always


def build_stack(config: ExperimentConfig, dim: int, initial: np.ndarray | None = None) -> Protocol:
    """The protocol stack for `config`, sized for its participants a round (`initial`: the hidden-state model)."""
    m = config.participants
    expected = max(1, math.floor(m * (1 - config.dropout)))
    if config.stack == "plain":
        return PlainRobust(rule="mean", f=0)
    if config.stack == "robust":
        return PlainRobust(rule=config.rule, f=_robust_f(config))
    if config.stack == "secagg+":
        protection = SecAggPlus.for_clients(m, bits=32, dropout=max(config.dropout, 0.01))
        scale = 2.0**30 / (m * (config.clip + math.sqrt(dim)))  # the sum of m rounded, clipped updates cannot wrap
        return L2Clip(config.clip, DiscreteEncode(scale, config.clip, protection, beta=0.0))
    if config.stack == "ckks":
        return L2Clip(config.clip, CKKSAggregation(min_clients=1))
    if config.stack == "ckks-robust":
        return L2Clip(config.clip, CKKSRobust(rule=config.rule, f=_robust_f(config), norm_bound=config.clip, min_clients=1))
    if config.stack == "hidden-state":
        inner = HiddenStateCKKS(initial=np.asarray(initial, dtype=np.float64), weight=1.0 / m, min_clients=1)
        if config.noise_multiplier > 0:
            inner = GaussianShares(config.noise_multiplier, config.clip, expected, inner, delta=config.delta)
        return L2Clip(config.clip, inner)
    if config.stack == "two-server":
        bits = min(32, (63 - max(1, dim - 1).bit_length()) // 2)  # distances of any b-bit inputs stay exact in Z_2^64
        scale = 2.0 ** (bits - 2) / (m * config.clip)  # the sum of m clipped updates cannot wrap
        protection = TwoServerRobust(rule=config.rule, f=_robust_f(config), bits=bits, tau=config.clip * scale)
        return L2Clip(config.clip, DiscreteEncode(scale, config.clip, protection, beta=0.0))
    protocol = TwoServerRobust(rule=config.rule, f=_robust_f(config), bits=config.bits) if config.stack == "ddp+two-server" else \
        SecAggPlus.for_clients(m, bits=config.bits, dropout=max(config.dropout, 0.01))
    stack = distributed_dp(protocol, clients=m, dim=dim, clip=config.clip, noise_multiplier=config.noise_multiplier,
                           mechanism=config.mechanism, expected_clients=expected, delta=config.delta)
    if isinstance(protocol, TwoServerRobust):  # clipping radius in the ring's integer units
        protocol.tau = config.clip * distributed_dp_parameters(bits=config.bits, clients=m, dim=dim, clip=config.clip,
                                                               noise_multiplier=config.noise_multiplier, expected_clients=expected).scale
    return stack


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
    rng = np.random.default_rng(config.seed)
    train, test = _split(load(config.data), config.test_fraction, config.seed)
    parts = (iid(train.y, config.clients, seed=config.seed) if config.partition == "iid"
             else dirichlet(train.y, config.clients, alpha=config.alpha, seed=config.seed))
    roles = rng.permutation(config.clients)
    byzantine = set(roles[: int(config.byzantine * config.clients)].tolist())
    mistaken = set(roles[len(byzantine) : len(byzantine) + int(config.mistaken * config.clients)].tolist())
    local_data = []
    for c, part in enumerate(parts):
        data = train.subset(part)
        if c in mistaken:
            data = Dataset(data.name, data.x, mislabel(data.y, config.mislabel_fraction, data.num_classes, rng=rng), data.num_classes)
        local_data.append(data)
    model = build(config.model, train.x.shape[1], train.num_classes, hidden=config.hidden, seed=config.seed)
    return rng, train, test, local_data, byzantine, model


def local_datasets(config: ExperimentConfig) -> tuple[list[Dataset], object]:
    """Every client's local data and the initial model, as a remote node derives them."""
    _, _, _, local_data, _, model = _setup(config)
    return local_data, model


def run_experiment(config: ExperimentConfig, on_round: Callable[[RoundRecord], None] | None = None, *, remote=None) -> ExperimentResult:
    """Runs `config.rounds` rounds; calls `on_round` after each (for progress). Ctrl-C (KeyboardInterrupt)
    between or during rounds returns the result so far, marked `interrupted`, with every completed round.

    With `config.engine == "flower-sim"` the rounds run through Flower's simulation engine
    (`fl.flower_engine`, which calls back here with `remote`: the object that aggregates a round over Flower).
    """
    if config.engine == "flower-sim" and remote is None:
        from fl.flower_engine import run_flower_simulation  # flwr is an optional extra

        return run_flower_simulation(config, on_round)
    if config.engine == "flower-deployment" and remote is None:
        raise ValueError("engine 'flower-deployment' runs under Flower's SuperLink: `secagg flower-app DIR`, then `flwr run DIR` (see README)")
    rng, train, test, local_data, byzantine, model = _setup(config)
    params = get_flat(model)
    stack = build_stack(config, len(params), params)
    feature_norm = float(np.sqrt(np.max(np.sum(train.x.astype(np.float64) ** 2, axis=1)) + 1.0))
    result = ExperimentResult(config)
    mechanisms = []
    try:
        for r in range(1, config.rounds + 1):
            chosen = np.sort(rng.choice(config.clients, size=config.participants, replace=False))
            attackers = [i for i, c in enumerate(chosen) if c in byzantine]
            dropouts = DropoutSchedule.random(len(chosen), config.dropout, SeededRandomness(config.seed * 7919 + r))
            try:
                if remote is not None:  # the clients train and protect their updates on their own nodes
                    out = remote.aggregate(r, chosen, params, stack, dropouts, config.seed * 104_729 + r)
                else:
                    updates = local_updates(model, params, [local_data[c] for c in chosen], config.local,
                                            seeds=[config.seed * 100_003 + r * 1_009 + int(c) for c in chosen])
                    honest = [i for i in range(len(chosen)) if i not in attackers]
                    if attackers and honest:
                        kwargs = {"n": len(chosen)} if config.attack == "alie" else {"rng": rng} if config.attack == "gaussian" else {}
                        updates[attackers] = UPDATE_ATTACKS[config.attack](updates[honest], len(attackers), **kwargs)
                    out = secure_sum(updates.astype(np.float32), protocol=stack, dropouts=dropouts, seed=config.seed * 104_729 + r)
            except (BelowThreshold, Aborted) as exc:  # the round revealed nothing: the model stays, no privacy is spent
                loss, accuracy = evaluate(model, params, test)
                previous = result.rounds[-1].cumulative_epsilon if result.rounds else None
                result.rounds.append(RoundRecord(round=r, loss=loss, accuracy=accuracy, included=(), byzantine=tuple(int(chosen[i]) for i in attackers),
                                                 reports=(), epsilon=None, cumulative_epsilon=previous, aborted=str(exc)))
                if on_round is not None:
                    on_round(result.rounds[-1])
                continue
            if config.stack == "hidden-state":
                params = out.result.astype(np.float32)  # the model the key holder released to the clients
            else:
                aggregate = out.result if config.stack in MEAN_STACKS else out.result / max(len(out.included), 1)
                params = (params + aggregate).astype(np.float32)
            loss, accuracy = evaluate(model, params, test)
            noise = next((rep.guarantee for rep in out.reports if rep.guarantee.dp_mechanism is not None), None)
            if noise is not None:
                mechanisms.append(noise.dp_mechanism)
            cumulative, bound = None, ""
            if noise and config.stack == "hidden-state":
                hidden = _hidden_state_epsilon(config, mechanisms, r, feature_norm)
                cumulative, bound = hidden.epsilon, f"{hidden.bound}: {hidden.reason}"
            elif noise:
                cumulative = compose_epsilon(mechanisms, sampling_rate=config.participants / config.clients, delta=config.delta)
            record = RoundRecord(
                round=r, loss=loss, accuracy=accuracy, included=out.included, byzantine=tuple(int(chosen[i]) for i in attackers),
                reports=out.reports, epsilon=noise.epsilon if noise else None, cumulative_epsilon=cumulative, epsilon_bound=bound,
            )
            result.rounds.append(record)
            if on_round is not None:
                on_round(record)
    except KeyboardInterrupt:
        result.interrupted = True
    return result
