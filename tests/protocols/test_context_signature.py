"""The key holder's signed public context (protocols.he.context_signature) and its provisioned identity
(protocols.core.pki.provision_key_holder): a client accepts exactly the context the key holder signed for this run."""

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.core.errors import Refused
from protocols.core.pki import load_public_key, load_signer, provision, provision_key_holder, simulated_key_holder_signer
from protocols.he.context_signature import check_context, sign_context
from secagg import SeededRandomness
from secagg.signatures import Signer

HOLDER = simulated_key_holder_signer()


def test_the_key_holder_identity_is_provisioned_private_once_and_beside_the_clients(tmp_path):
    provision(tmp_path / "keys", 2, SeededRandomness(3))
    signer, public = load_signer(tmp_path / "keys" / "keys" / "key-holder.pem"), load_public_key(tmp_path / "keys" / "key-holder.pub")
    assert signer.public_bytes() == public != HOLDER.public_bytes()
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "keys" / "key-holder.pem").st_mode) == 0o600
    with pytest.raises(FileExistsError):
        provision_key_holder(tmp_path / "keys")  # never overwritten
    with pytest.raises(ValueError, match="public key file"):
        load_public_key(tmp_path / "keys" / "keys" / "key-holder.pem")  # the private file is not the public key


@given(run=st.integers(0, 2**64 - 1), public=st.binary(min_size=1, max_size=64), other_run=st.integers(0, 2**64 - 1),
       flip=st.integers(0, 8 * 64 - 1), tamper=st.sampled_from(["run", "public", "signature", "signer"]))
@settings(max_examples=60, deadline=None)
def test_only_the_key_holders_signature_of_this_context_for_this_run_verifies(run, public, other_run, flip, tamper):
    signature = sign_context(HOLDER, run, public)
    check_context(HOLDER.public_bytes(), run, public, signature)
    key = HOLDER.public_bytes()
    if tamper == "run":
        run = other_run if other_run != run else run + 1
    elif tamper == "public":
        public = public + b"\x00"
    elif tamper == "signature":
        signature = bytearray(signature)
        signature[flip // 8] ^= 1 << (flip % 8)
        signature = bytes(signature)
    else:
        key = Signer.from_private_bytes(b"\x07" * 32).public_bytes()  # a key of the aggregator's own
    with pytest.raises(Refused, match="not signed by the key holder"):
        check_context(key, run, public, signature)

