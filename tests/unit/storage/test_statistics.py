import pyarrow as pa
import pyarrow.parquet as pq

from countdb.storage.statistics import min_max, row_groups_reaching


def test_row_groups_reaching_keeps_those_whose_statistics_overlap(tmp_path):
    block = tmp_path / "block.parquet"
    pq.write_table(pa.table({"series": ["a"] * 100 + ["b"] * 100, "ts": list(range(100)) * 2}), block,
                   row_group_size=50)
    metadata = pq.read_metadata(block)
    assert row_groups_reaching(metadata, "ts", 60, 70) == [1, 3]
    assert row_groups_reaching(metadata, "ts", 49, 50) == [0, 1, 2, 3]
    assert row_groups_reaching(metadata, "ts", 100, 200) == []
    assert row_groups_reaching(metadata, "series", "b", "b") == [2, 3]


def test_a_row_group_without_statistics_may_hold_anything(tmp_path):
    block = tmp_path / "block.parquet"
    pq.write_table(pa.table({"ts": list(range(100))}), block, row_group_size=50, write_statistics=False)
    metadata = pq.read_metadata(block)
    assert min_max(metadata.row_group(0).column(0).statistics) == (None, None)
    assert row_groups_reaching(metadata, "ts", 1000, 2000) == [0, 1]
