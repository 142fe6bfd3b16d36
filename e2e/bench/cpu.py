"""CPU time of a process, split by thread, from /proc: what an extender costs per request or per pod, measured
beside its speed (a benchmark on a shared machine reads both)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds an extender process used, split by thread: its main thread (the event loop, which answers the
    verbs) and all the others (for tideover: the watches, the snapshot publisher and the controllers)."""

    main: float = 0.0
    others: float = 0.0

    def __sub__(self, other: CpuUse) -> CpuUse:
        return CpuUse(self.main - other.main, self.others - other.others)


def cpu_use(pid: int | None) -> CpuUse:
    """The process's CPU time so far, from /proc (utime + stime of each thread); zero without a process."""
    if pid is None:
        return CpuUse()
    tick = os.sysconf("SC_CLK_TCK")
    main = others = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime: fields 14 and 15 of stat(5)
            if task.name == str(pid):
                main += seconds
            else:
                others += seconds
    return CpuUse(main, others)
