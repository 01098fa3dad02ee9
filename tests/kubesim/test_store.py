"""The store: one resourceVersion, ordered changes, keys kept in etcd order."""

from __future__ import annotations

import random

from kubesim.store import Store


def _pod(namespace: str, name: str) -> dict[str, object]:
    return {"kind": "Pod", "metadata": {"namespace": namespace, "name": name}}


def test_keys_stay_in_etcd_order_across_writes_after_the_first_sort() -> None:
    store = Store()
    rng = random.Random(7)
    names = [(rng.choice("abc"), f"p-{rng.randrange(10_000)}") for _ in range(300)]
    for namespace, name in names[:100]:
        store.commit("pods", _pod(namespace, name))
    assert store.keys("pods") == sorted(store.tables["pods"])
    for namespace, name in names[100:]:
        store.commit("pods", _pod(namespace, name))
    for key in rng.sample(sorted(store.tables["pods"]), 50):
        store.commit("pods", None, key=key)
    assert store.keys("pods") == sorted(store.tables["pods"])
    assert [o["metadata"]["name"] for o in store.items("pods", "b")] == [
        name for namespace, name in sorted(store.tables["pods"]) if namespace == "b"
    ]


def test_every_write_gets_the_next_cluster_wide_version() -> None:
    store = Store()
    first = store.commit("pods", _pod("a", "x"))
    second = store.commit("jobs", {"kind": "Job", "metadata": {"namespace": "a", "name": "x"}})
    third = store.commit("pods", _pod("a", "x"))
    gone = store.commit("pods", None, key=("a", "x"))
    assert [c.rv for c in (first, second, third, gone)] == [1, 2, 3, 4]
    assert [c.type for c in (first, third, gone)] == ["ADDED", "MODIFIED", "DELETED"]
    assert gone.obj["metadata"]["resourceVersion"] == "4"
    assert third.prev is first.obj
