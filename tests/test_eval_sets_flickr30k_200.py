"""Flickr30k-200's YAML over files written in the published layout (the real ones are not here)."""

import pytest

from mlilt.evaluation.sets import find_spec_file, load_eval_set, read_spec

pytestmark = pytest.mark.filterwarnings("ignore:flickr30k-200. protocol .* selects")  # 3 images, not 1000


def test_flores_files_are_the_languages_and_eng_captions_is_not(tmp_path):
    spec = read_spec(find_spec_file("flickr30k-200"))
    files = spec["source"]["files"]
    assert len(files) == 202 and "filenames.txt" in files and "eng_Latn.txt" in files
    assert "eng_captions.txt" not in files and all(len(f["sha256"]) == 64 for f in files.values())
    assert all(f["path"] == f"data/flickr30k-200/{name}" for name, f in files.items())
    names = ["1007129816.jpg", "1009434119.jpg", "101362133.jpg"]
    (tmp_path / "filenames.txt").write_text("\n".join(names) + "\n")
    english = ["The man with pierced ears.", "A black and white dog.", "A young female student."]
    for name in ("eng_Latn.txt", "eng_captions.txt"):
        (tmp_path / name).write_text("\n".join(english) + "\n")
    (tmp_path / "swh_Latn.txt").write_text("Mtu.\nMbwa.\nMwanafunzi.\n")
    flickr = load_eval_set("flickr30k-200", data_dir=tmp_path, image_root="/flickr30k-images")
    assert flickr.languages() == ["eng_Latn", "swh_Latn"]
    assert flickr.select_languages(["EN", "sw"]) == {"en": "eng_Latn", "sw": "swh_Latn"}
    assert [im.path for im in flickr.images()] == [f"/flickr30k-images/{n}" for n in names]
    assert flickr.captions("swh_Latn").texts == ["Mtu.", "Mbwa.", "Mwanafunzi."]
