"""Access tokens in the catalog: only a hash is stored, a token is found only by its exact text, revocation
holds, and the per-process cache forgets an answer after its time."""

from __future__ import annotations

import pytest

from countdb.catalog import tokens
from countdb.catalog.db import connect
from countdb.catalog.migrate import migrate
from countdb.errors import InvalidInput


@pytest.fixture
def catalog(tmp_path):
    path = tmp_path / "catalog.sqlite"
    migrate(path)
    connection = connect(path)
    yield connection
    connection.close()


def test_a_created_token_is_found_with_its_scopes_and_only_its_hash_is_stored(catalog, tmp_path):
    token, info = tokens.create_token(catalog, "telegraf", frozenset({"write"}))
    assert token.startswith(f"count_{info.token_id}_")
    found = tokens.find_token(catalog, token)
    assert found == info and found.grants("write") and not found.grants("read")
    catalog.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    secret = token.split("_", 2)[2].encode()  # count_<id>_<secret>; the secret may hold "_" itself
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("catalog.sqlite*"))
    assert info.token_id.encode() in stored and secret not in stored


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character of the secret wrong
    lambda t: t[:-1],  # cut short
    lambda t: t.replace("count_", "count-"),
    lambda t: "count_000000000000_" + t.split("_", 2)[2],  # right secret, unknown id
    lambda t: "",
])
def test_anything_but_the_exact_token_is_refused(catalog, mangle):
    token, _ = tokens.create_token(catalog, "grafana", frozenset({"read"}))
    assert tokens.find_token(catalog, mangle(token)) is None


def test_admin_grants_every_scope():
    info = tokens.TokenInfo("0" * 12, "ops", frozenset({"admin"}), 0)
    assert all(info.grants(scope) for scope in tokens.SCOPES)


def test_a_revoked_token_is_refused_and_still_listed(catalog):
    token, info = tokens.create_token(catalog, "old", frozenset({"read", "write"}))
    kept, _ = tokens.create_token(catalog, "new", frozenset({"read"}))
    assert [r.token_id for r in tokens.revoke_tokens(catalog, "old")] == [info.token_id]
    assert tokens.find_token(catalog, token) is None and tokens.find_token(catalog, kept) is not None
    listed = {t.name: t for t in tokens.list_tokens(catalog)}
    assert listed["old"].revoked_ms is not None and listed["new"].revoked_ms is None
    assert tokens.revoke_tokens(catalog, info.token_id) == []  # already revoked: nothing to do


@pytest.mark.parametrize("text", ["", "read,root", "everything"])
def test_unknown_scopes_are_refused(text):
    with pytest.raises(InvalidInput):
        tokens.parse_scopes(text)


def test_parse_scopes_reads_a_list():
    assert tokens.parse_scopes(" Write, read ") == {"read", "write"}


def test_the_cache_answers_from_memory_until_its_time_is_up(catalog, tmp_path):
    token, info = tokens.create_token(catalog, "cached", frozenset({"write"}))
    now = [100.0]
    cache = tokens.TokenCache(lambda: connect(tmp_path / "catalog.sqlite"), 5.0, clock=lambda: now[0])
    try:
        assert cache.find(token) == info
        tokens.revoke_tokens(catalog, info.token_id)
        now[0] += 4.9
        assert cache.find(token) == info  # still cached
        now[0] += 0.2
        assert cache.find(token) is None  # revocation seen once the answer expired
    finally:
        cache.close()


def test_a_token_made_on_another_node_can_be_registered_here(catalog, tmp_path):
    other = tmp_path / "other.sqlite"
    migrate(other)
    elsewhere = connect(other)
    try:
        token, info = tokens.create_token(elsewhere, "telegraf", frozenset({"write"}))
    finally:
        elsewhere.close()
    assert tokens.find_token(catalog, token) is None
    same, here = tokens.create_token(catalog, "telegraf", frozenset({"write"}), token)
    assert same == token and here.token_id == info.token_id
    assert tokens.find_token(catalog, token) == here


@pytest.mark.parametrize("given", ["count_123_abc", "Bearer count_", "x" * 64])
def test_a_malformed_token_is_not_registered(catalog, given):
    with pytest.raises(InvalidInput):
        tokens.create_token(catalog, "bad", frozenset({"read"}), given)
    assert tokens.list_tokens(catalog) == []
