"""AUTH_REQUIRED=true on real gunicorn: tokens made with `countdb token` are accepted the ways real clients send
them (influxdb-client, Bearer, basic, InfluxDB v1 u/p), refused with 401 + WWW-Authenticate or 403 in the
`{"error": …}` shape, probes stay open, the cluster's internal paths are left to the cluster, and a revoked
token stops working within AUTH_CACHE_SECONDS."""

from __future__ import annotations

import time

import pytest
import requests

from support.tokens import countdb_token, create_token

T0 = 1_700_000_000_000
CACHE_SECONDS = 1


@pytest.fixture(scope="module")
def node(count_server):
    return count_server(AUTH_REQUIRED="true", AUTH_CACHE_SECONDS=CACHE_SECONDS, WORKERS=2)


@pytest.fixture(scope="module")
def tokens(node):
    return {scopes: create_token(node.data_dir, f"test-{scopes}", scopes) for scopes in ("write", "read", "admin")}


def point(series: str, ts: int = T0) -> dict:
    return {"series": series, "timestamp": ts, "value": 1.0}


def read(node, token: str, series: str) -> list:
    response = requests.get(f"{node.url}/query/range/{series}", params={"start": 0, "end": T0 * 2},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def assert_refused(response: requests.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and response.json()["error"]
    if status == 401:
        assert "Bearer" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer count_0123456789ab_" + "x" * 43},
                                     {"Authorization": "Bearer nonsense"}, {"Authorization": "Digest abc"}])
@pytest.mark.parametrize("method, path", [("POST", "/insert"), ("GET", "/query/range/a"), ("GET", "/series"),
                                          ("POST", "/query/sql"), ("DELETE", "/series/a"), ("GET", "/metrics")])
def test_no_or_a_wrong_token_is_401_with_a_challenge(node, headers, method, path):
    assert_refused(requests.request(method, node.url + path, headers=headers, json=point("a"), timeout=10), 401)


def test_probes_stay_open(node):
    assert requests.get(node.url + "/health", timeout=10).json()["status"] == "healthy"
    assert requests.get(node.url + "/ready", timeout=10).status_code == 200


def test_internal_cluster_paths_are_not_checked_here(node):
    # No cluster routes on a single node: a 404, not a 401, shows the token check left these paths alone.
    for path in ("/cluster/status", "/replicate"):
        assert requests.get(node.url + path, timeout=10).status_code == 404


def test_a_token_without_the_scope_is_403(node, tokens):
    bearer = {"read": {"Authorization": f"Bearer {tokens['read']}"},
              "write": {"Authorization": f"Bearer {tokens['write']}"}}
    assert_refused(requests.post(node.url + "/insert", json=point("a"), headers=bearer["read"], timeout=10), 403)
    assert_refused(requests.get(node.url + "/series", headers=bearer["write"], timeout=10), 403)
    assert_refused(requests.get(node.url + "/metrics", headers=bearer["write"], timeout=10), 403)
    assert_refused(requests.delete(node.url + "/series/a", headers=bearer["write"], timeout=10), 403)
    assert requests.get(node.url + "/metrics", headers=bearer["read"], timeout=10).status_code == 200


def test_every_way_of_sending_a_write_token_is_accepted(node, tokens):
    token = tokens["write"]
    assert requests.post(node.url + "/insert", json=point("auth.bearer"), timeout=10,
                         headers={"Authorization": f"Bearer {token}"}).status_code == 201
    assert requests.post(node.url + "/insert", json=point("auth.token"), timeout=10,
                         headers={"Authorization": f"Token {token}"}).status_code == 201
    assert requests.post(node.url + "/insert", json=point("auth.basic"), auth=("telegraf", token),
                         timeout=10).status_code == 201
    assert requests.post(node.url + "/write", params={"db": "x", "u": "telegraf", "p": token, "precision": "ms"},
                         data=f"auth_v1 value=1 {T0}", timeout=10).status_code == 204
    for series in ("auth.bearer", "auth.token", "auth.basic", "auth_v1"):
        assert len(read(node, tokens["read"], series)) == 1, series


def test_the_official_influxdb_client_writes_with_its_token(node, tokens):
    import influxdb_client
    from influxdb_client.client.exceptions import InfluxDBError
    from influxdb_client.client.write_api import SYNCHRONOUS

    def write(token: str) -> None:
        with influxdb_client.InfluxDBClient(url=node.url, token=token, org="o") as client:
            point = influxdb_client.Point("influx_tok").tag("host", "h1").field("load", 0.5).time(T0 * 1_000_000)
            client.write_api(write_options=SYNCHRONOUS).write(bucket="b", record=point)

    write(tokens["write"])
    assert read(node, tokens["read"], 'influx_tok.load{host="h1"}') == [{"timestamp": T0, "value": 0.5}]
    with pytest.raises(InfluxDBError) as refused:
        write(tokens["read"])
    assert refused.value.response.status == 403


def test_admin_may_delete_and_do_everything_else(node, tokens):
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    assert requests.post(node.url + "/insert", json=point("auth.deleted"), headers=admin, timeout=10).status_code == 201
    assert read(node, tokens["admin"], "auth.deleted")
    assert requests.delete(node.url + "/series/auth.deleted", headers=admin, timeout=10).status_code in (200, 204)
    assert read(node, tokens["admin"], "auth.deleted") == []


def test_a_revoked_token_stops_working_within_the_cache_time(node):
    token = create_token(node.data_dir, "short-lived", "write")
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.post(node.url + "/insert", json=point("auth.revoked"), headers=bearer, timeout=10).status_code == 201
    token_id = token.split("_")[1]
    revoked = countdb_token(node.data_dir, "revoke", token_id)
    assert revoked.returncode == 0 and token_id in revoked.stdout
    revoked_at = time.monotonic()
    time.sleep(CACHE_SECONDS + 0.2)
    for _ in range(4):  # each answer may come from either worker: every one of them must have forgotten it
        assert_refused(requests.post(node.url + "/insert", json=point("auth.revoked"), headers=bearer, timeout=10), 401)
    assert time.monotonic() - revoked_at < CACHE_SECONDS + 5
    listed = countdb_token(node.data_dir, "list").stdout
    assert any(line.startswith(token_id) and "revoked" in line for line in listed.splitlines()), listed
    assert token not in listed and token.split("_", 2)[2] not in listed


def test_the_secret_is_shown_once_and_never_logged(node, tokens):
    listed = countdb_token(node.data_dir, "list")
    assert listed.returncode == 0
    for token in tokens.values():
        secret = token.split("_", 2)[2]  # count_<id>_<secret>; the secret may hold "_" itself
        assert secret not in listed.stdout
        assert secret not in node.log_text()


def test_a_token_made_on_another_node_works_once_registered_here(node, tmp_path):
    other = tmp_path / "other-node"
    other.mkdir()
    token = create_token(other, "telegraf-everywhere", "write")
    bearer = {"Authorization": f"Bearer {token}"}
    assert_refused(requests.post(node.url + "/insert", json=point("auth.shared"), headers=bearer, timeout=10), 401)
    registered = countdb_token(node.data_dir, "create", "telegraf-everywhere", "--scopes", "write", "--from-stdin",
                               stdin=token + "\n")
    assert registered.returncode == 0 and registered.stdout.strip() == token, registered.stderr
    deadline = time.monotonic() + CACHE_SECONDS + 5  # the 401 above is cached for CACHE_SECONDS
    while requests.post(node.url + "/insert", json=point("auth.shared"), headers=bearer, timeout=10).status_code != 201:
        assert time.monotonic() < deadline
        time.sleep(0.2)
