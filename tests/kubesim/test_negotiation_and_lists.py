"""Content types in and out, server-side tables, and list paging and selectors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from .conftest import job_manifest


def send(
    api_client: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    content_type: str = "application/json",
    accept: str = "application/json",
    query: list[tuple[str, str]] | None = None,
) -> tuple[int, bytes, Any]:
    serialized = api_client.param_serialize(
        method,
        path,
        query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": accept},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*serialized)
    response.read()
    return response.status, response.data, response.getheaders()


def test_a_yaml_body_creates_and_a_yaml_answer_comes_back(api_client: Any) -> None:
    body = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "from-yaml"}}
    )
    status, data, headers = send(
        api_client,
        "POST",
        "/api/v1/namespaces",
        body=body,
        content_type="application/yaml",
        accept="application/yaml",
    )
    assert status == 201
    assert headers["Content-Type"] == "application/yaml"
    assert yaml.safe_load(data)["metadata"]["name"] == "from-yaml"


def test_an_unknown_content_type_is_415(api_client: Any) -> None:
    status, data, _ = send(
        api_client, "POST", "/api/v1/namespaces", body="x", content_type="text/plain"
    )
    assert status == 415
    assert json.loads(data)["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf"
    )


def test_an_unservable_accept_is_406(api_client: Any) -> None:
    status, data, _ = send(
        api_client, "GET", "/api/v1/namespaces", accept="application/vnd.kubernetes.protobuf"
    )
    assert status == 406
    assert json.loads(data)["message"] == (
        "only the following media types are accepted: application/json, application/yaml"
    )


def test_a_malformed_json_body_is_a_go_style_bad_request(api_client: Any) -> None:
    status, data, _ = send(api_client, "POST", "/api/v1/namespaces", body="{nope")
    body = json.loads(data)
    assert status == 400
    # the client sends the string as a JSON string: not an object, in Go's words
    assert body["message"].startswith(
        "couldn't get version/kind; json parse error: json: cannot unmarshal string into Go value"
    )


def test_namespaces_print_as_a_server_side_table(api_client: Any) -> None:
    status, data, _ = send(
        api_client,
        "GET",
        "/api/v1/namespaces",
        accept="application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    table = json.loads(data)
    assert status == 200
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Status", "Age"]
    assert table["rows"][0]["cells"][:2] == ["default", "Active"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_jobs_and_pods_tables_have_the_kubectl_columns(
    api_client: Any, batch: k8s.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("tbl"))
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io"
    _, data, _ = send(
        api_client, "GET", f"/apis/batch/v1/namespaces/{namespace}/jobs", accept=accept
    )
    assert [c["name"] for c in json.loads(data)["columnDefinitions"]] == [
        "Name",
        "Status",
        "Completions",
        "Duration",
        "Age",
        "Containers",
        "Images",
        "Selector",
    ]
    _, data, _ = send(api_client, "GET", f"/api/v1/namespaces/{namespace}/pods", accept=accept)
    assert [c["name"] for c in json.loads(data)["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]


def test_partial_object_metadata_lists(api_client: Any) -> None:
    _, data, _ = send(
        api_client,
        "GET",
        "/api/v1/namespaces",
        accept="application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
    )
    body = json.loads(data)
    assert body["kind"] == "PartialObjectMetadataList"
    assert set(body["items"][0]) == {"kind", "apiVersion", "metadata"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([("limit", "abc")], 'strconv.ParseInt: parsing "abc": invalid syntax'),
        (
            [("continue", "%%%")],
            "invalid continue token: continue key is not valid: illegal base64 data at input byte 0",
        ),
    ],
)
def test_malformed_paging_parameters_are_bad_requests(
    api_client: Any, query: list[tuple[str, str]], message: str
) -> None:
    status, data, _ = send(api_client, "GET", "/api/v1/namespaces", query=query)
    assert status == 400
    assert json.loads(data)["message"] == message


def test_pages_share_one_snapshot_version(api_client: Any, core: k8s.CoreV1Api) -> None:
    first = core.list_namespace(limit=2)
    assert first.metadata.remaining_item_count == 2
    core.create_namespace({"metadata": {"name": "zz-late"}})
    second = core.list_namespace(limit=10, _continue=first.metadata._continue)
    assert second.metadata.resource_version == first.metadata.resource_version
    names = [n.metadata.name for n in first.items + second.items]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]


def test_field_selectors_per_type(
    batch: k8s.BatchV1Api, core: k8s.CoreV1Api, namespace: str
) -> None:
    assert [
        n.metadata.name for n in core.list_namespace(field_selector="status.phase=Active").items
    ][:1] == ["default"]
    batch.create_namespaced_job(namespace, job_manifest("fs"))
    assert batch.list_namespaced_job(namespace, field_selector="status.successful=0").items
    with pytest.raises(ApiException) as caught:
        batch.list_namespaced_job(namespace, field_selector="spec.parallelism=1")
    status = json.loads(caught.value.body)
    assert status["message"] == (
        '"spec.parallelism" is not a known field selector: only "metadata.name", '
        '"metadata.namespace", "status.successful"'
    )


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        (
            "-bad=1",
            "unable to parse requirement: <nil>: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "a>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
    ],
)
def test_label_selector_errors_use_the_upstream_texts(
    core: k8s.CoreV1Api, selector: str, message: str
) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespace(label_selector=selector)
    assert json.loads(caught.value.body)["message"] == message


def test_gt_and_lt_select_numeric_labels(core: k8s.CoreV1Api) -> None:
    for index in (1, 5, 9):
        core.create_namespace({"metadata": {"name": f"n{index}", "labels": {"rank": str(index)}}})
    names = [n.metadata.name for n in core.list_namespace(label_selector="rank>2,rank<9").items]
    assert names == ["n5"]
