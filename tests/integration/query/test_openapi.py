"""The OpenAPI schema documents every query type, each with an example that the API accepts."""

from __future__ import annotations

import pytest

from brokle_server.query.errors import QUERY_TYPES

from .conftest import World

pytestmark = pytest.mark.asyncio(loop_scope="package")


async def test_every_query_type_is_documented_with_an_example(world: World) -> None:
    spec = (await world.client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/v1/query"]["post"]
    content = operation["requestBody"]["content"]["application/json"]
    assert set(content["examples"]) == set(QUERY_TYPES)
    schema = content["schema"]
    assert schema["discriminator"]["propertyName"] == "queryType"
    refs = {item["$ref"].rsplit("/", 1)[1] for item in schema["oneOf"]}
    components = spec["components"]["schemas"]
    documented = {}
    for name in refs:
        model = components[name]
        prop = model["properties"]["queryType"]
        tag = prop.get("const") or prop["enum"][0]
        assert model["examples"][0]["queryType"] == tag
        documented[tag] = model["examples"][0]
    assert set(documented) == set(QUERY_TYPES)
    for path in (
        "/api/v1/metrics",
        "/api/v1/metrics/{name}/dimensions",
        "/api/v1/metrics/{name}/dimensions/{key}/values",
        "/api/v1/spans/attributes",
        "/api/v1/spans/attributes/{key}/values",
        "/api/v1/services",
        "/api/v1/models",
        "/v1/spans/query",
        "/v1/spans/query/validate",
        "/api/v1/admin/metrics/{name}",
        "/api/v1/projects/{project_id}/retention",
    ):
        assert path in spec["paths"], path


@pytest.mark.parametrize("query_type", QUERY_TYPES)
async def test_documented_examples_run(world: World, query_type: str) -> None:
    spec = (await world.client.get("/openapi.json")).json()
    examples = spec["paths"]["/api/v1/query"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    body = dict(examples[query_type]["value"])
    if "start" in body.get("timeRange", {}):
        body["timeRange"] = {"relative": "24h"}
    status = 404 if query_type == "trace" else 200
    reply = await world.query(world.key_a, body, status)
    assert reply["success"] is (status == 200)
