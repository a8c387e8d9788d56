"""The key holder: the only party with the HE secret key. It decrypts what its own policy
(`protocols.he.policy.KeyHolderPolicy`, set up with the key holder, never sent by the aggregator)
allows and nothing else, and never releases a raw CKKS decryption.

Checks before any decryption (each failure raises `Refused` and releases nothing):
- the request is a DECRYPT_REQUEST of this round's session; the ledger (per run and round, kept
  across restarts and sessions) has not yet released what the round type allows: one SUM (sum
  rounds), one MODEL (hidden state), or one SCALARS then one SELECTED_SUM (robust rounds only);
- the manifest lists at least `min_clients` distinct clients of the round, each with a valid
  Ed25519 signature on (session, client, n, sha256 of its ciphertext), whatever the target, n this
  key holder's own round size (the roster's length): in CKKS sum and hidden rounds every listed client
  checked its input's headroom against that n, so a sum of at most n such inputs cannot wrap (review 17);
  BFV rounds rest on the key holder's own count check (`bfv_sum_fits`), robust rounds on its norm check;
- with `recompute` (always in robust rounds) the clients' ciphertexts come along, their digests
  must match the manifest, each must parse under the preset (`EncryptedVector.from_bytes`: level,
  scale, size, chunk count and length) and the key holder decrypts its own homomorphic result of
  them; without it, it decrypts the aggregator's sum after the manifest check (trusts its addition);
- SCALARS (robust): the key holder computes, from the signed ciphertexts, each input's real part
  with its padding slots attenuated (a 0/1 mask, CKKS-encoded: ~1e-10 of each padding value is left) and scaled by a secret r in [1/2, 1) from its own CSPRNG,
  then every squared norm and squared distance (`secagg.he_distances`), their error bound taken at
  the worst r (4 times the bound at r = 1), so the reported bound says nothing of r. An input whose squared norm
  lies outside [-bound, norm_bound**2 + bound] is rejected, so an accepted input has norm at most
  sqrt(norm_bound**2 + 2 bound) <= 1.01 norm_bound (a policy whose bound is larger is refused at setup;
  the bound is an absolute CKKS error, about 3e-5 at d = 40) (values that wrap around the CKKS modulus
  give a norm that is, heuristically, uniform over the headroom once scaled by the unknown r, so they
  pass with probability about norm_bound**2 / 2**(headroom_bits + 1) a round: 2**-20 at norm_bound 1
  with ckks-8192; a policy whose accepted squared distances (2.02 norm_bound)**2 could wrap, norm_bound
  >= sqrt(2**19) / 2.02 = 358.45 at ckks-8192, is refused at setup); the matrix of the accepted inputs and the origin
  must be a Euclidean distance matrix within the error bound (no entry below -bound, double-centred
  Gram with no eigenvalue below -(k + 1) * bound / 2), else the request is refused. It releases one
  flag per listed client (1 accepted, 0 rejected) and the flooded distances among the accepted, and
  records the selection its rule makes on exactly those released values;
- SELECTED_SUM must list exactly that selection, each client with the ciphertext digest SCALARS
  validated (a client that signed two ciphertexts in the session cannot have the other one summed);
- MODEL (hidden state): every box key the request carries (its `extra`) must be signed by its client
  under the key holder's PKI; the decrypted model (rounded, flooded) goes out only sealed to those
  clients, beside its re-encryption for the aggregator (`protocols.he.release`).
Sums start from a fresh encryption of zero, so no combination of inputs (one the negation of another)
is a transparent ciphertext, which SEAL would refuse with an untyped error.
With recompute the key holder receives every listed client's own ciphertext and, holding the secret
key, can decrypt each input (its DP view is each client's own noise share, "own share"); it computes
the squared norms and distances on purpose. Without recompute (sum and hidden rounds) it sees only the
aggregator's sum, as long as the aggregator is honest-but-curious (`TRUSTED_SUM`).

What no check here can give (findings of the adversarial review, kept as tests that demonstrate them):
privacy assumes every client's ciphertext is honestly generated. Without a zero-knowledge proof of
well-formed encryption (BDLOP / LNP22-style, not available here), a Byzantine client can sign a
ciphertext that passes every parser check and decrypts to a function of the secret key (e.g.
(c0, c1) = (0, K): it decrypts to K s), so a release depends on the key: in a sum round one such
client alone makes the released sum expose the key to the aggregator, in a robust round clients the
aggregator lists alone do the same through the selected sum (flooding cannot help: the client picks
K). With the key goes every input under it (keys live as long as the key holder's key set). Without
`recompute` (sum and hidden rounds only) the key holder decrypts the aggregator's sum after checking
the manifest: min_clients then holds only against an aggregator that adds honestly, and an active
aggregator alone (every client honest) recovers the secret key by sending a payload it forged, e.g.
(0, K): the release is K s, flooded with noise it outweighs by its choice of K. Without recompute the
threat model is an honest-but-curious aggregator.

Release (Li and Micciancio, EUROCRYPT 2021: raw CKKS decryptions leak the secret key): values
are rounded to a grid g = bound / 256 and receive discrete Gaussian noise g * N_Z(0, (2**k * bound /
g)**2), i.e. noise of standard deviation 2**k times the stated CKKS error bound (k = `flood_bits`),
drawn from the key holder's own OS CSPRNG. BFV decryptions are exact and released reduced mod 2**bits (its policy's
`bits`, which the aggregator's request must match): the ring sum, never the integer sum, whose excess over it counts,
per coordinate, the inputs whose encoding is negative.
"""

from __future__ import annotations

import numpy as np

from protocols.core.errors import Refused
from protocols.core.messages import Kind
from protocols.core.wire import SERVER, Reader, decode_frame
from protocols.dp.samplers import discrete_gaussian
from protocols.he.messages import DecryptRequest, Target, encode_plaintext, signed_message
from protocols.he.messages import digest as ciphertext_digest
from protocols.he.policy import KeyHolderPolicy, ReleaseLedger
from protocols.he.release import box_key_message, encode_model_release, parse_box_keys, seal_model, usable_box_key
from protocols.robust.rules import krum_select
from secagg.errors import InvalidTag, MalformedCiphertext
from secagg.he import EncryptedVector, HeContext, batching_modulus, bfv_sum_fits, ckks_headroom, fresh_error_bound, rerandomized_total
from secagg.he_distances import all_pairs, error_bound, restrict, squared_distances
from secagg.randomness import SystemRandomness
from secagg.signatures import verify

STAGE = "decrypt"
PARTY = "key holder"
HONEST_CIPHERTEXTS = (
    "privacy against the aggregator, the key holder and other clients assumes every client's ciphertext is honestly generated: "
    "without a zero-knowledge proof of well-formed encryption a Byzantine client can send a ciphertext that decrypts to a function "
    "of the secret key (e.g. (0, K)), so that a release depends on the key and exposes every input under it (alone in sum rounds, "
    "with the aggregator's help in robust rounds); in hidden-state mode a Byzantine client receives the model and so could learn "
    "the key itself")
TRUSTED_SUM = (
    "without recompute the key holder decrypts the aggregator's sum: min_clients holds only against an aggregator that adds honestly, "
    "and an active aggregator that sends a ciphertext of its own making (e.g. (0, K), under a valid manifest) recovers the secret key "
    "from the release, and with it every input under the key (flooding does not stop it: the aggregator picks K); without recompute "
    "the threat model is an honest-but-curious aggregator")


def distance_matrix(values: np.ndarray, k: int) -> np.ndarray:
    """The symmetric k x k matrix whose upper triangle, in `all_pairs` order, is `values`."""
    dist = np.zeros((k, k))
    dist[np.triu_indices(k, 1)] = values
    return dist + dist.T


def is_euclidean(dist: np.ndarray, tolerance: float) -> bool:
    """Whether `dist` (squared distances) is a Euclidean distance matrix up to entry errors of at most
    `tolerance`: no entry below -tolerance and G = -J D J / 2 (J = I - 11^T / k) has no eigenvalue
    below -k * tolerance / 2 (Schoenberg; an entrywise error e moves G's spectrum by <= k e / 2)."""
    k = dist.shape[0]
    if np.min(dist, initial=0.0) < -tolerance:
        return False
    j = np.eye(k) - 1.0 / k
    return bool(np.linalg.eigvalsh(-0.5 * j @ dist @ j)[0] >= -k * tolerance / 2)


def accepted_distances(ids: list[int], released: np.ndarray) -> tuple[list[int], np.ndarray]:
    """From a SCALARS release over the sorted `ids` (one flag each, then every pair's value in `all_pairs`
    order): the accepted clients and the k x k matrix of their released squared distances."""
    m = len(ids)
    accepted = [i for i in range(m) if released[i] == 1.0]
    at = {pair: q for q, pair in enumerate(all_pairs(m))}
    values = released[[m + at[(accepted[a], accepted[b])] for a, b in all_pairs(len(accepted))]]
    return [ids[i] for i in accepted], distance_matrix(values, len(accepted))


class KeyHolder:
    """Decrypts, for one round, what its policy and ledger allow; `seconds` and bytes are metered by the caller.

    `session` (its first 4 bytes: the round), `client_keys` (the PKI: in this toolkit the simulation,
    or on Flower the aggregator, supplies it) and `length` describe the round; `run` names the training run."""

    def __init__(
        self,
        context: HeContext,
        policy: KeyHolderPolicy,
        *,
        session: bytes,
        client_keys: dict[int, bytes],
        length: int,
        run: str = "local",
        ledger: ReleaseLedger | None = None,
        model: EncryptedVector | None = None,
    ) -> None:
        if not context.is_private:
            raise ValueError("the key holder needs the secret key")
        if policy.round_type == "robust" and not (context.params.scheme == "ckks" and context.params.depth >= 2 and context.has_galois_keys):
            raise ValueError("a robust key holder needs a CKKS context of depth >= 2 with Galois keys")
        policy.check_headroom(context.params.headroom_bits)
        if model is not None and model.length != length:
            raise ValueError(f"the round's inputs have length {length}, the key holder's model {model.length}")
        if policy.round_type == "robust":  # the norm check's slack is an absolute CKKS error: small bounds would let 5x through
            slack = 2 * 4 * error_bound(context, length, 2 * policy.norm_bound, restricted=True)
            if slack > 0.02 * policy.norm_bound**2:
                raise ValueError(f"norm_bound {policy.norm_bound}: the CKKS error of a squared norm (+-{slack / 2:.3g}) would accept inputs "
                                 f"over 1.01 x norm_bound; scale the inputs up or use a larger norm_bound")
        self._ctx, self._rng, self._session, self.policy = context, SystemRandomness(), session, policy
        self._client_keys, self._length, self._run = client_keys, length, run
        self._n = max(client_keys, default=-1) + 1  # the round's size: the positions of its roster
        self.ledger = ledger if ledger is not None else ReleaseLedger()
        self.model = model  # hidden state: the key holder's own copy of the encrypted model
        self.refreshed: bytes = b""  # hidden state: a fresh encryption of the decrypted model, for the aggregator
        self.released: np.ndarray | None = None  # hidden state: the model as sealed to the clients (kept by the key holder)
        self.last_bound = 0.0  # CKKS error bound of the last decryption (value units)
        self.distance_bound = 0.0  # CKKS error bound of the released distances
        self.decrypted: list[Target] = []

    @property
    def flood_bits(self) -> int:
        return self.policy.flood_bits

    def release_noise_std(self, bound: float) -> float:
        """Standard deviation of the noise added to a CKKS value whose error bound is `bound`."""
        return 2.0**self.flood_bits * bound if self._ctx.params.scheme == "ckks" else 0.0

    def handle(self, data: bytes) -> bytes:
        """A DECRYPT_REQUEST frame in, the PLAINTEXT payload to release out (its recipients depend on the target)."""
        frame = decode_frame(data, party=PARTY, stage=STAGE)
        if frame.kind != Kind.DECRYPT_REQUEST or frame.session != self._session or frame.sender != SERVER:
            raise Refused("not a decryption request of this round", party=PARTY, stage=STAGE)
        n = self._n
        request = DecryptRequest.parse(Reader(frame.payload, party=PARTY, stage=STAGE), n=n, max_bytes=1 << 31)
        round_, entry = self.ledger.open(self._run, self._session)
        self._check_order(request.target, entry["released"])
        self._check_manifest(request)
        recipients = self._recipients(request, n) if request.target == Target.MODEL else {}
        if request.target == Target.SELECTED_SUM:
            if sorted(request.manifest) != entry["selection"]:
                raise Refused("the selected clients are not what the key holder's rule selects on the distances it released", party=PARTY, stage=STAGE)
            changed = [u for u, (d, _) in request.manifest.items() if entry.get("digests", {}).get(str(u)) != d.hex()]
            if changed:
                raise Refused(f"clients {changed} list a ciphertext other than the one SCALARS validated", party=PARTY, stage=STAGE)
        if request.target == Target.SCALARS:
            released, selection = self._distances(request)
            entry = {**entry, "selection": selection, "digests": {str(u): request.manifest[u][0].hex() for u in selection}}
        else:
            if self._ctx.params.scheme == "bfv":  # the aggregator's own check (check_inputs) is the aggregator's (review 17)
                t = batching_modulus(self._ctx.params)
                if not bfv_sum_fits(len(request.manifest), self.policy.bits, t):
                    raise Refused(f"{len(request.manifest)} inputs of Z_2^{self.policy.bits} may overflow half the plain modulus {t}: "
                                  "their sum would wrap before the reduction mod 2**bits", party=PARTY, stage=STAGE)
            values, self.last_bound = self._decrypt(request)
            released = self._release(values, self.last_bound)
        reply, fresh = encode_plaintext(released), None
        if request.target == Target.MODEL:  # to the clients only, sealed; the aggregator gets the re-encryption
            fresh = self._reencrypt(values)
            refreshed = fresh.to_bytes()
            reply = encode_model_release(refreshed, *seal_model(released, self._session, recipients, self._rng))
        self.ledger.record(self._run, round_, {**entry, "released": entry["released"] + [int(request.target)]})
        if fresh is not None:  # the model moves on only with a release the ledger holds (a refusal above leaves it; review 19)
            self.model, self.refreshed, self.released = fresh, refreshed, released
        self.decrypted.append(request.target)
        return reply

    def _recipients(self, request: DecryptRequest, n: int) -> dict[int, bytes]:
        """The box keys of a MODEL request (none if its `extra` is empty), each signed by its client under this key holder's PKI."""
        announced = parse_box_keys(request.extra, n, party=PARTY, stage=STAGE) if request.extra else {}
        for u, (public, sig) in announced.items():
            try:
                verify(self._client_keys[u], sig, box_key_message(self._session, u, public))
            except (KeyError, InvalidTag):
                raise Refused(f"box key of client {u} is not signed by that client's key", party=PARTY, stage=STAGE) from None
            if not usable_box_key(public):  # checked before decrypting: sealing to it would fail after the model moved (review 19)
                raise Refused(f"box key of client {u} is of low order: no box can be sealed to it", party=PARTY, stage=STAGE)
        return {u: public for u, (public, _) in announced.items()}

    def _check_order(self, target: Target, released: list[int]) -> None:
        allowed = self.policy.allowed
        if target not in allowed:
            raise Refused(f"{target.name} is not a request a {self.policy.round_type} round may make", party=PARTY, stage=STAGE)
        expected = [int(t) for t in allowed[: allowed.index(target)]]
        if released != expected or (target == Target.MODEL and self.model is None):
            raise Refused(f"{target.name} not allowed after {[Target(t).name for t in released]}", party=PARTY, stage=STAGE)

    def _check_manifest(self, request: DecryptRequest) -> None:
        if len(request.manifest) < self.policy.min_clients:
            raise Refused(f"{len(request.manifest)} inputs listed, at least {self.policy.min_clients} required", party=PARTY, stage=STAGE)
        for u, (digest, sig) in request.manifest.items():
            if u not in self._client_keys:
                raise Refused(f"client {u} is not in this round", party=PARTY, stage=STAGE)
            try:
                verify(self._client_keys[u], sig, signed_message(self._session, u, self._n, digest))
            except InvalidTag:
                raise Refused(f"signature of client {u} does not verify over (session, client, n = {self._n}, digest): a client signs "
                              "the n it was announced, and checked its headroom against it", party=PARTY, stage=STAGE) from None
            if request.inputs is not None and ciphertext_digest(request.inputs[u]) != digest:
                raise Refused(f"ciphertext of client {u} does not match its signed digest", party=PARTY, stage=STAGE)
        if (self.policy.recompute or self.policy.round_type == "robust") and request.inputs is None:
            raise Refused("this key holder recomputes: the signed inputs must come with the request", party=PARTY, stage=STAGE)

    def _vectors(self, request: DecryptRequest) -> list[EncryptedVector]:
        """The signed inputs, each checked against the preset before any homomorphic operation."""
        try:
            return [EncryptedVector.from_bytes(self._ctx, request.inputs[u], length=self._length) for u in sorted(request.manifest)]
        except MalformedCiphertext as exc:
            raise Refused(f"a listed ciphertext is malformed: {exc}", party=PARTY, stage=STAGE) from None

    def _decrypt(self, request: DecryptRequest) -> tuple[np.ndarray, float]:
        if request.inputs is not None:
            agg = rerandomized_total(self._ctx, self._vectors(request))
        else:
            try:
                agg = EncryptedVector.from_bytes(self._ctx, request.payload, length=self._length)
            except MalformedCiphertext as exc:
                raise Refused(f"request does not parse: {exc}", party=PARTY, stage=STAGE) from None
        count = len(request.manifest) + 1 + (request.target == Target.MODEL)  # + 1: the encryption of zero a sum starts from
        bound = count * fresh_error_bound(self._ctx.params) if self._ctx.params.scheme == "ckks" else 0.0
        if request.target != Target.MODEL:
            return self._ctx.decrypt(agg), bound
        if request.inputs is not None:
            self._check_model_headroom(agg, bound)
            agg = agg.add_(self.model)  # into the fresh total: a refusal below leaves the model as it was
        return self._ctx.decrypt(agg), bound

    def _reencrypt(self, values: np.ndarray) -> EncryptedVector:
        """The decrypted model, encrypted afresh (its CKKS error never exceeds one round's).

        Raises:
            Refused: if SEAL cannot encode it (a coefficient past `secagg.he.ckks_encodable`); nothing released.
        """
        try:
            return self._ctx.encrypt(values)
        except ValueError as exc:
            raise Refused(f"the decrypted model cannot be re-encrypted ({exc}: its largest coefficient reaches the most one encryption "
                          "holds); nothing released", party=PARTY, stage=STAGE) from None

    def _check_model_headroom(self, added: EncryptedVector, bound: float) -> None:
        """Hidden state (recompute): refuses to move the model on when max |w| + max |sum of the inputs| + bound
        reaches the CKKS headroom (`secagg.he.ckks_headroom`), where the decrypted model would wrap. Both are
        decrypted here, never released; the sum alone cannot wrap while every client passed its own check
        (`HeAggregation.check_encoding`) against an n no smaller than the manifest (the n it signed, verified as this round's)."""
        peak = float(np.max(np.abs(self._ctx.decrypt(self.model)))) + float(np.max(np.abs(self._ctx.decrypt(added))))
        limit = ckks_headroom(self._ctx.params)
        if not peak + bound < limit:
            raise Refused(f"max |model| + max |sum of the inputs| = {peak:.6g} reaches the CKKS headroom {limit:.6g}: the model "
                          "would wrap; nothing released", party=PARTY, stage=STAGE)

    def _distances(self, request: DecryptRequest) -> tuple[np.ndarray, list[int]]:
        """Flags and flooded distances to release, and the selection the rule makes on them (see the module docstring)."""
        ids, p = sorted(request.manifest), self.policy
        r = 0.5 + int.from_bytes(self._rng.bytes(8), "big") / 2.0**65  # secret, uniform in [1/2, 1)
        raw = [restrict(self._ctx, v, r) for v in self._vectors(request)]
        norms = squared_distances(self._ctx, raw, [(i, i) for i in range(len(ids))]) / r**2
        bound = 4 * error_bound(self._ctx, self._length, 2 * p.norm_bound, restricted=True)  # / r**2 at r = 1/2: reveals nothing of r
        ok = [i for i in range(len(ids)) if -bound <= norms[i] <= p.norm_bound**2 + bound]  # a wrapped norm may decrypt negative
        k = len(ok)
        if k <= 2 * p.f or not p.min_clients <= p.selected_count(k) <= k:
            raise Refused(f"{k} inputs within the norm bound: the rule needs > 2f = {2 * p.f}, and to select between "
                          f"min_clients = {p.min_clients} and {k}", party=PARTY, stage=STAGE)
        pairs = all_pairs(k)
        dist = squared_distances(self._ctx, raw, [(ok[a], ok[b]) for a, b in pairs]) / r**2
        full = np.zeros((k + 1, k + 1))
        full[1:, 1:] = distance_matrix(dist, k)
        full[0, 1:] = full[1:, 0] = norms[ok]
        if not is_euclidean(full, bound):
            raise Refused("the inputs' distances are not Euclidean within the CKKS error: some input wrapped around the modulus", party=PARTY, stage=STAGE)
        self.distance_bound = self.last_bound = bound
        released = self._release(dist, bound)
        chosen = krum_select(distance_matrix(released, k), p.f, p.selected_count(k))
        everything = np.zeros(len(ids) * (len(ids) + 1) // 2)  # the layout `accepted_distances` reads
        everything[ok] = 1.0
        at = {pair: q for q, pair in enumerate(all_pairs(len(ids)))}
        everything[[len(ids) + at[(ok[a], ok[b])] for a, b in pairs]] = released
        return everything, [ids[ok[i]] for i in chosen]

    def _release(self, values: np.ndarray, bound: float) -> np.ndarray:
        if self._ctx.params.scheme == "bfv":  # the ring sum: the integer sum's excess counts each coordinate's negative inputs
            return np.mod(values.astype(np.int64), 1 << self.policy.bits).astype(np.float64)
        if bound <= 0:
            return values.astype(np.float64)
        grid = bound / 256
        noise = discrete_gaussian(self._rng, values.size, 2.0**self.flood_bits * 256)
        return (np.round(values / grid) + noise) * grid
