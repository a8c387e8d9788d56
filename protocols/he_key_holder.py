"""The key holder: the only party with the HE secret key. It decrypts what the protocol allows and
nothing else, and never releases a raw CKKS decryption.

Checks before any decryption (each failure raises `Refused` and reveals nothing):
- the request is for this round (session) and its target is one the round still allows: one sum
  (or one hidden-state model), or one scalars request followed by one selected sum;
- a hidden-state model is re-encrypted after decryption and the fresh ciphertext returned to the
  aggregator, so the model's CKKS error stays at one round's worth however many rounds run;
- the manifest lists at least `min_clients` distinct clients of the round, each with a valid
  Ed25519 signature on (session, client, sha256 of its ciphertext);
- a robust rule's distances come as one SCALARS request holding exactly the pairs of its manifest
  (the key holder cannot check the arithmetic without redoing it); the SELECTED_SUM that follows must
  list exactly the clients the rule selects on the distances the key holder released;
- with `recompute=True`, the clients' ciphertexts come along: their digests must match the
  manifest and the key holder decrypts its own homomorphic sum of them (a sum the aggregator
  altered or narrowed to one client is never decrypted). With `recompute=False` it decrypts the
  aggregator's ciphertext after the manifest check only (the aggregator is trusted to add).

Release (Li and Micciancio, EUROCRYPT 2021: raw CKKS decryptions leak the secret key): values
are rounded to a grid g = bound / 256 and receive discrete Gaussian noise g * N_Z(0, (2**k * bound /
g)**2), i.e. noise of standard deviation 2**k times the stated CKKS error bound (k = `flood_bits`).
BFV decryptions are exact and released as they are.
"""

from __future__ import annotations

import numpy as np

from protocols.dp.samplers import discrete_gaussian
from protocols.errors import Refused
from protocols.he_messages import DecryptRequest, Target, encode_plaintext, signed_message
from protocols.he_messages import digest as ciphertext_digest
from protocols.masking_messages import Kind
from protocols.robust.rules import krum_select
from protocols.wire import SERVER, Reader, decode_frame
from secagg.errors import InvalidTag, MalformedCiphertext
from secagg.he import EncryptedVector, HeContext, fresh_error_bound, total
from secagg.he_distances import EncryptedScalars, error_bound
from secagg.randomness import Randomness
from secagg.signatures import verify

SELECTION_RULES = {0: "krum", 1: "multi_krum"}
STAGE = "decrypt"
PARTY = "key holder"


class KeyHolder:
    """Decrypts, for one round, what its checks allow; `seconds` and bytes are metered by the caller."""

    def __init__(
        self,
        context: HeContext,
        rng: Randomness,
        *,
        session: bytes,
        client_keys: dict[int, bytes],
        length: int,
        min_clients: int,
        recompute: bool = True,
        flood_bits: int = 10,
        model: EncryptedVector | None = None,
        norm_bound: float = 0.0,
        already: frozenset[Target] = frozenset(),
    ) -> None:
        if not context.is_private:
            raise ValueError("the key holder needs the secret key")
        self._ctx, self._rng, self._session = context, rng, session
        self._client_keys, self._length, self._min = client_keys, length, min_clients
        self.recompute, self.flood_bits = recompute, flood_bits
        self.model = model  # hidden state: the key holder's own copy of the encrypted model
        self.norm_bound = norm_bound  # public L2 bound on inputs: sets the noise on released distances
        self.refreshed: bytes = b""  # hidden state: a fresh encryption of the decrypted model, for the aggregator
        self.last_bound = 0.0  # CKKS error bound of the last decryption (value units)
        self._done: set[Target] = set(already)  # what this round already decrypted (a key holder that restarts keeps it)
        self._scalar_ids: list[int] = []
        self._distances = np.zeros(0)
        self.distance_bound = 0.0  # CKKS error bound of the released distances
        self.decrypted: list[Target] = []

    def release_noise_std(self, bound: float) -> float:
        """Standard deviation of the noise added to a CKKS value whose error bound is `bound`."""
        return 2.0**self.flood_bits * bound if self._ctx.params.scheme == "ckks" else 0.0

    def handle(self, data: bytes) -> bytes:
        """A DECRYPT_REQUEST frame in, the PLAINTEXT payload to release out (its recipients depend on the target)."""
        frame = decode_frame(data, party=PARTY, stage=STAGE)
        if frame.kind != Kind.DECRYPT_REQUEST or frame.session != self._session or frame.sender != SERVER:
            raise Refused("not a decryption request of this round", party=PARTY, stage=STAGE)
        n = max(self._client_keys, default=-1) + 1
        request = DecryptRequest.parse(Reader(frame.payload, party=PARTY, stage=STAGE), n=n, max_bytes=1 << 31)
        self._check_order(request.target)
        self._check_manifest(request)
        if request.target == Target.SELECTED_SUM:
            self._check_selection(request)
        values, bound = self._decrypt(request)
        self.last_bound = bound
        self._done.add(request.target)
        self.decrypted.append(request.target)
        released = self._release(values, bound)
        if request.target == Target.SCALARS:
            self._scalar_ids, self._distances, self.distance_bound = sorted(request.manifest), released, bound
        return encode_plaintext(released)

    def _check_order(self, target: Target) -> None:
        allowed = {
            Target.SUM: not self._done,
            Target.MODEL: not self._done and self.model is not None,
            Target.SCALARS: not self._done,
            Target.SELECTED_SUM: self._done == {Target.SCALARS},
        }[target]
        if not allowed:
            raise Refused(f"{target.name} not allowed after {sorted(t.name for t in self._done)}", party=PARTY, stage=STAGE)

    def _check_selection(self, request: DecryptRequest) -> None:
        """A selected sum must be the selection the rule makes on the distances this key holder released."""
        r = Reader(request.extra, party=PARTY, stage=STAGE)
        rule, f, m = r.u8(), r.u32(), r.u32()
        r.done()
        ids = self._scalar_ids
        if rule not in SELECTION_RULES or not set(request.manifest) <= set(ids):
            raise Refused("selection rule unknown or selected clients outside the distance request", party=PARTY, stage=STAGE)
        dist = np.zeros((len(ids), len(ids)))
        dist[np.triu_indices(len(ids), 1)] = self._distances
        try:
            chosen = krum_select(dist + dist.T, f, 1 if SELECTION_RULES[rule] == "krum" else m)  # m: Multi-Krum's count
        except ValueError as exc:
            raise Refused(f"selection parameters invalid: {exc}", party=PARTY, stage=STAGE) from None
        if [ids[i] for i in chosen] != sorted(request.manifest):
            raise Refused("the selected clients are not what the rule selects on the released distances", party=PARTY, stage=STAGE)

    def _check_manifest(self, request: DecryptRequest) -> None:
        if len(request.manifest) < self._min and request.target != Target.SELECTED_SUM:
            raise Refused(f"{len(request.manifest)} inputs listed, at least {self._min} required", party=PARTY, stage=STAGE)
        for u, (digest, sig) in request.manifest.items():
            if u not in self._client_keys:
                raise Refused(f"client {u} is not in this round", party=PARTY, stage=STAGE)
            try:
                verify(self._client_keys[u], sig, signed_message(self._session, u, digest))
            except InvalidTag:
                raise Refused(f"signature of client {u} does not verify", party=PARTY, stage=STAGE) from None
            if request.inputs is not None and ciphertext_digest(request.inputs[u]) != digest:
                raise Refused(f"ciphertext of client {u} does not match its signed digest", party=PARTY, stage=STAGE)
        if self.recompute and request.inputs is None and request.target != Target.SCALARS:
            raise Refused("this key holder recomputes sums: the inputs must come with the request", party=PARTY, stage=STAGE)

    def _decrypt(self, request: DecryptRequest) -> tuple[np.ndarray, float]:
        try:
            if request.target == Target.SCALARS:
                count = int.from_bytes(request.extra, "big") if len(request.extra) == 4 else -1
                if count != len(request.manifest) * (len(request.manifest) - 1) // 2:
                    raise Refused("a distance request must hold the pairs of its manifest", party=PARTY, stage=STAGE)
                scalars = EncryptedScalars.from_bytes(self._ctx, request.payload, count=count)
                return scalars.decrypt(self._ctx), error_bound(self._ctx, self._length, 2 * self.norm_bound)
            if request.inputs is not None:
                vectors = [EncryptedVector.from_bytes(self._ctx, request.inputs[u], length=self._length) for u in sorted(request.manifest)]
                agg = total(vectors)
            else:
                agg = EncryptedVector.from_bytes(self._ctx, request.payload, length=self._length)
        except MalformedCiphertext as exc:
            raise Refused(f"request does not parse: {exc}", party=PARTY, stage=STAGE) from None
        count = len(request.manifest) + (request.target == Target.MODEL)
        bound = count * fresh_error_bound(self._ctx.params) if self._ctx.params.scheme == "ckks" else 0.0
        if request.target != Target.MODEL:
            return self._ctx.decrypt(agg), bound
        if request.inputs is not None:
            agg = self.model.add_(agg)
        values = self._ctx.decrypt(agg)
        self.model = self._ctx.encrypt(values)  # re-encryption: the model's error never exceeds one round's
        self.refreshed = self.model.to_bytes()
        return values, bound

    def _release(self, values: np.ndarray, bound: float) -> np.ndarray:
        if self._ctx.params.scheme != "ckks" or bound <= 0:
            return values.astype(np.float64)
        grid = bound / 256
        noise = discrete_gaussian(self._rng, values.size, 2.0**self.flood_bits * 256)
        return (np.round(values / grid) + noise) * grid

