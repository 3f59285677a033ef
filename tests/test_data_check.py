"""``mlilt data check``: each problem at its location (file and line, record path, shard row), and the summary."""

import argparse
import json

from helpers_data import COLOURS, image_bytes, save_image, write_jsonl, write_shard
from mlilt.data import check


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="mlilt data")
    check.add_subparser(parser.add_subparsers(dest="data_command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def test_data_check_reports_problems_with_their_lines(tmp_path, capsys):
    images = tmp_path / "images"
    save_image(images / "ok.png")
    (images / "corrupt.jpg").write_bytes(b"nope")
    manifest = write_jsonl(tmp_path / "pairs.jsonl", [
        {"image": "ok.png", "caption": "fine"},
        {"image": "gone.png", "caption": "the file is missing"},
        {"image": "ok.png", "caption": "   "},
        '{"image": "ok.png", caption: "bad json"}',
        {"image": "corrupt.jpg", "caption": "cannot be decoded"},
        {"image": "gone.png", "caption": "missing again"}])
    code, out = run_cli(["check", str(manifest), "--image-root", str(images)], capsys)
    assert code == 1
    assert f"{manifest}:2: missing image: {images / 'gone.png'} (and 1 more caption(s) of this image)" in out
    assert f"{manifest}:3: empty caption" in out
    assert f"{manifest}:4: malformed record: invalid JSON" in out
    assert f"{manifest}:5: unreadable image: {images / 'corrupt.jpg'}" in out
    assert "5 captions, 3 images checked; 1 malformed record, 1 empty caption, 1 missing image, " \
           "1 unreadable image. 4 problem(s)" in out
    code, out = run_cli(["check", str(manifest), "--image-root", str(images), "--quick"], capsys)
    assert "corrupt.jpg" not in out and "gone.png" in out

    write_jsonl(manifest, [{"image": "ok.png", "caption": "fine"}])
    code, out = run_cli(["check", str(manifest), "--image-root", str(images)], capsys)
    assert code == 0 and out.strip().endswith("OK")


def test_data_check_karpathy_and_webdataset_locations(coco, tmp_path, capsys):
    root, manifests = coco
    (root / "val2014/COCO_val2014_000000522418.jpg").unlink()
    data = json.loads((manifests / "dataset_coco.json").read_text())
    data["images"][0]["sentences"][1]["raw"] = ""
    (manifests / "dataset_coco.json").write_text(json.dumps(data))
    code, out = run_cli(["check", str(manifests / "dataset_coco.json"), "--image-root", str(root)], capsys)
    assert code == 1
    assert f"{manifests / 'dataset_coco.json'}:images[0].sentences[1]: empty caption" in out
    assert f"{manifests / 'dataset_coco.json'}:images[3].sentences[0]: missing image" in out

    shard = write_shard(tmp_path / "s.tar", [("a", image_bytes(COLOURS[0]), "fine"), ("b", b"broken", "bad image")])
    code, out = run_cli(["check", str(shard)], capsys)
    assert code == 1 and f"{shard}: row 1 (image_id b): unreadable image: b.jpg" in out
    assert "2 captions, 2 images checked" in out
