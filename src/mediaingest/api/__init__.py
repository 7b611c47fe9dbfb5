"""The HTTP API: `create_app()` wires settings, database, storage, dispatcher and routers together."""

from mediaingest.api.app import create_app

__all__ = ["create_app"]
