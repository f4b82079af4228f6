"""OIDC ID tokens for HTTP targets, verifiable by a worker through standard discovery + JWKS.

The signing key is generated per data directory (never shipped in the repo, unlike other emulators)
so tokens stay verifiable across restarts of the same emulator, and is written owner-readable only.
Tokens are encoded by hand (RS256 via ``cryptography``) because pyjwt is only a test dependency.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_FILE_NAME = "oidc-signing-key.pem"
TOKEN_LIFETIME_SECONDS = 3600
JWKS_PATH = "/jwks"
DISCOVERY_PATH = "/.well-known/openid-configuration"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_to_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def subject_for(email: str) -> str:
    """A stable, numeric-looking ``sub`` (Google's are 21-digit numbers) derived from the email."""
    digest = int.from_bytes(hashlib.sha256(email.encode("utf-8")).digest()[:9], "big")
    return "1" + str(digest).zfill(20)[:20]


def _load_or_create_key(data_dir: str) -> rsa.RSAPrivateKey:
    path = os.path.join(data_dir, KEY_FILE_NAME)
    try:
        with open(path, "rb") as fh:
            pem = fh.read()
    except FileNotFoundError:
        pem = None
    if pem is not None:
        # An unreadable key is an error, not a reason to silently replace it: workers that cached
        # the old JWKS would start rejecting every token with no hint why.
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not a usable PEM private key ({exc}); delete it to make a new one") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} holds a non-RSA key; delete it to make a new one")
        return key
    os.makedirs(data_dir, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Write to a temporary name created 0600 from the start (no window where the key is readable
    # by others), then hard-link it into place: atomic (a crash never leaves half a key) and it
    # fails rather than overwrites when a concurrent start got there first.
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)  # in case an umask or an existing file kept wider bits
    try:
        os.link(tmp, path)  # fails if another process won the race: then use its key
    except FileExistsError:
        os.unlink(tmp)
        return _load_or_create_key(data_dir)
    os.unlink(tmp)
    return key


class OidcSigner:
    """Signs Google-style ID tokens and publishes the matching discovery document and JWKS."""

    def __init__(self, data_dir: str | None, issuer: str = "http://127.0.0.1") -> None:
        if data_dir:
            self._key = _load_or_create_key(data_dir)
        else:
            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        self._n, self._e = numbers.n, numbers.e
        # The kid is the thumbprint-like hash of the public key: stable across restarts with the same
        # key, different after the key changes, so caching verifiers notice a rotation.
        self.kid = hashlib.sha256(f"{self._n}:{self._e}".encode()).hexdigest()[:32]
        self._issuer = issuer.rstrip("/")
        self._lock = threading.Lock()

    @property
    def issuer(self) -> str:
        with self._lock:
            return self._issuer

    @issuer.setter
    def issuer(self, value: str) -> None:
        with self._lock:
            self._issuer = value.rstrip("/")

    def sign_id_token(self, service_account_email: str, audience: str, now: float | None = None) -> str:
        iat = int(time.time() if now is None else now)
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT"}
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "azp": subject_for(service_account_email),
            "email": service_account_email,
            "email_verified": True,
            "sub": subject_for(service_account_email),
            "iat": iat,
            "exp": iat + TOKEN_LIFETIME_SECONDS,
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def jwks(self) -> dict:
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": self.kid,
                    "n": _int_to_b64url(self._n),
                    "e": _int_to_b64url(self._e),
                }
            ]
        }

    def openid_configuration(self) -> dict:
        issuer = self.issuer
        return {
            "issuer": issuer,
            "jwks_uri": issuer + JWKS_PATH,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"],
        }
