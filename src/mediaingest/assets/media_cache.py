"""Stored videos on the API's own disk, for ffmpeg to decode frames from: the images' ffmpeg reads local
files and pipes only (no network protocols), and a timeline asks for many frames of the same file.

A file the store keeps locally is read in place. Others are downloaded once, whole, under a name derived
from their bucket, key and ETag (a replaced object is a new file), into a folder kept under a size
bound: the least recently used files go first. A download goes to a temporary name and is renamed
when complete, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import structlog

from mediaingest.storage.base import Storage

log = structlog.stdlib.get_logger(__name__)


class MediaCache:
    def __init__(self, storage: Storage, folder: Path, *, max_bytes: int) -> None:
        self.storage = storage
        self.folder = folder
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._downloading: dict[str, threading.Lock] = {}

    def path(self, bucket: str, key: str) -> Path:
        """A local file holding the object (ObjectNotFoundError when it is not stored)."""
        local = self.storage.local_path(bucket, key)
        if local is not None:
            return local
        etag = self.storage.head(bucket, key).etag
        name = hashlib.sha256(f"{bucket}\0{key}\0{etag}".encode()).hexdigest()[:40]
        target = self.folder / name
        with self._lock:
            gate = self._downloading.setdefault(name, threading.Lock())
        with gate:  # one download of a file at a time; the others wait for it and read it
            if target.is_file():
                os.utime(target)  # recently used
                return target
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{name}.{threading.get_ident()}.partial")
            try:
                self.storage.download_file(bucket, key, partial, etag=etag)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
            log.info("timeline.cached", bucket=bucket, size=target.stat().st_size)
        self._evict(keep=target)
        return target

    def _evict(self, *, keep: Path) -> None:
        """Removes the least recently used files until the folder fits its bound (never the one just used)."""
        with self._lock:
            files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.folder.iterdir() if p.is_file()]
            total = sum(size for _, size, _ in files)
            for _, size, path in sorted(files):
                if total <= self.max_bytes:
                    break
                if path != keep and not path.name.startswith("."):
                    path.unlink(missing_ok=True)
                    total -= size
