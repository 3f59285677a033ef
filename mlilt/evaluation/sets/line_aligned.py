"""Line-aligned sets (XTD10, XTD200, Flickr30k-200, emoji-XTD): an image list and one caption file per language.

Line i of each caption file describes image i of the list. The set's YAML gives the file names
(``files.images``, ``files.captions`` with ``{lang}``; a protocol may name its own ``files``, as
Multi30K's test sets do), the rule from an image name to its path (``image_paths``: first ``match``
glob wins, ``path`` with ``{image_root}``, ``{data_dir}``, ``{name}``) and the protocols
(``protocols.<name>.images``: a glob over image names; ``protocols.<name>.average``: a list of
protocols whose results it averages, as emoji-XTD's ``all`` over its three styles). A language is
added by dropping ``test_1kcaptions_<code>.txt`` into the set's directory, or with
``captions={"sw": path}``. Caption files may mix LF and CRLF and lack a final newline; a line that is
exactly ``<missing>`` says the image has no caption in that language; a wrong line count or an
empty line is an error naming the file and line.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from pathlib import Path

from mlilt.evaluation.sets.base import (MISSING_CAPTION, Captions, EvalImage, EvalSet, EvalSetError,
                                        check_language_code, check_pool, default_data_dir, install_hint, is_language_code,
                                        read_lines)


def normalise_spec(spec: dict) -> dict:
    """A line-aligned set's YAML checked and filled in (``files protocols image_paths languages``)."""
    path = spec["spec_file"]
    if isinstance(spec.get("layout"), dict) and "files" not in spec:
        spec = _from_layout_form(spec)
    protocols = spec.get("protocols")
    if not isinstance(protocols, dict) or not protocols:
        raise EvalSetError(f"{path}: protocols is missing (a mapping name -> {{images: GLOB}})")
    spec["protocols"] = {str(k): dict(v or {}) for k, v in protocols.items()}
    for name, rule in spec["protocols"].items():
        files = {**(spec.get("files") or {}), **(rule.get("files") or {})}
        where = "files" if "files" not in rule else f"protocols.{name}.files"
        if "average" not in rule:
            for field in ("images", "captions"):
                if not isinstance(files.get(field), str):
                    what = "a file name with {lang}" if field == "captions" else "a file name"
                    raise EvalSetError(f"{path}: {where}.{field} is missing ({what})")
            if "{lang}" not in files["captions"]:
                raise EvalSetError(f"{path}: {where}.captions must contain {{lang}}, got {files['captions']!r}")
        check_pool(rule.get("pool"), f"{path}: protocols.{name}")
        parts = rule.get("average")
        if parts is not None and (not isinstance(parts, list) or not parts or any(
                spec["protocols"].get(str(x), {}).get("average") is not None or str(x) not in spec["protocols"]
                for x in parts)):
            raise EvalSetError(f"{path}: protocols.{name}.average must list protocols that select images "
                               f"(one of {', '.join(k for k, v in spec['protocols'].items() if 'average' not in v)}), "
                               f"got {parts!r}")
    check_pool(spec.get("pool"), path)
    spec.setdefault("default_protocol", next(iter(spec["protocols"])))
    spec.setdefault("image_paths", [{"match": "*", "path": "{data_dir}/{name}"}])
    for i, rule in enumerate(spec["image_paths"]):
        if not isinstance(rule, dict) or not isinstance(rule.get("path"), str):
            raise EvalSetError(f"{path}: image_paths[{i}] needs a 'path' template (and optionally 'match')")
    spec["languages"] = [str(x) for x in spec.get("languages") or []]
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


def caption_patterns(spec: dict) -> list[str]:
    """Every ``files.captions`` pattern of a spec (the set's and its protocols')."""
    patterns = [(spec.get("files") or {}).get("captions")]
    patterns += [(rule.get("files") or {}).get("captions") for rule in (spec.get("protocols") or {}).values()]
    return [p for p in dict.fromkeys(patterns) if isinstance(p, str)]


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
        self._lines: dict[Path, list[str]] = {}
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"{self.name}: data directory {self.data_dir} does not exist; "
                                    f"install the set with: {install_hint(spec)}, or pass --data-dir DIR")

    def files(self, protocol: str | None = None) -> dict:
        """``{"images", "captions"}`` file names of a protocol (its own, else the set's)."""
        rule = self.spec["protocols"][self.check_protocol(protocol)]
        if "average" in rule:  # the parts share the set's files (emoji-XTD's styles)
            rule = self.spec["protocols"][str(rule["average"][0])]
        return {**(self.spec.get("files") or {}), **(rule.get("files") or {})}

    @property
    def image_list_file(self) -> Path:
        return self.data_dir / self.files()["images"]

    def caption_file(self, lang: str, protocol: str | None = None) -> Path:
        if lang in self.extra_captions:
            return self.extra_captions[lang]
        return self.data_dir / self.files(protocol)["captions"].format(lang=lang)

    def languages(self, protocol: str | None = None) -> list[str]:
        """The set's languages with a caption file present, then other files found, then ``captions=``."""
        pattern = self.files(protocol)["captions"]
        head, tail = pattern.split("{lang}", 1)
        found = []
        for path in sorted(self.data_dir.glob(pattern.replace("{lang}", "*"))):
            relative = path.relative_to(self.data_dir).as_posix()
            code = relative[len(head):len(relative) - len(tail)] if tail else relative[len(head):]
            if is_language_code(code):
                found.append(code)
        ordered = [lang for lang in self.spec["languages"] if lang in found]
        ordered += [lang for lang in found if lang not in ordered]
        ordered += [lang for lang in self.extra_captions if lang not in ordered]
        return ordered

    def _where(self) -> str:
        return f" in {self.data_dir}"

    def _how_to_add(self, code: str) -> str:
        files = self.files()
        return (f"; add one as {self.data_dir / files['captions'].format(lang=code)} "
                f"(one caption a line, line i for image i of {files['images']}) "
                f"or pass --captions {code}=PATH")

    def _read(self, path: Path, what: str) -> list[str]:
        if path not in self._lines:
            self._lines[path] = read_lines(path, what)
        return self._lines[path]

    def image_names(self, protocol: str | None = None) -> list[str]:
        """Every line of the protocol's image list (all its images, before the protocol's glob)."""
        path = self.data_dir / self.files(protocol)["images"]
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: {path} not found; install the set with: {install_hint(self.spec)}")
        return self._read(path, "image file names")

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
        indices = [i for i, name in enumerate(self.image_names(protocol)) if fnmatch.fnmatchcase(name, pattern)]
        list_file = self.data_dir / self.files(protocol)["images"]
        if not indices:
            raise EvalSetError(f"{self.name}: protocol {protocol!r} selects no image of {list_file} "
                               f"(pattern {pattern!r})")
        expected = rule.get("expect")
        if expected is not None and len(indices) != int(expected):
            warnings.warn(f"{self.name}: protocol {protocol!r} selects {len(indices)} images, "
                          f"the published set has {expected}; is {list_file} modified?")
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
        names = self.image_names(protocol)
        return [EvalImage(names[i], self.image_path(names[i])) for i in self.protocol_indices(protocol)]

    def caption_lines(self, lang: str, protocol: str | None = None) -> list[str]:
        """All lines of a language's caption file (``<missing>`` included), checked against the image list."""
        path = self.caption_file(lang, protocol)
        if path in self._lines:
            return self._lines[path]
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: no caption file for {lang!r}: {path} not found"
                                    f"{self._how_to_add(lang)}")
        lines = read_lines(path, "captions")
        list_file = self.data_dir / self.files(protocol)["images"]
        expected = len(self.image_names(protocol))
        if len(lines) > expected:
            raise EvalSetError(f"{path}:{expected + 1}: {len(lines) - expected} line(s) too many: "
                               f"{len(lines)} captions for {expected} images of {list_file} "
                               "(line i = caption of image i)")
        if len(lines) < expected:
            raise EvalSetError(f"{path}:{len(lines)}: the file ends here, after {len(lines)} captions; "
                               f"{list_file} lists {expected} images (line i = caption of image i)")
        self._lines[path] = lines
        return lines

    def captions(self, lang: str, protocol: str | None = None) -> Captions:
        """A language's captions of the protocol's images; an image marked ``<missing>`` has none."""
        lines = self.caption_lines(lang, protocol)
        indices = self.protocol_indices(protocol)
        kept = [(lines[i], position) for position, i in enumerate(indices) if lines[i] != MISSING_CAPTION]
        return Captions(lang, [t for t, _ in kept], [p for _, p in kept], str(self.caption_file(lang, protocol)),
                        missing=len(indices) - len(kept))

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "data_dir": str(self.data_dir), **self._describe_spec(),
                "captions": {k: str(v) for k, v in self.extra_captions.items()}}
