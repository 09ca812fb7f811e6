"""The merged OpenAPI document, Swagger UI, the index and the health document."""

from __future__ import annotations

from datetime import datetime

from sepsis_gateway.openapi import merge_openapi
from sepsis_gateway.routes.table import PUBLIC_ROUTES


async def test_merged_openapi_has_every_public_route_and_no_internal_one(stack):
    client = await stack.start()
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert doc["x-upstreams-missing"] == []
    for route in PUBLIC_ROUTES:
        assert route.method.lower() in doc["paths"].get(route.path, {}), route.path
    for internal in ("/healthz", "/readyz"):
        assert internal not in doc["paths"]
    # /performance is the gateway's own, not a service's.
    assert doc["paths"]["/performance"]["get"]["tags"] == ["gateway"]


async def test_every_operation_is_summarised_as_the_route_table_says(stack):
    client = await stack.start()
    doc = (await client.get("/openapi.json")).json()
    summaries = {
        (path, method): op.get("summary")
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    for route in PUBLIC_ROUTES:
        assert summaries[(route.path, route.method.lower())] == route.summary


async def test_merged_openapi_keeps_service_bodies_examples_and_adds_the_key_scheme(stack):
    client = await stack.start()
    doc = (await client.get("/openapi.json")).json()
    classify = doc["paths"]["/classify"]["post"]
    body = classify["requestBody"]["content"]["application/json"]
    assert body["examples"]["guide"]["value"] == {"HR": 110, "SBP": 95}
    assert body["schema"] == {"$ref": "#/components/schemas/PatientInput"}
    assert classify["security"] == [{"ApiKeyAuth": []}]
    for code in ("401", "429", "502", "503", "504", "413"):
        assert code in classify["responses"], code
    scheme = doc["components"]["securitySchemes"]["ApiKeyAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    assert "security" not in doc["paths"]["/genai-health"]["get"]
    assert "security" not in doc["paths"]["/health"]["get"]
    assert "403" in doc["paths"]["/reload-config"]["post"]["responses"]
    # The gateway decides which key errors a route can give, whatever the service declared.
    assert "403" not in classify["responses"]
    assert "401" not in doc["paths"]["/genai-health"]["get"]["responses"]


async def test_clashing_schema_names_are_both_kept_and_refs_follow(stack):
    client = await stack.start()
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    titles = {schemas[n]["title"] for n in schemas if n.endswith("Answer")}
    assert titles == {"ml answer", "genai answer"}
    ml_ref = doc["paths"]["/classify"]["post"]["responses"]["200"]["content"]["application/json"]
    genai_ref = doc["paths"]["/genai-classify"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]
    ml_name = ml_ref["schema"]["$ref"].rsplit("/", 1)[1]
    genai_name = genai_ref["schema"]["$ref"].rsplit("/", 1)[1]
    assert schemas[ml_name]["title"] == "ml answer"
    assert schemas[genai_name]["title"] == "genai answer"
    # Identical definitions are not duplicated.
    assert "PatientInput" in schemas
    assert not any(n.endswith("_PatientInput") for n in schemas)
    op_ids = [
        op["operationId"]
        for item in doc["paths"].values()
        for op in item.values()
        if "operationId" in op
    ]
    assert len(op_ids) == len(set(op_ids))


async def test_openapi_still_served_and_flags_a_service_that_never_answered(stack):
    await stack.genai.stop()
    client = await stack.start()
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["x-upstreams-missing"] == ["genai"]
    assert "genai" in doc["info"]["description"]
    # The GenAI routes are still listed, from the gateway's own declaration.
    assert "/genai-classify" in doc["paths"]
    assert doc["paths"]["/genai-classify"]["post"]["security"] == [{"ApiKeyAuth": []}]
    # ML's part is complete.
    assert "requestBody" in doc["paths"]["/classify"]["post"]


async def test_openapi_is_cached(stack):
    client = await stack.start()
    first = await client.get("/openapi.json")
    fetches = sum(1 for c in stack.ml.received if c.path == "/openapi.json")
    second = await client.get("/openapi.json")
    assert first.content == second.content
    assert sum(1 for c in stack.ml.received if c.path == "/openapi.json") == fetches == 1


async def test_openapi_fetch_carries_the_service_token(stack):
    client = await stack.start()
    await client.get("/openapi.json")
    fetch = next(c for c in stack.ml.received if c.path == "/openapi.json")
    assert fetch.headers["x-service-token"] == stack.token


def test_merge_renames_a_clash_even_when_the_prefixed_name_is_taken():
    base = {"openapi": "3.1.0", "paths": {}, "components": {"schemas": {"A": {"title": "gw"}}}}
    service = {
        "paths": {
            "/classify": {
                "post": {
                    "responses": {
                        "200": {"$ref": "#/components/schemas/A"},
                        "201": {"$ref": "#/components/schemas/ml_A"},
                    }
                }
            }
        },
        "components": {
            "schemas": {
                "A": {"title": "ml"},
                "ml_A": {"title": "other"},
                "Internal": {"title": "only used by an internal route"},
            }
        },
    }
    doc = merge_openapi(base, {"ml": service}, PUBLIC_ROUTES)
    schemas = doc["components"]["schemas"]
    assert schemas["A"]["title"] == "gw"
    assert schemas["ml_A"]["title"] == "other"
    renamed = doc["paths"]["/classify"]["post"]["responses"]["200"]["$ref"].rsplit("/", 1)[1]
    assert schemas[renamed]["title"] == "ml"
    # Components no public route uses are left out.
    assert "Internal" not in schemas


async def test_docs_serves_swagger_ui_on_the_merged_document(stack):
    client = await stack.start()
    r = await client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "swagger" in r.text.lower()
    assert "/openapi.json" in r.text
    # The page works without internet: every asset it names is served by the gateway itself.
    assert "cdn." not in r.text
    for asset, kind in [
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon-32x32.png", "image/png"),
    ]:
        assert f"/docs/assets/{asset}" in r.text
        served = await client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200, asset
        assert kind in served.headers["content-type"]
        assert len(served.content) > 100
    missing = await client.get("/docs/assets/..%2F..%2Fpyproject.toml")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_index_lists_every_endpoint_with_its_auth(stack):
    client = await stack.start()
    body = (await client.get("/")).json()
    assert body["name"]
    assert body["version"]
    listed = {(e["method"], e["path"]): e["auth"] for e in body["endpoints"]}
    assert listed[("POST", "/classify")] == "key"
    assert listed[("POST", "/reload-config")] == "admin"
    assert listed[("GET", "/genai-health")] == "none"
    assert len(listed) == len(PUBLIC_ROUTES)


async def test_health_matches_the_original_guide_and_reports_upstreams(stack):
    client = await stack.start()
    await stack.gateway().upstreams["ml"].probe(timeout_s=1.0)
    body = (await client.get("/health")).json()
    assert body["status"] == "healthy"
    datetime.fromisoformat(body["timestamp"])
    assert body["version"]
    ml = body["upstreams"]["ml"]
    assert ml["status"] == "up"
    assert ml["circuit"] == "closed"
    datetime.fromisoformat(ml["last_checked"])
    assert set(body["upstreams"]) == {"ml", "genai"}
