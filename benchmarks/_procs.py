"""Starting realorders and measuring processes from /proc: what every benchmark script shares.

Stdlib only: the peers' contenders import it through ``peers/common.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CLOCK_TICK", "machine_cpu", "proc_cpu", "realorders_cmd"]

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def realorders_cmd() -> list[str]:
    """The console script beside this interpreter, or ``python -m realorders``."""
    script = Path(sys.executable).parent / "realorders"
    return [str(script)] if script.exists() else [sys.executable, "-m", "realorders"]


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used so far (0 if gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine since boot (every process, every core)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICK
