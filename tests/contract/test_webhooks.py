"""WebhookStore contract: records and secrets by id, kept apart (a record's rewrite leaves the
secrets, a rotation leaves the record), oldest first, and no write brings a removed endpoint
back; every handle on the store sees each write at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

import pytest

from realorders.domain import Status
from realorders.engine.ports import Backend
from realorders.errors import ConflictError
from realorders.webhooks import WebhookEndpoint, WebhookSecrets, new_secret

#: epoch seconds with microseconds: times must come back exactly as stored
T0 = 1_764_000_000.123456


def endpoint(endpoint_id: str, at: float = T0, **fields: object) -> WebhookEndpoint:
    made = WebhookEndpoint(
        endpoint_id=endpoint_id,
        url=f"https://hooks.example/{endpoint_id}?q=1&r=ü",
        events=None,
        customer_id=None,
        description=None,
        enabled=True,
        disabled_reason=None,
        created_at=at,
        updated_at=at,
    )
    return replace(made, **fields)  # type: ignore[arg-type]  # fields of the record


def secrets(name: str) -> WebhookSecrets:
    return WebhookSecrets(f"whsec_{name}")


def test_an_endpoint_comes_back_exactly_with_its_secrets(backend: Backend) -> None:
    shapes = [
        endpoint("we_000000000001"),
        endpoint(
            "we_000000000002",
            T0 + 1,
            events=frozenset({Status.SHIPPED, Status.DELIVERED}),
            customer_id="ada lovelace",
            description="the shop's CRM: ☃",
        ),
        endpoint(
            "we_000000000003",
            T0 + 2,
            events=frozenset(Status),
            enabled=False,
            disabled_reason="410 Gone",
            updated_at=T0 + 3.000001,
        ),
    ]
    kept = [
        secrets("a"),
        WebhookSecrets("whsec_b", "whsec_old", T0 + 86_400.5),
        WebhookSecrets(new_secret(), new_secret(), T0),
    ]
    for one, its in zip(shapes, kept, strict=True):
        backend.webhooks.add(one, its)
    for one, its in zip(shapes, kept, strict=True):
        assert backend.webhooks.get(one.endpoint_id) == (one, its)
    assert backend.webhooks.list() == shapes


def test_an_unknown_id_is_none_and_writes_to_it_change_nothing(backend: Backend) -> None:
    assert backend.webhooks.get("we_abcdefabcdef") is None
    assert backend.webhooks.list() == []
    backend.webhooks.add(endpoint("we_abcdefabcdef"), secrets("a"))
    for other in ("we_abcdefabcdee", "", "WE_ABCDEFABCDEF", "we_abcdefabcdef\x00", "abcdefabcdef"):
        assert backend.webhooks.get(other) is None, other
    ghost = endpoint("we_000000000009")
    assert backend.webhooks.replace(ghost) is False
    assert backend.webhooks.set_secrets(ghost.endpoint_id, secrets("ghost")) is False
    assert backend.webhooks.remove(ghost.endpoint_id) is False
    assert backend.webhooks.get(ghost.endpoint_id) is None
    assert [e.endpoint_id for e in backend.webhooks.list()] == ["we_abcdefabcdef"]


def test_list_is_oldest_first(backend: Backend) -> None:
    for endpoint_id, at in (("we_00000000000b", 2), ("we_00000000000a", 1), ("we_00000000000c", 3)):
        backend.webhooks.add(endpoint(endpoint_id, T0 + at), secrets(endpoint_id))
    assert [e.endpoint_id for e in backend.webhooks.list()] == [
        "we_00000000000a",
        "we_00000000000b",
        "we_00000000000c",
    ]


def test_an_id_is_added_once(backend: Backend) -> None:
    first = endpoint("we_000000000001")
    backend.webhooks.add(first, secrets("first"))
    other = endpoint("we_000000000001", url="https://other.example/")
    with pytest.raises(ConflictError, match="we_000000000001"):
        backend.webhooks.add(other, secrets("b"))
    assert backend.webhooks.get("we_000000000001") == (first, secrets("first"))
    assert backend.webhooks.list() == [first]


def test_replace_rewrites_the_record_and_leaves_the_secrets(backend: Backend) -> None:
    kept = WebhookSecrets("whsec_now", "whsec_before", T0 + 60)
    backend.webhooks.add(endpoint("we_000000000001"), kept)
    backend.webhooks.add(endpoint("we_000000000002", T0 + 1), secrets("bystander"))
    changed = endpoint(
        "we_000000000001",
        url="http://127.0.0.1:8080/in",
        events=frozenset({Status.CANCELLED}),
        customer_id="bob",
        description="moved",
        enabled=False,
        disabled_reason="paused for maintenance",
        updated_at=T0 + 5.5,
    )
    assert backend.webhooks.replace(changed) is True
    assert backend.webhooks.get("we_000000000001") == (changed, kept)
    cleared = replace(changed, events=None, customer_id=None, description=None, enabled=True,
                      disabled_reason=None, updated_at=T0 + 6)  # fmt: skip
    assert backend.webhooks.replace(cleared) is True
    assert backend.webhooks.get("we_000000000001") == (cleared, kept)
    assert backend.webhooks.list() == [cleared, endpoint("we_000000000002", T0 + 1)]


def test_set_secrets_leaves_the_record(backend: Backend) -> None:
    record = endpoint("we_000000000001", description="kept")
    backend.webhooks.add(record, secrets("one"))
    rotated = WebhookSecrets("whsec_two", "whsec_one", T0 + 86_400.000001)
    assert backend.webhooks.set_secrets("we_000000000001", rotated) is True
    assert backend.webhooks.get("we_000000000001") == (record, rotated)
    assert backend.webhooks.set_secrets("we_000000000001", secrets("three")) is True
    assert backend.webhooks.get("we_000000000001") == (record, secrets("three"))


def test_remove_takes_the_secrets_too(backend: Backend) -> None:
    backend.webhooks.add(endpoint("we_000000000001"), WebhookSecrets("whsec_a", "whsec_b", T0))
    backend.webhooks.add(endpoint("we_000000000002", T0 + 1), secrets("stays"))
    assert backend.webhooks.remove("we_000000000001") is True
    assert backend.webhooks.remove("we_000000000001") is False
    assert backend.webhooks.get("we_000000000001") is None
    # no write after a remove brings it back, half-made or whole
    assert backend.webhooks.replace(endpoint("we_000000000001")) is False
    assert backend.webhooks.set_secrets("we_000000000001", secrets("late")) is False
    assert backend.webhooks.get("we_000000000001") is None
    assert [e.endpoint_id for e in backend.webhooks.list()] == ["we_000000000002"]
    # the id may be used again: nothing of the old endpoint is left
    again = endpoint("we_000000000001", T0 + 2, description="again")
    backend.webhooks.add(again, secrets("new"))
    assert backend.webhooks.get("we_000000000001") == (again, secrets("new"))


def test_every_handle_sees_each_write_at_once(
    backend: Backend, peer: Callable[[], Backend]
) -> None:
    other = peer()  # another process on the same store (the future deliverer)
    record = endpoint("we_00000000000e")
    backend.webhooks.add(record, secrets("one"))
    assert other.webhooks.get(record.endpoint_id) == (record, secrets("one"))
    disabled = replace(record, enabled=False, disabled_reason="too many failures")
    assert other.webhooks.replace(disabled) is True
    assert backend.webhooks.list() == [disabled]
    assert backend.webhooks.set_secrets(record.endpoint_id, secrets("two")) is True
    assert other.webhooks.get(record.endpoint_id) == (disabled, secrets("two"))
    assert other.webhooks.remove(record.endpoint_id) is True
    assert backend.webhooks.get(record.endpoint_id) is None
    assert peer().webhooks.list() == []


def test_racing_adds_of_one_id_have_one_winner(
    backend: Backend, peer: Callable[[], Backend]
) -> None:
    if backend.name == "memory":
        pytest.skip("one process, one thread: the fake has no race to lose")
    handles = [backend, *(peer() for _ in range(3))]
    start = threading.Barrier(len(handles))
    outcomes: list[str] = []

    def add(i: int, handle: Backend) -> None:
        start.wait()
        try:
            handle.webhooks.add(endpoint("we_0000000000ff", T0 + i), secrets(str(i)))
            outcomes.append(f"added {i}")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=add, args=(i, handle)) for i, handle in enumerate(handles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [o for o in outcomes if o.startswith("added")]
    assert len(winners) == 1, outcomes
    assert outcomes.count("conflict") == 3, outcomes
    found = backend.webhooks.get("we_0000000000ff")
    assert found is not None
    i = int(winners[0].split()[1])  # the record and the secrets are the winner's both
    assert found == (endpoint("we_0000000000ff", T0 + i), secrets(str(i)))
