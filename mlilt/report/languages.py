"""Languages in a report: what ``--langs`` selects, resource tiers, the per-language table's order and labels."""

from __future__ import annotations

import difflib
import math

from .results import ResultFileError

NO_TIER = "tier ?"


def select_languages(requested: list[str], available: list[str], info: dict[str, dict]) -> list[str]:
    """The languages ``--langs`` names, in the files' order: tags, codes or English names in any case, or
    ``tierN`` for every language of resource tier N."""
    aliases: dict[str, str] = {}
    for tag in available:
        fields = info.get(tag, {})
        for alias in (tag, fields.get("code"), fields.get("name")):
            if alias:
                aliases.setdefault(alias.replace("_", "-").lower(), tag)
    chosen: set[str] = set()
    for token in requested:
        key = token.strip().replace("_", "-").lower()
        if key.startswith("tier") and key[4:].isdigit():
            chosen.update(_tier_members(token, int(key[4:]), available, info))
        elif key in aliases:
            chosen.add(aliases[key])
        else:
            close = difflib.get_close_matches(key, list(aliases), n=5, cutoff=0.5)
            raise ResultFileError(f"--langs {token}: no such language in the result files"
                                  + (f"; close: {', '.join(aliases[c] for c in dict.fromkeys(close))}" if close
                                     else f"; they have {len(available)}: {', '.join(available[:30])}"
                                     + (" …" if len(available) > 30 else "")))
    return [tag for tag in available if tag in chosen]


def _tier_members(token: str, tier: int, available: list[str], info: dict[str, dict]) -> list[str]:
    """The languages of one resource tier, or an error saying which tiers the files record."""
    recorded = sorted({info[t]["tier"] for t in available if info.get(t, {}).get("tier") is not None})
    if not recorded:
        raise ResultFileError(f"--langs {token}: the result files record no resource tiers "
                              "(field 'languages.<tag>.tier'); name the languages instead")
    members = [t for t in available if info.get(t, {}).get("tier") == tier]
    if not members:
        raise ResultFileError(f"--langs {token}: no language of the results is in tier {tier} "
                              f"(tiers present: {', '.join(map(str, recorded))})")
    return members


def tier_groups(languages: list[str], info: dict[str, dict]) -> dict[str, list[str]]:
    """'tier 5' … 'tier 0' (highest resource first), then 'tier ?' for languages with none; {} if none has one."""
    tiers = {lang: info.get(lang, {}).get("tier") for lang in languages}
    if all(t is None for t in tiers.values()):
        return {}
    groups = {f"tier {t}": [lang for lang in languages if tiers[lang] == t]
              for t in sorted({t for t in tiers.values() if t is not None}, reverse=True)}
    unknown = [lang for lang in languages if tiers[lang] is None]
    return groups | ({NO_TIER: unknown} if unknown else {})


def resource_order(languages: list[str], info: dict[str, dict]) -> list[str]:
    """Languages by tier (highest first), then CC-100 size (largest first), then tag; unknowns last."""
    def key(lang: str):
        fields = info.get(lang, {})
        tier, size = fields.get("tier"), fields.get("cc100_gib")
        return (tier is None, -(tier or 0), size is None, -(size or 0.0), lang)
    return sorted(languages, key=key)


def language_label(lang: str, info: dict[str, dict]) -> str:
    """'sw (Swahili)' where the files name the language, else the bare tag."""
    name = info.get(lang, {}).get("name")
    return f"{lang} ({name})" if name else lang


def log_resource(lang: str, info: dict[str, dict]) -> float | None:
    """log10 of the language's CC-100 size in GiB, or None where it is not recorded (or zero)."""
    size = info.get(lang, {}).get("cc100_gib")
    return math.log10(size) if size else None
