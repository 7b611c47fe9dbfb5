"""Database access: engine and session factories, the declarative base and shared column types."""

from mediaingest.db.base import Base, JSONType, UTCDateTime, enum_column, new_id, utcnow
from mediaingest.db.engine import (
    SessionFactory,
    create_db_engine,
    create_session_factory,
    is_postgres,
    session_scope,
)

__all__ = [
    "Base",
    "JSONType",
    "SessionFactory",
    "UTCDateTime",
    "create_db_engine",
    "create_session_factory",
    "enum_column",
    "is_postgres",
    "new_id",
    "session_scope",
    "utcnow",
]
