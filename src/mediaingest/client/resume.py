"""Which asset an interrupted upload of a file went to, so running the same command again resumes it.

One small JSON file (`$XDG_STATE_HOME/mediaingest/uploads.json`, else `~/.local/state/…`), keyed by
server, absolute path, size and modification time: a file edited since is a new upload. It holds asset
ids only, never a token or a URL. Written atomically (a temp file renamed over it), so a process killed
at any moment leaves the old state or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

# Entries older than this are dropped on write: the server expires idle uploads after a day anyway.
MAX_AGE_SECONDS = 7 * 24 * 3600


def default_state_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mediaingest" / "uploads.json"


class ResumeStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_state_path()

    @staticmethod
    def key(server: str, file: Path) -> str:
        stat = file.stat()
        return json.dumps([server.rstrip("/"), str(file.resolve()), stat.st_size, stat.st_mtime_ns])

    def get(self, key: str) -> str | None:
        entry = self._read().get(key)
        return str(entry["assetId"]) if isinstance(entry, dict) and "assetId" in entry else None

    def remember(self, key: str, asset_id: str) -> None:
        entries = self._read()
        entries[key] = {"assetId": asset_id, "savedAt": time.time()}
        self._write(entries)

    def forget(self, key: str) -> None:
        entries = self._read()
        if entries.pop(key, None) is not None:
            self._write(entries)

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return {}  # no state, or unreadable: uploads then start afresh, nothing worse
        return data if isinstance(data, dict) else {}

    def _write(self, entries: dict[str, dict[str, object]]) -> None:
        cutoff = time.time() - MAX_AGE_SECONDS
        kept = {key: entry for key, entry in entries.items() if _saved_at(entry) > cutoff}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=".uploads-")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(kept, handle)
            os.replace(name, self.path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise


def _saved_at(entry: object) -> float:
    saved = entry.get("savedAt") if isinstance(entry, dict) else None
    return float(saved) if isinstance(saved, int | float) else 0.0
