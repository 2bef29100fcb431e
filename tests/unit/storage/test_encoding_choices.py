"""EncodingChoices: the trial pick is reused for REUSE_BLOCKS blocks of one series set, then tried again;
another series set (or other columns) gets its own trials."""

import pyarrow as pa

from countdb.storage import encoding
from countdb.storage.encoding import REUSE_BLOCKS, EncodingChoices


def _block(keys: list[str], with_value: bool = True) -> pa.Table:
    columns = {"series": pa.array(keys).dictionary_encode(), "ts": pa.array(range(len(keys)), pa.int64())}
    if with_value:
        columns["value"] = pa.array([0.5] * len(keys))
    return pa.table({**columns, "seq": pa.array([7] * len(keys), pa.int64())})


def test_trials_run_once_per_reuse_period_and_per_series_set(monkeypatch):
    trials = []
    choose = encoding.choose_encodings
    monkeypatch.setattr(encoding, "choose_encodings", lambda table, level: trials.append(level) or choose(table, level))
    choices = EncodingChoices(zstd_level=3)
    first = choices.options(_block(["a", "b"]))
    assert first["compression_level"] == 3
    for _ in range(REUSE_BLOCKS - 1):
        assert choices.options(_block(["a", "b"])) == first
    assert len(trials) == 1
    choices.options(_block(["a", "c"]))  # another series set
    choices.options(_block(["a", "b"], with_value=False))  # a shadow block's columns
    assert len(trials) == 3
    choices.options(_block(["a", "b"]))  # the first set's pick has been used REUSE_BLOCKS times
    assert len(trials) == 4


def test_a_reused_pick_still_sizes_row_groups_by_the_table_it_writes():
    def table(rows_per_series: int) -> pa.Table:
        keys = pa.array([f"s{i}" for i in range(10)])
        indices = pa.array([i // rows_per_series for i in range(10 * rows_per_series)], pa.int32())
        return pa.table({"series": pa.DictionaryArray.from_arrays(indices, keys),
                         "ts": pa.array(range(10 * rows_per_series), pa.int64()),
                         "value": pa.array([0.5] * (10 * rows_per_series))})
    choices = EncodingChoices(3)
    assert choices.options(table(5000))["row_group_size"] == 32 * 1024
    assert choices.options(table(100))["row_group_size"] == 128 * 1024  # same series set: the pick is reused
