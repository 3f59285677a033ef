"""``mlilt data check``: list what would go wrong when training on a data source, before training on it.

    mlilt data check karpathy/dataset_coco.json --image-root coco/
    mlilt data check pairs.jsonl --quick             # existence only, no decoding

    from mlilt.data.check import check_pairs
    report = check_pairs("pairs.jsonl")
    for problem in report.problems:
        print(problem)                  # pairs.jsonl:7: missing image: /data/img/7.jpg

Problems: malformed records (bad JSON, missing fields), empty captions, missing images and
unreadable images (every image is fully decoded unless ``quick``), each with its file and line
(JSONL/CSV), list index (ALBEF: ``file[12]``), image/sentence index (Karpathy:
``file:images[3].sentences[1]``) or row (datasets-backed formats). Exit status 1 if any, else 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlilt.data import pairs
from mlilt.data.images import ImageError, open_image

MALFORMED, EMPTY_CAPTION, MISSING_IMAGE, UNREADABLE_IMAGE = (
    "malformed record", "empty caption", "missing image", "unreadable image")
KINDS = (MALFORMED, EMPTY_CAPTION, MISSING_IMAGE, UNREADABLE_IMAGE)


@dataclass(frozen=True)
class Problem:
    """One problem at one place of a data source."""

    location: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.location}: {self.kind}: {self.detail}" if self.detail else f"{self.location}: {self.kind}"


@dataclass
class CheckReport:
    """Problems found and what was checked."""

    source: str
    format: str
    captions: int = 0
    images: int = 0
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {kind: sum(p.kind == kind for p in self.problems) for kind in KINDS}

    def summary(self) -> str:
        counts = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in self.counts().items())
        verdict = "OK" if not self.problems else f"{len(self.problems)} problem(s)"
        return (f"{self.source} ({self.format}): {self.captions} captions, {self.images} images checked; "
                f"{counts}. {verdict}")


def _image_problem(image, decode: bool) -> str | None:
    """Why an image cannot be used (None when it can)."""
    if isinstance(image, str) and not os.path.isfile(image):
        return MISSING_IMAGE
    if not decode:
        return None
    try:
        open_image(image)
    except ImageError as err:
        return f"{UNREADABLE_IMAGE}\0{err.reason}"
    return None


def _progress(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # disable=None: tqdm shows itself on a terminal only, so logs of batch jobs stay clean.
    return tqdm(total=total, desc=desc, unit="img", disable=None if enabled else True, file=sys.stderr)


def _add(report: CheckReport, location: str, verdict: str, image_name: str, extra: str = "") -> None:
    kind, _, reason = verdict.partition("\0")
    detail = f"{image_name} ({reason})" if reason else image_name
    report.problems.append(Problem(location, kind, detail + extra))


def _check_files(report: CheckReport, references: dict[str, list[str]], decode: bool, workers: int,
                 progress: bool) -> None:
    """Check each distinct image file once, in threads (decoding releases the GIL)."""
    paths = list(references)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            _progress(len(paths), "checking images", progress) as bar:
        for path, verdict in zip(paths, pool.map(lambda p: _image_problem(p, decode), paths)):
            bar.update()
            if verdict:
                where = references[path]
                extra = f" (and {len(where) - 1} more caption(s) of this image)" if len(where) > 1 else ""
                _add(report, where[0], verdict, path, extra)


def check_pairs(source: str | os.PathLike, format: str = "auto", image_root: str | os.PathLike | None = None,
                split: str = "all", *, decode: bool = True, workers: int | None = None,
                progress: bool = True) -> CheckReport:
    """Every problem of a data source: malformed records, empty captions, missing or unreadable images."""
    source = os.fspath(source)
    fmt = pairs.detect_format(source) if format == "auto" else format
    if fmt not in pairs.FORMATS:
        raise ValueError(f"unknown data format {format!r}; choose auto or one of {', '.join(pairs.FORMATS)}")
    report = CheckReport(source, fmt)
    workers = workers or min(8, os.cpu_count() or 1)

    if fmt in pairs.MANIFEST_FORMATS:
        root = os.path.abspath(os.path.expanduser(os.fspath(image_root))) if image_root \
            else pairs.default_image_root(source)
        references: dict[str, list[str]] = {}
        order: dict[str, int] = {}  # each location's place in the file

        def malformed(err: pairs.ManifestError) -> None:
            order.setdefault(err.location, len(order))
            report.problems.append(Problem(err.location, MALFORMED, err.reason))

        try:
            for record in pairs.iter_manifest(source, fmt, split, on_error=malformed):
                order.setdefault(record.location, len(order))
                report.captions += 1
                if not record.caption:
                    report.problems.append(Problem(record.location, EMPTY_CAPTION, ""))
                references.setdefault(pairs.resolve_image(record.image, root), []).append(record.location)
        except pairs.ManifestError as err:  # the whole file is unreadable (invalid JSON, wrong layout)
            malformed(err)
        report.images = len(references)
        _check_files(report, references, decode, workers, progress)
        _in_file_order(report, order)
        return report

    # datasets-backed formats: rows are the locations; embedded images are checked as they stream by.
    ds = pairs.load_pairs(source, fmt, image_root, split, decode=False)
    references, order = {}, {}
    with _progress(None, "checking rows", progress) as bar:
        for row, record in enumerate(ds):
            bar.update()
            location = f"{source}: row {row} (image_id {record['image_id']})"
            order[location] = row
            report.captions += 1
            if not record["caption"]:
                report.problems.append(Problem(location, EMPTY_CAPTION, ""))
            image = record["image"]
            if isinstance(image, str):
                references.setdefault(image, []).append(location)
                continue
            report.images += 1
            if verdict := _image_problem(image, decode):
                _add(report, location, verdict, (image or {}).get("path") or "<embedded image>")
    report.images += len(references)
    _check_files(report, references, decode, workers, progress)
    _in_file_order(report, order)
    return report


def _in_file_order(report: CheckReport, order: dict[str, int]) -> None:
    """Problems by their place in the source: image files are checked after every record was read."""
    # Stable: the problems of one record keep the order they were found in (caption before image).
    report.problems.sort(key=lambda problem: order.get(problem.location, len(order)))


def add_subparser(data_subparsers) -> argparse.ArgumentParser:
    """Register ``check`` on the subparsers of the ``mlilt data`` command group."""
    p = data_subparsers.add_parser(
        "check", help="list missing/unreadable images, empty captions and malformed records of a data source",
        description="Check every record of a data source (manifest, datasets folder, parquet, webdataset "
                    "shards) and report problems with their file and line. Exit status 1 if any.")
    p.add_argument("source", metavar="MANIFEST", help="data source: file, folder or shard pattern")
    p.add_argument("--image-root", default=None, metavar="DIR",
                   help="folder that image paths are relative to (default: the manifest's folder)")
    p.add_argument("--format", default="auto", choices=("auto",) + pairs.FORMATS, help="data format (default: auto)")
    p.add_argument("--split", default="all",
                   help="split to check (Karpathy: train = train + restval; default: all)")
    p.add_argument("--quick", action="store_true", help="only check that image files exist; do not decode them")
    p.add_argument("--workers", type=int, default=None, help="threads decoding images (default: up to 8)")
    p.add_argument("--max-show", type=int, default=100, metavar="N",
                   help="print at most N problems (0: all; the summary counts all)")
    p.set_defaults(func=run_check)
    return p


add_check_parser = add_subparser


def run_check(args) -> int:
    """Print the problems and a summary; 1 if any problem, else 0."""
    report = check_pairs(args.source, args.format, args.image_root, args.split, decode=not args.quick,
                         workers=args.workers)
    shown = report.problems if args.max_show <= 0 else report.problems[:args.max_show]
    for problem in shown:
        print(problem)
    if len(shown) < len(report.problems):
        print(f"... and {len(report.problems) - len(shown)} more (--max-show 0 lists all)")
    print(report.summary())
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    """Run ``check`` alone (``python -m mlilt.data.check MANIFEST``)."""
    parser = argparse.ArgumentParser(prog="mlilt data")
    add_subparser(parser.add_subparsers(dest="data_command", required=True))
    args = parser.parse_args(["check", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
