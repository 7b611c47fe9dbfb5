"""The local executor: a job queue in the database, leases, retries, and the worker loop."""
