"""Data for federated experiments: real data shipped inside the package, a synthetic heterogeneous
generator, partitions over clients, and a loader for the user's own .npz or CSV files.

Nothing is downloaded: `breast_cancer` (569 x 30, 2 classes, a real medical table) and `digits`
(1797 8x8 images, 10 classes) live in `fl/data/` (sources in `fl/data/SOURCES.md`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

BUNDLED = ("breast_cancer", "digits", "ill_conditioned")
PARTITIONS = ("iid", "dirichlet", "natural")  # natural: synthetic client k holds what generator client k drew


@dataclass(frozen=True)
class Dataset:
    """x: float32 (samples, features); y: int64 labels in [0, num_classes)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.ndim != 1 or len(self.x) != len(self.y):
            raise ValueError(f"{self.name}: x must be (samples, features) and y (samples,), found {self.x.shape} and {self.y.shape}")
        if len(self.y) and (self.y.min() < 0 or self.y.max() >= self.num_classes):
            raise ValueError(f"{self.name}: labels must lie in [0, {self.num_classes})")

    def subset(self, index: np.ndarray) -> "Dataset":
        return Dataset(self.name, self.x[index], self.y[index], self.num_classes)

    def standardized(self, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> "Dataset":
        """Features shifted and scaled to mean 0, std 1 (by the given statistics, e.g. a training split's)."""
        mean = self.x.mean(axis=0) if mean is None else mean
        std = self.x.std(axis=0) if std is None else std
        return Dataset(self.name, ((self.x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32), self.y, self.num_classes)


def load(name: str) -> Dataset:
    """A bundled data set: "breast_cancer" (raw features), "digits" (grey levels scaled to [0, 1]) or
    "ill_conditioned" (generated: `fl.data.make_ill_conditioned`).

    Raises:
        ValueError: for an unknown name.
    """
    if name not in BUNDLED:
        raise ValueError(f"unknown data set {name!r}; bundled: {BUNDLED}")
    with resources.files("fl.data").joinpath(f"{name}.npz").open("rb") as f, np.load(f, allow_pickle=False) as data:
        x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    if name == "digits":
        x /= 16.0
    return Dataset(name, x, y, int(y.max()) + 1)


def synthetic(clients: int, samples_per_client: int, *, features: int = 60, classes: int = 10, alpha: float = 1.0,
              beta: float = 1.0, seed: int) -> list[Dataset]:
    """Synthetic(alpha, beta) of Li et al. (FedProx, MLSys 2020): client k draws u_k ~ N(0, alpha),
    B_k ~ N(0, beta); its model W_k, b_k ~ N(u_k, 1) and inputs x ~ N(v_k, diag(j**-1.2)) with v_k ~ N(B_k, 1);
    y = argmax(W_k x + b_k). alpha moves the models apart, beta the inputs."""
    if clients < 1 or samples_per_client < 1 or features < 1 or classes < 2 or alpha < 0 or beta < 0:
        raise ValueError("need clients, samples_per_client, features >= 1, classes >= 2 and alpha, beta >= 0")
    rng = np.random.default_rng(seed)
    scale = np.arange(1, features + 1) ** -0.6  # sqrt of j**-1.2
    out = []
    for k in range(clients):
        u, b_shift = rng.normal(0, np.sqrt(alpha)), rng.normal(0, np.sqrt(beta))
        w = rng.normal(u, 1, size=(features, classes))
        bias = rng.normal(u, 1, size=classes)
        v = rng.normal(b_shift, 1, size=features)
        x = (v + rng.normal(size=(samples_per_client, features)) * scale).astype(np.float32)
        out.append(Dataset(f"synthetic-{k}", x, np.argmax(x @ w + bias, axis=1).astype(np.int64), classes))
    return out


def iid(labels: np.ndarray, clients: int, *, seed: int) -> list[np.ndarray]:
    """Indices split uniformly at random into `clients` parts of sizes differing by at most one."""
    if not 1 <= clients <= len(labels):
        raise ValueError(f"clients must be in [1, {len(labels)}], found {clients}")
    return [np.sort(part) for part in np.array_split(np.random.default_rng(seed).permutation(len(labels)), clients)]


def dirichlet(labels: np.ndarray, clients: int, *, alpha: float, seed: int, min_size: int = 1) -> list[np.ndarray]:
    """Non-IID split: for each class, proportions over clients ~ Dirichlet(alpha); small alpha = skewed.
    Redraws (up to 100 times) until every client has at least `min_size` samples.

    Raises:
        ValueError: for alpha <= 0 or a min_size that cannot be met.
    """
    if alpha <= 0 or not 1 <= clients or clients * min_size > len(labels):
        raise ValueError(f"need alpha > 0 and clients * min_size <= {len(labels)}, found alpha={alpha}, clients={clients}, min_size={min_size}")
    rng = np.random.default_rng(seed)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(clients)]
        for cls in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == cls))
            cuts = (np.cumsum(rng.dirichlet(np.full(clients, alpha))) * len(members)).astype(int)[:-1]
            for part, chunk in zip(parts, np.split(members, cuts)):
                part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"no Dirichlet({alpha}) split gave every one of {clients} clients {min_size} samples; raise alpha or lower min_size")


def load_file(path: str | Path, *, name: str | None = None) -> Dataset:
    """The user's own data: an .npz with arrays `x` (samples, features) and `y` (integer labels), or a CSV
    whose last column is the integer label (a header row is skipped when its last field is not a number).

    Raises:
        ValueError: for another suffix, missing arrays, ragged rows, non-numeric values or labels that are
            not non-negative integers; the message names the file and, for CSV, the line.
    """
    path = Path(path)
    label = name or path.stem
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data or "y" not in data:
                raise ValueError(f"{path}: an .npz needs arrays 'x' and 'y', found {sorted(data.files)}")
            x, y = np.asarray(data["x"], dtype=np.float32), np.asarray(data["y"])
    elif path.suffix == ".csv":
        rows = []
        with path.open(newline="") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                if not row:
                    continue
                try:
                    rows.append([float(v) for v in row])
                except ValueError:
                    if line == 1 and not rows:
                        continue  # header
                    raise ValueError(f"{path}:{line}: non-numeric value") from None
        if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
            raise ValueError(f"{path}: rows must all have the same number (>= 2) of numeric fields")
        table = np.array(rows)
        x, y = table[:, :-1].astype(np.float32), table[:, -1]
    else:
        raise ValueError(f"{path}: expected a .npz or .csv file")
    if y.ndim != 1 or len(y) == 0 or np.any(y < 0) or np.any(y != np.round(y)):
        raise ValueError(f"{path}: labels must be a non-empty column of non-negative integers")
    y = y.astype(np.int64)
    return Dataset(label, x, y, int(y.max()) + 1)


def check_data(name: str, partition: str) -> None:
    """Raises ValueError naming the field unless `name` is bundled, "synthetic" or an existing .npz/.csv file,
    and `partition` is one of PARTITIONS ("natural" only for synthetic)."""
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {PARTITIONS}, found {partition!r}")
    if partition == "natural" and name != "synthetic":
        raise ValueError(f"partition 'natural' needs data='synthetic' (its clients generate their own data), found data={name!r}")
    if name in (*BUNDLED, "synthetic"):
        return
    if Path(name).suffix not in (".npz", ".csv"):
        raise ValueError(f"data must be one of {(*BUNDLED, 'synthetic')} or a .npz/.csv file, found {name!r}")
    if not Path(name).is_file():
        raise ValueError(f"data: no file {name!r}")


def split(data: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset, np.ndarray]:
    """(train, test, train indices into `data`): a random `test_fraction` held out; both standardized by
    the training split's mean and std."""
    order = np.random.default_rng(seed).permutation(len(data.y))
    cut = int(round(len(order) * (1 - test_fraction)))
    train, test = data.subset(order[:cut]), data.subset(order[cut:])
    mean, std = train.x.mean(axis=0), train.x.std(axis=0)
    return train.standardized(mean, std), test.standardized(mean, std), order[:cut]


def federate(name: str, clients: int, *, partition: str, alpha: float, test_fraction: float, seed: int,
             synthetic_alpha: float = 1.0, synthetic_beta: float = 1.0, synthetic_samples: int = 100) -> tuple[Dataset, Dataset, list[np.ndarray]]:
    """(train, test, each client's indices into train) for a data field: a bundled name, "synthetic"
    (Synthetic(synthetic_alpha, synthetic_beta), `synthetic_samples` a client) or a .npz/.csv path;
    partition "iid", "dirichlet" (with `alpha`) or, for synthetic, "natural"."""
    check_data(name, partition)
    owners = None
    if name == "synthetic":
        parts = synthetic(clients, synthetic_samples, alpha=synthetic_alpha, beta=synthetic_beta, seed=seed)
        data = Dataset("synthetic", np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]), parts[0].num_classes)
        owners = np.repeat(np.arange(clients), synthetic_samples)
    else:
        data = load(name) if name in BUNDLED else load_file(name)
    train, test, kept = split(data, test_fraction, seed)
    if partition == "natural":
        return train, test, [np.flatnonzero(owners[kept] == k) for k in range(clients)]
    parts = iid(train.y, clients, seed=seed) if partition == "iid" else dirichlet(train.y, clients, alpha=alpha, seed=seed)
    return train, test, parts
