"""One OpenAPI document for the whole API: the gateway's own routes merged with the public
routes of each service, fetched from the services and cached.

Every public route is always in the document: the gateway declares each forwarded route itself
(summary, key requirement, gateway errors), and the service's own description (request body,
examples, response schemas) replaces it once fetched. Service-internal routes (`/healthz`,
`/readyz`, a service's own `/performance`) never appear. Component names that clash with
different content are renamed `<upstream>_<Name>` and every `$ref` to them rewritten, so no
schema is lost. A service that has never answered is listed in `x-upstreams-missing`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sepsis_gateway.auth import API_KEY_HEADER
from sepsis_gateway.routes.table import UPSTREAM_LABELS, Access, PublicRoute
from sepsis_gateway.upstream import CircuitState, Upstream, UpstreamStatus
from sepsis_shared.errors import ErrorEnvelope, ServiceError
from sepsis_shared.settings import SERVICE_TOKEN_HEADER

logger = logging.getLogger("sepsis.gateway.openapi")

JsonDict = dict[str, Any]
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_INTERNAL_HEADERS = frozenset({SERVICE_TOKEN_HEADER.lower()})
# Do not hammer a service that failed to give its document; the health probe refreshes it as
# soon as the service is back.
_RETRY_GAP_S = 5.0


SECURITY_SCHEME = "ApiKeyAuth"
_ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"
_AUTH_STATUSES = ("401", "403", "429")
_GATEWAY_ERRORS = {
    401: "Missing or invalid API key",
    403: "The key lacks the admin role",
    413: "Body larger than the gateway accepts, or batch larger than the service accepts",
    422: "Invalid input; `details` names each bad field",
    429: "Rate limited; see `Retry-After`",
    502: "The upstream sent a broken answer",
    503: "The upstream is unavailable (down, or circuit open; see `Retry-After`)",
    504: "The upstream did not answer in time",
}


def forwarded_operation(route: PublicRoute) -> JsonDict:
    """The gateway's own description of a forwarded route (until the service's is merged)."""
    assert route.upstream is not None
    label = UPSTREAM_LABELS[route.upstream]
    codes = [502, 503, 504]
    if route.access is not Access.NONE:
        codes += [401, 429]
    if route.access is Access.ADMIN:
        codes.append(403)
    if route.method == "POST":
        codes += [413, 422]
    responses: JsonDict = {
        "200": {"description": "The service's answer", "content": {"application/json": {}}}
    }
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _GATEWAY_ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": _ENVELOPE_REF}}},
        }
    description = f"Forwarded to {label}."
    if route.access is Access.ADMIN:
        description += " Needs an admin key (ADMIN_API_KEYS)."
    op: JsonDict = {
        "tags": [label],
        "summary": route.summary,
        "description": description,
        "operationId": route.method.lower()
        + "_"
        + route.path.strip("/").replace("-", "_").replace("/", "_"),
        "responses": responses,
    }
    if route.access is not Access.NONE:
        op["security"] = [{SECURITY_SCHEME: []}]
    return op


def gateway_document(base: JsonDict, routes: Sequence[PublicRoute]) -> JsonDict:
    """The gateway's own FastAPI document plus its declaration of every forwarded route."""
    doc = copy.deepcopy(base)
    paths: JsonDict = doc.setdefault("paths", {})
    for route in routes:
        if route.upstream is not None:
            paths.setdefault(route.path, {})[route.method.lower()] = forwarded_operation(route)
        elif route.method.lower() in paths.get(route.path, {}):
            # the route table's summary, not one FastAPI makes of the handler's name
            paths[route.path][route.method.lower()]["summary"] = route.summary
    components: JsonDict = doc.setdefault("components", {})
    schemas: JsonDict = components.setdefault("schemas", {})
    if "ErrorEnvelope" not in schemas:
        envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(envelope.pop("$defs", {}))
        schemas["ErrorEnvelope"] = envelope
    components.setdefault("securitySchemes", {}).setdefault(
        SECURITY_SCHEME, {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
    )
    return doc


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    """A copy of `node` with every `$ref` in `renames` replaced."""
    if isinstance(node, dict):
        out: JsonDict = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value in renames:
                out[key] = renames[value]
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _refs(node: Any, out: set[str]) -> set[str]:
    """Every `$ref` inside `node`, added to `out`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out.add(value)
            else:
                _refs(value, out)
    elif isinstance(node, list):
        for item in node:
            _refs(item, out)
    return out


def _used_components(components: JsonDict, roots: set[str]) -> JsonDict:
    """The part of `components` reachable from the `$ref`s in `roots` (internal routes'
    schemas stay out of the public document)."""
    used: JsonDict = {}
    pending = list(roots)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen or not ref.startswith("#/components/"):
            continue
        seen.add(ref)
        parts = ref.split("/")
        if len(parts) != 4:
            continue
        section, name = parts[2], parts[3]
        body = components.get(section, {}).get(name)
        if section == "securitySchemes" or body is None:
            continue
        used.setdefault(section, {})[name] = body
        pending.extend(_refs(body, set()))
    return used


def _merge_components(target: JsonDict, source: JsonDict, prefix: str) -> dict[str, str]:
    """Decide the names of `source`'s components inside `target`: the `$ref` renames."""
    renames: dict[str, str] = {}
    for section, entries in source.items():
        if section == "securitySchemes" or not isinstance(entries, dict):
            continue
        existing = target.get(section, {})
        for name, body in entries.items():
            if name not in existing or existing[name] == body:
                continue
            new = f"{prefix}_{name}"
            n = 2
            while new in existing or new in entries:
                new, n = f"{prefix}_{name}_{n}", n + 1
            renames[f"#/components/{section}/{name}"] = f"#/components/{section}/{new}"
    for section, entries in source.items():
        if section == "securitySchemes" or not isinstance(entries, dict):
            continue
        existing = target.setdefault(section, {})
        for name, body in entries.items():
            ref = f"#/components/{section}/{name}"
            final = renames.get(ref, ref).rsplit("/", 1)[1]
            existing[final] = _rewrite_refs(body, renames)
    return renames


def _public_operation(gateway_op: JsonDict, service_op: JsonDict, taken_ids: set[str]) -> JsonDict:
    """The service's description of a route, with the gateway's key and error responses."""
    op = copy.deepcopy(service_op)
    if "security" in gateway_op:
        op["security"] = gateway_op["security"]
    else:
        op.pop("security", None)
    params = [
        p
        for p in op.get("parameters", [])
        if not (p.get("in") == "header" and str(p.get("name", "")).lower() in _INTERNAL_HEADERS)
    ]
    if params:
        op["parameters"] = params
    else:
        op.pop("parameters", None)
    responses = op.setdefault("responses", {})
    gateway_responses = gateway_op.get("responses", {})
    # Keys are the gateway's business: its own declaration says which of these can happen.
    for status in _AUTH_STATUSES:
        if status not in gateway_responses:
            responses.pop(status, None)
    for status, response in gateway_responses.items():
        if status not in responses:
            responses[status] = response
    # The route table's summary (a service's own is often its handler's name in words).
    op["summary"] = gateway_op.get("summary") or op.get("summary")
    op_id = op.get("operationId") or gateway_op.get("operationId")
    if op_id:
        while op_id in taken_ids:
            op_id = f"{op_id}_"
        op["operationId"] = op_id
        taken_ids.add(op_id)
    return op


def merge_openapi(
    base: JsonDict,
    services: Mapping[str, JsonDict | None],
    routes: Sequence[PublicRoute],
) -> JsonDict:
    """The gateway's document `base` merged with each service's document (None: missing)."""
    doc = gateway_document(base, routes)
    paths: JsonDict = doc.setdefault("paths", {})
    components: JsonDict = doc.setdefault("components", {})
    forwarded = {(r.path, r.method.lower()) for r in routes if r.upstream}
    taken_ids = {
        str(op["operationId"])
        for path, item in paths.items()
        for method, op in item.items()
        if method in _METHODS and (path, method) not in forwarded and "operationId" in op
    }
    missing: list[str] = []
    for name, service_doc in services.items():
        if service_doc is None:
            missing.append(name)
            continue
        service_paths = service_doc.get("paths", {})
        public_ops: list[tuple[PublicRoute, JsonDict]] = []
        for route in routes:
            if route.upstream != name:
                continue
            service_op = service_paths.get(route.path, {}).get(route.method.lower())
            if isinstance(service_op, dict):
                public_ops.append((route, service_op))
        used = _used_components(
            service_doc.get("components", {}), _refs([op for _, op in public_ops], set())
        )
        renames = _merge_components(components, used, name)
        for route, service_op in public_ops:
            method = route.method.lower()
            gateway_op = paths.get(route.path, {}).get(method, {})
            op = _public_operation(gateway_op, _rewrite_refs(service_op, renames), taken_ids)
            paths.setdefault(route.path, {})[method] = op
        for tag in service_doc.get("tags", []):
            tags = doc.setdefault("tags", [])
            if all(t.get("name") != tag.get("name") for t in tags):
                tags.append(tag)
    doc["x-upstreams-missing"] = missing
    if missing:
        note = (
            "\n\nThe documentation of "
            + ", ".join(missing)
            + " could not be fetched yet; those routes are listed with the gateway's summary "
            "only and will be complete once the service answers."
        )
        info = doc.setdefault("info", {})
        info["description"] = str(info.get("description", "")) + note
    return doc


@dataclass(slots=True)
class _Cached:
    doc: JsonDict | None = None
    fetched_at: float = 0.0
    attempted_at: float = -1e9


class ApiDocs:
    """The merged document, rebuilt only when a service's document changes."""

    def __init__(
        self,
        *,
        base: Callable[[], JsonDict],
        upstreams: Mapping[str, Upstream],
        routes: Sequence[PublicRoute],
        ttl_s: float,
        fetch_timeout_s: float,
    ) -> None:
        self._base = base
        self._upstreams = upstreams
        self._routes = tuple(routes)
        self._ttl_s = ttl_s
        self._fetch_timeout_s = fetch_timeout_s
        self._cache = {name: _Cached() for name in upstreams}
        self._locks = {name: asyncio.Lock() for name in upstreams}
        self._merged: bytes | None = None

    def missing(self) -> list[str]:
        """Services whose document has never been fetched."""
        return [name for name, cached in self._cache.items() if cached.doc is None]

    def _due(self, name: str) -> bool:
        cached = self._cache[name]
        upstream = self._upstreams[name]
        now = time.monotonic()
        fresh = (
            cached.doc is not None
            and now - cached.fetched_at < self._ttl_s
            # A service that came back may have been redeployed: fetch its document again.
            and (upstream.up_since is None or cached.fetched_at >= upstream.up_since)
        )
        if fresh or now - cached.attempted_at < _RETRY_GAP_S:
            return False
        # A service known to be down is not asked; the probe refreshes it when it returns.
        return (
            upstream.status is not UpstreamStatus.DOWN
            and upstream.breaker.view() is not CircuitState.OPEN
        )

    async def refresh(self, name: str) -> bool:
        """Fetch one service's document now; on failure the previous one stays."""
        lock = self._locks[name]
        if lock.locked():
            async with lock:  # someone is fetching it: wait for their result
                return self._cache[name].doc is not None
        async with lock:
            cached = self._cache[name]
            cached.attempted_at = time.monotonic()
            try:
                doc = await self._upstreams[name].get_json(
                    "/openapi.json", timeout_s=self._fetch_timeout_s, request_id=None
                )
            except ServiceError as exc:
                logger.warning(
                    "openapi of %s not fetched: %s", name, exc.code, extra={"upstream": name}
                )
                return False
            if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
                logger.warning("openapi of %s is not a document", name, extra={"upstream": name})
                return False
            if doc != cached.doc:
                self._merged = None
            cached.doc = doc
            cached.fetched_at = time.monotonic()
            return True

    async def refresh_due(self) -> None:
        """Fetch the documents that are missing or older than the TTL (when reachable), and
        wait for fetches already under way."""
        due = [name for name in self._cache if self._locks[name].locked() or self._due(name)]
        if due:
            await asyncio.gather(*(self.refresh(name) for name in due))

    async def document(self) -> bytes:
        """The merged document as JSON bytes."""
        await self.refresh_due()
        if self._merged is None:
            merged = merge_openapi(
                self._base(),
                {name: cached.doc for name, cached in self._cache.items()},
                self._routes,
            )
            self._merged = json.dumps(merged, separators=(",", ":")).encode()
        return self._merged
