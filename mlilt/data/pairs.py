"""Image-caption pairs from the layouts people actually have, as one ``datasets`` table.

    from mlilt.data.pairs import load_pairs
    coco = load_pairs("karpathy/dataset_coco.json", image_root="coco/")        # train + restval, 1 row/caption
    albef = load_pairs("albef/coco_train.json", image_root="coco/")
    mine = load_pairs("pairs.jsonl")                                           # images relative to the file
    shards = load_pairs("shards/cc3m-{00000..00331}.tar")                      # streamed webdataset
    coco[0]  # {"image": "/data/coco/train2014/COCO_train2014_000000057870.jpg", "caption": "...", "image_id": "57870"}

Every loader returns columns ``image``, ``caption`` (one row per caption) and ``image_id`` (str), and
``group`` (str) where the source has one: a coarser id than the image, whose pairs the loss may treat
as positives of each other (``TrainConfig.positives``); a row without one is its image's group.
The built-in emoji-XTD sets group an emoji concept's styles (``emoji-xtd``'s ``noto/1f600``,
``twemoji/1f600`` and ``openmoji/1f600`` are group ``1f600``).
``image`` is an absolute file path where the source stores paths (manifests, a string column) and a
PIL image where it holds the images themselves. For training pass ``decode=False``: embedded images
then stay datasets' ``{"bytes", "path"}`` dicts, so that a corrupt one reaches
:class:`mlilt.data.images.PairCollator`, which skips it, instead of failing inside the dataset.

Formats (``format="auto"`` infers them from the path):

* ``coco_karpathy`` -- Karpathy's ``dataset_coco.json`` (also Flickr30k's): ``{"images": [{"filepath",
  "filename", "split", "sentences": [{"raw"}], "cocoid"}]}``; ``split="train"`` is train + restval,
  ``"all"`` every split; ``image_id`` is the COCO id (else the image path).
* ``albef`` -- the ALBEF/LilT list ``[{"image": "val2014/...jpg", "caption": str | [str], "image_id"?,
  "group"?}]``.
* ``jsonl`` / ``csv`` -- one pair per line / row with ``image``, ``caption`` and optional ``image_id``
  (default: the image path as written) and ``group``.
* ``hf_disk`` (``save_to_disk`` output), ``parquet`` (file, folder or glob), ``imagefolder`` (a folder
  with ``metadata.jsonl``), ``webdataset`` (``.tar`` shards with ``jpg``/``png`` + ``txt``; streamed).
  Columns: image ``image``/``jpg``/``png``/...; caption ``caption``/``text``/``txt`` (a list of
  captions gives one row each); ``image_id`` and ``group`` (webdataset: ``KEY.group.txt``) optional.

A built-in set's name stands for its training manifest: ``emoji-xtd`` (v2) or ``emoji-xtd-v1`` (built on first use).

Paths in manifests are relative to ``image_root`` (default: the manifest's folder). Sources with one
split ignore ``split``. A malformed line or a missing field raises :class:`ManifestError` naming the
file and line; ``mlilt data check`` lists every problem of a manifest at once.
"""

from __future__ import annotations

import csv
import glob
import itertools
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

logger = logging.getLogger(__name__)

MANIFEST_FORMATS = ("coco_karpathy", "albef", "jsonl", "csv")
TABLE_FORMATS = ("hf_disk", "parquet", "imagefolder", "webdataset")
FORMATS = MANIFEST_FORMATS + TABLE_FORMATS

IMAGE_COLUMNS = ("image", "jpg", "jpeg", "png", "webp", "img")
CAPTION_COLUMNS = ("caption", "text", "txt")
ID_COLUMNS = ("image_id", "__key__")
GROUP_COLUMN = "group"
GROUP_COLUMNS = (GROUP_COLUMN, "group.txt")  # webdataset: KEY.group.txt

KARPATHY_TRAIN_SPLITS = ("train", "restval")
_HF_DISK_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_IMAGEFOLDER_MARKERS = ("metadata.jsonl", "metadata.csv", "metadata.parquet")
_CHUNK_ROWS = 100_000  # rows per Arrow chunk when building a table from a manifest


class ManifestError(ValueError):
    """A manifest record that cannot be read; ``location`` is ``file:line`` or ``file[index]``."""

    def __init__(self, location: str, reason: str):
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


@dataclass(frozen=True)
class PairRecord:
    """One caption of one image in a manifest, with where it was written."""

    location: str
    image: str  # as written in the manifest, relative to the image root
    caption: str
    image_id: str
    group: str | None = None


# ----------------------------------------------------------------------------------------------------
# Format detection


def _is_pattern(source: str) -> bool:
    return any(ch in source for ch in "*?[") or re.search(r"\{\d+\.\.\d+\}", source) is not None


def expand_braces(pattern: str) -> list[str]:
    """Webdataset shard notation: ``shard-{000..012}.tar`` -> 13 names (zero padding kept)."""
    match = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if not match:
        return [pattern]
    first, last = match.group(1), match.group(2)
    width = len(first) if first.startswith("0") else 0
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [name for i in range(int(first), int(last) + 1) for name in expand_braces(f"{head}{i:0{width}d}{tail}")]


def _expand_files(source: str, suffix: str) -> list[str]:
    """Files of a source given as a file, a folder (searched recursively) or a glob/brace pattern."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob(f"*{suffix}") if p.is_file())
    elif _is_pattern(source):
        files = sorted({f for pattern in expand_braces(os.path.expanduser(source)) for f in glob.glob(pattern)})
    else:
        files = [str(path)] if path.is_file() else []
    if not files:
        raise FileNotFoundError(f"{source}: no {suffix} files found")
    return [os.path.abspath(f) for f in files]


def _sniff_json(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return "coco_karpathy"
    if head.startswith(b"["):
        return "albef"
    raise ValueError(f"{path}: a .json manifest must hold Karpathy's {{\"images\": [...]}} or an ALBEF "
                     f"list [{{\"image\", \"caption\"}}]; pass format= to say which")


def detect_format(source: str | os.PathLike) -> str:
    """The format of a data source, from its path (and, for .json, its first character)."""
    source = os.fspath(source)
    path = Path(source).expanduser()
    if _is_pattern(source):
        names = expand_braces(source)
        if all(n.endswith(".tar") for n in names):
            return "webdataset"
        if all(n.endswith(".parquet") for n in names):
            return "parquet"
        raise ValueError(f"{source}: a pattern must name .tar shards (webdataset) or .parquet files; "
                         f"pass format= for anything else")
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file or directory (hub datasets are not fetched; "
                                f"save them with save_to_disk and pass that folder)")
    if path.is_dir():
        found = []
        if any((path / m).is_file() for m in _HF_DISK_MARKERS):
            return "hf_disk"
        if any((path / m).is_file() for m in _IMAGEFOLDER_MARKERS) or any(
                (sub / m).is_file() for sub in path.iterdir() if sub.is_dir() for m in _IMAGEFOLDER_MARKERS):
            found.append("imagefolder")
        if next(path.rglob("*.parquet"), None) is not None:
            found.append("parquet")
        if next(path.rglob("*.tar"), None) is not None:
            found.append("webdataset")
        if len(found) == 1:
            return found[0]
        if not found:
            raise ValueError(f"{source}: cannot tell the format of this folder: it has no dataset_info.json / "
                             f"state.json (hf_disk), metadata.jsonl (imagefolder), .parquet or .tar files")
        raise ValueError(f"{source}: ambiguous folder, it looks like {' and '.join(found)}; pass format=")
    name = path.name.lower()
    if name.endswith(".tar"):
        return "webdataset"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".json"):
        return _sniff_json(path)
    raise ValueError(f"{source}: cannot tell the format from the name; pass one of format={', '.join(FORMATS)}")


def default_image_root(source: str | os.PathLike) -> str:
    """Where relative image paths of a source point by default: the manifest's folder (a folder: itself)."""
    source = os.path.expanduser(os.fspath(source))
    if _is_pattern(source):
        source = os.path.dirname(source) or "."
        return os.path.abspath(source)
    return os.path.abspath(source if os.path.isdir(source) else (os.path.dirname(source) or "."))


def resolve_image(image: str, image_root: str) -> str:
    """The absolute path of a manifest image (absolute paths stay as they are)."""
    return os.path.normpath(os.path.join(image_root, os.path.expanduser(image)))


# ----------------------------------------------------------------------------------------------------
# Manifest readers: records with their file/line, for loading and for `mlilt data check`

OnError = Callable[[ManifestError], None]


def _raise(err: ManifestError) -> None:
    raise err


def _text(value: Any, location: str, field: str) -> str:
    if isinstance(value, str):
        return value.strip()
    raise ManifestError(location, f"field {field!r} must be a string, got {type(value).__name__}")


def _id_text(value: Any, location: str, field: str = "image_id") -> str:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise ManifestError(location, f"field {field!r} must be a string or an integer, got {type(value).__name__}")


def _captions(value: Any, location: str) -> list[tuple[str, str]]:
    """(location, caption) for a caption field holding one string or a list of strings."""
    if isinstance(value, list):
        return [(f"{location}.caption[{j}]", _text(c, f"{location}.caption[{j}]", "caption"))
                for j, c in enumerate(value)]
    return [(location, _text(value, location, "caption"))]


def _pair_records(obj: Any, location: str) -> list[PairRecord]:
    """Records of one ALBEF/JSONL object: ``image``, ``caption`` (str or list), optional ``image_id`` and ``group``."""
    if not isinstance(obj, dict):
        raise ManifestError(location, f"expected an object with 'image' and 'caption', got {type(obj).__name__}")
    for field in ("image", "caption"):
        if field not in obj:
            raise ManifestError(location, f"missing required field {field!r} (fields: {', '.join(obj) or 'none'})")
    image = _text(obj["image"], location, "image")
    if not image:
        raise ManifestError(location, "field 'image' is empty")
    image_id = _id_text(obj["image_id"], location) if obj.get("image_id") is not None else image
    group = _id_text(obj["group"], location, "group") if obj.get("group") is not None else None
    return [PairRecord(loc, image, caption, image_id, group) for loc, caption in _captions(obj["caption"], location)]


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path}:{err.lineno}", f"invalid JSON: {err.msg} (column {err.colno})") from None
    except UnicodeDecodeError as err:
        raise ManifestError(str(path), f"not UTF-8 text ({err.reason} at byte {err.start})") from None


def _karpathy_splits(split: str) -> set[str] | None:
    if split == "all":
        return None
    return set(KARPATHY_TRAIN_SPLITS) if split == "train" else {split}


def iter_karpathy(path: Path, split: str = "train", on_error: OnError = _raise) -> Iterator[PairRecord]:
    """Karpathy's dataset_*.json: one record per sentence of every image in ``split``."""
    data = _load_json(path)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise ManifestError(str(path), "not a Karpathy split file: expected {\"images\": [...]} at the top")
    wanted, seen = _karpathy_splits(split), set()
    for i, image in enumerate(images):
        location = f"{path}:images[{i}]"
        try:
            if not isinstance(image, dict):
                raise ManifestError(location, f"expected an object, got {type(image).__name__}")
            for field in ("filename", "sentences"):
                if field not in image:
                    raise ManifestError(location, f"missing required field {field!r}")
            seen.add(image.get("split"))
            if wanted is not None and image.get("split") not in wanted:
                continue
            relative = os.path.join(_text(image.get("filepath", ""), location, "filepath"),
                                    _text(image["filename"], location, "filename"))
            image_id = _id_text(image["cocoid"], location) if image.get("cocoid") is not None else relative
            if not isinstance(image["sentences"], list):
                raise ManifestError(location, "field 'sentences' must be a list")
            records = []
            for j, sentence in enumerate(image["sentences"]):
                where = f"{location}.sentences[{j}]"
                if not isinstance(sentence, dict) or "raw" not in sentence:
                    raise ManifestError(where, "expected an object with a 'raw' caption")
                records.append(PairRecord(where, relative, _text(sentence["raw"], where, "raw"), image_id))
        except ManifestError as err:
            on_error(err)
            continue
        yield from records
    if wanted is not None and not (wanted & seen):
        raise ValueError(f"{path}: no image has split {split!r}; splits present: "
                         f"{', '.join(sorted(str(s) for s in seen))} (or 'all')")


def iter_albef(path: Path, split: str = "train", on_error: OnError = _raise) -> Iterator[PairRecord]:
    """An ALBEF/LilT list file: one record per caption; the file is one split, ``split`` is ignored."""
    data = _load_json(path)
    if not isinstance(data, list):
        raise ManifestError(str(path), "not an ALBEF list file: expected [{\"image\", \"caption\"}, ...]")
    for i, obj in enumerate(data):
        try:
            records = _pair_records(obj, f"{path}[{i}]")
        except ManifestError as err:
            on_error(err)
            continue
        yield from records


def iter_jsonl(path: Path, split: str = "train", on_error: OnError = _raise) -> Iterator[PairRecord]:
    """A JSON-lines manifest: one object per line, blank lines ignored."""
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            location = f"{path}:{number}"
            try:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ManifestError(location, f"invalid JSON: {err.msg} (column {err.colno})") from None
                records = _pair_records(obj, location)
            except ManifestError as err:
                on_error(err)
                continue
            yield from records


def iter_csv(path: Path, split: str = "train", on_error: OnError = _raise) -> Iterator[PairRecord]:
    """A CSV manifest with a header naming ``image``, ``caption`` and optionally ``image_id``."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ManifestError(f"{path}:1", "empty file: expected a header with image,caption")
        header = [h.strip() for h in header]
        missing = [c for c in ("image", "caption") if c not in header]
        if missing:
            raise ManifestError(f"{path}:1", f"header lacks column(s) {', '.join(missing)} "
                                             f"(columns: {', '.join(header)})")
        line_end = reader.line_num
        for row in reader:
            # A quoted field may span lines: a record starts on the line after the previous one ended.
            location, line_end = f"{path}:{line_end + 1}", reader.line_num
            if not row:
                continue
            try:
                if len(row) != len(header):
                    raise ManifestError(location, f"{len(row)} fields, the header has {len(header)}")
                obj = dict(zip(header, row))
                for optional in ("image_id", "group"):
                    if optional in obj and not obj[optional].strip():
                        del obj[optional]
                records = _pair_records(obj, location)
            except ManifestError as err:
                on_error(err)
                continue
            yield from records


_READERS = {"coco_karpathy": iter_karpathy, "albef": iter_albef, "jsonl": iter_jsonl, "csv": iter_csv}


def iter_manifest(source: str | os.PathLike, format: str = "auto", split: str = "train",
                  on_error: OnError = _raise) -> Iterator[PairRecord]:
    """Records of a manifest file (coco_karpathy, albef, jsonl, csv) with their file/line locations.

    ``on_error`` receives each malformed record (default: raise it); reading goes on after it returns.
    """
    path = Path(resolve_builtin(os.fspath(source))).expanduser()
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in _READERS:
        raise ValueError(f"{source}: {fmt!r} is not a manifest format ({', '.join(MANIFEST_FORMATS)})")
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    return _READERS[fmt](path, split, on_error)


# ----------------------------------------------------------------------------------------------------
# Loading


def _path_features():
    import datasets

    return datasets.Features({"image": datasets.Value("string"), "caption": datasets.Value("string"),
                              "image_id": datasets.Value("string"), GROUP_COLUMN: datasets.Value("string")})


def _manifest_dataset(source: str, fmt: str, image_root: str, split: str,
                      group_of: Callable[[str], str] | None = None):
    """An in-memory Arrow table of a manifest, built in chunks so that millions of rows stay compact.

    ``group_of`` derives the group of a record that names none from its image_id.
    """
    import datasets

    features, chunks = _path_features(), []
    empty, first_empty, grouped = 0, None, group_of is not None
    records = iter_manifest(source, fmt, split)
    while batch := list(itertools.islice(records, _CHUNK_ROWS)):
        for r in batch:
            if not r.caption:
                empty += 1
                first_empty = first_empty or r.location
            grouped = grouped or r.group is not None
        chunks.append(datasets.Dataset.from_dict(
            {"image": [resolve_image(r.image, image_root) for r in batch], "caption": [r.caption for r in batch],
             "image_id": [r.image_id for r in batch],
             GROUP_COLUMN: [r.group or (group_of(r.image_id) if group_of else r.image_id) for r in batch]},
            features=features))
    if not chunks:
        raise ValueError(f"{source}: no pairs found" + (f" for split {split!r}" if fmt == "coco_karpathy" else ""))
    if empty:
        logger.warning("%s: %d empty caption(s), the first at %s (mlilt data check lists them)",
                       source, empty, first_empty)
    ds = chunks[0] if len(chunks) == 1 else datasets.concatenate_datasets(chunks)
    return ds if grouped else ds.remove_columns(GROUP_COLUMN)


def _pick_split(obj, split: str, source: str):
    import datasets

    if not isinstance(obj, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return obj
    if split == "all":
        return datasets.concatenate_datasets(list(obj.values()))
    if split not in obj:
        raise ValueError(f"{source}: no split {split!r}; splits: {', '.join(obj)} (or 'all')")
    return obj[split]


def _first(names: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in names), None)


def _relative_id(path: str | None, root: str) -> str | None:
    """An image's id from its stored path: relative to the dataset folder when inside it."""
    if not path:
        return None
    if os.path.isabs(path):
        rel = os.path.relpath(path, root)
        return path if rel.startswith("..") else rel
    return path


def _stored_image_paths(ds) -> Iterator[str | None]:
    """The ``path`` field of an undecoded Image column, read from Arrow in batches (no image decoding)."""
    for table in ds.select_columns(["image"]).with_format("arrow").iter(batch_size=10_000):
        yield from table.column("image").combine_chunks().field("path").to_pylist()


def _normalise_table(ds, source: str, image_root: str, decode: bool):
    """Rename a table's columns to image/caption/image_id (and group), one row per caption, ids as strings."""
    import datasets

    names = ds.column_names
    if names is None:
        raise ValueError(f"{source}: cannot read the column names of this dataset")
    image_col, caption_col = _first(names, IMAGE_COLUMNS), _first(names, CAPTION_COLUMNS)
    if image_col is None or caption_col is None:
        what = "an image column (" + "/".join(IMAGE_COLUMNS) + ")" if image_col is None else \
            "a caption column (" + "/".join(CAPTION_COLUMNS) + ")"
        raise ValueError(f"{source}: no {what}; columns are: {', '.join(names)}")
    id_col = _first(names, ID_COLUMNS)
    group_col = _first(names, GROUP_COLUMNS)
    image_feature, caption_feature = ds.features[image_col], ds.features[caption_col]

    is_path = isinstance(image_feature, datasets.Value) and image_feature.dtype in ("string", "large_string")
    if not is_path:
        if isinstance(image_feature, datasets.Value) and image_feature.dtype not in ("binary", "large_binary"):
            raise ValueError(f"{source}: image column {image_col!r} holds {image_feature.dtype}, "
                             f"not images, image bytes or paths")
        # Undecoded before any renaming: a streamed rename would decode and re-encode every image.
        ds = ds.cast_column(image_col, datasets.Image(decode=False))
    ds = ds.select_columns([c for c in (image_col, caption_col, id_col, group_col) if c])
    ds = ds.rename_columns({old: new for old, new in ((image_col, "image"), (caption_col, "caption"),
                                                      (id_col, "image_id"), (group_col, GROUP_COLUMN))
                            if old and old != new})
    for id_name in [n for n, present in (("image_id", id_col), (GROUP_COLUMN, group_col)) if present]:
        if ds.features[id_name] != datasets.Value("string"):
            ds = ds.cast_column(id_name, datasets.Value("string"))
    if isinstance(caption_feature, (datasets.List, datasets.Sequence, datasets.LargeList)):
        listed = True
    elif isinstance(caption_feature, datasets.Value) and caption_feature.dtype in ("string", "large_string"):
        listed = False
    else:
        raise ValueError(f"{source}: caption column {caption_col!r} holds {caption_feature}, not text")

    data_root = default_image_root(source)
    features = datasets.Features({"image": datasets.Value("string") if is_path else datasets.Image(decode=decode),
                                  "caption": datasets.Value("string"), "image_id": datasets.Value("string"),
                                  **({GROUP_COLUMN: datasets.Value("string")} if group_col else {})})

    def fix_rows(batch: dict, indices: list[int]) -> dict:
        # Resolve paths, derive missing ids, and give each caption of a list its own row.
        out = {"image": [], "caption": [], "image_id": [], **({GROUP_COLUMN: []} if group_col else {})}
        for k, (image, caption) in enumerate(zip(batch["image"], batch["caption"])):
            stored = image if is_path else (image or {}).get("path")
            image_id = (batch["image_id"][k] if id_col else None) or _relative_id(stored, data_root) or str(indices[k])
            if is_path:
                image = resolve_image(image, image_root)
            for text in (caption or []) if listed else [caption]:
                out["image"].append(image)
                out["caption"].append((text or "").strip())
                out["image_id"].append(image_id)
                if group_col:
                    out[GROUP_COLUMN].append(batch[GROUP_COLUMN][k] or image_id)
        return out

    needs_rows_fixed = listed or is_path or not id_col
    if isinstance(ds, datasets.IterableDataset):
        if needs_rows_fixed:
            # Map untyped, then cast: an IterableDataset mapped with `features=` skips decoding afterwards.
            ds = ds.map(fix_rows, batched=True, with_indices=True, remove_columns=ds.column_names)
        ds = ds.cast(features)
    else:
        if needs_rows_fixed and not (listed or is_path):
            # Embedded images, one caption each: ids from the stored paths, without rewriting the images.
            ids = [_relative_id(p, data_root) or str(i) for i, p in enumerate(_stored_image_paths(ds))]
            ds = ds.add_column("image_id", ids, feature=datasets.Value("string"))
        elif needs_rows_fixed:
            ds = ds.map(fix_rows, batched=True, with_indices=True, remove_columns=ds.column_names,
                        features=datasets.Features({**features, "image": ds.features["image"]}))
        if not is_path:
            ds = ds.cast_column("image", datasets.Image(decode=decode))
    return ds.select_columns(["image", "caption", "image_id"] + ([GROUP_COLUMN] if group_col else []))


def _table_dataset(fmt: str, source: str, split: str, streaming: bool, cache_dir: str | None):
    import datasets

    if fmt == "hf_disk":
        ds = _pick_split(datasets.load_from_disk(os.path.expanduser(source)), split, source)
        return ds.to_iterable_dataset() if streaming else ds
    if fmt == "imagefolder":
        obj = datasets.load_dataset("imagefolder", data_dir=os.path.abspath(os.path.expanduser(source)),
                                    streaming=streaming, cache_dir=cache_dir)
        return _pick_split(obj, split, source)
    files = _expand_files(source, ".tar" if fmt == "webdataset" else ".parquet")
    return datasets.load_dataset(fmt, data_files={"train": files}, split="train", streaming=streaming,
                                 cache_dir=cache_dir)


def _emoji_xtd_train(version: int) -> str:
    from mlilt.data.emoji_xtd import build_emoji_xtd

    return str(build_emoji_xtd(version=version) / "train.jsonl")


def emoji_concept(image_id: str) -> str:
    """The concept of an emoji-XTD image id: ``twemoji/1f600`` (v2: style/concept) and ``1f600`` (v1) -> ``1f600``."""
    return image_id.rsplit("/", 1)[-1]


# Training sets mlilt builds itself, named in configs instead of a path (built on first use):
# emoji-XTD v2 (three styles, name + keyword captions) and v1 (Noto, names), behind reports/emoji-xtd.md.
BUILTIN_SOURCES = {"emoji-xtd": lambda: _emoji_xtd_train(2), "emoji-xtd-v1": lambda: _emoji_xtd_train(1)}
# Their groups, derived from the image ids the manifests already hold (their builds stay as they are).
BUILTIN_GROUPS = {"emoji-xtd": emoji_concept, "emoji-xtd-v1": emoji_concept}


def resolve_builtin(source: str) -> str:
    """The manifest path of a built-in training set name (``emoji-xtd``); any other source unchanged."""
    return BUILTIN_SOURCES[source]() if source in BUILTIN_SOURCES else source


def load_pairs(source: str | os.PathLike, format: str = "auto", image_root: str | os.PathLike | None = None,
               split: str = "train", *, decode: bool = True, streaming: bool | None = None,
               cache_dir: str | None = None):
    """Image-caption pairs as a ``datasets.Dataset`` (an ``IterableDataset`` when streamed).

    Columns ``image`` (absolute path, or PIL image / ``{"bytes", "path"}`` with ``decode=False``, for formats
    that embed images), ``caption`` and ``image_id``. ``split``: ``train`` (Karpathy: train + restval),
    ``val``, ``test``, ``all``, or a split name of a saved DatasetDict / imagefolder; single-split sources
    ignore it. ``streaming`` defaults to True for webdataset only. ``decode=False``: embedded images stay
    ``{"bytes", "path"}`` dicts (decoded later by ``open_image``; what a training loop wants).
    """
    group_of = BUILTIN_GROUPS.get(os.fspath(source))
    source = resolve_builtin(os.fspath(source))
    fmt = detect_format(source) if format == "auto" else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {format!r}; choose auto or one of {', '.join(FORMATS)}")
    root = os.path.abspath(os.path.expanduser(os.fspath(image_root))) if image_root else default_image_root(source)
    if fmt in MANIFEST_FORMATS:
        ds = _manifest_dataset(source, fmt, root, split, group_of)
        return ds.to_iterable_dataset() if streaming else ds
    streaming = (fmt == "webdataset") if streaming is None else streaming
    return _normalise_table(_table_dataset(fmt, source, split, streaming, cache_dir), source, root, decode)
