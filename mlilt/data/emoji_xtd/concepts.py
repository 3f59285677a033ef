"""Emoji identities, near-duplicate groups and the train/val/test split of emoji-XTD."""

from __future__ import annotations

import hashlib
from typing import Iterable

TEST_FRACTION = 0.25
SPLIT_SALT = "emoji-xtd/v1"  # v2 keeps it: the same concepts fall on the same side
VAL_FRACTION = 0.10
VAL_SALT = "emoji-xtd/v2/val"

_ZWJ, _VS16, _VS15, _KEYCAP = 0x200D, 0xFE0F, 0xFE0E, 0x20E3
_FEMALE, _MALE = 0x2640, 0x2642
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_TAGS = range(0xE0020, 0xE0080)
_REGIONAL = range(0x1F1E6, 0x1F200)
_PERSON_BASES = {0x1F468, 0x1F469, 0x1F9D1}  # man, woman, person
_FAMILY_MEMBERS = {0x1F468, 0x1F469, 0x1F9D1, 0x1F466, 0x1F467, 0x1F9D2}
# single code points that are gendered/person variants of one another -> shared key
_ALIASES = {
    **dict.fromkeys((0x1F468, 0x1F469, 0x1F9D1), "person"),
    **dict.fromkeys((0x1F466, 0x1F467, 0x1F9D2), "child"),
    **dict.fromkeys((0x1F474, 0x1F475, 0x1F9D3), "older-person"),
    **dict.fromkeys((0x1F934, 0x1F478, 0x1FAC5), "royalty"),
    **dict.fromkeys((0x1F57A, 0x1F483), "dancer"),
    **dict.fromkeys((0x1F930, 0x1FAC3, 0x1FAC4), "pregnant"),
    **dict.fromkeys((0x1F385, 0x1F936), "person:1f384"),  # Santa, Mrs. Claus ~ mx claus 🧑‍🎄
    **dict.fromkeys((0x1F46B, 0x1F46C, 0x1F46D), "holding-hands"),
    0x1F46A: "family",
    0x1F48F: "kiss",
    0x1F491: "couple-with-heart",
    0x1F51F: "keycap",
}


def emoji_id(emoji: str) -> str:
    """File stem of an emoji: its code points (U+FE0F removed) in lowercase hex joined by ``_``."""
    return "_".join(f"{ord(c):x}" for c in emoji if ord(c) != _VS16)


def emoji_from_id(item_id: str) -> str:
    """Inverse of :func:`emoji_id` (gives the CLDR form, without U+FE0F)."""
    return "".join(chr(int(h, 16)) for h in item_id.split("_"))


def has_skin_tone(emoji: str) -> bool:
    """Whether the sequence contains a Fitzpatrick skin-tone modifier (U+1F3FB..U+1F3FF)."""
    return any(ord(c) in _SKIN_TONES for c in emoji)


def group_key(emoji: str) -> str:
    """Near-duplicate group of an emoji: variants that must not straddle the train/test split."""
    cps = [ord(c) for c in emoji if ord(c) not in (_VS16, _VS15) and ord(c) not in _SKIN_TONES]
    if not cps:
        return ""
    if cps[-1] == _KEYCAP or (len(cps) == 1 and chr(cps[0]) in "#*0123456789"):
        return "keycap"  # keycaps and their bare bases (# and * have CLDR names and glyphs)
    if len(cps) == 1:
        c = cps[0]
        if 0x1F550 <= c <= 0x1F567:
            return "clock"
        if 0x1F311 <= c <= 0x1F318:
            return "moon-phase"
        return _ALIASES.get(c, f"{c:x}")
    parts: list[list[int]] = [[]]
    for c in cps:
        if c == _ZWJ:
            parts.append([])
        else:
            parts[-1].append(c)
    parts = [p for p in parts if p]
    if len(parts) > 1 and parts[-1] in ([_FEMALE], [_MALE]):  # 🏃‍♀ woman running -> 🏃
        parts = parts[:-1]
    flat = {c for p in parts for c in p}
    if len(parts) >= 3 and 0x2764 in flat:
        return "kiss" if 0x1F48B in flat else "couple-with-heart"
    if len(parts) >= 3 and 0x1F91D in flat:
        return "holding-hands"
    if len(parts) >= 2 and all(len(p) == 1 and p[0] in _FAMILY_MEMBERS for p in parts):
        return "family"
    if len(parts) >= 2 and parts[0] == [parts[0][0]] and parts[0][0] in _PERSON_BASES:
        return "person:" + "_".join(f"{c:x}" for p in parts[1:] for c in p)  # 👩‍⚕ 👨‍⚕ 🧑‍⚕
    if len(parts) == 1 and len(parts[0]) > 1:  # flags, tag sequences
        return "_".join(f"{c:x}" for c in parts[0])
    # any other ZWJ sequence groups with its first element (🐈‍⬛ with 🐈, ❤‍🔥 with ❤, 🏳‍🌈 with 🏳)
    return group_key("".join(map(chr, parts[0])))


def split_of(key: str) -> str:
    """``"test"`` for about 25 % of group keys, else ``"train"``; a pure function of the key."""
    digest = hashlib.sha256(f"{SPLIT_SALT}/{key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") < TEST_FRACTION * 2**64 else "train"


def assign_splits(items: Iterable[tuple[str, str, str | tuple[str, ...]]]) -> dict[str, str]:
    """Split ``(item_id, emoji, image_sha256)`` triples; a shared group key or image joins items."""
    return {item_id: split_of(key) for item_id, key in assign_components(items).items()}


def assign_components(items: Iterable[tuple[str, str, str | tuple[str, ...]]]) -> dict[str, str]:
    """Item id -> key of its near-duplicate component (items sharing a group key or an image).

    The third field is one image hash, or a tuple of them (one per style: emoji-XTD v2).
    """
    items = sorted(items)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of: dict[tuple[str, str], int] = {}
    for i, (_, emoji, hashes) in enumerate(items):
        hashes = (hashes,) if isinstance(hashes, str) else hashes
        for label in [("key", group_key(emoji))] + [("img", h) for h in hashes]:
            j = first_of.setdefault(label, i)
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    canonical: dict[int, str] = {}
    for i, (_, emoji, _) in enumerate(items):
        root = find(i)
        key = group_key(emoji)
        canonical[root] = min(canonical.get(root, key), key)
    return {item_id: canonical[find(i)] for i, (item_id, _, _) in enumerate(items)}


def val_of(key: str) -> bool:
    """Whether a training component goes to the English validation split (~10 %); pure in ``key``."""
    digest = hashlib.sha256(f"{VAL_SALT}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < VAL_FRACTION * 2**64
