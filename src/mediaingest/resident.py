"""A process's resident memory as Linux reports it: the `kB` fields of /proc/<pid>/status, and the reset of
its high-water mark (`clear_refs` 5), which lets a long-lived process measure the peak of one piece of work.
A leaf: the stage processes, the benchmarks and the tests all read memory through it."""

from __future__ import annotations

from pathlib import Path


def status_kib(field: str, pid: int | None = None) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmRSS: resident now; VmHWM: its peak), of this process by
    default; None where there is none (not Linux, the process is gone)."""
    try:
        lines = Path(f"/proc/{pid or 'self'}/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith(f"{field}:")), None)


def reset_peak() -> None:
    """This process's VmHWM starts again from its resident size now (OSError where the kernel refuses)."""
    Path("/proc/self/clear_refs").write_text("5")
