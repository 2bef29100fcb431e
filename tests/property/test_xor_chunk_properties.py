"""Prometheus XOR chunks round-trip: any samples (timestamps not decreasing, any float bit pattern) decode,
with an independent reader of Prometheus' format, to exactly the samples encoded."""

from __future__ import annotations

import itertools
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from countdb.api.xor_chunk import encode_xor_chunk
from support.xor_chunks import decode_xor_chunk

_gaps = st.one_of(st.integers(0, 70_000), st.sampled_from([15_000, 15_000, 60_000]), st.integers(0, 2**40))
_values = st.one_of(st.floats(allow_nan=False), st.integers(-1000, 1000).map(float), st.just(1.5))


def _bits(value: float) -> int:
    return struct.unpack(">Q", struct.pack(">d", value))[0]


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**45), 2**45), st.lists(st.tuples(_gaps, _values), min_size=1, max_size=300))
def test_xor_chunk_round_trips(first_ms, samples):
    ts = list(itertools.accumulate([first_ms] + [gap for gap, _ in samples[1:]]))
    values = [value for _, value in samples]
    decoded = decode_xor_chunk(encode_xor_chunk(ts, values))
    assert [t for t, _ in decoded] == ts
    assert [_bits(v) for _, v in decoded] == [_bits(v) for v in values]  # bit-exact, -0.0 included


def test_known_chunk_bytes():
    # Two samples, same value: header 2, varint(zigzag(1000)) = d0 0f, 64 value bits, uvarint(15000) = 98 75,
    # then a single 0 bit for the unchanged value.
    data = encode_xor_chunk([1000, 16000], [1.0, 1.0])
    assert data == bytes.fromhex("0002" + "d00f" + "3ff0000000000000" + "9875" + "00")
