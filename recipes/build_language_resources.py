"""Write mlilt/evaluation/language_resources.csv from CC-100's Table 6 and Joshi et al.'s lang2tax.txt.

    python recipes/build_language_resources.py --cc100 cc-100.csv --lang2tax lang2tax.txt

--cc100: Table 6 of Conneau et al. (2020) as CSV (``ISO code,Language,Tokens (M),Size (GiB)``, romanized rows
with code '-'), e.g. cc-100/cc-100.csv of github.com/mayhewsw/multilingual-data-stats (commit 7397902).
--lang2tax: https://microsoft.github.io/linguisticdiversity/assets/lang2tax.txt (``name,class`` a line).
Names are mapped to codes with langcodes.find; the ones it cannot map are listed in the file's header.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
import textwrap
from pathlib import Path

import langcodes

from mlilt.evaluation.languages import RESOURCES_FILE, LanguageError, canonical, parse_resources

OUT = Path(__file__).resolve().parents[1] / "mlilt" / "evaluation" / RESOURCES_FILE

# lang2tax names (classes 1-5) that language_data does not know, each given as a name it does know.
KNOWN_AS = {"eastern punjabi": "punjabi", "southern azerbaijani": "south azerbaijani",
            "classical chinese": "literary chinese", "kabiye": "kabiyè", "newar": "newari",
            "sranan": "sranan tongo", "central bicolano": "central bikol"}
# Table 6's romanized rows carry no code; their tags say the language and the script.
ROMANIZED = {"Hindi Romanized": "hi-Latn", "Urdu Romanized": "ur-Latn", "Bengali Romanized": "bn-Latn",
             "Telugu Romanized": "te-Latn", "Tamil Romanized": "ta-Latn"}


def cc100_sizes(path: Path) -> dict[str, float]:
    """GiB per canonical tag; Table 6's two Burmese rows (Unicode and Zawgyi encodings) are added together."""
    sizes: dict[str, float] = {}
    for row in csv.DictReader(path.read_text(encoding="utf-8").splitlines()):
        code = ROMANIZED.get(row["Language"]) or row["ISO code"]
        if row["Language"] == "Chinese (Traditional)":
            code = "zh-Hant"
        tag = canonical(code)
        sizes[tag] = round(sizes.get(tag, 0.0) + float(row["Size (GiB)"]), 1)
    return sizes


def joshi_classes(path: Path) -> tuple[dict[str, tuple[int, list[str]]], list[tuple[str, int]]]:
    """({language tag: (class, 'name (class)' of every name mapped to it)}, unmapped (name, class))."""
    by_tag: dict[str, list[tuple[int, str]]] = {}
    unmapped = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name, klass = line.rsplit(",", 1)
        try:
            lang = langcodes.find(KNOWN_AS.get(name, name), language="en")
            if lang.variants or lang.extensions:
                raise LookupError(name)  # a Wikipedia code such as map-bms, roa-tar: no ISO language
            tag = langcodes.Language.get(canonical(lang.to_tag())).language
        except (LookupError, LanguageError):
            unmapped.append((name, int(klass)))
            continue
        by_tag.setdefault(tag, []).append((int(klass), name))
    # A language listed under several names (haitian 2, haitian creole 0) takes its highest class: class 0 is
    # also where the list puts names it found no resources under.
    classes = {tag: (max(k for k, _ in entries), [f"{n} ({k})" for k, n in sorted(entries, reverse=True)])
               for tag, entries in by_tag.items()}
    return classes, unmapped


def render(sizes, classes, unmapped, cc100_path: Path, lang2tax_path: Path) -> str:
    """The CSV text: cited header, then one row per tag."""
    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]

    names_0 = ", ".join(sorted(n for n, k in unmapped if k == 0))
    names_hi = ", ".join(f"{n} ({k})" for n, k in unmapped if k > 0) or "none"
    header = f"""\
How much text of each language the multilingual text towers saw, and how well resourced it is for NLP.

Written by recipes/build_language_resources.py; read by mlilt.evaluation.languages (info, tier_of, cc100_size).

code: canonical BCP-47 tag (mlilt.evaluation.languages.canonical).

cc100_gib: size in GiB of the language in CC-100, the corpus of XLM-R and multilingual-e5: A. Conneau et al.,
"Unsupervised Cross-lingual Representation Learning at Scale", ACL 2020, Appendix A, Table 6, as transcribed
in github.com/mayhewsw/multilingual-data-stats, cc-100/cc-100.csv at commit 7397902 (its 100 rows add up to 2,467
GiB, the paper's "2.5TB"); that transcription corrects two typos of the published table with figures from the
authors (sv 85 GiB, uk 84.6 GiB). Burmese (my) is the sum of Table 6's two Burmese rows (Unicode 0.4 and Zawgyi 1.6 or
the reverse, the transcription does not say which). Romanized rows are the -Latn tags. Empty: not in CC-100
(a macrolanguage's row is not copied to its members: 'no' is not given to nb, 'ku' (Kurmanji) not to ckb).

joshi_class: class 0-5 of P. Joshi et al., "The State and Fate of Linguistic Diversity and Inclusion in the NLP
World", ACL 2020 (0 The Left-Behinds ... 5 The Winners), from its list
microsoft.github.io/linguisticdiversity/assets/lang2tax.txt (sha256 {digest(lang2tax_path)}…; the copy in the
PyPI package distals 0.1.1, data/lang2tax.txt), names mapped to languages with langcodes.find. joshi_names: the
list's names mapped to the row, highest class first; a language with several names takes the highest class.
Classes are per language: on a tag with a script or region (zh-Hant), read the language's row (zh).

Names of classes 1-5 not mapped: {names_hi}.

Names of class 0 not mapped ({sum(1 for _, k in unmapped if k == 0)}): {names_0}."""
    lines = ["# " + wrapped for paragraph in header.split("\n\n")
             for wrapped in textwrap.wrap(" ".join(paragraph.splitlines()), 116, break_on_hyphens=False)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "cc100_gib", "joshi_class", "joshi_names"])
    for tag in sorted(set(sizes) | set(classes)):
        klass, names = classes.get(tag, ("", []))
        writer.writerow([tag, sizes.get(tag, ""), klass, "; ".join(names)])
    return "\n".join(lines) + "\n" + out.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc100", type=Path, required=True, help="Table 6 of the XLM-R paper as CSV")
    parser.add_argument("--lang2tax", type=Path, required=True, help="Joshi et al.'s lang2tax.txt")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sizes = cc100_sizes(args.cc100)
    classes, unmapped = joshi_classes(args.lang2tax)
    text = render(sizes, classes, unmapped, args.cc100, args.lang2tax)
    parse_resources(text, str(args.out))  # what the library will read must parse
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {len(sizes)} CC-100 sizes, {len(classes)} classed languages, "
          f"{len(unmapped)} lang2tax names unmapped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
