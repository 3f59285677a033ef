"""Multi30K task 1 (Elliott et al. 2016-2018): each test set its own image list and gzipped sentence files.

The published layout (multi30k/dataset, ``data/task1/``) is kept as it is: ``image_splits/<test>.txt``
lists the images, ``raw/<test>.<lang>.gz`` holds one sentence a line (a translation of the English,
so the captions are parallel and the text probe applies). Each test set is a protocol, with the
languages it has (Czech only for ``test_2016_flickr``). ``test_2017_mscoco`` names its COCO images
``COCO_val2014_000000398076.jpg#657409`` (image, then the COCO caption id): the id is dropped.
"""

from __future__ import annotations

from mlilt.evaluation.sets.base import EvalSetError
from mlilt.evaluation.sets.line_aligned import LineAlignedSet

CAPTION_ID = "#"


def normalise_spec(spec: dict) -> dict:
    """Every protocol of a Multi30K-kind set names its own ``files``."""
    from mlilt.evaluation.sets import line_aligned

    spec = line_aligned.normalise_spec(spec)
    for name, rule in spec["protocols"].items():
        if "average" not in rule and not rule.get("files"):
            raise EvalSetError(f"{spec['spec_file']}: protocols.{name}.files is missing (each test set names "
                               "its image list and caption files)")
    return spec


class Multi30kSet(LineAlignedSet):
    """Line-aligned, one image list and set of caption files per protocol."""

    kind = "multi30k"

    def image_names(self, protocol: str | None = None) -> list[str]:
        return [name.split(CAPTION_ID, 1)[0] for name in super().image_names(protocol)]
