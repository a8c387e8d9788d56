"""Parameter sets of the lattice schemes (CKKS, BFV) and the security level they give.

Security follows the HomomorphicEncryption.org standard (Albrecht et al. 2018, Table 1, uniform
ternary secret, classical attacks) as SEAL enforces it: for ring degree N, the total bit size of
the coefficient modulus q (special prime included) may not exceed `MAX_LOG_Q[level][N]`.
Low level: nothing here picks parameters for a protocol; `protocols.he.aggregation` does.
"""

from __future__ import annotations

from dataclasses import dataclass

# max log2(q) per ring degree for 128-, 192- and 256-bit security.
MAX_LOG_Q = {
    128: {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881},
    192: {1024: 19, 2048: 37, 4096: 75, 8192: 152, 16384: 305, 32768: 611},
    256: {1024: 14, 2048: 29, 4096: 58, 8192: 118, 16384: 237, 32768: 476},
}
SCHEMES = ("ckks", "bfv")


@dataclass(frozen=True, slots=True)
class HeParameters:
    """One parameter set.

    `coeff_mod_bit_sizes` lists the primes of q, the last one being SEAL's special (key-switching)
    prime. CKKS encodes x as round(x * 2**scale_bits) and has `depth` = len - 2 rescalings; BFV
    works modulo a batching prime t of `plain_modulus_bits` bits (t = 1 mod 2N).
    """

    scheme: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int = 0
    plain_modulus_bits: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, found {self.scheme!r}")
        if self.poly_modulus_degree not in MAX_LOG_Q[128]:
            raise ValueError(f"poly_modulus_degree must be one of {sorted(MAX_LOG_Q[128])}, found {self.poly_modulus_degree}")
        if len(self.coeff_mod_bit_sizes) < 2 or not all(17 <= b <= 60 for b in self.coeff_mod_bit_sizes):
            raise ValueError(f"coeff_mod_bit_sizes needs >= 2 primes of 17..60 bits, found {self.coeff_mod_bit_sizes}")
        if self.security_bits == 0:
            raise ValueError(
                f"log q = {self.log_q} bits exceeds {MAX_LOG_Q[128][self.poly_modulus_degree]}, the 128-bit limit for N = {self.poly_modulus_degree}"
            )
        if self.scheme == "ckks" and not 20 <= self.scale_bits < self.coeff_mod_bit_sizes[0]:
            raise ValueError(f"CKKS scale_bits must be in [20, {self.coeff_mod_bit_sizes[0]}), found {self.scale_bits}")
        if self.scheme == "bfv" and not 17 <= self.plain_modulus_bits <= 60:
            raise ValueError(f"BFV plain_modulus_bits must be in [17, 60], found {self.plain_modulus_bits}")

    @property
    def log_q(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def security_bits(self) -> int:
        """Highest standard level (128, 192, 256) these parameters meet; 0 if none."""
        return max((lvl for lvl, table in MAX_LOG_Q.items() if self.log_q <= table[self.poly_modulus_degree]), default=0)

    @property
    def slots(self) -> int:
        """Values one ciphertext packs: N/2 complex slots used as reals for CKKS, N for BFV."""
        return self.poly_modulus_degree // 2 if self.scheme == "ckks" else self.poly_modulus_degree

    @property
    def depth(self) -> int:
        """Multiplicative depth: rescalings (CKKS) available before the modulus runs out."""
        return len(self.coeff_mod_bit_sizes) - 2

    @property
    def headroom_bits(self) -> int:
        """CKKS: |value| must stay below 2**headroom_bits at the last level (q0 / scale)."""
        return self.coeff_mod_bit_sizes[0] - self.scale_bits - 1


PRESETS = {
    # Sums only (depth 0): one data prime, so ciphertexts are as small as CKKS allows at N = 8192.
    "ckks-8192-sum": HeParameters("ckks", 8192, (60, 60), scale_bits=40),
    # Depth 2: squared distances (square, then a masking product) as in TenSEAL's tutorials.
    "ckks-8192": HeParameters("ckks", 8192, (60, 40, 40, 60), scale_bits=40),
    # Twice the slots a ciphertext, depth 4, 192-bit security.
    "ckks-16384": HeParameters("ckks", 16384, (60, 40, 40, 40, 40, 60), scale_bits=40),
    "bfv-8192": HeParameters("bfv", 8192, (60, 60, 60), plain_modulus_bits=40),
    "bfv-16384": HeParameters("bfv", 16384, (60, 60, 60, 60), plain_modulus_bits=50),
}


def preset(name: str) -> HeParameters:
    """A named parameter set from `PRESETS`."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown HE preset {name!r}; known: {sorted(PRESETS)}") from None
