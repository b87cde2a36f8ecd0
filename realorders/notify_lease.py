"""Who fills the outbox: the scanner's lease, held by one deliverer of a store.

Enqueueing is idempotent, so the lease only spares the other deliverers the
work. It lives in the store (``DeliveryStore.take_lease``) and ends by itself
``LEASE_TTL`` seconds after its holder stops renewing; a holder on this host
whose process is gone (``kill -9``) is taken over at once.
"""

from __future__ import annotations

import os
import secrets
import socket
import time

from realorders.engine.notify_ports import DeliveryStore

__all__ = ["LEASE_TTL", "new_owner", "take_scanning"]

LEASE_TTL = 30.0  # seconds; renewed every third of it


def new_owner() -> str:
    """``host:pid:random``: whose lease it is, and whether that process still runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def take_scanning(store: DeliveryStore, owner: str) -> bool:
    """Take or renew the lease for ``owner``; whether it holds it now."""
    holder = store.take_lease(owner, LEASE_TTL, time.time())
    if holder is not None and _gone(holder):
        store.release_lease(holder)  # no need to wait for its lease to end
        holder = store.take_lease(owner, LEASE_TTL, time.time())
    return holder is None


def _gone(owner: str) -> bool:
    """Whether ``owner`` was a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's: it runs
        return False
    return False
