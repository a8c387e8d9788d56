"""Signed but malformed client ciphertexts: the collector excludes their sender with a typed error and
the round goes on; the key holder refuses them before any homomorphic operation; no input crashes the
process (fuzzed in a child process; the cases that crashed TenSEAL before are kept as vectors)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protocols.core.errors import MalformedMessage, Refused
from protocols.core.messages import Kind
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.aggregation import CKKSAggregation, HeCollector
from protocols.he.key_holder import KeyHolder
from protocols.he.messages import DecryptRequest, Target, digest, encode_ciphertext, signed_message
from protocols.he.policy import KeyHolderPolicy, session_of
from protocols.testing import mutate_ciphertext
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

ROOT = Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests" / "vectors").glob("he-ckks-8192-sum-segfault-*.bin"))


@pytest.fixture(scope="module")
def keys():
    return CKKSAggregation().keys


def _signed_round(keys, cts):
    session = session_of(1, b"\x00\x01\x02\x03")
    signers = [Signer.generate(SeededRandomness(9).fork(str(i))) for i in range(len(cts))]
    sigs = [s.sign(signed_message(session, i, len(cts), digest(ct))) for i, (s, ct) in enumerate(zip(signers, cts))]
    return session, {i: s.public_bytes() for i, s in enumerate(signers)}, sigs


def test_a_signed_ciphertext_at_another_scale_excludes_its_client_and_the_round_goes_on(keys):
    x = np.random.default_rng(1).normal(size=(3, 10))
    cts = [keys.public.encrypt(row).to_bytes() for row in x]
    cts[1] = mutate_ciphertext("other_scale", cts[1], keys.public, x[1], __import__("random").Random(0), [])
    session, client_keys, sigs = _signed_round(keys, cts)
    collector = HeCollector(3, session, keys.public, 10, client_keys)
    for i in (0, 2):
        collector.receive(encode_frame(Frame(Kind.CIPHERTEXT, session, i, SERVER, encode_ciphertext(cts[i], sigs[i]))), link=i)
    with pytest.raises(MalformedMessage, match="client 1.*scale"):
        collector.receive(encode_frame(Frame(Kind.CIPHERTEXT, session, 1, SERVER, encode_ciphertext(cts[1], sigs[1]))), link=1)
    holder = KeyHolder(keys.secret, KeyHolderPolicy(min_clients=2), session=session, client_keys=client_keys, length=10)
    request = DecryptRequest(Target.SUM, collector.manifest(), b"", {u: collector.inputs[u][0] for u in collector.inputs})
    frame = lambda r: encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, r.encode()))  # noqa: E731
    released = np.frombuffer(holder.handle(frame(request))[4:], "<f8")
    assert np.max(np.abs(released - x[[0, 2]].sum(0))) < 1e-2
    # a deviating aggregator that relays the other-scale input anyway gets a typed refusal, not a ValueError
    relayed = DecryptRequest(Target.SUM, {i: (digest(cts[i]), sigs[i]) for i in range(3)}, b"", dict(enumerate(cts)))
    fresh = KeyHolder(keys.secret, KeyHolderPolicy(min_clients=2), session=session, client_keys=client_keys, length=10)
    with pytest.raises(Refused, match="scale"):
        fresh.handle(frame(relayed))


def _child(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def _fuzz(seed: int, count: int, tmp_path: Path, timeout: float, mode: str = "sum") -> None:
    case = tmp_path / f"case-{seed}.bin"
    run = _child(["-m", "tests.protocols.he_fuzz", str(seed), str(count), str(case), mode], timeout)
    # a crash (negative status: a signal) leaves its case in `case`: keep it under tests/vectors/
    assert run.returncode == 0, f"fuzz seed {seed} ended with status {run.returncode}; last case in {case}\n{run.stderr[-2000:]}"


@pytest.mark.parametrize("mode, count", [("sum", 200), ("robust", 20)])
def test_fuzzed_signed_ciphertexts_never_crash_the_collector_or_the_key_holder(mode, count, tmp_path):
    _fuzz(11, count, tmp_path, timeout=300, mode=mode)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(10))
def test_fuzz_soak_ten_thousand_signed_ciphertexts(seed, tmp_path):
    _fuzz(1000 + seed, 1000, tmp_path, timeout=3600)


@pytest.mark.soak
def test_fuzz_soak_robust_key_holder(tmp_path):
    _fuzz(2000, 1000, tmp_path, timeout=3600, mode="robust")


@pytest.mark.parametrize("vector", VECTORS, ids=lambda p: p.name)
def test_ciphertexts_that_crashed_tenseal_are_rejected_as_malformed(vector):
    script = (
        "import sys, numpy as np\n"
        "from secagg.errors import MalformedCiphertext\n"
        "from secagg.he import HeContext, EncryptedVector, total\n"
        "from secagg.he_params import preset\n"
        "ctx = HeContext.generate(preset('ckks-8192-sum')); pub = ctx.public()\n"
        "try:\n"
        f"    v = EncryptedVector.from_bytes(pub, open({str(vector)!r}, 'rb').read(), length=10)\n"
        "    total([pub.encrypt(np.ones(10)), v])\n"
        "    sys.exit(3)\n"
        "except MalformedCiphertext:\n"
        "    sys.exit(0)\n"
    )
    run = _child(["-c", script], timeout=120)
    assert run.returncode == 0, f"status {run.returncode} (3: parsed; negative: crashed)\n{run.stderr[-2000:]}"
    assert len(VECTORS) >= 2
