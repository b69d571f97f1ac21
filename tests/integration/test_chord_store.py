"""skqueue.broker.chords on a real Redis: counting header tasks once, one completion per chord, claims,
the "done" marker, and the Celery 5.3-5.6 variant."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from skqueue.broker.chords import ChordStore, Claim, PartReturn
from skqueue.broker.client import aclose, connect
from skqueue.broker.keys import ResultKeys
from skqueue.protocol.signature import chord_member
from tests.support import RedisServer

pytestmark = pytest.mark.timeout(30)
GID = "g-1"
KEY = f"celery-taskset-meta-{GID}"


def _part(task_id: str, index: int | None, value: Any = None, gid: str = GID, token: str = "") -> PartReturn:
    member = chord_member(task_id, "SUCCESS", task_id if value is None else value)
    return PartReturn(gid, task_id, index, member, token or f"tag-{task_id}:{task_id}")


def _run(server: RedisServer, body: Callable[[ChordStore], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        client = connect(server.url(1))
        try:
            await body(ChordStore(client, ResultKeys(), **options))
        finally:
            await aclose(client)

    asyncio.run(main())


def _ids(members: list[bytes] | None) -> list[str]:
    assert members is not None
    return [json.loads(m)[1] for m in members]


def test_claiming_protocol_counts_once_and_completes_once(server: RedisServer) -> None:
    redis = server.client(1)
    redis.set(f"{KEY}.s", 3)  # as a client stores it

    async def body(store: ChordStore) -> None:
        assert await store.record([_part("c", 2), _part("a", 0)]) == [None, None]
        # a copy of "a" with another result, then "b" twice: one completion, results in group_index order
        done = await store.record([_part("a", 0, "again", token="x"), _part("b", 1), _part("b", 1)])
        assert done[0] is None and done[2] is None and _ids(done[1]) == ["a", "b", "c"]
        assert json.loads(done[1][0])[3] == "a"
        # the same delivery again (a retried settlement, or redelivered after its worker died) owns the claim
        again = await store.record([_part("b", 1)])
        assert _ids(again[0]) == ["a", "b", "c"]
        assert await store.record([_part("b", 1, token="another delivery")]) == [None]
        assert await store.record([_part("a", 0)]) == [None]
        assert await store.release([Claim(GID, "wrong")]) == 0
        assert await store.release([Claim(GID, "tag-b:b")]) == 1
        assert await store.record([_part("b", 1)]) == [None]  # a late duplicate, even of the claimant

    _run(server, body)
    assert redis.get(f"{KEY}.c") == b"done" and 0 < redis.ttl(f"{KEY}.c") <= 300
    assert not redis.exists(f"{KEY}.j", f"{KEY}.s", f"{KEY}.d")


@pytest.mark.parametrize("protocol,fires", [("auto", True), ("5.7", False)])
def test_a_done_marker_left_for_an_old_client_rerunning_a_chord(server: RedisServer, protocol: str,
                                                                 fires: bool) -> None:
    redis = server.client(1)
    redis.set(f"{KEY}.c", "done")
    redis.set(f"{KEY}.s", 1, ex=100)  # a Celery <= 5.6 client re-applied the frozen chord

    async def body(store: ChordStore) -> None:
        (done,) = await store.record([_part("a", 0)])
        assert (done is not None) is fires

    _run(server, body, protocol=protocol)


def test_unordered_chords_keep_finishing_order(server: RedisServer) -> None:
    server.client(1).set(f"{KEY}.s", 2)

    async def body(store: ChordStore) -> None:
        assert await store.record([_part("late", 0)]) == [None]
        (done,) = await store.record([_part("early", 1)])
        assert _ids(done) == ["late", "early"]

    _run(server, body, ordered=False)


def test_added_tasks_and_expiry(server: RedisServer) -> None:
    redis = server.client(1)
    redis.set(f"{KEY}.s", 1)
    redis.set(f"{KEY}.t", 1)  # add_to_chord

    async def body(store: ChordStore) -> None:
        assert await store.record([_part("a", 0)]) == [None]
        assert redis.ttl(f"{KEY}.j") == 50 and redis.ttl(f"{KEY}.s") == 50
        (done,) = await store.record([_part("b", 1)])
        assert _ids(done) == ["a", "b"]

    _run(server, body, expires=50, group_expires=60)


def test_legacy_protocol_deletes_on_completion(server: RedisServer) -> None:
    redis = server.client(1)
    redis.set(f"{KEY}.s", 2)

    async def body(store: ChordStore) -> None:
        assert store.claims is False
        assert await store.record([_part("a", 0), _part("a", 0, "other result")]) == [None, None]
        assert redis.zcard(f"{KEY}.j") == 1
        done = await store.record([_part("b", 1), _part("a", 0)])
        assert _ids(done[0]) == ["a", "b"] and done[1] is None
        assert await store.release([Claim(GID, "t")]) == 0

    _run(server, body, protocol="5.3")
    assert not redis.exists(f"{KEY}.s", f"{KEY}.t", f"{KEY}.c", f"{KEY}.d")


@pytest.mark.parametrize("protocol", ["auto", "5.3"])
def test_set_sizes_like_the_clients(server: RedisServer, protocol: str) -> None:
    redis = server.client(1)
    redis.set(f"{KEY}.c", "done")
    pubsub = redis.pubsub()
    pubsub.subscribe(f"{KEY}.s")

    async def body(store: ChordStore) -> None:
        await store.set_sizes([(GID, 4)])

    _run(server, body, protocol=protocol, expires=70)
    assert redis.get(f"{KEY}.s") == b"4" and 0 < redis.ttl(f"{KEY}.s") <= 70
    assert redis.exists(f"{KEY}.c") == (protocol == "5.3")
    messages = [pubsub.get_message(timeout=0.2) for _ in range(2)]
    published = [m["data"] for m in messages if m and m["type"] == "message"]
    assert published == ([b"4"] if protocol == "5.3" else [])
    pubsub.close()


def test_many_chords_in_one_batch(server: RedisServer) -> None:
    redis = server.client(1)
    for i in range(600):
        redis.set(f"celery-taskset-meta-g{i}.s", 1)

    async def body(store: ChordStore) -> None:
        done = await store.record([_part(f"t{i}", 0, gid=f"g{i}", token="t") for i in range(600)])
        assert all(d is not None for d in done)
        assert await store.release([Claim(f"g{i}", "t") for i in range(600)]) == 600

    _run(server, body)
