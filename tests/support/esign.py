"""Helpers for the e-signature tests: the local RFC 3161 TSA as a real process, a SoftHSM2 token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "test-passphrase-not-a-secret"
SOFTHSM_MODULE_PATHS = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")


@contextmanager
def tsa_process(pki_dir: Path, port: int, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """``python -m services.esign.tsa`` on ``port``; yields its URL, stops it afterwards."""
    env = {**os.environ, "ESIGN_KEY_PASSPHRASE": PASSPHRASE, "PYTHONPATH": str(ROOT), **(extra_env or {})}
    log = open(pki_dir.parent / "tsa.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "services.esign.tsa", "--port", str(port), "--pki-dir", str(pki_dir)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the test TSA exited: {(pki_dir.parent / 'tsa.log').read_text()[-2000:]}")
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the test TSA did not start within 30 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def softhsm_module() -> str | None:
    for path in SOFTHSM_MODULE_PATHS:
        if Path(path).exists():
            return path
    return None


@contextmanager
def softhsm_token(folder: Path, label: str = "motcua-test", pin: str = "1234") -> Iterator[dict[str, str]]:
    """A fresh SoftHSM2 token in ``folder`` (its own SOFTHSM2_CONF); yields the keystore settings."""
    util = shutil.which("softhsm2-util")
    module = softhsm_module()
    if util is None or module is None:
        raise RuntimeError("SoftHSM2 is not installed (Debian: apt-get install softhsm2)")
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "5678"],
            check=True,
            capture_output=True,
        )
        yield {"ESIGN_PKCS11_MODULE": module, "ESIGN_PKCS11_TOKEN": label, "ESIGN_PKCS11_PIN": pin}
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
