"""Whether kopf's watch of MediaAssets keeps up with the API server, for the liveness probe.

The watch timeouts (lifecycle.startup) end a stream that went silent, but a stream can also stay open
and deliver nothing (kopf issue 585), and from inside, a silent stream looks just like a quiet cluster.
So the check asks the API server: the reconcile timer keeps running on a stalled stream with the body it
last received, and at most once per `check_interval` one of its runs reads that MediaAsset from the
API server. If the server holds a version the stream has not delivered `stall_after` seconds later, the
stream has stalled: the probe fails and Kubernetes restarts the operator, which watches afresh.

A standby replica (peering) runs no timers, so it is never judged by this; neither is an operator with
nothing to reconcile, which a late event cannot harm (the timeouts bound how late it is).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Suspect:
    name: str
    watched_version: str  # what the stream had delivered when the server was found ahead
    since: float
    last_seen: float  # its timer's last run: a timer stops only on what the stream delivered


@dataclass
class WatchHealth:
    check_interval: float = 60.0
    stall_after: float = 120.0  # a live stream delivers within a second; this is far beyond any lag
    # The suspect's timer stopped (finished or deleted, as the stream said): it no longer tells anything.
    forget_after: float = 30.0
    _last_check: float | None = None
    _suspect: _Suspect | None = None

    def due(self, now: float) -> bool:
        """Whether this timer run should read its MediaAsset from the API server (and count as the check)."""
        if self._last_check is not None and now - self._last_check < self.check_interval:
            return False
        self._last_check = now
        return True

    def compared(self, *, name: str, watched_version: str, served_version: str | None, now: float) -> None:
        """The result of a check: the version the stream delivered and the one the server holds (None:
        the object is gone, which the stream will tell soon enough)."""
        if served_version is None or served_version == watched_version:
            return
        if self._suspect is None or self._suspect.name != name:
            self._suspect = _Suspect(name=name, watched_version=watched_version, since=now, last_seen=now)

    def delivered(self, *, name: str, watched_version: str, now: float) -> None:
        """A timer run with the body the stream has now: anything newer than the suspect clears it."""
        suspect = self._suspect
        if suspect is None or suspect.name != name:
            return
        if watched_version != suspect.watched_version:
            self._suspect = None
        else:
            suspect.last_seen = now

    def stalled_for(self, now: float) -> float | None:
        """Seconds the stream has been behind the server, once that is past `stall_after`; else None."""
        suspect = self._suspect
        if suspect is not None and now - suspect.last_seen > self.forget_after:
            self._suspect = suspect = None
        if suspect is None or now - suspect.since < self.stall_after:
            return None
        return now - suspect.since
