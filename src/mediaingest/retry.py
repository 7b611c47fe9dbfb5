"""Retry policy as a value: (error, attempts so far) → a decision. Nothing that retries sleeps or loops
on its own judgement; every place that retries holds one of these (procrastinate's RetryStrategy).

Used by stage tasks (the worker and, through the operator, Kubernetes Jobs), webhook deliveries, and
the client's part uploads; each with its own numbers, all with the same rule: exponential backoff
from `base_seconds`, capped at `max_seconds`, spread by ± `jitter` so a burst of failures does not
retry in lockstep, up to `max_attempts`; an error that says no attempt can cure it is final at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from mediaingest.config import Settings
from mediaingest.exceptions import Permanent


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_seconds: float
    reason: str  # "permanent" | "transient" | "exhausted" — the ingestion_jobs_failed_total reason label


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 2.0
    max_seconds: float = 300.0
    jitter: float = 0.25  # ± fraction; 0 makes delays exact (the operator's pure reconcile wants that)

    @classmethod
    def for_stages(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.job_max_attempts,
            base_seconds=settings.job_backoff_base_seconds,
            max_seconds=settings.job_backoff_max_seconds,
        )

    def backoff(self, attempts: int) -> float:
        """Delay after failed attempt number `attempts` (1-based): base · 2^(attempts-1), capped, jittered."""
        delay = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        if not self.jitter:
            return delay
        return max(0.0, delay * (1 + random.uniform(-self.jitter, self.jitter)))

    def decide(self, error: BaseException, *, attempts: int, max_attempts: int | None = None) -> RetryDecision:
        if isinstance(error, Permanent):
            return RetryDecision(retry=False, delay_seconds=0.0, reason="permanent")
        if attempts >= (max_attempts or self.max_attempts):
            return RetryDecision(retry=False, delay_seconds=0.0, reason="exhausted")
        return RetryDecision(retry=True, delay_seconds=self.backoff(attempts), reason="transient")
