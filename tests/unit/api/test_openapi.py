"""The OpenAPI document (api/openapi.py) against the routing table of api/app.py: no public route without its
description, no description without its route, and the document valid OpenAPI 3.1."""

from __future__ import annotations

import re

import falcon.inspect
import falcon.testing
import orjson
import pytest
import schemathesis

from countdb.api import openapi
from countdb.api.app import create_app
from countdb.api.services import Services
from countdb.config import Settings


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    services = Services.open(Settings.for_tests(tmp_path_factory.mktemp("openapi") / "data"))
    try:
        yield create_app(services)
    finally:
        services.close()


def openapi_path(template: str) -> str:
    """Falcon's /query/range/{series:path} is OpenAPI's /query/range/{series}."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", template)


def routed_operations(app) -> dict[str, set[str]]:
    """Every route's path (OpenAPI spelling) → the methods its resource answers (not falcon's own OPTIONS)."""
    return {openapi_path(route.path): {m.method.lower() for m in route.methods if not m.internal}
            for route in falcon.inspect.inspect_app(app).routes}


def test_every_public_route_is_described_with_exactly_its_methods(app):
    public = {path: methods for path, methods in routed_operations(app).items() if openapi.is_public(path)}
    described = {path: set(item) for path, item in openapi.PATHS.items()}
    assert public == described


def test_internal_routes_are_left_out_by_prefix():
    assert not openapi.is_public("/cluster/members")
    assert not openapi.is_public("/replicate")
    assert not openapi.is_public("/replicate/segments")
    assert openapi.is_public("/query/range")
    assert not [path for path in openapi.PATHS if not openapi.is_public(path)]


def test_the_document_is_valid_openapi_3_1():
    document = openapi.build_document()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()


def test_every_error_status_carries_the_error_shape():
    for path, item in openapi.PATHS.items():
        for method, operation in item.items():
            statuses = {int(status) for status in operation["responses"]}
            assert not statuses & {500, 501, 502}, (path, method)
            for status, response in operation["responses"].items():
                if int(status) >= 400 and path not in ("/health", "/ready"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


def test_every_path_parameter_is_declared(app):
    for path, item in openapi.PATHS.items():
        for operation in item.values():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), path


def test_the_document_is_served_as_json(app):
    response = falcon.testing.TestClient(app).simulate_get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert orjson.loads(response.content)["paths"].keys() == openapi.PATHS.keys()
