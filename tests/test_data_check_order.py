"""``mlilt data check`` lists problems in file order, whichever check found them."""

from __future__ import annotations

import json

from PIL import Image

from mlilt.data.check import check_pairs


def test_problems_come_in_file_order(tmp_path):
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows = [{"image": "ok.png", "caption": f"fine {i}"} for i in range(25)]
    rows[10] = {"image": "gone.png", "caption": "the file is missing"}   # line 11: found by the image pass
    rows[15] = {"image": "broken.png", "caption": ""}                  # line 16: both passes
    rows[20] = {"image": "ok.png", "caption": "  "}                    # line 21: found while reading
    lines = [json.dumps(r) for r in rows]
    lines[5] = '{"image": "ok.png", caption: "bad json"}'              # line 6: while reading too
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    report = check_pairs(manifest, progress=False, workers=2)
    assert [(p.location.rsplit(":", 1)[1], p.kind) for p in report.problems] == [
        ("6", "malformed record"), ("11", "missing image"), ("16", "empty caption"), ("16", "unreadable image"),
        ("21", "empty caption")]
