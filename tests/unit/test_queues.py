"""The backlog: per lane what waits and for how long, what workers hold, who is live."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import orjson
import pytest

from producer import EksOps
from producer.settings import ProducerSettings
from worker import presence, queues
from worker.contracts import QUEUE, Operation
from worker.delivery import lanes
from worker.delivery.envelope import ENQUEUED_AT
from worker.fleet import limiter_keys
from worker.settings import QueueSettings


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def eksops(redis: fakeredis.FakeRedis) -> EksOps:
    return EksOps(
        settings=ProducerSettings(), queue=QueueSettings(redis_url="redis://x:6379/0"), redis=redis
    )


def namespaces(count: int) -> list[dict[str, Any]]:
    return [{"namespace_name": f"team-{index}"} for index in range(count)]


def test_an_empty_queue_has_nothing_waiting_no_age_and_no_workers(
    redis: fakeredis.FakeRedis,
) -> None:
    backlog = queues.read(redis)
    assert backlog.lane("interactive") == queues.Lane("interactive", 0, None, 0)
    assert backlog.lane("bulk") == queues.Lane("bulk", 0, None, 0, groups=0)
    assert (backlog.oldest_held_seconds, backlog.live_workers, backlog.clusters) == (None, 0, [])


def test_waiting_messages_are_counted_per_lane_with_the_oldest_ones_age(
    eksops: EksOps, redis: fakeredis.FakeRedis
) -> None:
    for name in ("a", "b", "c"):
        eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": name})
    time.sleep(0.3)
    eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": "d"})
    batch = eksops.submit_many(Operation.CREATE_NAMESPACE, namespaces(40))
    other = eksops.submit_many(Operation.CREATE_NAMESPACE, namespaces(3))

    backlog = queues.read(redis)

    interactive, bulk = backlog.lane("interactive"), backlog.lane("bulk")
    assert interactive.waiting == 4
    assert interactive.oldest_age_seconds is not None
    assert 0.3 <= interactive.oldest_age_seconds < 2.0  # "a", enqueued before the pause
    # 40 requests travel in chunks (several per message); 3 more in a second group.
    assert bulk.waiting == redis.llen(lanes.bulk_list(batch.batch_id)) + redis.llen(
        lanes.bulk_list(other.batch_id)
    )
    assert bulk.groups == 2
    assert bulk.oldest_age_seconds is not None
    assert bulk.oldest_age_seconds < interactive.oldest_age_seconds


def test_a_message_taken_by_a_worker_is_held_until_acknowledged(
    eksops: EksOps, redis: fakeredis.FakeRedis
) -> None:
    eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": "a"})
    eksops.submit_many(Operation.CREATE_NAMESPACE, namespaces(2))
    for bulk in (False, True):  # "a", then the batch's message
        taken = lanes.take(
            redis, bulk=bulk, unacked_index=queues.UNACKED_INDEX, unacked=queues.UNACKED
        )
        assert taken is not None
        assert (taken.group is not None) == bulk
    eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": "b"})
    time.sleep(0.2)

    backlog = queues.read(redis)

    assert (backlog.lane("interactive").waiting, backlog.lane("interactive").held) == (1, 1)
    assert backlog.lane("bulk").held == 1
    assert backlog.oldest_held_seconds is not None
    assert backlog.oldest_held_seconds >= 0.2


def test_an_acknowledged_message_is_held_no_more(
    eksops: EksOps, redis: fakeredis.FakeRedis
) -> None:
    eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": "a"})
    taken = lanes.take(
        redis, bulk=False, unacked_index=queues.UNACKED_INDEX, unacked=queues.UNACKED
    )
    assert taken is not None
    assert taken.tag is not None
    assert queues.read(redis).lane("interactive").held == 1

    lanes.ack(redis, taken.tag, unacked_index=queues.UNACKED_INDEX, unacked=queues.UNACKED)

    assert queues.read(redis).lane("interactive").held == 0
    assert (redis.zcard(queues.UNACKED_INDEX), redis.hlen(queues.UNACKED)) == (0, 0)


def test_a_message_without_an_enqueue_time_has_no_age(redis: fakeredis.FakeRedis) -> None:
    redis.lpush(QUEUE, orjson.dumps({"body": "", "properties": {}}))
    lane = queues.read(redis).lane("interactive")
    assert (lane.waiting, lane.oldest_age_seconds) == (1, None)


def test_the_enqueue_time_property_is_what_the_age_is_read_from(
    eksops: EksOps, redis: fakeredis.FakeRedis
) -> None:
    eksops.submit(Operation.CREATE_NAMESPACE, {"namespace_name": "a"})
    message = orjson.loads(redis.lindex(QUEUE, -1))
    stamp = message["properties"][ENQUEUED_AT]
    assert abs(stamp - time.time()) < 1.0


def test_workers_are_live_while_they_announce_themselves(
    redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    presence.announce(redis, "w1@host")
    presence.announce(redis, "w2@host")
    assert queues.read(redis).live_workers == 2
    presence.withdraw(redis, "w2@host")
    assert queues.read(redis).live_workers == 1
    monkeypatch.setattr(presence, "LIVE_WITHIN_SECONDS", 0.1)
    time.sleep(0.2)
    assert queues.read(redis).live_workers == 0


def test_each_clusters_limiter_is_reported(redis: fakeredis.FakeRedis) -> None:
    bucket, pause, *_ = limiter_keys("prod@us-east-1")
    seconds, _micros = redis.time()
    redis.hset(bucket, mapping={"tokens": 3, "ts": int(seconds) * 1000, "rate": 5, "burst": 10})
    redis.set(pause, 1, px=2000)
    (limiter,) = queues.read(redis).clusters
    assert limiter.cluster == "prod@us-east-1"
    assert limiter.tokens is not None
    assert 3 <= limiter.tokens <= 10
    assert 0 < limiter.paused_for_seconds <= 2.0


def test_the_enqueue_time_is_read_from_the_last_bytes_even_of_a_large_chunk(
    eksops: EksOps, redis: fakeredis.FakeRedis
) -> None:
    container = {"name": "main", "image": "busybox:1.36"}
    big = {
        "metadata": {"annotations": {"pad": "x" * 20_000}},
        "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}},
    }
    items = [{"job_manifest": big, "namespace": "default"} for _ in range(64)]
    eksops.submit_many(Operation.CREATE_JOB, items)
    (group,) = redis.lrange(lanes.RING, 0, -1)
    tail = redis.lindex(lanes.bulk_list(group.decode()), -1)
    assert len(tail) > 40_000  # a chunk of large manifests
    assert queues.read(redis).lane("bulk").oldest_age_seconds is not None
