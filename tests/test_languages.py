"""One way to name a language: FLORES/ISO/BCP-47/CLDR codes, matching requests to a set's files, resource data."""

import os
from pathlib import Path

import pytest

from mlilt.evaluation import languages
from mlilt.evaluation.languages import LanguageError, canonical, english_name, info, resolve, tier_of

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """The shared data folder: $MLILT_SHARED, else ../shared beside this checkout or beside the main checkout
    (a git worktree's .git file names the main checkout's .git/worktrees/NAME)."""
    candidates = [os.environ.get("MLILT_SHARED"), REPO.parent / "shared"]
    git = REPO / ".git"
    if git.is_file() and git.read_text().startswith("gitdir:"):
        candidates.append(Path(git.read_text().split(":", 1)[1].strip()).parents[2].parent / "shared")
    return next((Path(c) for c in candidates if c and Path(c, "xtd200").is_dir()), None)


@pytest.fixture(scope="module")
def flores():
    """The FLORES-200 codes of the real XTD200 caption files."""
    shared = shared_dir()
    if shared is None:
        pytest.skip("no shared/xtd200 (set MLILT_SHARED to the folder holding xtd200/)")
    codes = sorted(p.stem for p in (shared / "xtd200").glob("*_*.txt") if p.stem != "test_image_names")
    assert len(codes) == 201  # 201 caption files beside test_image_names.txt
    return codes


def test_every_flores_file_gets_its_own_canonical_tag(flores):
    tags = {code: canonical(code) for code in flores}
    assert len(set(tags.values())) == len(flores)
    assert {code: tags[code] for code in ["swh_Latn", "pes_Arab", "arb_Arab", "npi_Deva", "zsm_Latn", "lvs_Latn",
                                          "khk_Cyrl", "uzn_Latn", "plt_Latn", "gaz_Latn", "ydd_Hebr", "azj_Latn",
                                          "est_Latn", "zho_Hans", "zho_Hant", "kor_Hang", "jpn_Jpan", "eng_Latn"]} == {
        "swh_Latn": "sw", "pes_Arab": "fa", "arb_Arab": "ar", "npi_Deva": "ne", "zsm_Latn": "ms", "lvs_Latn": "lv",
        "khk_Cyrl": "mn", "uzn_Latn": "uz", "plt_Latn": "mg", "gaz_Latn": "om", "ydd_Hebr": "yi", "azj_Latn": "az",
        "est_Latn": "et", "zho_Hans": "zh", "zho_Hant": "zh-Hant", "kor_Hang": "ko", "jpn_Jpan": "ja",
        "eng_Latn": "en"}
    # Files that would collide under a cruder rule stay apart: the script is kept when it is not the likely one,
    # Arabic varieties keep their own codes, and Twi (tw) is not folded into Akan (ak).
    assert (tags["knc_Latn"], tags["knc_Arab"]) == ("kr", "kr-Arab")
    assert (tags["kas_Arab"], tags["kas_Deva"]) == ("ks", "ks-Deva")
    assert (tags["aka_Latn"], tags["twi_Latn"]) == ("ak", "tw")
    assert (tags["pes_Arab"], tags["prs_Arab"]) == ("fa", "fa-AF")
    assert {tags[c] for c in flores if c.startswith(("ar", "ac", "aeb", "ajp", "apc"))} >= {
        "ar", "ars", "ary", "arz", "aeb", "apc", "acm-Arab", "acq-Arab", "ajp-Arab"}


def test_flores_iso_and_bcp47_codes_round_trip(flores):
    tags = [canonical(code) for code in flores]
    assert [canonical(tag) for tag in tags] == tags  # a canonical tag is its own canonical form
    # Every file is found again from its tag (BCP-47 / ISO 639-1) and from its ISO 639-3 code plus script.
    assert resolve(tags, flores) == dict(zip(tags, flores))
    alpha3 = [code.split("_")[0] + "-" + code.split("_")[1] for code in flores]
    assert list(resolve(alpha3, flores).values()) == flores
    assert resolve(["sw", "yo", "am", "swh", "yor", "amh"], flores, where="xtd200") == {
        "sw": "swh_Latn", "yo": "yor_Latn", "am": "amh_Ethi"}
    assert resolve("sw, yo,amh_Ethi", flores) == {"sw": "swh_Latn", "yo": "yor_Latn", "am": "amh_Ethi"}
    # A broad code finds the one variety a set has; an individual language asks only for itself.
    assert resolve(["qu", "ps", "zh", "ar", "kr"], flores) == {
        "quy": "quy_Latn", "pbt-Arab": "pbt_Arab", "zh": "zho_Hans", "ar": "arb_Arab", "kr": "knc_Latn"}
    with pytest.raises(LanguageError, match="'quz' \\(Quechua\\) is not a language in xtd200"):
        resolve(["quz"], flores, where="xtd200")


XM3600 = ("ar bn cs da de el en es fa fi fil fr he hi hr hu id it ja ko mi nl no pl pt quz ro ru sv sw te th tr uk "
          "vi zh").split()


def test_a_language_has_the_same_tag_in_xm3600_and_xtd200(flores):
    assert len({canonical(code) for code in XM3600}) == 36
    # 34 of XM3600's languages are in XTD200 under their FLORES codes, and keyed by the same tag...
    same = [code for code in XM3600 if code not in ("no", "quz")]
    both = resolve(same, flores, where="xtd200")
    assert list(both) == [canonical(code) for code in same]
    assert [both[tag] for tag in ("sw", "fil", "mi", "zh", "fa", "he")] == [
        "swh_Latn", "tgl_Latn", "mri_Latn", "zho_Hans", "pes_Arab", "heb_Hebr"]
    # ...and two are not the same language: Norwegian (XTD200 has Bokmål and Nynorsk), Cusco Quechua (Ayacucho).
    with pytest.raises(LanguageError, match="'no' names 2 languages in xtd200: nno_Latn .*, nob_Latn"):
        resolve(["no"], flores, where="xtd200")
    with pytest.raises(LanguageError, match="'quz' \\(Quechua\\) is not .*close matches: quy_Latn"):
        resolve(["quz"], flores, where="xtd200")


def test_codes_are_case_and_separator_insensitive():
    assert canonical("SW") == canonical("sw") == canonical("Swh_latn") == canonical("SWH-LATN") == "sw"
    assert canonical("ZHO_HANT") == canonical("zh_Hant") == "zh-Hant"
    assert canonical("sr_Latn") == "sr-Latn" and canonical("sr_Cyrl") == "sr"
    assert resolve(["RU", "Zh-hant"], ["rus_Cyrl", "zho_Hans", "zho_Hant"]) == {"ru": "rus_Cyrl", "zh-Hant": "zho_Hant"}


@pytest.mark.parametrize("code", ["xx", "und", "zxx", "qaa", "test_image_names", "", "tier9"])
def test_codes_that_are_not_languages_are_refused_in_one_line(code):
    with pytest.raises(LanguageError, match="is not a language code") as caught:
        canonical(code)
    assert "\n" not in str(caught.value)


def test_an_english_name_given_as_a_code_is_answered_with_its_code():
    with pytest.raises(LanguageError, match="did you mean 'sw' \\(Swahili\\)"):
        canonical("swahili")


def test_unknown_and_ambiguous_requests_name_the_candidates():
    files = ["eng_Latn", "swh_Latn", "yor_Latn", "ary_Arab", "arz_Arab", "acm_Arab", "nob_Latn", "nno_Latn",
             "zho_Hant", "yue_Hant", "test_image_names"]
    with pytest.raises(LanguageError, match="^'xx' is not a language in xtd200; it has 10: eng_Latn") as caught:
        resolve(["xx"], files, where="xtd200")
    assert "\n" not in str(caught.value)
    with pytest.raises(LanguageError, match="'swahli' is not a language in xtd200; close matches: swh_Latn"):
        resolve(["swahli"], files, where="xtd200")
    with pytest.raises(LanguageError, match="'fr' \\(French\\) is not a language in xtd200"):
        resolve(["fr"], files, where="xtd200")
    # An individual language is not swapped for another of its macrolanguage, but they are offered.
    with pytest.raises(LanguageError, match="'nb' \\(Norwegian Bokmål\\) is not a language in xm3600; "
                                            "close matches: no \\(Norwegian\\)"):
        resolve(["nb"], ["en", "no", "fil", "quz"], where="xm3600")
    with pytest.raises(LanguageError, match="'apc' .* close matches: ary_Arab \\(Moroccan Arabic\\), arz_Arab"):
        resolve(["apc"], files)
    with pytest.raises(LanguageError, match="'ar' names 3 languages in xtd200: ary_Arab \\(Moroccan Arabic\\), "
                                            "arz_Arab \\(Egyptian Arabic\\), acm_Arab \\(Mesopotamian Arabic"):
        resolve(["ar"], files, where="xtd200")
    with pytest.raises(LanguageError, match="'no' names 2 languages .*nob_Latn .*nno_Latn"):
        resolve(["no"], files)
    with pytest.raises(LanguageError, match="'zh' names 2 languages .*zho_Hant .*yue_Hant"):
        resolve(["zh"], files)
    # Exactly one canonical match is no ambiguity.
    assert resolve(["zh"], ["zho_Hans", "zho_Hant"]) == {"zh": "zho_Hans"}
    assert resolve(["arz"], files) == {"arz": "arz_Arab"}


def test_all_and_tiers_select_available_codes_in_request_order():
    files = ["eng_Latn", "swh_Latn", "yor_Latn", "fon_Latn", "test_image_names"]
    assert resolve(["all"], files) == {"en": "eng_Latn", "sw": "swh_Latn", "yo": "yor_Latn", "fon": "fon_Latn"}
    assert list(resolve(["yo", "all"], files)) == ["yo", "en", "sw", "fon"]  # each language once, first request first
    assert resolve(["tier2"], files) == {"sw": "swh_Latn", "yo": "yor_Latn"}
    assert resolve(["TIER5", "low"], files) == {"en": "eng_Latn", "sw": "swh_Latn", "yo": "yor_Latn"}
    with pytest.raises(LanguageError, match="no language of xtd200 is in tier4"):
        resolve(["tier4"], files, where="xtd200")


def test_two_available_codes_for_one_language():
    cldr = ["en", "sr", "sr_Cyrl", "sr_Latn"]  # CLDR has both sr and sr_Cyrl
    assert resolve(["sr_Cyrl"], cldr) == {"sr": "sr_Cyrl"}  # the exact code wins
    assert resolve(["all"], cldr) == {"en": "en", "sr": "sr", "sr-Latn": "sr_Latn"}  # a keyword takes the first
    with pytest.raises(LanguageError, match="'sr' and 'sr_Cyrl' in cldr are the same language \\(sr, Serbian\\)"):
        resolve(["sr", "sr_Cyrl"], cldr, where="cldr")


def test_cldr_locales_resolve_by_script():
    locales = ["sr", "sr_Latn", "zh", "zh_Hant", "pt", "pt_PT"]
    assert resolve(["sr-Latn", "zh-Hant", "sr", "zh", "pt_pt"], locales) == {
        "sr-Latn": "sr_Latn", "zh-Hant": "zh_Hant", "sr": "sr", "zh": "zh", "pt-PT": "pt_PT"}
    assert resolve(["en"], ["en_US", "fr"]) == {"en-US": "en_US"}  # the one English there is


def test_english_names():
    assert english_name("sw") == english_name("swh_Latn") == "Swahili"
    assert english_name("zh-Hant") == "Chinese (Traditional)"
    assert english_name("yor_Latn") == "Yoruba"
    assert english_name("twi_Latn") == "Twi"


def test_resource_data_parses_and_covers_the_languages_it_should():
    rows = languages._resources()
    assert len(rows) > 1000 and sum(row["cc100_gib"] is not None for row in rows.values()) == 99
    assert info("sw") == {"tag": "sw", "name": "Swahili", "cc100_gib": 1.6, "tier": 2,
                          "tier_source": "Joshi et al. 2020, lang2tax.txt: swahili (2)",
                          "size_source": "CC-100 'sw' (Conneau et al. 2020, Table 6)"}
    assert (tier_of("en"), languages.cc100_size("en")) == (5, 300.8)
    assert (tier_of("swh_Latn"), tier_of("zho_Hant"), languages.cc100_size("zho_Hant")) == (2, 5, 16.6)
    assert tier_of("yo") == 2 and languages.cc100_size("yo") is None  # Joshi classes it; CC-100 lacks it
    assert info("fon")["tier"] is None and info("fon")["size_source"] is None
    header = [line for line in (Path(languages.__file__).parent / languages.RESOURCES_FILE).read_text().splitlines()
              if line.startswith("#")]
    assert any("Conneau et al." in line for line in header) and any("Joshi et al." in line for line in header)


def test_a_bad_resources_row_is_named_by_file_line_and_field():
    good = "# comment\ncode,cc100_gib,joshi_class,joshi_names\nsw,1.6,2,swahili (2)\n"
    assert languages.parse_resources(good, "x.csv") == {"sw": {"cc100_gib": 1.6, "joshi_class": 2,
                                                              "joshi_names": "swahili (2)"}}
    with pytest.raises(ValueError, match="^x.csv:4: cc100_gib: 'lots' is not a float"):
        languages.parse_resources(good + "en,lots,5,\n", "x.csv")
    with pytest.raises(ValueError, match="^x.csv:4: joshi_class '7', expected 0-5"):
        languages.parse_resources(good + "en,,7,\n", "x.csv")
    with pytest.raises(ValueError, match="^x.csv:4: code 'swh' is not canonical"):
        languages.parse_resources(good + "swh,,,\n", "x.csv")
    with pytest.raises(ValueError, match="^x.csv:2: header"):
        languages.parse_resources("# c\ncode,size\n", "x.csv")
