"""Stages of a round and dropout schedules: which client vanishes before which stage."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from secagg.randomness import Randomness


class Stage(enum.IntEnum):
    """The interaction rounds of pairwise-masking secure aggregation (Bonawitz et al., CCS 2017).

    A protocol with fewer rounds uses a subset: the plaintext sum has only MASKED_INPUT.
    """

    ADVERTISE_KEYS = 0
    SHARE_KEYS = 1
    MASKED_INPUT = 2
    CONSISTENCY_CHECK = 3
    UNMASKING = 4


@dataclass(frozen=True)
class DropoutSchedule:
    """`drops[i] = s`: client i sends nothing from stage s on (it may have sent earlier stages)."""

    drops: Mapping[int, Stage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for client, stage in self.drops.items():
            if not isinstance(client, int) or client < 0:
                raise ValueError(f"dropout schedule keys must be client ids >= 0, found {client!r}")
            if not isinstance(stage, Stage):
                raise TypeError(f"dropout stage of client {client} must be a Stage, found {stage!r}")

    def active(self, client: int, stage: Stage) -> bool:
        """Whether `client` still takes part at `stage`."""
        drop = self.drops.get(client)
        return drop is None or stage < drop

    def with_drops(self, drops: Mapping[int, Stage]) -> "DropoutSchedule":
        """This schedule in which each client of `drops` also drops at its stage (the earlier stage wins)."""
        merged = dict(self.drops)
        for client, stage in drops.items():
            merged[client] = min(merged.get(client, stage), stage)
        return DropoutSchedule(merged)

    @classmethod
    def random(cls, n: int, rate: float, rng: Randomness, stages: tuple[Stage, ...] = tuple(Stage)) -> "DropoutSchedule":
        """Each client drops with probability `rate`, at a stage drawn uniformly from `stages`."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"dropout rate must be in [0, 1], found {rate}")
        threshold = int(rate * 2**32)
        drops = {}
        for i in range(n):
            if rng.below(2**32) < threshold:
                drops[i] = stages[rng.below(len(stages))]
        return cls(drops)
