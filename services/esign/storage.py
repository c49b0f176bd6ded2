"""Content-addressed, immutable storage of signed documents.

A document is stored under its SHA-256 (``ab/abcdef….pdf``), written once through a temporary file
and a rename, then made read-only: storing the same bytes again changes nothing, and different bytes
can never take an existing name. A document altered after signing therefore has another address, and
the verifier reports it as modified. ``retention`` (``ESIGN_RETENTION_DAYS``) says how long a revision
is kept; :meth:`DocumentStore.purge` removes the expired ones.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DocumentStore:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        if not _SHA256.match(digest):
            raise ValueError("a document address is a lowercase hex SHA-256")
        return self.folder / digest[:2] / f"{digest}.pdf"

    def put(self, data: bytes) -> str:
        """Store ``data``; its SHA-256 is its address. Idempotent."""
        digest = sha256_hex(data)
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o444)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes | None:
        """The bytes stored at ``digest``, checked against it (a file changed on disk is not served)."""
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if sha256_hex(data) != digest:
            raise OSError(f"stored document {digest} does not match its address: the store was tampered with")
        return data

    def contains(self, digest: str) -> bool:
        return self._path(digest).exists()

    def purge(self, digests: Iterable[str]) -> int:
        """Remove expired revisions (the caller selects them by ``retain_until``)."""
        removed = 0
        for digest in digests:
            path = self._path(digest)
            if path.exists():
                path.chmod(0o644)
                path.unlink()
                removed += 1
        return removed
