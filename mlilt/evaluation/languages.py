"""One way to name a language: canonical BCP-47 tags, English names, request-to-file matching, resource tiers."""

from __future__ import annotations

import csv
import difflib
from functools import lru_cache
from importlib import resources
from typing import Iterable

import langcodes
from langcodes.data_dicts import MACROLANGUAGES

__all__ = ["LanguageError", "canonical", "english_name", "resolve", "info", "tier_of", "cc100_size",
           "TIER_GROUPS", "TIER_NAMES", "RESOURCES_FILE"]

RESOURCES_FILE = "language_resources.csv"

# Joshi et al. (2020), Section 3: the six classes' names.
TIER_NAMES = {0: "The Left-Behinds", 1: "The Scraping-Bys", 2: "The Hopefuls", 3: "The Rising Stars",
              4: "The Underdogs", 5: "The Winners"}
# Keywords a request may use instead of codes: one Joshi class, or the low- and high-resource ends.
TIER_GROUPS = {**{f"tier{c}": frozenset({c}) for c in TIER_NAMES},
               "low": frozenset({0, 1, 2}), "high": frozenset({4, 5})}

# Tags that parse but name no language (undetermined, no linguistic content, several, uncoded).
_NOT_LANGUAGES = {"und", "zxx", "mul", "mis"}
# ISO 15924 composite scripts: Korean's likely script 'Kore' is Hangul + Han, so FLORES's kor_Hang is just 'ko'.
_SCRIPT_PARTS = {"Kore": {"Hang", "Hani"}, "Jpan": {"Hira", "Kana", "Hani"}, "Hanb": {"Bopo", "Hani"}}


class LanguageError(ValueError):
    """An unknown, ambiguous or unavailable language code (the message is one line)."""


@lru_cache(maxsize=None)
def canonical(code: str) -> str:
    """The one BCP-47 tag for CODE (any case, '_' or '-', ISO 639-1/3, FLORES-200, CLDR locale)."""
    lang = _parse(code)
    # CLDR's rule (a macrolanguage stands for its dominant member: swh->sw, arb->ar, cmn->zh), except that a
    # language with its own two-letter code stays itself (tw is Twi, not Akan: FLORES has twi_Latn and aka_Latn).
    if len(lang.language) > 2:
        lang = lang.prefer_macrolanguage()
    script = lang.script
    if script:
        likely = _likely_script(lang.language, lang.territory)
        if script == likely or script in _SCRIPT_PARTS.get(likely, ()):
            lang = lang.update_dict({"script": None})
    return lang.to_tag()


@lru_cache(maxsize=None)
def english_name(code: str) -> str:
    """The English name of CODE's language ('sw' -> 'Swahili', 'zh-Hant' -> 'Chinese (Traditional)')."""
    return langcodes.Language.get(canonical(code)).display_name("en")


def resolve(requested: Iterable[str], available: Iterable[str], *, where: str = "") -> dict[str, str]:
    """Map each requested code (or 'all', or a tier keyword) to the one available code it names, keyed by tag.

    REQUESTED may also be one comma-separated string ('sw,yo,am'). The keywords win over the codes they spell
    ('all' is also Allar's ISO 639-3 code) and take a language's first code where a set has two (CLDR's sr and
    sr_Cyrl); two codes of one language asked for by name are an error.
    """
    if isinstance(requested, str):
        requested = [part for part in requested.split(",") if part.strip()]
    where = where or "the available languages"
    entries = _entries(available)
    chosen: dict[str, str] = {}

    def take(tag: str, code: str, by_name: bool = True) -> None:
        if chosen.get(tag, code) != code:
            if not by_name:
                return
            raise LanguageError(f"{chosen[tag]!r} and {code!r} in {where} are the same language ({tag}, "
                                f"{english_name(tag)}); ask for one of them by its full code")
        chosen[tag] = code

    for request in requested:
        request = request.strip()
        keyword = request.lower()
        if keyword == "all":
            for code, tag in entries:
                take(tag, code, by_name=False)
        elif keyword in TIER_GROUPS:
            picked = [(code, tag) for code, tag in entries if tier_of(tag) in TIER_GROUPS[keyword]]
            if not picked:
                raise LanguageError(f"no language of {where} is in {keyword} (Joshi et al. 2020 classes "
                                    f"{', '.join(map(str, sorted(TIER_GROUPS[keyword])))})")
            for code, tag in picked:
                take(tag, code, by_name=False)
        else:
            code = _match(request, entries, where)
            take(canonical(code), code)
    return chosen


def info(code: str) -> dict:
    """Tag, English name, CC-100 size (GiB) and Joshi class of CODE's language, each with its source."""
    tag = canonical(code)
    size, size_source = _size(tag)
    tier, tier_source = _tier(tag)
    return {"tag": tag, "name": english_name(tag), "cc100_gib": size, "tier": tier,
            "tier_source": tier_source, "size_source": size_source}


def tier_of(code: str) -> int | None:
    """Joshi et al. (2020) class 0-5 of CODE's language, or None where the list does not cover it."""
    return _tier(canonical(code))[0]


def cc100_size(code: str) -> float | None:
    """GiB of CC-100 text (XLM-R's, multilingual-e5's corpus) in CODE's language, or None if it has none."""
    return _size(canonical(code))[0]


def _parse(code: str) -> langcodes.Language:
    """CODE as a normalised langcodes.Language, or LanguageError if it names no language."""
    text = str(code).strip()
    try:
        lang = langcodes.Language.get(text, normalize=True)
    except ValueError:
        lang = None
    if (lang is None or not lang.language or lang.language in _NOT_LANGUAGES or not lang.is_valid()
            or "qaa" <= lang.language <= "qtz"):
        raise LanguageError(f"{text!r} is not a language code (expected ISO 639-1/3 'sw'/'swh', BCP-47 'zh-Hant', "
                            f"FLORES-200 'swh_Latn' or CLDR 'sr_Latn'){_name_hint(text)}")
    return lang


def _name_hint(text: str) -> str:
    """'; did you mean ...' when TEXT is a language's English name."""
    try:
        tag = canonical(langcodes.find(text, language="en").to_tag())
    except (LookupError, ValueError):
        return ""
    return f"; did you mean {tag!r} ({english_name(tag)})?"


def _likely_script(language: str, territory: str | None) -> str | None:
    """The script langcodes takes LANGUAGE (in TERRITORY) to be written in: CLDR's likely one, else Latin."""
    return langcodes.Language.make(language=language, territory=territory).maximize().script


def _entries(available: Iterable[str]) -> list[tuple[str, str]]:
    """(code, canonical tag) of each available code that names a language, in order."""
    entries = []
    for code in available:
        try:
            entries.append((code, canonical(code)))
        except LanguageError:
            continue  # a set's other files (image lists, README) are not languages
    return entries


def _match(request: str, entries: list[tuple[str, str]], where: str) -> str:
    """The one available code REQUEST names: exact code, then equal tag, then the one variety of a broad code."""
    spelled = request.lower().replace("_", "-")
    exact = [code for code, _ in entries if code.lower().replace("_", "-") == spelled]
    if exact:
        return exact[0]
    try:
        tag = canonical(request)
    except LanguageError as error:
        raise LanguageError(f"{request!r} is not a language in {where}{_close(request, entries)}") from error
    same = [code for code, other in entries if other == tag]
    if not same:
        same = _varieties(request, tag, entries)
    if len(same) == 1:
        return same[0]
    if same:
        listed = ", ".join(f"{code} ({english_name(code)})" for code in same)
        raise LanguageError(f"{request!r} names {len(same)} languages in {where}: {listed}; give one of them")
    raise LanguageError(f"{request!r} ({english_name(tag)}) is not a language in {where}{_close(request, entries)}")


def _varieties(request: str, tag: str, entries: list[tuple[str, str]]) -> list[str]:
    """Available codes a broad request covers ('ar' -> ary_Arab, 'qu' -> quy_Latn, 'en' -> en_US)."""
    asked = langcodes.Language.get(tag)
    if langcodes.Language.get(request, normalize=True).language != asked.language:
        return []  # an individual language (quz, cmn) asks for itself, not for its macrolanguage's other members
    found = []
    for code, other in entries:
        lang = langcodes.Language.get(other)
        if asked.language not in (lang.language, MACROLANGUAGES.get(lang.language)):
            continue
        full = lang.maximize()
        if asked.script and asked.script != full.script or asked.territory and asked.territory != full.territory:
            continue
        found.append(code)
    return found


def _close(request: str, entries: list[tuple[str, str]]) -> str:
    """'; close matches: ...': the same language or macrolanguage first, then codes, tags and names spelled alike."""
    related = []
    try:
        asked = langcodes.Language.get(canonical(request)).language
    except LanguageError:
        asked = None
    if asked:
        family = {asked, MACROLANGUAGES.get(asked)} - {None}
        related = [code for code, tag in entries
                   if family & {langcodes.Language.get(tag).language,
                                MACROLANGUAGES.get(langcodes.Language.get(tag).language)}]
    keys: dict[str, str] = {}
    for code, tag in entries:
        for key in (code, tag, english_name(tag)):
            keys.setdefault(key.lower(), code)
    alike = [keys[k] for k in difflib.get_close_matches(request.lower(), keys, n=8, cutoff=0.6)]
    close = list(dict.fromkeys(related + alike))
    if close:
        return "; close matches: " + ", ".join(f"{code} ({english_name(code)})" for code in close[:5])
    if not entries:
        return " (it has none)"
    more = " …" if len(entries) > 8 else ""
    return f"; it has {len(entries)}: " + ", ".join(code for code, _ in entries[:8]) + more


def _size(tag: str) -> tuple[float | None, str | None]:
    """CC-100 GiB for TAG: its own row, else its language's (zh-Hant has a row of its own, sr-Latn reads sr's).

    A macrolanguage's row is not used for its members: Table 6's 'ku' is Kurmanji, not Sorani (ckb), and 'zh'
    is not Cantonese (yue).
    """
    rows = _resources()
    lang = langcodes.Language.get(tag)
    for key in dict.fromkeys([tag, lang.update_dict({"territory": None}).to_tag(), lang.language]):
        size = rows.get(key, {}).get("cc100_gib")
        if size is not None:
            return size, f"CC-100 {key!r} (Conneau et al. 2020, Table 6)"
    return None, None


def _tier(tag: str) -> tuple[int | None, str | None]:
    """Joshi class of TAG's language (classes are per language: the script and region do not change them)."""
    row = _resources().get(langcodes.Language.get(tag).language, {})
    if row.get("joshi_class") is None:
        return None, None
    return row["joshi_class"], f"Joshi et al. 2020, lang2tax.txt: {row['joshi_names'].split('; ')[0]}"


@lru_cache(maxsize=1)
def _resources() -> dict[str, dict]:
    """The rows of language_resources.csv by tag, each field checked."""
    text = resources.files(__package__).joinpath(RESOURCES_FILE).read_text(encoding="utf-8")
    return parse_resources(text, RESOURCES_FILE)


def parse_resources(text: str, source: str) -> dict[str, dict]:
    """Rows of a language-resources CSV (comment lines start with '#') by tag; ValueError names file:line:field."""
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(line for _, line in lines)
    expected = ["code", "cc100_gib", "joshi_class", "joshi_names"]
    if reader.fieldnames != expected:
        raise ValueError(f"{source}:{lines[0][0] if lines else 1}: header {reader.fieldnames}, expected {expected}")
    rows: dict[str, dict] = {}
    for (number, _), row in zip(lines[1:], reader):
        where = f"{source}:{number}"
        try:
            tag = canonical(row["code"])
        except LanguageError as error:
            raise ValueError(f"{where}: code: {error}") from None
        if tag != row["code"] or tag in rows:
            raise ValueError(f"{where}: code {row['code']!r} is not canonical ({tag!r}) or is listed twice")
        rows[tag] = {"cc100_gib": _number(row["cc100_gib"], float, f"{where}: cc100_gib"),
                     "joshi_class": _number(row["joshi_class"], int, f"{where}: joshi_class"),
                     "joshi_names": row["joshi_names"] or None}
        if rows[tag]["joshi_class"] not in (None, *TIER_NAMES):
            raise ValueError(f"{where}: joshi_class {row['joshi_class']!r}, expected 0-5 or empty")
    return rows


def _number(text: str | None, kind: type, where: str):
    """TEXT as KIND, None when empty; ValueError naming WHERE otherwise."""
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a {kind.__name__}, expected a number or empty") from None
