"""Generated passwords, kept in a JSON file that only its owner can read (mode 0600).

The file maps a purpose (``admin``, ``writer``, ``bi_reader``) to a password. Passwords
given through environment variables are never written here: the environment stays the
source of truth for them.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from warehouse.errors import WarehouseError


class CredentialStore:
    """Read and create passwords in a 0600 JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def get(self, purpose: str) -> str | None:
        """Return the stored password for ``purpose``, or None if there is none."""
        return self._load().get(purpose)

    def get_or_create(self, purpose: str) -> str:
        """Return the stored password for ``purpose``, generating and saving one if missing."""
        data = self._load()
        if purpose not in data:
            data[purpose] = secrets.token_urlsafe(24)
            self._save(data)
        return data[purpose]

    def _load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except PermissionError:
            raise WarehouseError(
                f"cannot read {self.path} (mode 0600): run as its owner, or pass the passwords "
                "through WAREHOUSE_ADMIN_PASSWORD / WAREHOUSE_WRITER_PASSWORD / BI_READER_PASSWORD"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WarehouseError(f"credentials file {self.path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise WarehouseError(f"credentials file {self.path} must hold a JSON object")
        return data

    def _save(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        # Create with 0600 from the start so the secret is never briefly world-readable,
        # then rename so readers never see a half-written file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
