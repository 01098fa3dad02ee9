"""List calls: selectors, ``limit``/``continue`` pages and consistent snapshots.

A list is served at one resourceVersion: the latest, or the one a ``continue``
token carries (every page of one list reports the first page's version, as etcd's
MVCC read gives), or ``resourceVersion`` with ``resourceVersionMatch=Exact``.
Older versions are rebuilt from the change history (``Store.snapshot_overrides``);
one the history no longer covers is 410 ``Expired`` with the texts of
``staging/src/k8s.io/apiserver/pkg/storage/etcd3/errors.go`` (and, for a stale
``continue``, a token to go on inconsistently). ``NotOlderThan`` (and a bare
``resourceVersion``) beyond the current version is the 504 "Too large resource
version". Continue tokens are ``storage.EncodeContinue``'s base64 JSON
(``{"v":"meta.k8s.io/v1","rv":N,"start":KEY}``). ``remainingItemCount`` is sent
when no selector filtered the page.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable

from kubesim import statuses
from kubesim.calls import JSON, Call, Reply
from kubesim.events import to_events_v1
from kubesim.kinds import Kind
from kubesim.options import ListOptions, list_options
from kubesim.selectors import field_predicate, label_predicate
from kubesim.store import Expired, Key, Store

_EXPIRED = "The resourceVersion for the provided list is too old."
_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)


def encode_continue(rv: int, key: Key) -> str:
    start = f"{key[0]}/{key[1]}\x00" if key[0] else f"{key[1]}\x00"
    data = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def decode_continue(token: str, namespaced: bool) -> tuple[int, Key]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        del exc
        raise statuses.bad_request(
            "invalid continue token: continue key is not valid: illegal base64 data at input byte 0"
        ) from None
    if not isinstance(data, dict) or data.get("v") != "meta.k8s.io/v1":
        raise statuses.bad_request(
            "invalid continue token: continue key is not valid: server does not recognize this "
            "encoded version"
        )
    start = str(data.get("start") or "")
    if not start:
        raise statuses.bad_request(
            "invalid continue token: continue key is not valid: encoded start key empty "
            "(version meta.k8s.io/v1)"
        )
    start = start.rstrip("\x00")
    namespace, _, name = start.rpartition("/") if namespaced else ("", "", start)
    try:
        rv = int(data.get("rv") or 0)
    except (TypeError, ValueError):
        raise statuses.bad_request(
            "invalid continue token: continue key is not valid: incorrect encoded start "
            "resourceVersion (version meta.k8s.io/v1)"
        ) from None
    return rv, (namespace, name)


def item_view(kind: Kind) -> Callable[[JSON], JSON]:
    """How an object of ``kind`` appears in a list (no kind/apiVersion per item)."""
    if kind.group == "events.k8s.io":
        return lambda obj: {
            k: v for k, v in to_events_v1(obj).items() if k not in ("kind", "apiVersion")
        }
    return lambda obj: {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def object_view(kind: Kind, obj: JSON) -> JSON:
    if kind.group == "events.k8s.io":
        return to_events_v1(obj)
    return obj


def _snapshot_rv(store: Store, opts: ListOptions, continue_rv: int | None) -> int:
    if continue_rv is not None:
        return store.rv if continue_rv == -1 else continue_rv
    if not opts.resource_version or opts.resource_version == "0":
        return store.rv
    requested = int(opts.resource_version)
    if opts.match == "Exact":
        if requested > store.rv:
            raise statuses.resource_version_too_large(requested, store.rv)
        return requested
    if requested > store.rv:
        raise statuses.resource_version_too_large(requested, store.rv)
    return store.rv


def list_objects(store: Store, kind: Kind, call: Call) -> Reply:  # noqa: PLR0912, PLR0915 - one pass of a controller or handler
    opts = list_options(call.query, watch=False)
    by_label = label_predicate(call.query.get("labelSelector"))
    by_field = field_predicate(call.query.get("fieldSelector"), kind.table)
    filtered = bool(call.query.get("labelSelector") or call.query.get("fieldSelector"))
    namespace = call.info.namespace if kind.namespaced else ""
    continue_rv: int | None = None
    start: Key | None = None
    if opts.continue_token:
        continue_rv, start = decode_continue(opts.continue_token, kind.namespaced)
    rv = _snapshot_rv(store, opts, continue_rv)
    table = store.tables[kind.table]
    keys = store.keys(kind.table)
    overrides: dict[Key, JSON | None] = {}
    if rv < store.rv:
        try:
            overrides = store.snapshot_overrides(kind.table, rv)
        except Expired:
            if start is not None:
                token = encode_continue(-1, start)
                raise statuses.expired(_CONTINUE_EXPIRED, token) from None
            raise statuses.expired(_EXPIRED) from None
        if overrides:
            keys = sorted(set(keys) | set(overrides))
    low = 0
    if namespace:
        low = bisect.bisect_left(keys, (namespace, ""))
    if start is not None:
        low = max(low, bisect.bisect_right(keys, start))
    view = item_view(kind)
    items: list[JSON] = []
    last: Key | None = None
    more = False
    remaining = 0
    index = low
    total = len(keys)
    while index < total:
        key = keys[index]
        index += 1
        if namespace and key[0] != namespace:
            break
        obj = overrides[key] if key in overrides else table.get(key)
        if obj is None or not (by_label(obj) and by_field(obj)):
            continue
        if opts.limit and len(items) >= opts.limit:
            more = True
            index -= 1
            break
        items.append(view(obj))
        last = key
    meta: JSON = {"resourceVersion": str(rv)}
    if more and last is not None:
        meta["continue"] = encode_continue(rv, last)
        if not filtered:
            if namespace:
                high = bisect.bisect_left(keys, (namespace + "\x00", ""))
                remaining = high - index
            else:
                remaining = total - index
            meta["remainingItemCount"] = remaining
    body = {
        "kind": kind.list_kind,
        "apiVersion": kind.group_version,
        "metadata": meta,
        "items": items,
    }
    return Reply(200, body, kind=kind)
