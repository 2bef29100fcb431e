"""How the agent groups its work: hints into requests (deletes alone, order kept) and differing cells by month."""

from __future__ import annotations

from pathlib import Path

from countdb.cluster.agent import CELLS_PER_REQUEST, HINTS_PER_REQUEST, cell_batches, hint_batches
from countdb.cluster.hints import Hint


def hint(name: str) -> Hint:
    return Hint(Path(f"/h/{name}"), 1)


def test_point_hints_go_together_and_each_delete_alone_in_order():
    hints = [hint("1.points"), hint("2.points"), hint("3.delete"), hint("4.points"), hint("5.delete"),
             hint("6.delete")]
    assert [[h.path.name for h in batch] for batch in hint_batches(hints)] == [
        ["1.points", "2.points"], ["3.delete"], ["4.points"], ["5.delete"], ["6.delete"]]


def test_a_long_run_of_point_hints_is_cut_into_requests():
    batches = hint_batches([hint(f"{i:04d}.points") for i in range(2 * HINTS_PER_REQUEST + 1)])
    assert [len(batch) for batch in batches] == [HINTS_PER_REQUEST, HINTS_PER_REQUEST, 1]


def test_cells_are_asked_for_by_month_a_bounded_number_at_a_time():
    cells = [("2024-02", 1)] + [("2024-01", p) for p in range(CELLS_PER_REQUEST + 3)]
    assert cell_batches(cells) == [("2024-01", list(range(CELLS_PER_REQUEST))),
                                   ("2024-01", list(range(CELLS_PER_REQUEST, CELLS_PER_REQUEST + 3))),
                                   ("2024-02", [1])]
