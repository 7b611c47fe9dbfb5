"""mediaingest: media ingestion backend."""
