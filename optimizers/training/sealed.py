"""The work a multi-host job's first host sends the others through its store, sealed with the job's own secret.

The store (torch.distributed's TCPStore) has no authentication, and on a cluster network another multi-host job's
sandbox can connect to it and list its keys. The work holds the owner's model and data, and the other hosts unpickle
it: so it travels encrypted (a SHAKE-256 keystream from the secret and a fresh nonce) and authenticated
(HMAC-SHA256 over nonce and ciphertext, checked before anything is unpickled). The secret comes from the first host's
worker, through the job specs, and is never in the store.
"""
import hashlib
import hmac
import os

import numpy as np

from optimizers.errors import RecipeError

NONCE_BYTES = 16
MAC_BYTES = 32


def _keystream_xor(secret: bytes, nonce: bytes, data: bytes) -> bytes:
    stream = hashlib.shake_256(b"slimforge-work\0" + secret + nonce).digest(len(data))
    return (np.frombuffer(data, np.uint8) ^ np.frombuffer(stream, np.uint8)).tobytes()


def _mac(secret: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    return hmac.new(secret, nonce + ciphertext, hashlib.sha256).digest()


def seal(secret: bytes, data: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = _keystream_xor(secret, nonce, data)
    return nonce + _mac(secret, nonce, ciphertext) + ciphertext


def unseal(secret: bytes, sealed: bytes) -> bytes:
    """The data, or RecipeError when it was not sealed with `secret` (or was changed on the way)."""
    nonce, mac = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:NONCE_BYTES + MAC_BYTES]
    ciphertext = sealed[NONCE_BYTES + MAC_BYTES:]
    if len(nonce) != NONCE_BYTES or not hmac.compare_digest(mac, _mac(secret, nonce, ciphertext)):
        raise RecipeError("the work in the job's store was not sealed by its first host (changed, or written by "
                          "someone else); nothing of it was run")
    return _keystream_xor(secret, nonce, ciphertext)
