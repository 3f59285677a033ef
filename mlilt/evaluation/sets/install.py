"""Installing a set's published files (``mlilt data NAME --download`` or ``--from DIR``).

The YAML's ``source.files`` maps each local name (a path under the data directory) to its ``path``
under ``source.base_url`` and the ``sha256`` of the published bytes; ``member`` names the file to take
out of a published zip (XM3600's ``captions.zip``). A file without a recorded sha256 is installed
unverified, and ``unverified`` lists it so the command can say so.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from pathlib import Path

from mlilt.evaluation.sets.base import EvalSetError


def fetch_url(url: str, timeout: float = 60.0) -> bytes:
    """The bytes at ``url`` (the one network call of ``install_set``)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URLs from the spec)
        return response.read()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unverified(spec: dict) -> list[str]:
    """The local names of ``source.files`` with no published sha256 recorded."""
    return [name for name, entry in ((spec.get("source") or {}).get("files") or {}).items()
            if not (entry or {}).get("sha256")]


def _caption_globs(spec: dict) -> list[str]:
    from mlilt.evaluation.sets.line_aligned import caption_patterns

    return [p.replace("{lang}", "*") for p in caption_patterns(spec)]


def _download(spec: dict, name: str) -> bytes:
    source = spec["source"]
    entry = source["files"][name]
    url = source["base_url"].rstrip("/") + "/" + entry["path"]
    try:
        data = fetch_url(url)
    except OSError as err:
        raise OSError(f"{spec['name']}: could not download {url}: {err}; download the files by hand "
                      f"and install them with --from DIR") from None
    expected = entry.get("sha256")
    if expected and sha256(data) != expected:
        raise EvalSetError(f"{url}: sha256 {sha256(data)} differs from the published {expected}; not installed")
    if entry.get("member"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = archive.read(entry["member"])
        except (zipfile.BadZipFile, KeyError) as err:
            raise EvalSetError(f"{url}: no {entry['member']} in the downloaded zip ({err})") from None
    return data


def install_set(spec: dict, dest: str | os.PathLike, *, from_dir: str | os.PathLike | None = None,
                download: bool = False, force: bool = False, progress: bool = True) -> list[Path]:
    """Copy a set's published files from ``from_dir`` or download them (``source.files`` of its YAML).

    Downloaded files must match the recorded sha256; copied files that differ only warn (a user may
    have fixed or extended a copy). Extra caption files in ``from_dir`` matching ``files.captions``
    (added languages) are copied too. Existing files are kept unless ``force``.
    """
    if bool(from_dir) == bool(download):
        raise ValueError("install_set: give exactly one of from_dir or download=True")
    files = (spec.get("source") or {}).get("files") or {}
    if not files:
        raise EvalSetError(f"{spec['name']}: its YAML lists no source.files to install")
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    names = list(files)
    if from_dir:
        from_dir = Path(from_dir).expanduser()
        missing = [n for n in names if not (from_dir / n).is_file()]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise FileNotFoundError(f"{from_dir}: missing {shown} (a copy of the {spec['name']} files: "
                                    f"{len(names)} files as listed in {spec.get('spec_file')})")
        for pattern in _caption_globs(spec):
            names += [p.relative_to(from_dir).as_posix() for p in sorted(from_dir.glob(pattern))
                      if p.relative_to(from_dir).as_posix() not in names]
    written = []
    iterator = names
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(names, desc=f"{spec['name']} files", unit="file")
    for name in iterator:
        target = dest / name
        if target.exists() and not force:
            written.append(target)
            continue
        if from_dir:
            data = (from_dir / name).read_bytes()
            expected = (files.get(name) or {}).get("sha256")
            if expected and not (files.get(name) or {}).get("member") and sha256(data) != expected:
                warnings.warn(f"{from_dir / name}: differs from the published file (sha256 {sha256(data)[:12]}…, "
                              f"published {expected[:12]}…); using it as it is")
        else:
            data = _download(spec, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        written.append(target)
    return written
