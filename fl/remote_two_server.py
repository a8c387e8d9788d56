"""The second server and the dealer of a two-server stack as Flower nodes, without flwr: what their
messages do to a node's state (plain dicts of str, int, float and lists of bytes, as a ConfigRecord holds).

    S1 node  "s1_key"  a fresh X25519 key for the round (OS CSPRNG), kept in the node's state with the run and the
                       round S0 names; the public half back, signed with S1's long-term identity for them
                       (`protocols.two_server.identities`)
             "s1"      the frames S0 relayed since the last message: S1's program is replayed over all of them
                       (`protocols.two_server.remote.second_server_step`), opening only client shares signed for that
                       run, round and key under its own `client-keys`; the frames it sent since, back
    dealer   "deal"    one batch (kind, shapes, index): S0's seed and S1's part sealed to S1's key, from the
                       dealer's OS CSPRNG (a simulation does not seed it: no aggregate depends on it)

A round's S1 key lives only until the next "s1_key": a frame sealed under an older round's key fails at S1.

Identities (node config, written by `secagg keys`): S1 `second-server-signing-key` (KEYS/keys/second-server.pem),
`dealer-key` (KEYS/dealer.pub) and `client-keys` (KEYS/clients, its own copy of the clients' public keys); the dealer
`dealer-signing-key` (KEYS/keys/dealer.pem) and `second-server-key` (KEYS/second-server.pub), as every client node
(`second_server_key`), which also signs its share with its `signing-key`. The dealer, and each client, seals only to a
round key S1 signed; S1 opens only batches the dealer signed and shares their clients signed.
In simulation all are the simulated identities (`identities.simulated_signer`, `pki.simulated_signer`): anyone can sign as them.
"""

from __future__ import annotations

import json

from protocols.core.errors import Refused
from protocols.core.pki import KeyDirectory, configured_key, load_public_key, load_signer
from protocols.core.protocol import Protocol
from protocols.two_server import TwoServerRobust
from protocols.two_server.identities import ShareKeys, round_key_message, simulated_signer
from protocols.two_server.remote import sealed_deal, second_server_step, two_server_public
from secagg.agreement import X25519Agreement
from secagg.randomness import SystemRandomness
from secagg.signatures import Signer

ROLES = ("second-server", "dealer")  # node config key `role`; default: partition id = clients (S1), clients + 1 (dealer)
IDENTITY_KEYS = {"second-server": ("second-server-signing-key", "dealer-key"), "dealer": ("dealer-signing-key", "second-server-key")}
_FILES = {"second-server-signing-key": "KEYS/keys/second-server.pem", "dealer-key": "KEYS/dealer.pub",
          "dealer-signing-key": "KEYS/keys/dealer.pem", "second-server-key": "KEYS/second-server.pub"}


def node_identity_keys(node_config: dict, role: str, simulated: bool) -> tuple[Signer, bytes]:
    """(the node's own signing key, the other party's verification key) of the S1 or dealer node `role`, from its
    own node config (`IDENTITY_KEYS`); in simulation the simulated identities.

    Raises:
        Refused: naming the node config key, if it is missing or its file holds no Ed25519 key.
    """
    other = "dealer" if role == "second-server" else "second-server"
    if simulated:
        return simulated_signer(role), simulated_signer(other).public_bytes()
    own, peer = IDENTITY_KEYS[role]
    return (configured_key(node_config, own, load_signer, party=role, missing=f"{_FILES[own]}, see `secagg keys`"),
            configured_key(node_config, peer, load_public_key, party=role, missing=f"{_FILES[peer]}, see `secagg keys`"))


def second_server_key(node_config: dict, simulated: bool) -> bytes:
    """S1's Ed25519 verification key a client node checks S1's signed round key with (`identities.RoundKeyPin`): on
    deployment the file of its own node config `second-server-key` (KEYS/second-server.pub), never a key S0 relays;
    in simulation the simulated one.

    Raises:
        Refused: naming `second-server-key`, if it is missing or its file holds no Ed25519 public key.
    """
    if simulated:
        return simulated_signer("second-server").public_bytes()
    return configured_key(node_config, "second-server-key", load_public_key, party="client",
                          missing=f"two-server clients seal S1's share only to a round key S1 signed ({_FILES['second-server-key']}, see `secagg keys`)")


def second_server_client_keys(node_config: dict, simulated: bool) -> KeyDirectory:
    """The clients' public keys S1 verifies each sealed share's signature under: on deployment the folder of its own node
    config `client-keys` (KEYS/clients), never keys S0 relays; in simulation the simulated directory.

    Raises:
        Refused: naming `client-keys`, if it is missing or the folder holds no readable `<id>.pub` keys.
    """
    if simulated:
        return KeyDirectory()
    if not node_config.get("client-keys"):
        raise Refused("the second-server node's config has no client-keys: it would open shares S0 sealed under any client's "
                      "name (KEYS/clients, see `secagg keys`)", party="second-server", stage="setup")
    try:
        return KeyDirectory.read(str(node_config["client-keys"]))
    except ValueError as exc:
        raise Refused(f"client-keys: {exc}", party="second-server", stage="setup") from None


def two_server_nodes(config) -> bool:
    """Whether an experiment's stack (`fl.experiment.ExperimentConfig`) has a second server, hence S1 and dealer nodes."""
    return "second server" in config.traits.observers


def two_server_protocol(stack: Protocol | None) -> TwoServerRobust | None:
    """The stack's two-server protocol (its second server and dealer are SuperNodes of their own), or None."""
    while stack is not None and not isinstance(stack, TwoServerRobust):
        stack = getattr(stack, "inner", None)
    return stack


def new_round_key(state: dict, signer: Signer | None = None, run: int = 0, round_number: int = 0) -> str:
    """S1: a fresh key for a round; resets the round's relayed frames. Returns the public key (hex); its signature by
    `signer` (S1's identity, None: the simulated one) for run `run` and round `round_number` (S0's word: a client
    checks it against the round it joined) is `state["signature"]` (hex), for S0 to forward."""
    key = X25519Agreement.generate(SystemRandomness())
    state.clear()
    signature = (signer or simulated_signer("second-server")).sign(round_key_message(run, key.public_bytes(), round_number))
    state.update(secret=key.private_bytes().hex(), public="", frames=[], sent=0, seconds=0.0, signature=signature.hex(),
                 run=int(run), round=int(round_number))
    return key.public_bytes().hex()


def second_server_reply(protocol: TwoServerRobust, state: dict, public: str, frames: list[bytes], dealer_key: bytes | None = None,
                        client_keys: KeyDirectory | None = None) -> dict:
    """S1: takes the newly relayed `frames` (and, on the round's first message, its public parameters, JSON); opens
    only dealer batches signed under `dealer_key` (from S1's node config; None: the simulated dealer) and client shares
    signed for the run and round of its round key under `client_keys` (its node config's; None: simulated); returns
    {"frames": what S1 sent since, "error": why S1 stopped ("" if it did not), "cpu": its CPU seconds since}."""
    if "secret" not in state:
        return {"frames": [], "error": "Refused: no round key (S0 must ask for one first)", "cpu": 0.0}
    if not state["public"]:
        state["public"] = public
    state["frames"] = list(state["frames"]) + list(frames)
    try:
        params = two_server_public(json.loads(state["public"]))
    except (ValueError, TypeError) as exc:
        return {"frames": [], "error": f"Refused: public parameters: {exc}", "cpu": 0.0}
    key = X25519Agreement.from_private_bytes(bytes.fromhex(state["secret"]))
    clients = ShareKeys(client_keys or KeyDirectory(), int(state["run"]), int(state["round"]))
    step = second_server_step(protocol, params, key, state["frames"], dealer_key, clients)
    fresh, cpu = step.frames[int(state["sent"]):], max(0.0, step.seconds - float(state["seconds"]))
    state.update(sent=len(step.frames), seconds=step.seconds)
    return {"frames": fresh, "error": step.error or "", "cpu": cpu}


def dealer_reply(request: dict, signer: Signer | None = None, s1_public: bytes | None = None, run: int = 0) -> dict:
    """The dealer: one batch for the request {"kind", "args" (JSON list), "index", "public" (JSON)}, signed by
    `signer`, sealed only to a round key S1 signed for run `run` under `s1_public` (both from the dealer's node config;
    None: the simulated ones, `sealed_deal`); an error reply (its message) for a request it refuses."""
    try:
        params = two_server_public(json.loads(request["public"]))
        seed, sealed = sealed_deal(str(request["kind"]), tuple(json.loads(request["args"])), int(request["index"]), params,
                                   SystemRandomness(), signer=signer, s1_public=s1_public, run=run)
    except (KeyError, TypeError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"seed": seed, "sealed": sealed}
