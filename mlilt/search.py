"""Neural search over a folder of images, with a query in any language the text tower knows (LilT §1).

Every image is embedded once; the index (fp32 embeddings + each file's size and mtime) is stored in
``$MLILT_HOME/search/<key>.safetensors``, the key hashing the model (config + trained state + base
files), the image transform, the precision and the folder. A later search embeds only files that
were added or changed, and forgets files that were deleted.

    mlilt search runs/emoji-xtd/lilt_lwa-s0 --images photos/ "czerwony samochód" "빨간 자동차" -k 8
    mlilt search ORG/NAME --images photos/ --image query.jpg --sheet sheet.png --html results.html

    >>> from mlilt.search import Index
    >>> index = Index(mlilt.load("runs/lilt_lwa"))       # in memory; store=PATH keeps it on disk
    >>> index.add(["a.jpg", "b.jpg"])                     # -> 2 (files embedded)
    >>> index.query(["kırmızı bir araba"], k=1)           # [[Hit(path='/abs/b.jpg', score=0.41)]]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import torch

from mlilt.evaluation.harness import EncodeOptions, cache_key, encode_images, encode_texts, image_transform
from mlilt.paths import mlilt_home

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class Hit(NamedTuple):
    path: str
    score: float


def list_images(folder: str | os.PathLike) -> list[str]:
    """Image files under ``folder`` (recursively, by suffix), as sorted absolute paths."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory of images")
    return sorted(_absolute(p) for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _absolute(path: str | os.PathLike) -> str:
    # Absolute but not resolved: a folder of symlinks (e.g. a test split) keeps the names it shows.
    return os.path.abspath(os.path.expanduser(path))


def model_identity(model) -> dict:
    """What makes two models embed alike: config, a hash of the trained state, the base files' sizes/mtimes."""
    from mlilt.evaluation.harness import _base_fingerprint

    digest = hashlib.sha256()
    for name, tensor in sorted(model.trained_state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    cfg = model.config
    return {"config": cfg.to_dict(), "trained_sha256": digest.hexdigest(),
            "bases": [_base_fingerprint(cfg.text.name_or_path), _base_fingerprint(cfg.vision.weights)]}


def _stamp(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


class Index:
    """Image embeddings of a model, updated file by file; ``store``: a safetensors file to keep it in."""

    def __init__(self, model, *, store: str | os.PathLike | None = None, opts: EncodeOptions | None = None,
                 scope: str = ""):
        self.model = model.eval()
        self.opts = opts or EncodeOptions()
        self.transform = image_transform(model)
        self.key = cache_key({"model": model_identity(model), "transform": repr(self.transform),
                              "precision": self.opts.resolved_precision(), "scope": scope})
        self.store = Path(store) if store else None
        self.paths: list[str] = []
        self.stamps: list[list[int]] = []
        self.embeds = torch.empty(0, model.config.embed_dim)
        if self.store and self.store.is_file():
            self._read()

    @classmethod
    def for_folder(cls, model, folder: str | os.PathLike, opts: EncodeOptions | None = None) -> "Index":
        """The stored index of ``folder`` for ``model`` (``$MLILT_HOME/search/<key>.safetensors``)."""
        scope = str(Path(folder).expanduser().resolve())
        index = cls(model, opts=opts, scope=scope)
        index.store = mlilt_home() / "search" / f"{index.key}.safetensors"
        if index.store.is_file():
            index._read()
        return index

    def __len__(self) -> int:
        return len(self.paths)

    # ---- storage -------------------------------------------------------------------------------
    def _read(self) -> None:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(self.store), "pt") as f:
                meta = json.loads(f.metadata()["index"])
                if meta.get("key") != self.key:  # another model or transform: start afresh
                    return
                self.embeds = f.get_tensor("embeds")
        except (SafetensorError, KeyError, TypeError, json.JSONDecodeError) as err:
            # The index is a cache: a truncated or foreign file costs one re-embedding, not the search.
            warnings.warn(f"{self.store}: unreadable search index ({str(err).splitlines()[0]}); embedding again")
            return
        self.paths, self.stamps = meta["paths"], meta["stamps"]

    def save(self) -> None:
        """Write the index to ``store`` atomically (nothing to do for an in-memory index)."""
        from safetensors.torch import save_file

        from mlilt.model import atomic_write

        if self.store is None:
            return
        self.store.parent.mkdir(parents=True, exist_ok=True)
        meta = {"index": json.dumps({"key": self.key, "paths": self.paths, "stamps": self.stamps})}
        atomic_write(self.store, lambda tmp: save_file({"embeds": self.embeds.contiguous()}, tmp, metadata=meta))

    # ---- updates -------------------------------------------------------------------------------
    def add(self, paths) -> int:
        """Embed the files not in the index or changed since (size, mtime); return how many were embedded."""
        where = {p: i for i, p in enumerate(self.paths)}
        todo = []
        for path in dict.fromkeys(_absolute(p) for p in paths):
            stamp = _stamp(path)
            if path not in where or self.stamps[where[path]] != stamp:
                todo.append((path, stamp))
        if not todo:
            return 0
        new = encode_images(self.model, [p for p, _ in todo], self.opts, self.transform)
        embeds = list(self.embeds)
        for (path, stamp), vector in zip(todo, new):
            if path in where:
                embeds[where[path]], self.stamps[where[path]] = vector, stamp
            else:
                where[path] = len(self.paths)
                self.paths.append(path)
                self.stamps.append(stamp)
                embeds.append(vector)
        self.embeds = torch.stack(embeds)
        self.save()
        return len(todo)

    def remove(self, paths) -> int:
        """Forget these files; return how many were in the index."""
        gone = {_absolute(p) for p in paths}
        keep = [i for i, p in enumerate(self.paths) if p not in gone]
        removed = len(self.paths) - len(keep)
        if removed:
            self.paths = [self.paths[i] for i in keep]
            self.stamps = [self.stamps[i] for i in keep]
            self.embeds = self.embeds[keep] if keep else self.embeds[:0]
            self.save()
        return removed

    def sync(self, paths) -> tuple[int, int]:
        """Make the index hold exactly ``paths``: ``(embedded, removed)``."""
        wanted = {_absolute(p) for p in paths}
        removed = self.remove([p for p in self.paths if p not in wanted])
        return self.add(sorted(wanted)), removed

    # ---- queries -------------------------------------------------------------------------------
    def _top(self, queries: torch.Tensor, k: int) -> list[list[Hit]]:
        if not self.paths:
            raise ValueError("the index is empty: add images first")
        values, order = (queries @ self.embeds.t()).topk(min(k, len(self.paths)), dim=1)
        return [[Hit(self.paths[i], round(float(v), 5)) for v, i in zip(vs, os_.tolist())]
                for vs, os_ in zip(values, order)]

    def query(self, texts: list[str], k: int = 8) -> list[list[Hit]]:
        """The ``k`` nearest images of each text (any language), best first, with cosine scores."""
        return self._top(encode_texts(self.model, list(texts), self.opts, desc="queries")["embeds"], k)

    def query_images(self, paths: list[str], k: int = 8) -> list[list[Hit]]:
        """The ``k`` nearest indexed images of each query image."""
        return self._top(encode_images(self.model, [str(p) for p in paths], self.opts, self.transform), k)


# ----------------------------------------------------------------------------------------------------
# Output


def _data_uri(path: str, size: int = 192) -> str:
    from mlilt.sheets import thumbnail

    buffer = io.BytesIO()
    thumbnail(path, size).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_html(blocks: list[tuple[str, list[Hit]]], title: str = "mlilt search") -> str:
    """A self-contained page: per query its text and its hits as embedded thumbnails, names and scores."""
    e = html.escape
    parts = [f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{e(title)}</title><style>"
             "body{font-family:sans-serif;margin:1.5em}section{margin-bottom:2em}"
             ".hits{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;width:192px}"
             "figure img{width:192px;height:192px;object-fit:contain;border:1px solid #ddd}"
             "figcaption{font-size:12px;overflow-wrap:anywhere}.score{color:#666}</style></head><body>",
             f"<h1>{e(title)}</h1>"]
    for query, hits in blocks:
        parts.append(f"<section><h2>{e(query)}</h2><div class=\"hits\">")
        for rank, hit in enumerate(hits, 1):
            uri = Path(hit.path).resolve().as_uri()
            parts.append(f"<figure data-path=\"{e(hit.path)}\"><a href=\"{e(uri)}\"><img src=\"{_data_uri(hit.path)}\" "
                         f"alt=\"{e(Path(hit.path).name)}\"></a><figcaption>{rank}. {e(Path(hit.path).name)} "
                         f"<span class=\"score\">{hit.score:.3f}</span></figcaption></figure>")
        parts.append("</div></section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _write_text(path: str | os.PathLike, text: str) -> Path:
    from mlilt.model import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


# ----------------------------------------------------------------------------------------------------
# CLI


def add_search_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``mlilt search``."""
    p = subparsers.add_parser(
        "search", help="Search a folder of images with text in any language (or with an image).",
        description="Embed every image under --images once (an index kept in $MLILT_HOME/search, updated "
                    "when files are added, changed or deleted) and print the top-k files of each query.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[2])
    p.add_argument("run", help="Run directory, model directory or hub id (ORG/NAME) of an exported model.")
    p.add_argument("queries", nargs="*", metavar="QUERY", help="Text queries, in any language; several allowed.")
    p.add_argument("--images", required=True, metavar="DIR", help="Folder of images to search (recursively).")
    p.add_argument("--image", action="append", default=[], metavar="FILE", help="Search by this image (repeatable).")
    p.add_argument("-k", type=int, default=8, help="Results per query (default 8).")
    p.add_argument("--sheet", metavar="PNG", help="Write a contact sheet: thumbnails, names, scores, the query.")
    p.add_argument("--html", metavar="HTML", help="Write a self-contained HTML page (thumbnails embedded).")
    p.add_argument("--json", action="store_true", help="Print the results as JSON.")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available).")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="bf16 autocast or fp32; auto: bf16 where the hardware has native bf16 (default).")
    p.add_argument("--batch-size", type=int, default=64, help="Images per batch (default 64).")
    p.add_argument("--workers", type=int, default=max(0, min(4, (os.cpu_count() or 1) - 1)),
                   help="Image-decoding processes (default: CPU cores - 1, at most 4).")
    p.add_argument("--quiet", action="store_true", help="No progress bars.")
    p.set_defaults(func=run_search, intermixed="queries")  # queries may follow the options
    return p


def run_search(args) -> int:
    import sys

    from mlilt.model import load

    if not args.queries and not args.image:
        raise ValueError("give at least one text QUERY or --image FILE")
    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    for path in args.image:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--image {path}: no such file")
    files = list_images(args.images)
    if not files:
        raise ValueError(f"--images {args.images}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    opts = EncodeOptions(device=args.device, precision=args.precision, batch_size=args.batch_size,
                         workers=args.workers, progress=not args.quiet)
    index = Index.for_folder(load(args.run).to(opts.torch_device()), args.images, opts)
    embedded, removed = index.sync(files)
    print(f"index: {len(index)} images in {args.images} ({embedded} embedded now, {removed} removed; "
          f"{index.store})", file=sys.stderr)
    blocks = list(zip(args.queries, index.query(args.queries, args.k))) if args.queries else []
    if args.image:
        blocks += [(f"image: {path}", hits) for path, hits in zip(args.image, index.query_images(args.image, args.k))]
    if args.json:
        print(json.dumps([{"query": q, "hits": [h._asdict() for h in hits]} for q, hits in blocks],
                         indent=2, ensure_ascii=False))
    else:
        for query, hits in blocks:
            print(f"\n{query}")
            for rank, hit in enumerate(hits, 1):
                print(f"{rank:>4}  {hit.score:6.3f}  {hit.path}")
    if args.sheet:
        from mlilt.model import atomic_write
        from mlilt.sheets import contact_sheet

        sheet = contact_sheet([(q, [(h.path, h.score) for h in hits]) for q, hits in blocks])
        Path(args.sheet).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(args.sheet), lambda tmp: sheet.save(tmp, format="PNG"))
        print(f"wrote {args.sheet}", file=sys.stderr)
    if args.html:
        _write_text(args.html, render_html(blocks, title=f"mlilt search: {args.images}"))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0
