"""TokenStore contract: records and digests by id, one active token per name, revocation
seen at once by every handle on the store (a running server is another handle)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from realorders.engine.ports import Backend
from realorders.errors import ConflictError
from realorders.tokens import Scope, TokenRecord, digest

#: epoch seconds with microseconds: times must come back exactly as stored
T0 = 1_764_000_000.123456


def record(
    token_id: str, name: str, scope: Scope = Scope.READ, at: float = T0
) -> tuple[TokenRecord, str]:
    return TokenRecord(token_id, name, scope, at), digest(f"secret of {token_id}")


def test_a_token_is_found_by_id_with_its_digest(backend: Backend) -> None:
    for i, scope in enumerate(Scope):
        rec, dig = record(f"00000000000{i}", f"t-{scope.value}", scope, T0 + i)
        backend.tokens.add(rec, dig)
        assert backend.tokens.find(rec.token_id) == (rec, dig)
    found = backend.tokens.find("000000000002")
    assert found is not None
    assert found[0].scope is Scope.ADMIN
    assert found[0].created_at == T0 + 2
    assert found[0].revoked_at is None


def test_an_unknown_id_is_none(backend: Backend) -> None:
    assert backend.tokens.find("abcdefabcdef") is None
    backend.tokens.add(*record("abcdefabcdef", "ci"))
    for other in ("abcdefabcdee", "", "ci", "ABCDEFABCDEF", "abcdefabcdef\x00"):
        assert backend.tokens.find(other) is None, other


def test_an_empty_store_lists_nothing(backend: Backend) -> None:
    assert backend.tokens.list() == []
    assert backend.tokens.revoke("ci", T0) == 0


def test_list_is_oldest_first_and_keeps_revoked_tokens(backend: Backend) -> None:
    backend.tokens.add(*record("000000000002", "second", at=T0 + 2))
    backend.tokens.add(*record("000000000001", "first", at=T0 + 1))
    backend.tokens.add(*record("000000000003", "third", at=T0 + 3))
    assert backend.tokens.revoke("second", T0 + 10) == 1
    listed = backend.tokens.list()
    assert [r.name for r in listed] == ["first", "second", "third"]
    assert [r.revoked_at for r in listed] == [None, T0 + 10, None]


def test_two_active_tokens_never_share_a_name(backend: Backend) -> None:
    first, first_digest = record("000000000001", "ci", Scope.WRITE)
    backend.tokens.add(first, first_digest)
    with pytest.raises(ConflictError, match="'ci'"):
        backend.tokens.add(*record("000000000002", "ci", Scope.ADMIN, T0 + 1))
    assert backend.tokens.find("000000000002") is None
    assert backend.tokens.list() == [first]
    backend.tokens.add(*record("000000000003", "ci-2", at=T0 + 2))  # another name: fine


def test_a_revoked_name_may_be_used_again(backend: Backend) -> None:
    backend.tokens.add(*record("000000000001", "ci"))
    assert backend.tokens.revoke("ci", T0 + 5) == 1
    again, again_digest = record("000000000002", "ci", Scope.WRITE, T0 + 6)
    backend.tokens.add(again, again_digest)
    assert [(r.token_id, r.revoked) for r in backend.tokens.list()] == [
        ("000000000001", True),
        ("000000000002", False),
    ]
    # the name now means the new token only
    assert backend.tokens.revoke("ci", T0 + 7) == 1
    found = backend.tokens.find("000000000002")
    assert found is not None
    assert found[0].revoked_at == T0 + 7


def test_revoke_by_name_or_by_id_once(backend: Backend) -> None:
    ci, ci_digest = record("00000000000a", "ci", Scope.WRITE)
    backend.tokens.add(ci, ci_digest)
    backend.tokens.add(*record("00000000000b", "ops", Scope.ADMIN, T0 + 1))
    assert backend.tokens.revoke("ci", T0 + 2) == 1
    assert backend.tokens.revoke("00000000000b", T0 + 3) == 1
    assert backend.tokens.revoke("ci", T0 + 4) == 0  # revoked already: the time stays
    assert backend.tokens.revoke("00000000000a", T0 + 4) == 0
    assert backend.tokens.revoke("nobody", T0 + 4) == 0
    found = backend.tokens.find("00000000000a")
    assert found == (TokenRecord("00000000000a", "ci", Scope.WRITE, T0, T0 + 2), ci_digest)
    assert [r.revoked_at for r in backend.tokens.list()] == [T0 + 2, T0 + 3]


def test_an_argument_that_is_a_name_and_an_id_revokes_both(backend: Backend) -> None:
    backend.tokens.add(*record("0123456789ab", "deploy"))
    backend.tokens.add(*record("00000000000c", "0123456789ab", at=T0 + 1))  # a name like an id
    backend.tokens.add(*record("00000000000d", "bystander", at=T0 + 2))
    assert backend.tokens.revoke("0123456789ab", T0 + 3) == 2
    assert [r.revoked for r in backend.tokens.list()] == [True, True, False]


def test_every_handle_sees_a_revocation_at_once(
    backend: Backend, peer: Callable[[], Backend]
) -> None:
    server = peer()  # a running server: another process on the same store
    rec, dig = record("00000000000e", "ci", Scope.WRITE)
    backend.tokens.add(rec, dig)
    assert server.tokens.find(rec.token_id) == (rec, dig)
    with pytest.raises(ConflictError):
        server.tokens.add(*record("00000000000f", "ci", at=T0 + 1))
    assert server.tokens.revoke("ci", T0 + 2) == 1
    found = backend.tokens.find(rec.token_id)
    assert found is not None
    assert found[0].revoked_at == T0 + 2
    assert [r.token_id for r in peer().tokens.list()] == [rec.token_id]


def test_racing_creates_of_one_name_have_one_winner(
    backend: Backend, peer: Callable[[], Backend]
) -> None:
    if backend.name == "memory":
        pytest.skip("one process, one thread: the fake has no race to lose")
    handles = [backend, *(peer() for _ in range(3))]
    start = threading.Barrier(len(handles))
    outcomes: list[str] = []

    def create(i: int, handle: Backend) -> None:
        start.wait()
        try:
            handle.tokens.add(*record(f"00000000010{i}", "race", at=T0 + i))
            outcomes.append("added")
        except ConflictError:
            outcomes.append("conflict")

    threads = [
        threading.Thread(target=create, args=(i, handle)) for i, handle in enumerate(handles)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["added", "conflict", "conflict", "conflict"]
    assert len([r for r in backend.tokens.list() if r.name == "race"]) == 1
