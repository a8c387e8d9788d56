"""Long-term client identities (protocols.core.pki) and active SecAgg(+) over them: provisioning round-trips,
every verifier refuses rosters that seat a client twice or a Sybil id, and an active server that substitutes a
key in KEYS or tells clients different rosters is caught by the clients (they never share with the key it chose)."""

import os
import re
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import secure_sum
from protocols.core.errors import ProtocolError, Refused
from protocols.core.messages import Kind
from protocols.core.pki import SIMULATED, ClientIdentity, KeyDirectory, provision, roster_digest, simulated_signer
from protocols.core.wire import SERVER, Frame, Reader, Writer, decode_frame, encode_frame
from protocols.masking.messages import key_entry_bytes
from protocols.masking.secagg import SecAgg, SecAggPlus
from protocols.masking.setup import RoundSetup
from secagg import Ring, SeededRandomness
from secagg.signatures import Signer

N, D = 6, 3


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki") / "keys"
    return folder, provision(folder, N, SeededRandomness(5))


def test_provisioned_keys_round_trip_and_stay_private(keys):
    folder, directory = keys
    assert directory.source == str(folder / "clients") and sorted(directory.keys) == list(range(N))
    for c in range(N):
        identity = ClientIdentity.load(c, folder / "keys" / f"{c}.pem", folder)
        assert identity.signer.public_bytes() == directory.key(c) == KeyDirectory.read(folder / "clients").key(c)
        assert stat.S_IMODE(os.stat(folder / "keys" / f"{c}.pem").st_mode) == 0o600
    assert len({directory.key(c) for c in range(N)}) == N
    with pytest.raises(ValueError, match="refusing to overwrite"):
        provision(folder, N)


def test_a_key_file_that_is_not_the_directorys_is_refused(keys, tmp_path):
    folder, _ = keys
    with pytest.raises(ValueError, match="signing key of client 1 is not the directory's"):
        ClientIdentity.load(1, folder / "keys" / "0.pem", folder)
    with pytest.raises(ValueError, match="signing key file"):
        ClientIdentity.load(0, tmp_path / "missing.pem", folder)
    (tmp_path / "clients").mkdir()
    (tmp_path / "clients" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="'notes.txt' is not <client id>.pub"):
        KeyDirectory.read(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        KeyDirectory.read(tmp_path / "nowhere")


@given(roster=st.lists(st.integers(0, 2 * N), min_size=1, max_size=2 * N))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_roster_is_accepted_only_if_it_lists_distinct_provisioned_clients(keys, roster):
    """Sybil ids (no key in the directory) and a client listed twice (counted twice) are refused by every verifier."""
    _, directory = keys
    if len(set(roster)) == len(roster) and max(roster) < N:
        assert directory.for_roster(roster) == [directory.key(c) for c in roster]
    else:
        with pytest.raises(Refused, match="more than once|has no key"):
            directory.for_roster(roster)


@pytest.mark.parametrize("bad", [2**32, -1, True, 3.0, "3"])
@pytest.mark.parametrize("directory", ["provisioned", "simulated"])
def test_an_id_outside_u32_or_not_an_int_is_refused_naming_the_roster_entry(keys, bad, directory):
    """Ids are signed as u32 (`roster_digest`, `simulated_signer`): any other entry is a Refused naming the roster and
    the entry, from `for_roster` and from `key`, never a struct.error, whichever directory."""
    directory = keys[1] if directory == "provisioned" else KeyDirectory()
    with pytest.raises(Refused, match=r"roster .*entry 2 = .* is not an int in \[0, 2\*\*32\)"):
        directory.for_roster([0, 1, bad])
    with pytest.raises(Refused, match="is not an int in"):
        directory.key(bad)


def test_a_roster_is_checked_in_linear_time_length_first():
    """300k entries with repeats: the length (when the round's n is given) is refused first, the repeats are named
    from one count (the alarm only stops a quadratic scan from hanging the suite)."""
    import signal

    def stop(signum, frame):
        raise TimeoutError("still checking the roster after 5 s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(5)
    try:
        with pytest.raises(Refused, match="roster of 300000 clients for a round of n=6"):
            KeyDirectory().for_roster([0, 1] * 150_000, 6)
        with pytest.raises(Refused, match=r"roster lists clients \[0, 1\] more than once"):
            KeyDirectory().for_roster([0, 1] * 150_000)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", ["4294967296.pub", "00.pub", "+1.pub", "1_0.pub", "\uff11.pub"])
def test_a_key_folder_file_whose_id_is_not_canonical_u32_decimal_is_refused_naming_it(keys, tmp_path, name):
    folder, directory = keys
    for c in range(N):
        (tmp_path / f"{c}.pub").write_bytes((folder / "clients" / f"{c}.pub").read_bytes())
    assert KeyDirectory.read(tmp_path).keys == directory.keys  # control: the copy reads back
    (tmp_path / name).write_bytes((folder / "clients" / "0.pub").read_bytes())
    with pytest.raises(ValueError, match=re.escape(f"'{name}' is not <client id>.pub")):
        KeyDirectory.read(tmp_path)


def test_a_key_folder_listing_one_key_under_two_ids_is_refused_naming_both_files(keys, tmp_path):
    folder, _ = keys
    for c in range(N):
        (tmp_path / f"{c}.pub").write_bytes((folder / "clients" / f"{c}.pub").read_bytes())
    (tmp_path / "17.pub").write_bytes((folder / "clients" / "2.pub").read_bytes())
    with pytest.raises(ValueError, match="17.pub, 2.pub hold the same key"):
        KeyDirectory.read(tmp_path)


def test_simulated_identities_are_public_and_say_so():
    directory = KeyDirectory()
    assert directory.simulated and directory.source == SIMULATED and "anyone can sign" in SIMULATED
    assert directory.key(3) == simulated_signer(3).public_bytes() != directory.key(4)


def _public(protocol, roster, directory):
    opened = protocol.open_round(len(roster), D, SeededRandomness(1))
    opened.seat(roster, directory)
    return opened.public


@pytest.mark.parametrize("protocol", [SecAgg(active=True), SecAggPlus.complete(N, active=True)])
def test_an_active_client_refuses_a_roster_its_own_directory_does_not_back(keys, protocol):
    folder, directory = keys
    me = ClientIdentity.load(2, folder / "keys" / "2.pem", folder)
    row = np.zeros(D, np.uint32)
    public = _public(protocol, [5, 4, 2, 3, 1, 0], directory)
    assert protocol.client_role(2, row, public, SeededRandomness(2), {}, identity=me).setup.roster == roster_digest([5, 4, 2, 3, 1, 0])
    for roster, why in (([0, 1, 2, 3, 4, 9], "client id 9 has no key"), ([0, 1, 2, 3, 4, 2], "more than once"),
                        ([2, 1, 0, 3, 4, 5], "does not seat this client")):
        forged = {**public, "roster": roster}
        with pytest.raises(Refused, match=why):
            protocol.client_role(2, row, forged, SeededRandomness(2), {}, identity=me)
    with pytest.raises(Refused, match="needs this client's identity"):
        protocol.client_role(2, row, public, SeededRandomness(2), {})
    with pytest.raises(Refused, match="client id 9 has no key"):  # the server's own half refuses it too
        _public(protocol, [0, 1, 2, 3, 4, 9], directory)


def _keys_rewriter(victims, target, mode, sybil, seen):
    """A tamper hook: the active server swaps `target`'s advertisement in the KEYS frames to `victims` for keys of
    its own, signed as `mode` says; it records which clients went on to send SHARES."""

    def tamper(src, dst, frame):
        f = decode_frame(frame, party="test", stage="test")
        if src != SERVER:
            if f.kind == Kind.SHARES:
                seen.add(src)
            return [frame]
        if f.kind != Kind.KEYS or dst not in victims:
            return [frame]
        entries = Reader(f.payload, party="test", stage="test").entries(key_entry_bytes(True), N, N)
        if target not in entries:
            return [frame]
        c_pk, s_pk = bytes(range(32)), bytes(range(32, 64))
        setup = RoundSetup(n=N, k=N - 1, t=1, d=D, ring=Ring(32), active=True, session=f.session, roster=roster_digest(list(range(N))))
        signature = entries[target][64:] if mode == "keep-signature" else sybil.sign(setup.advertise_message(target, c_pk, s_pk))
        entries[target] = c_pk + s_pk + signature
        return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, Writer().entries(entries).getvalue()))]

    return tamper


@given(victims=st.sets(st.integers(0, N - 1), min_size=1), target=st.integers(0, N - 1),
       mode=st.sampled_from(["keep-signature", "sybil-signature"]), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_an_active_server_that_substitutes_a_key_in_keys_is_caught(victims, target, mode, seed):
    """Each client that was sent the substituted key aborts before it shares (so no secret reaches a key the server
    holds); if the rest of the round completes, its sum is exact over clients that all saw only genuine keys."""
    protocol = SecAggPlus.complete(N, active=True)
    inputs = SeededRandomness(seed).uint64(N * D).reshape(N, D).astype(np.uint32)
    seen: set[int] = set()
    tamper = _keys_rewriter(victims - {target}, target, mode, Signer.generate(SeededRandomness(seed + 1)), seen)
    try:
        out = secure_sum(inputs, protocol=protocol, seed=seed, tamper=tamper)
    except ProtocolError:
        out = None
    assert not seen & (victims - {target}), "a client shared its secrets after a substituted key"
    if out is not None:
        assert not set(out.included) & (victims - {target})
        assert np.array_equal(out.result, inputs[list(out.included)].sum(axis=0, dtype=np.uint32))


@pytest.mark.parametrize("split", [False, True])
def test_clients_told_different_rosters_reject_each_others_signatures(split):
    """A server that seats client 0 under another roster than the rest (position 5 is client 7 in its view: a
    second honest client at one position) and relays every advertisement as it is: the signatures made under one
    roster verify under no other, so every client aborts before sharing; one roster for all (control): all share."""
    protocol = SecAggPlus.complete(N, active=True)
    opened = protocol.open_round(N, D, SeededRandomness(3))
    opened.seat(list(range(N)), KeyDirectory())
    other = dict(opened.public, roster=[0, 1, 2, 3, 4, 7])
    roles = [protocol.client_role(i, np.zeros(D, np.uint32), other if split and i == 0 else opened.public, SeededRandomness(10 + i), {},
                                  identity=ClientIdentity.simulated(i)) for i in range(N)]
    session = bytes.fromhex(opened.public["session"])
    adverts = {u: decode_frame(roles[u].handle(frame), party="t", stage="t").payload for u, frame in opened.server.requests().items()}
    outcomes = []
    for u in range(N):
        keys = encode_frame(Frame(Kind.KEYS, session, SERVER, u, Writer().entries({v: a for v, a in adverts.items() if v != u}).getvalue()))
        try:
            roles[u].handle(keys)
            outcomes.append("shared")
        except ProtocolError:
            outcomes.append("aborted")
    assert outcomes == ["aborted" if split else "shared"] * N
