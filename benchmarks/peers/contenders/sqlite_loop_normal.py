"""sqlite_loop.py with realorders' own durability: ``synchronous=NORMAL`` in WAL.

Not in the issue's list: it shows how much of the per-change loop's cost is
the fsync on every commit that ``synchronous=FULL`` buys (durable against power
loss), against a setting as durable as realorders' (a process crash loses
nothing; an OS crash or power loss may lose the last commits).
"""

from __future__ import annotations

from sqlite_loop import run_loop

WORKLOADS = ("standard", "backorder", "restock")  # restocks: see sqlite_loop.py

if __name__ == "__main__":
    run_loop(
        "sqlite_loop_normal",
        commit_every=1,
        synchronous="NORMAL",
        durability="SQLite synchronous=NORMAL, WAL, one transaction per state change "
        "(as durable as realorders: an OS crash may lose the last commits)",
    )
