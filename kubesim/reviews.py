"""``SelfSubjectAccessReview`` and ``SelfSubjectReview``: "can I?" and "who am I?".

Answers come from the same deny rules that guard real requests (``kubesim.rbac``),
so ``kubectl auth can-i create jobs -n x`` says ``no`` exactly when the create would
be a 403. The user is the caller's IAM ARN, as EKS maps it; groups are
``system:authenticated`` (``pkg/registry/authorization/selfsubjectaccessreview``,
``pkg/registry/authentication/selfsubjectreview``). Allowed reviews carry
``reason: ""`` like RBAC's allow; denied ones name the kubesim rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubesim import statuses
from kubesim.calls import JSON, Call, Reply, check_type_meta
from kubesim.requestinfo import RequestInfo
from kubesim.store import rfc3339

if TYPE_CHECKING:
    from kubesim.state import SimState

GROUPS = ["system:authenticated"]


def handle(state: SimState, call: Call) -> Reply | None:
    info = call.info
    if (info.api_group, info.resource) == ("authorization.k8s.io", "selfsubjectaccessreviews"):
        return _access(state, call)
    if (info.api_group, info.resource) == ("authentication.k8s.io", "selfsubjectreviews"):
        return _whoami(state, call)
    return None


def _only_create(call: Call, resource: str, group: str) -> None:
    if call.info.api_version != "v1":
        raise statuses.path_not_found()
    if call.info.verb != "create" or call.info.name:
        raise statuses.method_not_supported(resource, group, call.info.verb)


def _access(state: SimState, call: Call) -> Reply:
    _only_create(call, "selfsubjectaccessreviews", "authorization.k8s.io")
    body = call.json_body(required=True)
    check_type_meta(body, "authorization.k8s.io/v1", "SelfSubjectAccessReview")
    spec = body.get("spec") or {}
    attributes = spec.get("resourceAttributes")
    path_attributes = spec.get("nonResourceAttributes")
    if not attributes and not path_attributes:
        raise statuses.invalid(
            "SelfSubjectAccessReview",
            "authorization.k8s.io",
            "",
            [
                statuses.FieldError(
                    statuses.INVALID,
                    "spec.resourceAttributes",
                    None,
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )
            ],
        )
    if attributes:
        resource = str(attributes.get("resource") or "")
        info = RequestInfo(
            path="",
            verb=str(attributes.get("verb") or ""),
            is_resource=True,
            api_group=str(attributes.get("group") or ""),
            api_version=str(attributes.get("version") or ""),
            namespace=str(attributes.get("namespace") or ""),
            resource=resource,
            subresource=str(attributes.get("subresource") or ""),
            name=str(attributes.get("name") or ""),
        )
    else:
        assert path_attributes is not None
        info = RequestInfo(
            path=str(path_attributes.get("path") or ""), verb=str(path_attributes.get("verb") or "")
        )
    denied = next((r for r in state.authorizer.rules if r.matches(info, call.user)), None)
    status: JSON = {"allowed": denied is None}
    if denied is not None:
        status["denied"] = True
        status["reason"] = f"kubesim deny rule {denied.id}"
    out = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None, **({"managedFields": []} if False else {})},
        "spec": spec,
        "status": status,
    }
    return Reply(201, out)


def _whoami(state: SimState, call: Call) -> Reply:
    _only_create(call, "selfsubjectreviews", "authentication.k8s.io")
    body = call.json_body(required=False)
    if body:
        check_type_meta(body, "authentication.k8s.io/v1", "SelfSubjectReview")
    arn = call.user
    user: JSON = {
        "username": arn,
        "uid": f"aws-iam-authenticator:{state.identity.name}:{arn}",
        "groups": GROUPS,
    }
    user["extra"] = {
        "arn": [arn],
        "canonicalArn": [arn],
        "sessionName": [arn.rsplit("/", 1)[-1]],
        "accessKeyId": ["AKIAKUBESIMEXAMPLE"],
    }
    out = {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": rfc3339(call.now)},
        "status": {"userInfo": user},
    }
    return Reply(201, out)
