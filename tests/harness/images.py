"""Deterministic test images: every 512-byte sector starts with its own
index, so a misplaced read or write is caught and easy to diagnose."""

import struct


def pattern_bytes(offset, length, seed=0):
    """The bytes of the pattern image in [offset, offset+length)."""
    out = bytearray()
    first = offset // 512
    last = (offset + length + 511) // 512
    for sector in range(first, last):
        block = struct.pack("<QQ", sector, seed) * 32
        out += block
    start = offset - first * 512
    return bytes(out[start:start + length])


def make_pattern_image(path, size, seed=0):
    """Write a raw image of size bytes filled with the pattern."""
    with open(path, "wb") as f:
        chunk = 1 << 20
        for off in range(0, size, chunk):
            f.write(pattern_bytes(off, min(chunk, size - off), seed))
    return path
