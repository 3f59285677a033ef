"""torch must be the one torchvision was built for: checked at ``import mlilt`` and in ``make install``.

A torchvision built for another torch fails far from the cause (``operator torchvision::nms does not
exist``, transformers' ``Could not import module 'BertModel'``). Which torch it was built for is
torchvision's own word: its wheel's ``Requires-Dist: torch==X`` (``>=X`` in some builds), read from
the installed metadata without importing either package.

    >>> mismatch()        # None, or one line naming both versions and the command that fixes it
"""

from __future__ import annotations

import re
from importlib import metadata

# "torch (==2.5.1)", "torch==2.5.1", "torch (>=2.14.0)": the major.minor torchvision's C++ operators were built against.
_BUILT_FOR = re.compile(r"^torch\s*\(?\s*(?:===?|>=|~=)\s*(\d+)\.(\d+)")
_RELEASE = re.compile(r"^(\d+)\.(\d+)")
_PYTORCH_INDEX = "https://download.pytorch.org/whl/"


class TorchMismatchError(ImportError):
    """torch and torchvision are not a pair."""


def built_for() -> tuple[int, int] | None:
    """major.minor of the torch the installed torchvision requires (None: no torchvision, or no version named)."""
    try:
        requirements = metadata.requires("torchvision") or []
    except metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        found = _BUILT_FOR.match(requirement)
        if found and ";" not in requirement:  # a marker means an extra, not the dependency itself
            return int(found[1]), int(found[2])
    return None


def mismatch() -> str | None:
    """One line naming both versions and the fix, or None when torch is what torchvision was built for."""
    wanted = built_for()
    if wanted is None:
        return None
    vision = metadata.version("torchvision")
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = None
    release = _RELEASE.match(torch or "")
    if release and (int(release[1]), int(release[2])) == wanted:
        return None
    # The local label (2.5.1+cpu, +cu124) names the PyTorch index the pair must come from.
    local = (torch or vision).partition("+")[2]
    index = f" --index-url {_PYTORCH_INDEX}{local}" if local else ""
    fix = f'pip install "torch=={wanted[0]}.{wanted[1]}.*" "torchvision=={vision.partition("+")[0]}"{index}'
    have = f"torch {torch}" if torch else "no torch"
    return f"{have} and torchvision {vision} do not match (torchvision {vision} is built for torch " \
           f"{wanted[0]}.{wanted[1]}); install the pair: {fix}"


def check() -> None:
    """Raise TorchMismatchError (one line) unless torch and torchvision are a pair."""
    problem = mismatch()
    if problem:
        raise TorchMismatchError(problem)
