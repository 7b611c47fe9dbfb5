"""Caps on stage Jobs running at once, cluster-wide and per tenant.

The count is what the Job watch says is active (a kopf index, tenant → Job names) plus the Jobs this
process created but has not seen on the watch yet (reservations), so two assets reconciled back to
back cannot both take the last slot. The operator runs as a single replica (Recreate), which is what
makes an in-process ledger sufficient; reservations expire so a failed create never leaks a slot.
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
    clock: Callable[[], float] = time.monotonic
    _reserved: dict[str, tuple[str, float]] = field(default_factory=dict)  # job name → (tenant, expiry)

    def forget(self, job_name: str) -> None:
        """The Job showed up on the watch (or its create failed): the index counts it from now on."""
        self._reserved.pop(job_name, None)

    def running(self, active: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
        """Tenant → Job names counted against the caps right now."""
        now = self.clock()
        for name in [name for name, (_, expiry) in self._reserved.items() if expiry <= now]:
            del self._reserved[name]
        counted = {tenant: set(names) for tenant, names in active.items()}
        for name, (tenant, _) in self._reserved.items():
            counted.setdefault(tenant, set()).add(name)
        return counted

    def try_admit(self, *, job_name: str, tenant: str, active: Mapping[str, Iterable[str]]) -> str | None:
        """Reserves a slot for `job_name` and returns None, or returns why it has to wait."""
        counted = self.running(active)
        if job_name in counted.get(tenant, ()):
            return None  # already running or reserved: re-creating it takes no new slot
        tenant_running = len(counted.get(tenant, ()))
        if tenant_running >= self.max_running_per_tenant:
            return f"tenant cap: {tenant_running}/{self.max_running_per_tenant} Jobs of this owner running"
        total = sum(len(names) for names in counted.values())
        if total >= self.max_running:
            return f"global cap: {total}/{self.max_running} stage Jobs running"
        self._reserved[job_name] = (tenant, self.clock() + self.reservation_ttl_seconds)
        return None
