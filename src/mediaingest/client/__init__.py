"""A small typed client for the mediaingest API, and the `mediaingest upload` / `mediaingest assets` commands.

    with MediaIngestClient("http://127.0.0.1:8000", token) as client:
        confirmed = client.upload(Path("clip.mp4"), on_progress=print)
        final = client.wait(confirmed.asset_id)          # Server-Sent Events, or polling as a fallback
        detail = client.get(confirmed.asset_id)          # metadata and derived files with signed URLs

Bytes go straight to the signed storage URLs (never through the API, never with the API token), in
parallel parts for multipart uploads, each request retried with backoff on network errors and 5xx.

Errors (errors.py):

    ClientError
    ├── ApiError            the API answered with its error envelope (status, code, message, details)
    └── TransferError       storage refused or kept failing a PUT (after the retries)
"""

from mediaingest.client.api import MediaIngestClient
from mediaingest.client.errors import ApiError, ClientError, TransferError, describe_error

__all__ = ["ApiError", "ClientError", "MediaIngestClient", "TransferError", "describe_error"]
