"""Caps on stage Jobs running at once, cluster-wide and per tenant.

The count is what the Job watch says is active (a kopf index, tenant → Job names) plus the Jobs this
process created but has not seen on the watch yet (reservations), so two assets reconciled back to
back cannot both take the last slot. The operator runs as a single replica (Recreate), which is what
makes an in-process ledger sufficient; reservations expire so a failed create never leaks a slot.

When slots free up they go to the Jobs that have waited longest, weighted by priority, not to whichever
asset happens to be reconciled first: every wait is registered, and a Job is admitted only while fewer
waiters rank ahead of it than there are free slots. Waiting raises a Job's rank by one priority level
every `aging_seconds`, so no tenant and no priority starves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class CapacityLedger:
    max_running: int
    max_running_per_tenant: int
    reservation_ttl_seconds: float = 120.0
    aging_seconds: float = 300.0  # waiting this long counts as one priority level more
    waiter_ttl_seconds: float = 120.0  # longer than any retry delay: a waiter not seen again is gone
    clock: Callable[[], float] = time.monotonic
    _reserved: dict[str, tuple[str, float]] = field(default_factory=dict)  # job name → (tenant, expiry)
    # job name → (tenant, priority rank, first wait, last wait)
    _waiting: dict[str, tuple[str, int, float, float]] = field(default_factory=dict)

    def forget(self, job_name: str) -> None:
        """The Job showed up on the watch (or its create failed): the index counts it from now on."""
        self._reserved.pop(job_name, None)

    def running(self, active: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
        """Tenant → Job names counted against the caps right now."""
        now = self.clock()
        for name in [name for name, (_, expiry) in self._reserved.items() if expiry <= now]:
            del self._reserved[name]
        for name in [name for name, (*_, last) in self._waiting.items() if last <= now - self.waiter_ttl_seconds]:
            del self._waiting[name]
        counted = {tenant: set(names) for tenant, names in active.items()}
        for name, (tenant, _) in self._reserved.items():
            counted.setdefault(tenant, set()).add(name)
        return counted

    def try_admit(
        self, *, job_name: str, tenant: str, active: Mapping[str, Iterable[str]], rank: int = 0
    ) -> str | None:
        """Reserves a slot for `job_name` and returns None, or returns why it has to wait."""
        counted = self.running(active)
        if job_name in counted.get(tenant, ()):
            return None  # already running or reserved: re-creating it takes no new slot
        now = self.clock()
        first_wait = self._waiting[job_name][2] if job_name in self._waiting else now
        self._waiting[job_name] = (tenant, rank, first_wait, now)
        tenant_running = len(counted.get(tenant, ()))
        if tenant_running >= self.max_running_per_tenant:
            return f"tenant cap: {tenant_running}/{self.max_running_per_tenant} Jobs of this owner running"
        total = sum(len(names) for names in counted.values())
        if total >= self.max_running:
            return f"global cap: {total}/{self.max_running} stage Jobs running"
        ahead = self._ranked_ahead(job_name, counted, now)
        if ahead >= self.max_running - total:
            return f"queued behind {ahead} Jobs waiting longer or more urgently"
        del self._waiting[job_name]
        self._reserved[job_name] = (tenant, now + self.reservation_ttl_seconds)
        return None

    def _ranked_ahead(self, job_name: str, counted: Mapping[str, set[str]], now: float) -> int:
        """Waiters that rank above `job_name` and whose tenant could take a slot now."""

        def score(entry: tuple[str, int, float, float]) -> float:
            return entry[1] + (now - entry[2]) / self.aging_seconds

        mine = score(self._waiting[job_name])
        return sum(
            1
            for name, entry in self._waiting.items()
            if name != job_name and len(counted.get(entry[0], ())) < self.max_running_per_tenant and score(entry) > mine
        )
