"""Prometheus' XOR (Gorilla) chunk encoding of float samples, as remote read's STREAMED_XOR_CHUNKS carries it.

Invariant: the bytes are exactly what Prometheus' tsdb/chunkenc xorAppender writes for the same samples (a
2-byte big-endian count, then a bit stream of delta-of-delta timestamps and XOR-ed values), so its reader
decodes them unchanged. At most 65535 samples a chunk; timestamps must not decrease.
"""

from __future__ import annotations

import struct

MAX_SAMPLES = 0xFFFF
_DOD_BUCKETS = ((14, 0b10, 2), (17, 0b110, 3), (20, 0b1110, 4))


class _Bits:
    """An append-only big-endian bit stream kept as a Python int (chunks are small: ~120 samples)."""

    def __init__(self) -> None:
        self.value = 0
        self.count = 0

    def write(self, bits: int, width: int) -> None:
        self.value = (self.value << width) | (bits & ((1 << width) - 1))
        self.count += width

    def to_bytes(self) -> bytes:
        pad = -self.count % 8
        return (self.value << pad).to_bytes((self.count + pad) // 8, "big")


def _varint(value: int) -> int:
    return (value << 1) ^ (value >> 63)  # Go's binary.PutVarint zig-zag, for a signed int64


def uvarint(value: int) -> bytes:
    """Go's binary.PutUvarint: 7 bits a byte, low first, high bit set on all but the last."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _float_bits(value: float) -> int:
    return struct.unpack(">Q", struct.pack(">d", value))[0]


def encode_xor_chunk(ts_ms: list[int], values: list[float]) -> bytes:
    """The XOR chunk of samples (ts_ms[i], values[i]); ValueError past MAX_SAMPLES or for an empty list."""
    if not 0 < len(ts_ms) <= MAX_SAMPLES or len(ts_ms) != len(values):
        raise ValueError(f"an XOR chunk holds 1..{MAX_SAMPLES} samples, not {len(ts_ms)}")
    bits = _Bits()
    for byte in uvarint(_varint(ts_ms[0]) & (2**64 - 1)):
        bits.write(byte, 8)
    previous = _float_bits(values[0])
    bits.write(previous, 64)
    leading, trailing = 0xFF, 0
    if len(ts_ms) > 1:
        delta = ts_ms[1] - ts_ms[0]
        for byte in uvarint(delta):
            bits.write(byte, 8)
        previous, leading, trailing = _write_value(bits, _float_bits(values[1]), previous, leading, trailing)
    for i in range(2, len(ts_ms)):
        new_delta = ts_ms[i] - ts_ms[i - 1]
        _write_dod(bits, new_delta - delta)
        delta = new_delta
        previous, leading, trailing = _write_value(bits, _float_bits(values[i]), previous, leading, trailing)
    return struct.pack(">H", len(ts_ms)) + bits.to_bytes()


def _write_dod(bits: _Bits, dod: int) -> None:
    if dod == 0:
        bits.write(0, 1)
        return
    for width, prefix, prefix_width in _DOD_BUCKETS:
        if -((1 << (width - 1)) - 1) <= dod <= 1 << (width - 1):
            bits.write(prefix, prefix_width)
            bits.write(dod, width)
            return
    bits.write(0b1111, 4)
    bits.write(dod, 64)


def _write_value(bits: _Bits, new: int, previous: int, leading: int, trailing: int) -> tuple[int, int, int]:
    """Write `new` XOR-ed with `previous` (float bit patterns); returns the new (previous, leading, trailing)."""
    xor = new ^ previous
    if xor == 0:
        bits.write(0, 1)
        return new, leading, trailing
    bits.write(1, 1)
    new_leading = min(64 - xor.bit_length(), 31)
    new_trailing = (xor & -xor).bit_length() - 1
    if leading != 0xFF and new_leading >= leading and new_trailing >= trailing:
        bits.write(0, 1)
        bits.write(xor >> trailing, 64 - leading - trailing)
        return new, leading, trailing
    significant = 64 - new_leading - new_trailing
    bits.write(1, 1)
    bits.write(new_leading, 5)
    bits.write(significant, 6)  # 64 wraps to 0, as in Prometheus
    bits.write(xor >> new_trailing, significant)
    return new, new_leading, new_trailing
