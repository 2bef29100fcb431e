"""parse_arrow checks series keys with vector kernels; it must refuse exactly what check_series refuses."""

import pyarrow as pa
import pytest

from countdb.errors import CountError
from countdb.ingest.parse import parse_arrow
from countdb.ingest.validate import series_keys_pass
from countdb.ingest.validate import check_series
from countdb.model import MAX_SERIES_KEY_BYTES

KEYS = ["cpu", 'cpu{host="a"}', "ünïcode", "a\x00b", "tab\there", "line\nbreak", "del\x7f", "unit\x1fsep", "",
        "x" * MAX_SERIES_KEY_BYTES, "x" * (MAX_SERIES_KEY_BYTES + 1), "é" * (MAX_SERIES_KEY_BYTES // 2),
        "é" * (MAX_SERIES_KEY_BYTES // 2 + 1), "\u0085next-line is allowed", "emoji 🙂"]


def _accepted(key: str) -> bool:
    try:
        check_series(key, "")
        return True
    except CountError:
        return False


@pytest.mark.parametrize("key", KEYS)
def test_the_vector_check_agrees_with_check_series(key):
    assert series_keys_pass(pa.array([key, "fine"])) == _accepted(key)


def test_a_bad_key_is_refused_naming_the_series_field():
    batch = pa.record_batch([pa.array(["ok", "bad\x01"]).dictionary_encode(), pa.array([1, 2], pa.int64()),
                             pa.array([1.0, 2.0])], names=["series", "timestamp", "value"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)
    with pytest.raises(CountError, match="control characters") as raised:
        parse_arrow(sink.getvalue().to_pybytes(), 100)
    assert raised.value.field == "series"
