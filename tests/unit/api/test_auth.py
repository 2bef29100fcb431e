"""Where a request's token is read from, and that every route of the app has its scope in ROUTE_SCOPES."""

from __future__ import annotations

import base64

import falcon.inspect
import falcon.testing
import pytest

from countdb.api.app import create_app
from countdb.api.auth import ROUTE_SCOPES, presented_token, route_scopes
from countdb.api.services import Services
from countdb.config import Settings


def request(headers=None, query=""):
    return falcon.testing.create_req(path="/write", query_string=query, headers=headers or {})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("headers, query, expected", [
    ({"Authorization": "Token abc"}, "", "abc"),
    ({"Authorization": "Bearer abc"}, "", "abc"),
    ({"Authorization": "bearer   abc "}, "", "abc"),
    ({"Authorization": basic("anyone", "abc")}, "", "abc"),
    ({"Authorization": basic("", "a:b:c")}, "", "a:b:c"),  # only the first colon splits user from password
    ({"Authorization": basic("x", "abc").rstrip("=")}, "", "abc"),  # padding left out, as some clients do
    ({}, "u=me&p=abc&db=x", "abc"),
    ({"Authorization": "Bearer abc"}, "p=other", "abc"),  # the header wins
    ({}, "", None),
    ({"Authorization": "Bearer"}, "", None),
    ({"Authorization": "Digest abc"}, "", None),
    ({"Authorization": "Basic not-base64!"}, "", None),
    ({"Authorization": basic("user-only", "")}, "", None),
    ({}, "u=me", None),
])
def test_the_token_is_read_the_ways_clients_send_it(headers, query, expected):
    assert presented_token(request(headers, query)) == expected


def test_metrics_follows_its_setting():
    assert route_scopes(metrics_auth=True)["/metrics"] == "read"
    assert route_scopes(metrics_auth=False)["/metrics"] is None
    assert route_scopes(metrics_auth=False)["/health"] is None and ROUTE_SCOPES["/ready"] is None


def test_every_route_of_the_app_has_a_scope(tmp_path):
    services = Services.open(Settings.for_tests(tmp_path, auth_required=True))
    try:
        routes = {route.path for route in falcon.inspect.inspect_routes(create_app(services))}
    finally:
        services.close()
    assert routes and routes <= set(ROUTE_SCOPES), sorted(routes - set(ROUTE_SCOPES))
    assert set(ROUTE_SCOPES) <= routes, sorted(set(ROUTE_SCOPES) - routes)  # no stale entries either
