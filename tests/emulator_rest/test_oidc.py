"""OIDC: tokens verify with a standard library from discovery + JWKS; the key is per data dir, 0600."""
from __future__ import annotations

import os
import stat
import time

import jwt
import pytest
import requests

from cloudtasks_emulator.core.oidc import KEY_FILE_NAME, OidcSigner, subject_for
from cloudtasks_emulator.http_server import HttpServer

from .fake_service import FakeService

SA = "invoker@my-project.iam.gserviceaccount.com"


def verify_via_discovery(base_url: str, token: str, audience: str, check_issuer: bool = True) -> dict:
    """What a worker does: discovery document → jwks_uri → key by kid → verify."""
    discovery = requests.get(f"{base_url}/.well-known/openid-configuration", timeout=5).json()
    assert discovery["issuer"] == base_url and "RS256" in discovery["id_token_signing_alg_values_supported"]
    key = jwt.PyJWKClient(discovery["jwks_uri"]).get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience,
                      issuer=discovery["issuer"] if check_issuer else None)


def serve(signer: OidcSigner) -> HttpServer:
    return HttpServer(FakeService(), "127.0.0.1", 0, signer, None).start()


def test_token_verifies_against_the_published_jwks() -> None:
    server = serve(OidcSigner(None))
    try:
        token = server.oidc.sign_id_token(SA, "https://worker.example/handler")
        claims = verify_via_discovery(server.url, token, "https://worker.example/handler")
    finally:
        server.stop()
    assert claims["iss"] == server.url and claims["email"] == SA and claims["email_verified"] is True
    assert claims["sub"] == subject_for(SA) and claims["sub"].isdigit() and len(claims["sub"]) == 21
    assert claims["azp"] == claims["sub"]
    assert claims["exp"] - claims["iat"] == 3600 and abs(claims["iat"] - time.time()) < 60
    assert jwt.get_unverified_header(token)["kid"] == server.oidc.kid


def test_wrong_audience_or_tampering_fails_verification() -> None:
    server = serve(OidcSigner(None))
    try:
        token = server.oidc.sign_id_token(SA, "https://a.example/")
        with pytest.raises(jwt.InvalidAudienceError):
            verify_via_discovery(server.url, token, "https://b.example/")
        head, body, sig = token.split(".")
        forged = jwt.utils.base64url_encode(
            jwt.utils.base64url_decode(body).replace(b"invoker", b"intruder")).decode()
        with pytest.raises(jwt.InvalidSignatureError):
            verify_via_discovery(server.url, f"{head}.{forged}.{sig}", "https://a.example/")
    finally:
        server.stop()


def test_key_file_is_0600_and_reused_across_restarts(tmp_path) -> None:
    first = OidcSigner(str(tmp_path))
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE_NAME]  # no temporary file left behind
    token = first.sign_id_token(SA, "aud")
    second = OidcSigner(str(tmp_path))  # "restart"
    assert second.kid == first.kid and second.jwks() == first.jwks()
    server = serve(second)
    try:
        # A token from before the restart still verifies (its issuer named the old port here).
        assert verify_via_discovery(server.url, token, "aud", check_issuer=False)["email"] == SA
    finally:
        server.stop()
    assert OidcSigner(str(tmp_path / "other")).kid != first.kid  # another data dir, another key


def test_without_data_dir_the_key_lives_in_memory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    a, b = OidcSigner(None), OidcSigner(None)
    assert a.kid != b.kid and list(tmp_path.iterdir()) == []


def test_a_corrupt_key_file_is_an_error_not_a_silent_rotation(tmp_path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("not a key")
    with pytest.raises(ValueError, match="delete it"):
        OidcSigner(str(tmp_path))


def test_no_key_in_the_repository() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for base in ("emulator", "provider"):
        for dirpath, _, files in os.walk(os.path.join(root, base)):
            for name in files:
                if name.endswith((".pem", ".key")):
                    pytest.fail(f"key material in the repo: {os.path.join(dirpath, name)}")


def test_real_emulator_publishes_its_issuer(emulator) -> None:
    token = emulator.server.oidc.sign_id_token(SA, "https://w.example/")
    assert verify_via_discovery(emulator.http_url, token, "https://w.example/")["iss"] == emulator.http_url
