"""Evaluation sets: what images and captions a protocol scores, read from ``eval_sets/*.yaml`` or a manifest.

    >>> from mlilt.evaluation.sets import load_eval_set
    >>> xtd = load_eval_set("xtd10", image_root="~/coco2014")          # captions in data_dir()/xtd10
    >>> xtd.languages()                                                 # ['en', 'es', ..., 'zh'] (+ any added file)
    >>> images = xtd.images("lilt200")                                  # 200 EvalImage(name, path)
    >>> caps = xtd.captions("ru", "lilt200")                            # Captions(texts, image_index)
    >>> load_eval_set("my_pairs.jsonl").languages()                     # a JSONL manifest, any corpus

Two kinds of set:

* **line-aligned** (XTD10, emoji-XTD): an image list file and one caption file per language, line i
  of each describing image i. The set's YAML gives the file names (``files.images``,
  ``files.captions`` with ``{lang}``), the rule from an image name to its path (``image_paths``:
  first ``match`` glob wins, ``path`` with ``{image_root}``, ``{data_dir}``, ``{name}``) and the
  protocols (``protocols.<name>.images``: a glob over image names; ``protocols.<name>.average``: a list
  of protocols whose results it averages, as emoji-XTD's ``all`` over its three styles). A language is added by dropping
  ``test_1kcaptions_<code>.txt`` into the set's directory, or with ``captions={"sw": path}``.
  Caption files may mix LF and CRLF and lack a final newline; a wrong line count or an empty line
  is an error naming the file and line.
* **manifest**: a JSONL file, one ``{"image", "caption", "lang"}`` object a line (``image_id``
  optional); images relative to the manifest's folder (or ``image_root``); one protocol, ``all``.
  Images without a caption in a language are left out of that language's scores.

Set files are looked up in ``$MLILT_EVAL_SETS`` (a ``:``-separated list of folders), then in the
repository's ``eval_sets/`` folder (editable install) or ``<prefix>/share/mlilt/eval_sets`` (a wheel's copy).
A YAML written with a ``layout:`` mapping (as ``emoji-xtd.yaml`` is: ``layout.test_images``,
``layout.test_captions``, ``layout.images``, ``protocol``, ``build.default_dir``) is read as a
line-aligned set too.
"""

from __future__ import annotations

import fnmatch
import hashlib
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
BUNDLED_SETS_DIRS = (Path(__file__).resolve().parents[2] / "eval_sets",
                     Path(sys.prefix) / "share" / "mlilt" / "eval_sets")
MANIFEST_SUFFIXES = (".jsonl",)

# ISO 639-1 / 639-3 codes, optionally with a script or region subtag: en, fil, zh-Hans, pt_BR.
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


def check_language_code(code: str, where: str = "") -> str:
    """``code`` if it looks like an ISO 639-1/-3 code (optionally with a subtag), else an error."""
    if not LANGUAGE_CODE.match(code or ""):
        raise EvalSetError(f"{where + ': ' if where else ''}{code!r} is not a language code "
                           "(expected an ISO 639-1/-3 code such as 'sw' or 'fil', optionally with a subtag: 'zh-Hans')")
    return code


def read_lines(path: str | os.PathLike, what: str = "lines") -> list[str]:
    """Non-empty lines of a UTF-8 text file, whatever its newlines (LF, CRLF, CR) and final newline.

    Blank lines at the very end are ignored; a blank line anywhere else is an error naming its line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise EvalSetError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from None
    lines = [line.strip() for line in _NEWLINES.split(text)]
    while lines and not lines[-1]:
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line:
            raise EvalSetError(f"{path}:{number}: empty line (every line must hold one of the {what})")
    return lines


# ----------------------------------------------------------------------------------------------------
# Finding and reading set descriptions


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


def read_spec(path: str | os.PathLike) -> dict:
    """A set's YAML as a normalised dict (``name kind files languages image_paths protocols ...``)."""
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
    if isinstance(spec.get("layout"), dict) and "files" not in spec:
        spec = _from_layout_form(spec)
    spec.setdefault("kind", "line_aligned")
    if spec["kind"] != "line_aligned":
        raise EvalSetError(f"{path}: kind {spec['kind']!r} is not supported (line_aligned)")
    files = spec.get("files") or {}
    for field in ("images", "captions"):
        if not isinstance(files.get(field), str):
            what = "a file name with {lang}" if field == "captions" else "a file name"
            raise EvalSetError(f"{path}: files.{field} is missing ({what})")
    if "{lang}" not in files["captions"]:
        raise EvalSetError(f"{path}: files.captions must contain {{lang}}, got {files['captions']!r}")
    protocols = spec.get("protocols")
    if not isinstance(protocols, dict) or not protocols:
        raise EvalSetError(f"{path}: protocols is missing (a mapping name -> {{images: GLOB}})")
    spec["protocols"] = {str(k): dict(v or {}) for k, v in protocols.items()}
    for name, rule in spec["protocols"].items():
        parts = rule.get("average")
        if parts is not None and (not isinstance(parts, list) or not parts or any(
                spec["protocols"].get(str(x), {}).get("average") is not None or str(x) not in spec["protocols"]
                for x in parts)):
            raise EvalSetError(f"{path}: protocols.{name}.average must list protocols that select images "
                               f"(one of {', '.join(k for k, v in spec['protocols'].items() if 'average' not in v)}), "
                               f"got {parts!r}")
    spec.setdefault("default_protocol", next(iter(spec["protocols"])))
    spec.setdefault("image_paths", [{"match": "*", "path": "{data_dir}/{name}"}])
    for i, rule in enumerate(spec["image_paths"]):
        if not isinstance(rule, dict) or not isinstance(rule.get("path"), str):
            raise EvalSetError(f"{path}: image_paths[{i}] needs a 'path' template (and optionally 'match')")
    spec["languages"] = [str(x) for x in spec.get("languages") or []]
    spec["spec_file"] = str(path)
    return spec


def _from_layout_form(raw: dict) -> dict:
    """Read the ``layout:`` form (emoji-xtd.yaml) as a line-aligned spec."""
    layout = raw["layout"]
    image_folder = str(Path(str(layout.get("images", "images/x")).replace("<id>", "x")).parent)
    protocol = str(raw.get("protocol", "test"))
    spec = dict(raw)
    spec["kind"] = "line_aligned"
    spec["files"] = {"images": layout.get("test_images", "test_image_names.txt"),
                     "captions": layout.get("test_captions", "test_1kcaptions_{lang}.txt")}
    prefix = "{data_dir}" if image_folder in ("", ".") else "{data_dir}/" + image_folder
    spec.setdefault("image_paths", [{"match": "*", "path": prefix + "/{name}"}])
    spec.setdefault("protocols", {protocol: {"images": "*"}})
    spec.setdefault("default_protocol", protocol)
    if isinstance(raw.get("build"), dict):
        spec.setdefault("data_dir", raw["build"].get("default_dir"))
        if raw["build"].get("command"):
            spec.setdefault("install_hint", raw["build"]["command"])
    return spec


def _expand_home(value: str) -> Path:
    return Path(str(value).replace("$MLILT_HOME", str(mlilt_home())).replace("${MLILT_HOME}", str(mlilt_home()))
                ).expanduser()


def default_data_dir(spec: dict) -> Path:
    """Where a set's files live unless ``--data-dir`` says otherwise."""
    return _expand_home(spec["data_dir"]) if spec.get("data_dir") else mlilt_data_dir() / spec["name"]


def install_hint(spec: dict) -> str:
    return spec.get("install_hint") or f"mlilt data {spec['name']} --download (or --from DIR)"


# ----------------------------------------------------------------------------------------------------
# Sets


class EvalSet:
    """What every set offers the harness."""

    name: str
    kind: str
    #: captions of all languages describe the same images line by line (the text probe needs it)
    parallel: bool = False

    @property
    def protocols(self) -> list[str]:
        raise NotImplementedError

    @property
    def default_protocol(self) -> str:
        return self.protocols[0]

    def check_protocol(self, protocol: str | None) -> str:
        protocol = protocol or self.default_protocol
        if protocol not in self.protocols:
            raise EvalSetError(f"{self.name}: no protocol {protocol!r}; protocols: {', '.join(self.protocols)}")
        return protocol

    def protocol_parts(self, protocol: str | None = None) -> list[str] | None:
        """The protocols an averaging protocol is the mean of (emoji-XTD's ``all``), else None."""
        return None

    def languages(self) -> list[str]:
        raise NotImplementedError

    def select_languages(self, requested: list[str] | None) -> list[str]:
        """``requested`` checked against what the set has (default: all of them)."""
        available = self.languages()
        if not requested:
            if not available:
                raise EvalSetError(f"{self.name}: no caption files found{self._where()}")
            return available
        for code in requested:
            check_language_code(code, f"{self.name} --langs")
            if code not in available:
                raise EvalSetError(f"{self.name}: no captions for language {code!r}{self._where()}; "
                                   f"available: {', '.join(available) or 'none'}{self._how_to_add(code)}")
        return list(dict.fromkeys(requested))

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


class LineAlignedSet(EvalSet):
    """An image list plus one line-aligned caption file per language (XTD10, emoji-XTD)."""

    kind = "line_aligned"
    parallel = True

    def __init__(self, spec: dict, data_dir: str | os.PathLike | None = None,
                 image_root: str | os.PathLike | None = None, captions: dict[str, str] | None = None):
        self.spec = spec
        self.name = spec["name"]
        self.data_dir = Path(data_dir).expanduser() if data_dir else default_data_dir(spec)
        self.image_root = Path(image_root).expanduser() if image_root else None
        self.extra_captions = {check_language_code(k, "--captions"): Path(v).expanduser()
                               for k, v in (captions or {}).items()}
        self._lines: dict[str, list[str]] = {}
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"{self.name}: data directory {self.data_dir} does not exist; "
                                    f"install the set with: {install_hint(spec)}, or pass --data-dir DIR")

    @property
    def protocols(self) -> list[str]:
        return list(self.spec["protocols"])

    @property
    def default_protocol(self) -> str:
        return self.spec["default_protocol"]

    @property
    def image_list_file(self) -> Path:
        return self.data_dir / self.spec["files"]["images"]

    def caption_file(self, lang: str) -> Path:
        if lang in self.extra_captions:
            return self.extra_captions[lang]
        return self.data_dir / self.spec["files"]["captions"].format(lang=lang)

    def languages(self) -> list[str]:
        """The set's languages with a caption file present, then other files found, then ``captions=``."""
        pattern = self.spec["files"]["captions"]
        head, tail = pattern.split("{lang}", 1)
        found = []
        for path in sorted(self.data_dir.glob(pattern.replace("{lang}", "*"))):
            code = path.name[len(head):len(path.name) - len(tail)] if tail else path.name[len(head):]
            if LANGUAGE_CODE.match(code):
                found.append(code)
        ordered = [lang for lang in self.spec["languages"] if lang in found]
        ordered += [lang for lang in found if lang not in ordered]
        ordered += [lang for lang in self.extra_captions if lang not in ordered]
        return ordered

    def select_languages(self, requested: list[str] | None) -> list[str]:
        """As for any set, but with nothing requested the YAML's ``default_languages`` (those present), if it lists any."""
        defaults = [lang for lang in self.spec.get("default_languages") or [] if lang in self.languages()]
        return defaults if not requested and defaults else super().select_languages(requested)

    def _where(self) -> str:
        return f" in {self.data_dir}"

    def _how_to_add(self, code: str) -> str:
        return (f"; add one as {self.data_dir / self.spec['files']['captions'].format(lang=code)} "
                f"(one caption a line, line i for image i of {self.spec['files']['images']}) "
                f"or pass --captions {code}=PATH")

    def _image_names(self) -> list[str]:
        if "\0images" not in self._lines:
            if not self.image_list_file.is_file():
                raise FileNotFoundError(f"{self.name}: {self.image_list_file} not found; "
                                        f"install the set with: {install_hint(self.spec)}")
            self._lines["\0images"] = read_lines(self.image_list_file, "image file names")
        return self._lines["\0images"]

    def protocol_parts(self, protocol: str | None = None) -> list[str] | None:
        parts = self.spec["protocols"][self.check_protocol(protocol)].get("average")
        return [str(p) for p in parts] if parts else None

    def protocol_indices(self, protocol: str | None = None) -> list[int]:
        """Positions (in the image list) of the protocol's images."""
        protocol = self.check_protocol(protocol)
        rule = self.spec["protocols"][protocol]
        if "average" in rule:
            raise EvalSetError(f"{self.name}: protocol {protocol!r} is the mean of {', '.join(rule['average'])}; "
                               "it has no images of its own")
        pattern = str(rule.get("images", "*"))
        indices = [i for i, name in enumerate(self._image_names()) if fnmatch.fnmatchcase(name, pattern)]
        if not indices:
            raise EvalSetError(f"{self.name}: protocol {protocol!r} selects no image of {self.image_list_file} "
                               f"(pattern {pattern!r})")
        expected = rule.get("expect")
        if expected is not None and len(indices) != int(expected):
            import warnings

            warnings.warn(f"{self.name}: protocol {protocol!r} selects {len(indices)} images, "
                          f"the published set has {expected}; is {self.image_list_file} modified?")
        return indices

    def image_path(self, name: str) -> str:
        """The file of an image, by the set's first matching ``image_paths`` rule."""
        for rule in self.spec["image_paths"]:
            if fnmatch.fnmatchcase(name, str(rule.get("match", "*"))):
                template = rule["path"]
                if "{image_root}" in template and self.image_root is None:
                    raise EvalSetError(f"{self.name}: image {name} lives under --image-root "
                                       f"({template}); pass --image-root DIR"
                                       + (" (your COCO 2014 folder with train2014/ and val2014/)"
                                          if "2014" in template else ""))
                return template.format(image_root=self.image_root, data_dir=self.data_dir, name=name)
        raise EvalSetError(f"{self.name}: no image_paths rule of {self.spec['spec_file']} matches image {name}")

    def images(self, protocol: str | None = None) -> list[EvalImage]:
        names = self._image_names()
        return [EvalImage(names[i], self.image_path(names[i])) for i in self.protocol_indices(protocol)]

    def caption_lines(self, lang: str) -> list[str]:
        """All lines of a language's caption file, checked against the image list."""
        if lang not in self._lines:
            path = self.caption_file(lang)
            if not path.is_file():
                raise FileNotFoundError(f"{self.name}: no caption file for {lang!r}: {path} not found"
                                        f"{self._how_to_add(lang)}")
            lines = read_lines(path, "captions")
            expected = len(self._image_names())
            if len(lines) > expected:
                raise EvalSetError(f"{path}:{expected + 1}: {len(lines) - expected} line(s) too many: "
                                   f"{len(lines)} captions for {expected} images of {self.image_list_file} "
                                   "(line i = caption of image i)")
            if len(lines) < expected:
                raise EvalSetError(f"{path}:{len(lines)}: the file ends here, after {len(lines)} captions; "
                                   f"{self.image_list_file} lists {expected} images (line i = caption of image i)")
            self._lines[lang] = lines
        return self._lines[lang]

    def captions(self, lang: str, protocol: str | None = None) -> Captions:
        lines = self.caption_lines(lang)
        indices = self.protocol_indices(protocol)
        return Captions(lang, [lines[i] for i in indices], list(range(len(indices))), str(self.caption_file(lang)))

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "data_dir": str(self.data_dir),
                "spec": self.spec.get("spec_file"), "licence": (self.spec.get("licence") or {}).get("name"),
                "source": (self.spec.get("source") or {}).get("homepage"),
                "captions": {k: str(v) for k, v in self.extra_captions.items()}}


class ManifestSet(EvalSet):
    """A JSONL manifest of ``{"image", "caption", "lang"}`` lines: any corpus, any languages."""

    kind = "manifest"
    parallel = False

    def __init__(self, path: str | os.PathLike, image_root: str | os.PathLike | None = None):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such manifest")
        self.name = self.path.stem
        root = Path(image_root).expanduser() if image_root else self.path.parent
        self._images: dict[str, EvalImage] = {}
        self._rows: list[tuple[str, str, str]] = []  # (lang, caption, image key)
        with self.path.open(encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{self.path}:{number}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise EvalSetError(f"{where}: not valid JSON ({err.msg})") from None
                if not isinstance(obj, dict):
                    raise EvalSetError(f"{where}: expected an object with image, caption, lang")
                for field in ("image", "caption", "lang"):
                    if not isinstance(obj.get(field), str) or not obj[field].strip():
                        raise EvalSetError(f"{where}: field {field!r} is missing or empty")
                lang = check_language_code(obj["lang"].strip(), where)
                image = obj["image"].strip()
                key = str(obj.get("image_id") or image)
                if key not in self._images:
                    path = image if os.path.isabs(image) else str(root / image)
                    self._images[key] = EvalImage(image, path)
                self._rows.append((lang, obj["caption"].strip(), key))
        if not self._rows:
            raise EvalSetError(f"{self.path}: no captions")
        self._order = {key: i for i, key in enumerate(self._images)}

    @property
    def protocols(self) -> list[str]:
        return ["all"]

    def languages(self) -> list[str]:
        return list(dict.fromkeys(lang for lang, _, _ in self._rows))

    def _where(self) -> str:
        return f" in {self.path}"

    def images(self, protocol: str | None = None) -> list[EvalImage]:
        self.check_protocol(protocol)
        return list(self._images.values())

    def captions(self, lang: str, protocol: str | None = None) -> Captions:
        self.check_protocol(protocol)
        rows = [(caption, self._order[key]) for code, caption, key in self._rows if code == lang]
        return Captions(lang, [c for c, _ in rows], [i for _, i in rows], str(self.path))

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "manifest": str(self.path)}


def load_eval_set(name_or_path: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                  image_root: str | os.PathLike | None = None,
                  captions: dict[str, str] | None = None) -> EvalSet:
    """A set by name (``xtd10``, ``emoji-xtd``), by YAML path, or a JSONL manifest path."""
    if Path(name_or_path).suffix in MANIFEST_SUFFIXES:
        if captions:
            raise EvalSetError("--captions adds a line-aligned caption file; a manifest set takes its "
                               "languages from the manifest's 'lang' field")
        return ManifestSet(name_or_path, image_root=image_root)
    return LineAlignedSet(read_spec(find_spec_file(name_or_path)), data_dir=data_dir, image_root=image_root,
                          captions=captions)


# ----------------------------------------------------------------------------------------------------
# Installing a set's published files (mlilt data xtd10)


def fetch_url(url: str, timeout: float = 60.0) -> bytes:
    """The bytes at ``url`` (the one network call of ``install_set``)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URLs from the spec)
        return response.read()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def install_set(spec: dict, dest: str | os.PathLike, *, from_dir: str | os.PathLike | None = None,
                download: bool = False, force: bool = False, progress: bool = True) -> list[Path]:
    """Copy a set's published files from ``from_dir`` or download them (``source.files`` of its YAML).

    Downloaded files must match the recorded sha256; copied files that differ only warn (a user may
    have fixed or extended a copy). Extra ``files.captions`` files in ``from_dir`` (added languages)
    are copied too. Existing files are kept unless ``force``.
    """
    import warnings

    if bool(from_dir) == bool(download):
        raise ValueError("install_set: give exactly one of from_dir or download=True")
    source = spec.get("source") or {}
    files = source.get("files") or {}
    if not files:
        raise EvalSetError(f"{spec['name']}: its YAML lists no source.files to install")
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    names = list(files)
    if from_dir:
        from_dir = Path(from_dir).expanduser()
        missing = [n for n in names if not (from_dir / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{from_dir}: missing {', '.join(missing)} (a copy of the "
                                    f"{spec['name']} files: {', '.join(names)})")
        pattern = spec["files"]["captions"].replace("{lang}", "*")
        names += [p.name for p in sorted(from_dir.glob(pattern)) if p.name not in files]
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
        expected = (files.get(name) or {}).get("sha256")
        if from_dir:
            data = (from_dir / name).read_bytes()
            if expected and _sha256(data) != expected:
                warnings.warn(f"{from_dir / name}: differs from the published file (sha256 {_sha256(data)[:12]}…, "
                              f"published {expected[:12]}…); using it as it is")
        else:
            url = source["base_url"].rstrip("/") + "/" + files[name]["path"]
            try:
                data = fetch_url(url)
            except OSError as err:
                raise OSError(f"{spec['name']}: could not download {url}: {err}; download the files by hand "
                              f"and install them with --from DIR") from None
            if expected and _sha256(data) != expected:
                raise EvalSetError(f"{url}: sha256 {_sha256(data)} differs from the published {expected}; "
                                   "not installed")
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        written.append(target)
    return written

