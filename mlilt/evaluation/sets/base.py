"""What every evaluation set offers the harness, and where set descriptions are found."""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from mlilt.paths import data_dir as mlilt_data_dir
from mlilt.paths import mlilt_home

SETS_ENV = "MLILT_EVAL_SETS"
# The repository's eval_sets/ (an editable install), or the copy a wheel installs (pyproject data-files).
BUNDLED_SETS_DIRS = (Path(__file__).resolve().parents[3] / "eval_sets",
                     Path(sys.prefix) / "share" / "mlilt" / "eval_sets")

#: a caption line that says "this image has no caption in this language" (left out of that language's pool)
MISSING_CAPTION = "<missing>"
#: pools: ``shared`` scores every language on the images all selected languages have; ``own`` on all it has
POOLS = ("shared", "own")

# ISO 639-1 / 639-3 codes, optionally with a script or region subtag: en, fil, zh-Hans, pt_BR, swh_Latn.
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_NEWLINES = re.compile(r"\r\n|\r|\n")


class EvalSetError(ValueError):
    """A problem with an evaluation set's files; the message names the file (and line)."""


@dataclass(frozen=True)
class EvalImage:
    """One image of a set: its name in the set (what leakage checks match on) and its file."""

    name: str
    path: str


@dataclass
class Captions:
    """One language's captions of a protocol; ``image_index[i]`` indexes ``images(protocol)``."""

    lang: str
    texts: list[str]
    image_index: list[int]
    source: str
    missing: int = 0  # images the file marks as having no caption in this language


def check_language_code(code: str, where: str = "") -> str:
    """``code`` if it names a language (ISO 639-1/-3, BCP-47, FLORES-200, CLDR; any case), else an error."""
    from mlilt.evaluation.languages import LanguageError, canonical

    try:
        canonical(code)
    except LanguageError as err:
        raise EvalSetError(f"{where + ': ' if where else ''}{err}") from None
    return code


def is_language_code(code: str) -> bool:
    """Whether ``code`` names a language (a file ``eng_captions.txt`` beside ``eng_Latn.txt`` does not)."""
    try:
        check_language_code(code)
    except EvalSetError:
        return False
    return True


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file (gzip-compressed when it ends in ``.gz``, as Multi30K's are), BOM dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise EvalSetError(f"{path}: not a readable gzip file ({err})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise EvalSetError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from None


def json_lines(path: str | os.PathLike):
    """``(where, object)`` for each non-blank line of a JSONL file (``where`` is ``path:line``)."""
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as err:
            raise EvalSetError(f"{where}: not valid JSON ({err.msg})") from None


def read_lines(path: str | os.PathLike, what: str = "lines") -> list[str]:
    """Non-empty lines of a UTF-8 text file, whatever its newlines (LF, CRLF, CR) and final newline.

    Blank lines at the very end are ignored; a blank line anywhere else is an error naming its line.
    """
    lines = [line.strip() for line in _NEWLINES.split(read_text(path))]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line:
            hint = f" or {MISSING_CAPTION} for an image without one" if what == "captions" else ""
            raise EvalSetError(f"{path}:{number}: empty line (every line must hold one of the {what}{hint})")
    return lines


# ----------------------------------------------------------------------------------------------------
# Finding set descriptions


def eval_set_dirs() -> list[Path]:
    """Folders searched for ``<name>.yaml``: ``$MLILT_EVAL_SETS`` entries, then the bundled ``eval_sets/``."""
    extra = [Path(p).expanduser() for p in os.environ.get(SETS_ENV, "").split(os.pathsep) if p]
    return extra + [d for d in BUNDLED_SETS_DIRS if d.is_dir()]


def available_eval_sets() -> dict[str, Path]:
    """Set name -> its YAML file, first folder wins."""
    found: dict[str, Path] = {}
    for folder in eval_set_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def find_spec_file(name_or_path: str | os.PathLike) -> Path:
    """The YAML of a set given by name (``xtd10``) or path."""
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such evaluation-set file")
        return path
    sets = available_eval_sets()
    if str(name_or_path) not in sets:
        raise EvalSetError(f"unknown evaluation set {str(name_or_path)!r}; known: {', '.join(sets) or 'none'} "
                           f"(looked in {', '.join(map(str, eval_set_dirs()))}); or pass a .yaml or a "
                           "JSONL manifest path")
    return sets[str(name_or_path)]


def read_yaml(path: str | os.PathLike) -> dict:
    """A set's YAML as a dict, with ``name`` (default: the file's stem) and ``spec_file``."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise EvalSetError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise EvalSetError(f"{path}: expected a mapping at the top level")
    spec = dict(raw)
    spec.setdefault("name", path.stem)
    spec["spec_file"] = str(path)
    return spec


def _expand_home(value: str) -> Path:
    return Path(str(value).replace("$MLILT_HOME", str(mlilt_home())).replace("${MLILT_HOME}", str(mlilt_home()))
                ).expanduser()


def default_data_dir(spec: dict) -> Path:
    """Where a set's files live unless ``--data-dir`` says otherwise."""
    return _expand_home(spec["data_dir"]) if spec.get("data_dir") else mlilt_data_dir() / spec["name"]


def install_hint(spec: dict) -> str:
    return spec.get("install_hint") or f"mlilt data {spec['name']} --download (or --from DIR)"


def check_pool(pool: str | None, where: str) -> str | None:
    if pool is not None and pool not in POOLS:
        raise EvalSetError(f"{where}: pool must be one of {', '.join(POOLS)}, got {pool!r}")
    return pool


# ----------------------------------------------------------------------------------------------------
# Sets


class EvalSet:
    """What every set offers the harness."""

    name: str
    kind: str
    #: captions of all languages describe the same images line by line (the text probe needs it)
    parallel: bool = False
    spec: dict | None = None

    @property
    def protocols(self) -> list[str]:
        return list(self.spec["protocols"])

    @property
    def default_protocol(self) -> str:
        return self.spec["default_protocol"] if self.spec else self.protocols[0]

    def check_protocol(self, protocol: str | None) -> str:
        protocol = protocol or self.default_protocol
        if protocol not in self.protocols:
            raise EvalSetError(f"{self.name}: no protocol {protocol!r}; protocols: {', '.join(self.protocols)}")
        return protocol

    def protocol_parts(self, protocol: str | None = None) -> list[str] | None:
        """The protocols an averaging protocol is the mean of (emoji-XTD's ``all``), else None."""
        return None

    def pool(self, protocol: str | None = None) -> str:
        """``shared`` (default) or ``own``, as the set's YAML says for the protocol or the whole set."""
        spec = self.spec or {}
        rule = (spec.get("protocols") or {}).get(self.check_protocol(protocol)) or {}
        return rule.get("pool") or spec.get("pool") or "shared"

    def languages(self, protocol: str | None = None) -> list[str]:
        """The codes of the languages the set has captions in (for ``protocol``; default: the default one)."""
        raise NotImplementedError

    def select_languages(self, requested: list[str] | None, protocol: str | None = None) -> dict[str, str]:
        """``{canonical tag: the set's code}`` of the requested languages (codes in any form, ``all``, tier
        keywords such as ``tier0``), checked against what the set has. Default: the YAML's
        ``default_languages`` that the set has (a set with many languages may keep a short default), else all."""
        from mlilt.evaluation.languages import LanguageError, canonical, resolve

        available = self.languages(protocol)
        if not available:
            raise EvalSetError(f"{self.name}: no caption files found{self._where()}")
        where = f"{self.name}{self._where()}"
        if not requested:
            default = [code for code in (self.spec or {}).get("default_languages") or [] if code in available]
            requested = default or ["all"]
        try:
            return resolve(requested, available, where=where)
        except LanguageError as err:
            for request in requested:  # the request that failed: a language the set lacks gets the how-to-add
                try:
                    resolve([request], available, where=where)
                except LanguageError:
                    try:
                        canonical(request)
                    except LanguageError:
                        break
                    raise EvalSetError(f"{err}{self._how_to_add(request)}") from None
            raise EvalSetError(f"{self.name} --langs: {err}") from None

    def images(self, protocol: str | None = None) -> list[EvalImage]:
        raise NotImplementedError

    def captions(self, lang: str, protocol: str | None = None) -> Captions:
        raise NotImplementedError

    def describe(self) -> dict:
        """What a result file records about the set."""
        return {"name": self.name, "kind": self.kind}

    def _where(self) -> str:
        return ""

    def _how_to_add(self, code: str) -> str:
        return ""

    def _describe_spec(self) -> dict:
        spec = self.spec or {}
        return {"spec": spec.get("spec_file"), "licence": (spec.get("licence") or {}).get("name"),
                "source": (spec.get("source") or {}).get("homepage")}
