"""PreparedStatements: bounded in count and age, so a client that never closes its statements can't exhaust
memory, and usable from many threads at once."""

from __future__ import annotations

import threading

import pytest

from countdb.errors import InvalidInput
from countdb.flight.prepared import PreparedStatements


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bound_statement_answers_its_sql_and_parameters_until_closed():
    store = PreparedStatements(10, 60)
    handle = store.create("SELECT ? AS x")
    assert store.get(handle) == ("SELECT ? AS x", None)
    store.bind(handle, [2.0])
    assert store.get(handle) == ("SELECT ? AS x", [2.0])
    store.close(handle)
    with pytest.raises(InvalidInput, match="prepare the statement again"):
        store.get(handle)


def test_creating_past_the_maximum_evicts_the_least_recently_used():
    store = PreparedStatements(3, 60)
    first, second, third = (store.create(f"SELECT {i}") for i in range(3))
    store.get(first)  # now the most recently used
    fourth = store.create("SELECT 4")
    assert len(store) == 3
    with pytest.raises(InvalidInput):
        store.get(second)
    assert [store.get(h)[0] for h in (first, third, fourth)] == ["SELECT 0", "SELECT 2", "SELECT 4"]


def test_a_statement_unused_for_its_ttl_expires_and_use_renews_it():
    clock = Clock()
    store = PreparedStatements(10, 60, clock=clock)
    kept, dropped = store.create("SELECT 1"), store.create("SELECT 2")
    clock.now = 50
    store.bind(kept, [1])
    clock.now = 100
    assert store.get(kept) == ("SELECT 1", [1])
    with pytest.raises(InvalidInput):
        store.get(dropped)
    assert len(store) == 1


def run_threads(work, count: int = 8) -> list[Exception]:
    failures: list[Exception] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except Exception as error:  # noqa: BLE001 - collected and asserted by the caller
            failures.append(error)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return failures


def test_threads_share_a_handle_each_seeing_a_whole_binding():
    store = PreparedStatements(1000, 60)
    shared = store.create("SELECT ?, ?")

    def work(n: int) -> None:
        for _ in range(300):
            store.bind(shared, [n, n])
            sql, params = store.get(shared)
            assert params[0] == params[1]
            store.close(store.create("SELECT 1"))

    assert run_threads(work) == [] and len(store) == 1


def test_the_bound_holds_while_threads_leak_statements():
    store = PreparedStatements(50, 60)
    assert run_threads(lambda n: [store.create(f"SELECT {n}") for _ in range(200)]) == []
    assert len(store) == 50
