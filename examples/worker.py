"""A sample Cloud Tasks worker: logs every request with its X-CloudTasks-* headers and verifies the
OIDC token (when one is sent) against the issuer's JWKS, the way a real Cloud Run service would.

    python examples/worker.py --port 8090 [--tls] [--issuer http://127.0.0.1:8124] [--audience URL]
           [--record requests.jsonl] [--fail-first N]

Cloud Tasks only sends OIDC/OAuth tokens to https:// URLs, so --tls serves HTTPS with a self-signed
certificate made at start-up (the emulator does not verify target certificates on loopback).

Each handled request is appended as one JSON line to --record (when given), so scripts and tests
can wait for it. The worker answers 200, or 503 for the first --fail-first requests (to show retries).
"""
from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.request import urlopen

import jwt  # pyjwt[crypto]


class OidcVerifier:
    """Verifies RS256 ID tokens with the keys named by the issuer's discovery document."""

    def __init__(self, issuer: str, audience: str | None) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        with urlopen(f"{self.issuer}/.well-known/openid-configuration", timeout=5) as resp:
            discovery = json.load(resp)
        self._jwks = jwt.PyJWKClient(discovery["jwks_uri"])

    def verify(self, token: str, default_audience: str) -> dict[str, Any]:
        key = self._jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=self.audience or default_audience,
            issuer=self.issuer,
        )


def make_handler(verifier: OidcVerifier | None, record: str | None, fail_first: int):
    lock = threading.Lock()
    seen = {"count": 0}

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            cloudtasks = {k: v for k, v in self.headers.items() if k.lower().startswith("x-cloudtasks-")}
            entry: dict[str, Any] = {
                "time": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": cloudtasks,
                "body_bytes": len(body),
                "oidc": None,
            }
            auth = self.headers.get("Authorization", "")
            status = 200
            if auth.startswith("Bearer ") and verifier is not None:
                scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
                url = f"{scheme}://{self.headers.get('Host')}{self.path}"
                try:
                    claims = verifier.verify(auth.removeprefix("Bearer "), default_audience=url)
                    entry["oidc"] = {"verified": True, "email": claims.get("email"), "aud": claims.get("aud")}
                except jwt.PyJWTError as exc:
                    entry["oidc"] = {"verified": False, "error": str(exc)}
                    status = 401
            with lock:
                seen["count"] += 1
                if seen["count"] <= fail_first:
                    status = 503
                entry["status"] = status
                if record:
                    with open(record, "a", encoding="utf-8") as out:
                        out.write(json.dumps(entry) + "\n")
            # Never log the token or the body: only what identifies the task.
            print(
                f"[worker] {self.command} {self.path} -> {status} "
                + " ".join(f"{k}={v}" for k, v in sorted(cloudtasks.items()))
                + (f" oidc={entry['oidc']}" if entry["oidc"] else ""),
                flush=True,
            )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # _handle prints a redacted line instead

    return Handler


def self_signed_context(host: str) -> ssl.SSLContext:
    """A server TLS context with a throwaway self-signed certificate for ``host``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="worker-tls-"))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a self-signed certificate")
    parser.add_argument("--issuer", help="OIDC issuer URL (the emulator's HTTP address) to verify tokens")
    parser.add_argument("--audience", help="expected audience (default: the request URL)")
    parser.add_argument("--record", help="append one JSON line per request to this file")
    parser.add_argument("--fail-first", type=int, default=0, help="answer 503 to the first N requests")
    args = parser.parse_args(argv)
    verifier = OidcVerifier(args.issuer, args.audience) if args.issuer else None
    server = ThreadingHTTPServer((args.host, args.port), make_handler(verifier, args.record, args.fail_first))
    scheme = "http"
    if args.tls:
        server.socket = self_signed_context(args.host).wrap_socket(server.socket, server_side=True)
        scheme = "https"
    print(f"[worker] listening on {scheme}://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
