"""The same hand-rolled loop as sqlite_loop.py, committing every 1,000 orders (group commit).

The worker processes up to 1,000 orders (every state change of each, events
included) in one transaction, or fewer when it has caught up with the
submitter; the submitter commits each batch it is handed (1,000 orders at
saturation, whatever is due at a fixed rate). A crash rolls back the open
batch: its orders are redone on restart, and none of its state changes was
ever visible. This is the plain-Python speed realorders must at least match.
"""

from __future__ import annotations

from sqlite_loop import run_loop

WORKLOADS = ("standard", "backorder", "restock")  # restocks: see sqlite_loop.py

if __name__ == "__main__":
    run_loop(
        "sqlite_group",
        commit_every=1000,
        synchronous="FULL",
        durability="SQLite synchronous=FULL, WAL, one transaction per 1,000 orders "
        "(no crash safety for the open batch: rolled back, redone on restart)",
    )
