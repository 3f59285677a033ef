"""Build a SentencePiece "precompiled charsmap" from a per-codepoint normalisation table.

SentencePiece (and ``tokenizers.normalizers.Precompiled``) store their normaliser as
``uint32 trie_size | darts-clone double-array trie | NUL-separated replacement strings``.
This module compiles a ``{codepoint: replacement}`` table into that blob, so a tokenizer
built with the ``tokenizers`` library normalises exactly like the table says.

Example::

    from tokenizers import normalizers
    from mlilt.zoo._charsmap import build_precompiled_charsmap

    blob = build_precompiled_charsmap({0x2160: "I", 0x0007: ""})
    normalizers.Precompiled(blob).normalize_str("Ⅰ\\x07x")   # -> "Ix"
"""

from __future__ import annotations

import struct
from typing import Mapping

__all__ = ["build_precompiled_charsmap", "lookup"]

_LEAF_BIT = 1 << 31
_HAS_LEAF_BIT = 1 << 8


def _unit_offset(unit: int) -> int:
    """Decode the offset field of a darts-clone unit."""
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


def _encode_offset(offset: int) -> int:
    """Encode an offset into the bits of a darts-clone unit (label/leaf bits left 0)."""
    if offset < (1 << 21):
        return offset << 10
    if offset >= (1 << 29) or offset & 0xFF:
        raise ValueError(f"darts offset {offset} cannot be encoded")
    return (offset << 2) | (1 << 9)


def _build_double_array(keys: list[bytes], values: list[int]) -> list[int]:
    """Compile sorted, unique, NUL-free byte keys with values into darts-clone units."""
    # Trie as nested dicts: byte -> child; the value of a key is stored under the label 0.
    root: dict = {}
    for key, value in zip(keys, values):
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value

    units: list[int] = [0] * 256
    used = bytearray(256)
    used[0] = 1  # position 0 is the root
    used_bases: set[int] = set()
    first_free = 1

    def grow(upto: int) -> None:
        """Extend the arrays to cover the whole 256-unit block containing ``upto``."""
        need = ((upto >> 8) + 1) << 8
        if need > len(units):
            units.extend([0] * (need - len(units)))
            used.extend(bytes(need - len(used)))

    queue: list[tuple[int, dict]] = [(0, root)]
    while queue:
        pos, node = queue.pop()
        labels = sorted(node)
        # Find a base whose slots base ^ label are all free (first-fit, like darts-clone).
        probe = first_free
        while True:
            probe = used.find(0, probe)
            if probe < 0:  # no free slot left: open a new block
                probe = len(used)
            base = probe ^ labels[0]
            grow(base | 0xFF)
            if base not in used_bases and all(not used[base ^ c] and (base ^ c) != 0 for c in labels):
                break
            probe += 1
        used_bases.add(base)
        units[pos] |= _encode_offset(pos ^ base)
        for c in labels:
            child_pos = base ^ c
            used[child_pos] = 1
            if c == 0:
                units[pos] |= _HAS_LEAF_BIT
                units[child_pos] = node[0] | _LEAF_BIT
            else:
                units[child_pos] = c
                queue.append((child_pos, node[c]))
        first_free = used.find(0, first_free)
        if first_free < 0:
            first_free = len(used)
    return units


def lookup(blob: bytes, text: str) -> str | None:
    """Longest-prefix lookup of ``text`` in a charsmap blob (the reading side, for tests)."""
    (trie_size,) = struct.unpack_from("<I", blob, 0)
    units = struct.unpack_from(f"<{trie_size // 4}I", blob, 4)
    normalized = blob[4 + trie_size:]
    pos = _unit_offset(units[0])
    found = None
    for byte in text.encode("utf-8"):
        pos ^= byte
        unit = units[pos]
        if unit & (_LEAF_BIT | 0xFF) != byte:
            break
        pos ^= _unit_offset(unit)
        if unit & _HAS_LEAF_BIT:
            found = units[pos] & (_LEAF_BIT - 1)
    if found is None:
        return None
    end = normalized.index(b"\0", found)
    return normalized[found:end].decode("utf-8")


def build_precompiled_charsmap(table: Mapping[int, str]) -> bytes:
    """Compile ``{codepoint: replacement}`` into a SentencePiece precompiled charsmap blob."""
    keys: list[bytes] = []
    values: list[int] = []
    normalized = bytearray()
    offsets: dict[str, int] = {}
    for cp in sorted(table):
        if cp == 0:
            raise ValueError("codepoint 0 cannot be a charsmap key")
        out = table[cp]
        if out not in offsets:  # share identical replacement strings
            offsets[out] = len(normalized)
            normalized += out.encode("utf-8") + b"\0"
        keys.append(chr(cp).encode("utf-8"))
        values.append(offsets[out])
    units = _build_double_array(keys, values)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(normalized)
