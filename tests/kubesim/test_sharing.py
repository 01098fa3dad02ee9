"""Jobs of one manifest share their template; changing one never shows in another."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from kubesim import Simulator
from kubesim.sharing import ByContent, Derived

from .conftest import job_manifest
from .helpers import eventually


def test_equal_values_are_one_object_and_derived_values_are_made_once() -> None:
    shared: ByContent[dict[str, Any]] = ByContent(limit=2)
    first = {"a": [1, 2]}
    assert shared.intern(first) is first
    assert shared.intern({"a": [1, 2]}) is first
    assert shared.intern({"a": [2, 1]}) is not first
    odd = {"a": {1, 2}}
    assert shared.intern(odd) is odd
    made: list[object] = []
    derived: Derived[dict[str, Any]] = Derived(limit=2)

    def build(source: object) -> dict[str, Any]:
        made.append(source)
        return {"from": id(source)}

    assert derived.get(first, build) is derived.get(first, build)
    assert made == [first]


def test_jobs_of_one_manifest_share_a_template_and_their_pods_a_spec(
    sim: Simulator, batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    for name in ("twin-a", "twin-b"):
        batch.create_namespaced_job(namespace, job_manifest(name))
    listed = eventually(
        lambda: [p for p in core.list_namespaced_pod(namespace).items if p.spec.node_name]
    )
    assert len(listed) == 2
    assert sim._server is not None
    store = sim._server.state.store  # read-only lookups of immutable snapshots
    a, b = (store.get("jobs", namespace, n) for n in ("twin-a", "twin-b"))
    assert a is not None
    assert b is not None
    assert a["spec"]["template"]["spec"] is b["spec"]["template"]["spec"]
    first, second = (store.get("pods", namespace, p.metadata.name) for p in listed)
    assert first is not None
    assert second is not None
    assert first["spec"] is second["spec"]


def test_changing_one_jobs_template_leaves_its_twin_alone(
    batch: k8s.BatchV1Api, namespace: str
) -> None:
    for name in ("held-a", "held-b"):
        batch.create_namespaced_job(namespace, job_manifest(name, spec={"suspend": True}))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "other:2"}]}}}}
    batch.patch_namespaced_job("held-a", namespace, patch)
    images = {
        name: batch.read_namespaced_job(name, namespace).spec.template.spec.containers[0].image
        for name in ("held-a", "held-b")
    }
    assert images["held-a"] == "other:2"
    assert images["held-b"] != "other:2"
