"""A live sender keeps the entries it holds: however long they wait for one of its
threads, another sender's takeover finds only the entries of a sender gone silent."""

from __future__ import annotations

import time

import fakeredis

from worker.callbacks import GROUP, OUTBOX_KEY, Sender, SenderSettings


def test_entries_waiting_for_a_busy_senders_threads_are_not_taken_over() -> None:
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    redis.xgroup_create(OUTBOX_KEY, GROUP, id="0", mkstream=True)
    for index in range(3):
        redis.xadd(OUTBOX_KEY, {"kind": "request", "request_id": f"r{index}"})
    busy = Sender(redis, SenderSettings(signing_key=b"k" * 32))
    read = redis.xreadgroup(GROUP, busy._consumer, {OUTBOX_KEY: ">"}, count=10)
    held = [entry_id.decode() for entry_id, _ in read[0][1]]
    busy._held.update(held)  # read, waiting for a thread
    time.sleep(0.3)

    def taken_over() -> list[bytes]:
        _next, claimed, *_ = redis.xautoclaim(
            OUTBOX_KEY, GROUP, "another-sender", min_idle_time=200
        )
        return [entry_id for entry_id, _fields in claimed]

    busy._refresh_held()
    assert taken_over() == []  # marked as its own a moment ago
    time.sleep(0.3)  # and then silent: now another sender takes them
    assert sorted(entry.decode() for entry in taken_over()) == sorted(held)
