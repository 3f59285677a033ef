"""Building emoji-XTD (v1: Noto only; v2: three styles) into a directory, atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .cldr import find_cldr, load_cldr_keywords, load_cldr_names
from .concepts import (SPLIT_SALT, TEST_FRACTION, VAL_FRACTION, VAL_SALT, assign_components, assign_splits,
                       emoji_id, group_key, has_skin_tone, split_of, val_of)
from .locales import TEST_CAPTIONS, TEST_IMAGES, add_cldr_locales
from .render import (DEFAULT_IMAGE_SIZE, FONT_SIZE, OPENMOJI_SIZE, TWEMOJI_IMAGES, EmojiRenderer,
                     OpenMojiRenderer, TwemojiImages)
from .sources import (font_and_cldr_sources, mlilt_version, openmoji_source, pillow_versions,
                      twemoji_source)

LANGUAGES = ("en", "ru", "pl", "tr", "zh", "ko", "it", "es")  # every concept is named in all eight
BUILDER_VERSION = "1"
BUILDER_VERSIONS = {1: "1", 2: "2.1"}  # --version -> meta.json builder_version
V2_EIGHT_LANGUAGES = "2"  # a v2 build from before the other CLDR locales: extended in place, not redrawn
DEFAULT_VERSION = 2
NAME = "emoji-xtd"
DEFAULT_IMAGE_SIZES = {1: DEFAULT_IMAGE_SIZE, 2: 64}  # v2: Twemoji's own size, the demo towers' input
STYLES = ("noto", "twemoji", "openmoji")


@dataclass
class _Item:
    item_id: str
    emoji: str
    names: dict[str, str]
    image_hash: str = ""


def default_dir(version: int = DEFAULT_VERSION) -> Path:
    """``$MLILT_HOME/data/emoji-xtd`` (v1, where it always lived) or ``.../emoji-xtd-v2``."""
    from mlilt.paths import data_dir

    return data_dir() / (NAME if version == 1 else f"{NAME}-v{version}")


def build_emoji_xtd(out_dir: str | os.PathLike | None = None, *, version: int = DEFAULT_VERSION,
                    image_size: int | None = None, force: bool = False,
                    keywords: bool = False, progress: bool = True,
                    font_path: str | os.PathLike | None = None,
                    cldr_dir: str | os.PathLike | None = None) -> Path:
    """Build emoji-XTD ``version`` (1 or 2) into ``out_dir`` (default :func:`default_dir`) atomically.

    An existing complete build is reused unless ``force``; a v2 build with captions in the eight
    languages only gets those of the other CLDR locales added (:func:`add_cldr_locales`), its images,
    split and other files left as they are, the same bytes a fresh build writes. ``keywords`` (v1
    only; v2 always has them) adds one more train row per image whose caption is its English CLDR
    keywords joined by ", ".
    """
    if version not in BUILDER_VERSIONS:
        raise ValueError(f"emoji-XTD version must be one of {', '.join(map(str, BUILDER_VERSIONS))}, "
                         f"got {version!r}")
    if version == 2 and keywords:
        raise ValueError("keywords=True is a v1 option: v2 always captions training images with the "
                         "CLDR name and each keyword")
    image_size = image_size or DEFAULT_IMAGE_SIZES[version]
    out_dir = default_dir(version) if out_dir is None else Path(out_dir)
    if out_dir.exists() and not force:
        meta_path = out_dir / "meta.json"
        if not meta_path.is_file():
            raise FileExistsError(f"{out_dir} exists but holds no emoji-XTD build; use force=True")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if version == 2 and meta.get("builder_version") == V2_EIGHT_LANGUAGES and meta.get("image_size") == image_size:
            add_cldr_locales(out_dir, LANGUAGES, BUILDER_VERSIONS[2], cldr_dir=cldr_dir, progress=progress)
            return out_dir
        if meta.get("image_size") != image_size or meta.get("builder_version") != BUILDER_VERSIONS[version] \
                or bool(meta.get("keywords")) != keywords:
            raise FileExistsError(f"{out_dir} was built with other settings (builder version "
                                  f"{meta.get('builder_version')}, image size {meta.get('image_size')}); "
                                  "pass force=True")
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        if version == 1:
            _build_into(tmp, image_size=image_size, keywords=keywords, progress=progress,
                        font_path=font_path, cldr_dir=cldr_dir)
        else:
            _build_v2(tmp, image_size=image_size, progress=progress, font_path=font_path,
                      cldr_dir=cldr_dir)
            add_cldr_locales(tmp, LANGUAGES, BUILDER_VERSIONS[2], cldr_dir=cldr_dir, progress=progress)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old",
                                        dir=out_dir.parent))
            old.rmdir()
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _build_into(root: Path, *, image_size: int, keywords: bool, progress: bool,
                font_path, cldr_dir) -> None:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(it, **_):
            return it

    renderer = EmojiRenderer(font_path, image_size=image_size)
    cldr = find_cldr(cldr_dir)
    names = {lang: load_cldr_names(lang, cldr) for lang in LANGUAGES}
    candidates = _candidates(names)

    dropped: dict[str, list[str]] = {r: [] for r in ("skin_tone", "missing_language", "no_glyph",
                                                     "multi_glyph")}
    missing_by_lang: Counter[str] = Counter()
    items: list[_Item] = []
    fe0f_retries = 0
    (root / "images").mkdir()
    for emoji in tqdm(candidates, desc="emoji-xtd: rendering", unit="emoji", disable=not progress):
        item_id = emoji_id(emoji)
        if has_skin_tone(emoji):
            dropped["skin_tone"].append(item_id)
            continue
        missing = [lang for lang in LANGUAGES if emoji not in names[lang]]
        if missing:
            dropped["missing_language"].append(item_id)
            missing_by_lang.update(missing)
            continue
        image, how = renderer.render(emoji)
        if image is None:
            dropped[how].append(item_id)
            continue
        fe0f_retries += how != emoji
        item = _Item(item_id, emoji, {lang: names[lang][emoji] for lang in LANGUAGES},
                     hashlib.sha256(image.tobytes()).hexdigest())
        image.save(root / "images" / f"{item_id}.png", compress_level=6)
        items.append(item)

    splits = assign_splits((it.item_id, it.emoji, it.image_hash) for it in items)
    train = [it for it in items if splits[it.item_id] == "train"]
    test = [it for it in items if splits[it.item_id] == "test"]

    en_keywords = load_cldr_keywords("en", cldr) if keywords else {}
    with open(root / "train.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for it in train:
            row = {"image": f"images/{it.item_id}.png", "caption": it.names["en"],
                   "image_id": it.item_id}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            if en_keywords.get(it.emoji):
                row["caption"] = ", ".join(en_keywords[it.emoji])
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    test_names = "".join(f"{it.item_id}.png\n" for it in test)
    (root / "test_image_names.txt").write_text(test_names, encoding="utf-8", newline="\n")
    for lang in LANGUAGES:
        text = "".join(" ".join(it.names[lang].split()) + "\n" for it in test)
        (root / f"test_1kcaptions_{lang}.txt").write_text(text, encoding="utf-8", newline="\n")

    image_groups = Counter(it.image_hash for it in items)
    meta = {
        "name": NAME,
        "builder_version": BUILDER_VERSION,
        "mlilt_version": mlilt_version(),
        "protocol": "test",
        "languages": list(LANGUAGES),
        "image_size": image_size,
        "keywords": keywords,
        "counts": {
            "candidates": len(candidates),
            "items": len(items),
            "train": len(train),
            "test": len(test),
            "train_rows": sum(1 for _ in open(root / "train.jsonl", encoding="utf-8")),
            "group_keys": len({group_key(it.emoji) for it in items}),
            "test_group_keys": len({group_key(it.emoji) for it in test}),
            "pixel_identical_images": sum(n for n in image_groups.values() if n > 1),
            "fe0f_retries": fe0f_retries,
            "dropped": {reason: len(ids) for reason, ids in dropped.items()},
            "missing_language_by_lang": dict(sorted(missing_by_lang.items())),
        },
        "dropped_ids": {r: ids for r, ids in dropped.items() if r != "skin_tone"},
        "split": {
            "rule": "union-find over items sharing group_key(emoji) or an identical rendered "
                    "image; component key = min group_key; test iff the first 8 bytes of "
                    "sha256(salt + '/' + key), big-endian, < 0.25 * 2**64 (split_of)",
            "salt": SPLIT_SALT,
            "test_fraction_target": TEST_FRACTION,
        },
        "test_image_names_sha256": hashlib.sha256(test_names.encode("utf-8")).hexdigest(),
        "sources": font_and_cldr_sources(renderer.font_path, cldr, LANGUAGES),
        "rendering": {
            "font_size": FONT_SIZE,
            "layout": "RAQM",
            "embedded_color": True,
            "background": "white",
            **pillow_versions(),
        },
    }
    (root / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")


def _candidates(names: dict[str, dict[str, str]]) -> list[str]:
    """Every emoji named in any language, in code point order (tests narrow it)."""
    return sorted(set().union(*names.values()), key=lambda e: [ord(c) for c in e])


def training_captions(name: str, keywords: list[str]) -> list[str]:
    """The CLDR name, then each keyword that is not the name again (case-insensitive)."""
    seen, out = set(), []
    for text in [name, *keywords]:
        text = " ".join(text.split())
        if text and text.casefold() not in seen:
            seen.add(text.casefold())
            out.append(text)
    return out


def _build_v2(root: Path, *, image_size: int, progress: bool, font_path, cldr_dir) -> None:
    """emoji-XTD v2 in the eight languages: three styles per concept, name + keyword captions, an English val split."""
    from tqdm.auto import tqdm

    renderers = {"noto": EmojiRenderer(font_path, image_size=image_size),
                 "twemoji": TwemojiImages(image_size=image_size),
                 "openmoji": OpenMojiRenderer(image_size=image_size)}
    cldr = find_cldr(cldr_dir)
    names = {lang: load_cldr_names(lang, cldr) for lang in LANGUAGES}
    en_keywords = load_cldr_keywords("en", cldr)
    candidates = _candidates(names)

    dropped: dict[str, list[str]] = {r: [] for r in ("skin_tone", "missing_language",
                                                     *(f"no_{style}" for style in STYLES))}
    items: list[_Item] = []
    hashes: dict[str, tuple[str, ...]] = {}
    concepts: list[tuple[str, str, tuple[str, ...]]] = []
    for style in STYLES:
        (root / "images" / style).mkdir(parents=True)
    for emoji in tqdm(candidates, desc="emoji-xtd v2: rendering", unit="emoji", disable=not progress):
        item_id = emoji_id(emoji)
        if has_skin_tone(emoji):
            dropped["skin_tone"].append(item_id)
            continue
        if any(emoji not in names[lang] for lang in LANGUAGES):
            dropped["missing_language"].append(item_id)
            continue
        images = {style: r.render(emoji)[0] for style, r in renderers.items()}
        # Every concept Noto draws (v1's items) joins the split's union-find, so v2 keeps v1's sides.
        if images["noto"] is not None:
            hashes[item_id] = tuple(f"{s}:" + hashlib.sha256(im.tobytes()).hexdigest()
                                    for s, im in images.items() if im is not None)
            concepts.append((item_id, emoji, hashes[item_id]))
        missing = [style for style, im in images.items() if im is None]
        if missing:  # only concepts every style draws: each style's pool holds the same concepts
            dropped[f"no_{missing[0]}"].append(item_id)
            continue
        for style, im in images.items():
            im.save(root / "images" / style / f"{item_id}.png", compress_level=6)
        items.append(_Item(item_id, emoji, {lang: names[lang][emoji] for lang in LANGUAGES}))

    components = assign_components(concepts)
    split = {}
    for it in items:
        key = components[it.item_id]
        split[it.item_id] = "test" if split_of(key) == "test" else "val" if val_of(key) else "train"
    parts = {name: [it for it in items if split[it.item_id] == name] for name in ("train", "val", "test")}

    rows = 0
    with open(root / "train.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for it in parts["train"]:
            for style in STYLES:
                for caption in training_captions(it.names["en"], en_keywords.get(it.emoji, [])):
                    row = {"image": f"images/{style}/{it.item_id}.png", "caption": caption,
                           "image_id": f"{style}/{it.item_id}"}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    rows += 1

    def write_aligned(part: str, images_file: str, captions_file: str, langs) -> str:
        listed = [(style, it) for style in STYLES for it in parts[part]]
        text = "".join(f"{style}/{it.item_id}.png\n" for style, it in listed)
        (root / images_file).write_text(text, encoding="utf-8", newline="\n")
        for lang in langs:
            lines = "".join(" ".join(it.names[lang].split()) + "\n" for _, it in listed)
            (root / captions_file.format(lang=lang)).write_text(lines, encoding="utf-8", newline="\n")
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    test_sha = write_aligned("test", TEST_IMAGES, TEST_CAPTIONS, LANGUAGES)
    val_sha = write_aligned("val", "val_image_names.txt", "val_captions_{lang}.txt", ["en"])
    meta = {
        "name": NAME,
        "builder_version": V2_EIGHT_LANGUAGES,
        "mlilt_version": mlilt_version(),
        "protocols": {**{style: f"test images {style}/*" for style in STYLES},
                      "all": "mean of the three styles"},
        "styles": list(STYLES),
        "languages": list(LANGUAGES),
        "image_size": image_size,
        "keywords": False,
        "captions": {"train": "English CLDR name, then each English CLDR keyword (common/annotations "
                              "without type=tts), one row each, for every style's image",
                     "val": "English CLDR name", "test": "CLDR name in each language"},
        "counts": {
            "candidates": len(candidates),
            "concepts": len(items),
            **{name: len(part) for name, part in parts.items()},
            "train_rows": rows,
            "images": len(items) * len(STYLES),
            "group_keys": len({group_key(it.emoji) for it in items}),
            "dropped": {reason: len(ids) for reason, ids in dropped.items()},
        },
        "dropped_ids": {r: ids for r, ids in dropped.items() if r != "skin_tone"},
        "split": {
            "rule": "union-find over every concept Noto draws (v1's items, including those another "
                    "style lacks) sharing group_key(emoji) or an identical image of one style; component key = min group_key; test iff the first 8 bytes of "
                    "sha256(split salt + '/' + key), big-endian, < 0.25 * 2**64 (split_of, as v1); "
                    "of the rest, val iff the same with the val salt < 0.10 * 2**64 (val_of)",
            "salt": SPLIT_SALT, "val_salt": VAL_SALT,
            "test_fraction_target": TEST_FRACTION, "val_fraction_target": VAL_FRACTION,
        },
        "test_image_names_sha256": test_sha,
        "val_image_names_sha256": val_sha,
        "sources": {**font_and_cldr_sources(renderers["noto"].font_path, cldr, LANGUAGES),
                    "twemoji": twemoji_source(renderers["twemoji"].dir),
                    "openmoji": openmoji_source(renderers["openmoji"].font_path)},
        "rendering": {
            "noto": {"font_size": FONT_SIZE, "resampled_to": image_size},
            "twemoji": {"files": TWEMOJI_IMAGES, "resampled_to": image_size},
            "openmoji": {"font_size": OPENMOJI_SIZE, "crop": list(renderers["openmoji"].crop),
                         "resampled_to": image_size},
            "layout": "RAQM", "embedded_color": True, "background": "white", **pillow_versions(),
        },
    }
    (root / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")

