"""Completion webhooks: a signed POST to the user's URL when one of their assets becomes READY or FAILED.

    endpoints.py   PUT/GET/DELETE /api/webhook (the URL and its signing secret), GET /api/webhook/deliveries
    service.py     setting and clearing the webhook; `record_asset_event`, the outbox write that runs in
                   the same transaction as the status change it announces
    repository.py  claiming due deliveries in one statement, recording attempts
    delivery.py    the sender the worker runs from its maintenance tick: POST, retry with backoff, record
    signing.py     `X-MediaIngest-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "{t}.{body}">` and its check

Delivery is at least once: a receiver deduplicates on `X-MediaIngest-Delivery`, which is stable across
retries, and rejects signatures whose timestamp is too old (`signing.verify`, 5 minutes by default).
"""
