"""A local OpenID Connect provider for tests: signing keys, a JWKS served over HTTP, tokens.

The JWKS is served by a real ``python -m http.server`` process on 127.0.0.1, from a file this class
rewrites, so a test can rotate keys while the service under test keeps running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://id.example.gov.vn/realms/province-79"


class SigningKey:
    def __init__(self, kid: str, algorithm: str = "RS256") -> None:
        self.kid, self.algorithm = kid, algorithm
        if algorithm == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**jwk, "kid": kid, "use": "sig", "alg": algorithm}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid})


class IdentityProvider:
    """``publish(*keys)`` replaces the served key set; ``token(key, ...)`` signs one."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.url = f"http://127.0.0.1:{port}/jwks.json"
        self.process: subprocess.Popen | None = None

    def publish(self, *keys: SigningKey) -> None:
        staged = self.directory / "jwks.json.new"
        staged.write_text(json.dumps({"keys": [key.jwk for key in keys]}))
        staged.replace(self.directory / "jwks.json")  # atomic: a fetch never sees half a file

    def start(self) -> IdentityProvider:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url, timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the test JWKS server did not come up on {self.url}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    @staticmethod
    def claims(
        *,
        audience: str = "motcua-dossier",
        sub: str = "officer-1",
        lifetime: timedelta = timedelta(minutes=5),
        issued: datetime | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        issued = issued or datetime.now(UTC)
        return {
            "iss": ISSUER,
            "aud": audience,
            "sub": sub,
            "iat": int(issued.timestamp()),
            "exp": int((issued + lifetime).timestamp()),
            **extra,
        }
