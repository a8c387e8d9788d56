"""Fuzz target run in a child process (a crash of TenSEAL/SEAL is then a failed test, not a lost run):

    python -m tests.protocols.he_fuzz SEED COUNT CASE_FILE [sum|robust]

Each case: client 1 of three sends a signed, mutated ciphertext (`protocols.testing.mutate_ciphertext`)
to the aggregator's collector; the key holder is then asked, with the ciphertexts relayed, for the sum
(robust: the distances, then the selected sum) of the inputs the collector accepted, and once more of
all three even where the collector refused the mutated one (a deviating aggregator). Every outcome must be a release or
a `ProtocolError`; anything else exits with status 1. Before each case its bytes are written to
CASE_FILE, so the parent can keep the case that crashed as a regression vector.
"""

from __future__ import annotations

import random
import sys

import numpy as np

from protocols.core.errors import ProtocolError
from protocols.core.messages import Kind
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.aggregation import HeCollector
from protocols.he.key_holder import KeyHolder
from protocols.he.messages import DecryptRequest, Target, digest, encode_ciphertext, signed_message
from protocols.he.policy import KeyHolderPolicy, session_of
from protocols.testing import MUTATIONS, mutate_ciphertext
from secagg.he import HeContext
from secagg.he_params import preset
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

D = 10


def main(seed: int, count: int, case_file: str, mode: str = "sum") -> int:
    rng = random.Random(seed)
    robust = mode == "robust"
    secret = HeContext.generate(preset("ckks-8192" if robust else "ckks-8192-sum"), galois=robust)
    policy = KeyHolderPolicy("robust", min_clients=2, f=0, norm_bound=10.0) if robust else KeyHolderPolicy(min_clients=2)
    target = Target.SCALARS if robust else Target.SUM
    public = HeContext.from_bytes(secret.params, secret.public().to_bytes())
    signers = [Signer.generate(SeededRandomness(seed).fork(str(i))) for i in range(3)]
    keys = {i: s.public_bytes() for i, s in enumerate(signers)}
    x = np.random.default_rng(seed).normal(0, 1, (3, D))
    honest = [public.encrypt(row).to_bytes() for row in x]
    outcomes: dict[str, int] = {}
    for case in range(count):
        kind = rng.choice(MUTATIONS)
        bad = mutate_ciphertext(kind, honest[1], public, x[1], rng, [honest[0], honest[2]])
        with open(case_file, "wb") as f:
            f.write(bad)
        session = session_of(case + 1, rng.randbytes(4))
        cts = [honest[0], bad, honest[2]]
        sigs = [signers[i].sign(signed_message(session, i, 3, digest(cts[i]))) for i in range(3)]
        collector = HeCollector(3, session, public, D, keys)
        accepted = []
        for i in range(3):
            try:
                collector.receive(encode_frame(Frame(Kind.CIPHERTEXT, session, i, SERVER, encode_ciphertext(cts[i], sigs[i]))), link=i)
                accepted.append(i)
            except ProtocolError:
                pass
        for listed in {tuple(accepted), (0, 1, 2)}:  # the collector's set, and a deviating aggregator's
            request = DecryptRequest(target, {i: (digest(cts[i]), sigs[i]) for i in listed}, b"", {i: cts[i] for i in listed})
            holder = KeyHolder(secret, policy, session=session, client_keys=keys, length=D)
            try:
                holder.handle(encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, request.encode())))
                if robust:
                    chosen = holder.ledger.rounds[f"local/{case + 1}"]["selection"]
                    second = DecryptRequest(Target.SELECTED_SUM, {i: request.manifest[i] for i in chosen}, b"", {i: cts[i] for i in chosen})
                    holder.handle(encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, second.encode())))
                outcome = "released"
            except ProtocolError as exc:
                outcome = type(exc).__name__
            key = f"{kind}:{'accepted' if 1 in accepted else 'rejected'}:{outcome}"
            outcomes[key] = outcomes.get(key, 0) + 1
    print(outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], *sys.argv[4:]))
