"""A reader of Prometheus XOR chunks for tests, written from Prometheus' xorIterator (tsdb/chunkenc/xor.go), so
the encoder in countdb/api/xor_chunk.py is checked against a decoder it does not share code with."""

from __future__ import annotations

import struct


class _BitReader:
    def __init__(self, data: bytes):
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def read(self, width: int) -> int:
        if width > self.left:
            raise ValueError("chunk ends early")
        self.left -= width
        return (self.value >> self.left) & ((1 << width) - 1)

    def read_byte(self) -> int:
        return self.read(8)


def _uvarint(bits: _BitReader) -> int:
    value, shift = 0, 0
    while True:
        byte = bits.read_byte()
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value
        shift += 7


def _signed(value: int, width: int) -> int:
    return value - (1 << width) if value >= 1 << (width - 1) else value


def decode_xor_chunk(data: bytes) -> list[tuple[int, float]]:
    count = struct.unpack(">H", data[:2])[0]
    bits = _BitReader(data[2:])
    out: list[tuple[int, float]] = []
    t = delta = value = 0
    leading = trailing = 0
    for i in range(count):
        if i == 0:
            zigzag = _uvarint(bits)
            t = (zigzag >> 1) ^ -(zigzag & 1)
            value = bits.read(64)
        else:
            if i == 1:
                delta = _uvarint(bits)
            else:
                prefix = 0
                for _ in range(4):
                    prefix <<= 1
                    bit = bits.read(1)
                    prefix |= bit
                    if bit == 0:
                        break
                width = {0b0: 0, 0b10: 14, 0b110: 17, 0b1110: 20, 0b1111: 64}[prefix]
                if width:
                    raw = bits.read(width)
                    # Prometheus: a 14/17/20-bit value above 1 << (width-1) is negative
                    dod = _signed(raw, 64) if width == 64 else (raw - (1 << width) if raw > 1 << (width - 1) else raw)
                    delta += dod
            t += delta
            if bits.read(1):
                if bits.read(1):
                    leading = bits.read(5)
                    significant = bits.read(6) or 64
                    trailing = 64 - leading - significant
                value ^= bits.read(64 - leading - trailing) << trailing
        out.append((t, struct.unpack(">d", struct.pack(">Q", value))[0]))
    return out
