"""Dataset audit: balance, duplicates (planted), leakage, text statistics."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from audit_helpers import run_job
from audit_synthetic import make_images
from PIL import Image

from plugins.audit.engine import dataset as D


def smooth(seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((48, 48), Image.Resampling.BICUBIC))


def image_folder(root):
    """Two unbalanced classes with a planted exact duplicate and two near duplicates."""
    for cls, n, offset in (("cats", 12, 0), ("dogs", 4, 1000)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(smooth(offset + i)).save(root / cls / f"{i}.png")
    (root / "cats" / "copy.png").write_bytes((root / "cats" / "0.png").read_bytes())
    buf = io.BytesIO()
    Image.fromarray(smooth(1)).save(buf, format="JPEG", quality=85)  # re-encoded
    (root / "cats" / "reencoded.jpg").write_bytes(buf.getvalue())
    bright = np.clip(smooth(2).astype(int) + 6, 0, 255).astype(np.uint8)
    Image.fromarray(bright).resize((40, 40)).save(root / "dogs" / "edited.png")
    return root


def test_planted_image_duplicates_are_all_found(tmp_path):
    rep = D.audit_folder(image_folder(tmp_path / "imgs"))
    assert rep.exact_duplicates == [["cats/0.png", "cats/copy.png"]]
    pairs = {frozenset((d["a"], d["b"])) for d in rep.near_duplicates}
    assert frozenset(("cats/1.png", "cats/reencoded.jpg")) in pairs
    assert frozenset(("cats/2.png", "dogs/edited.png")) in pairs
    assert len(pairs) == 2  # and nothing else
    b = rep.balance[0]
    assert {c["name"]: c["k"] for c in b["classes"]} == {"cats": 14, "dogs": 5}
    assert b["imbalance_ratio"] == pytest.approx(14 / 5)
    assert 0 < b["evenness"] < 1
    cats = b["classes"][0]
    assert cats["lo"] < cats["value"] < cats["hi"]


def test_label_csv_balance(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("file,label,id\n" + "".join(f"{i}.png,{'a' if i % 4 else 'b'},{i}\n"
                                             for i in range(40)))
    out = D.csv_balance(f)
    assert list(out["columns"]) == ["label"]  # file and id are not categories
    assert out["columns"]["label"]["classes"][0] == pytest.approx(
        {**out["columns"]["label"]["classes"][0], "name": "a", "k": 30, "n": 40})
    with pytest.raises(Exception, match="no column sex"):
        D.csv_balance(f, ["sex"])


def test_text_near_duplicates_and_statistics(tmp_path):
    base = ("The quick brown fox jumps over the lazy dog while the farmer watches from the "
            "old wooden fence near the barn at the edge of the field. ") * 3
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text(base)
    (tmp_path / "t" / "b.txt").write_text(base.replace("farmer", "farmer's wife", 1))
    (tmp_path / "t" / "c.txt").write_text("Completely unrelated words about oceans, ships, "
                                          "sails and the long voyage home across the sea.")
    rep = D.audit_folder(tmp_path / "t")
    assert [(d["a"], d["b"]) for d in rep.near_duplicates] == [("a.txt", "b.txt")]
    assert rep.text["files"] == 3 and rep.text["vocabulary"] > 20


@pytest.mark.usefixtures("synth_registry")
def test_leakage_between_train_and_held_out(tmp_path):
    data = make_images(tmp_path / "data", n=20)
    for i in range(5):  # five files copied under new names: some will straddle the split
        (data / f"dup{i}.png").write_bytes((data / f"img{i:03d}.png").read_bytes())
    rec = run_job("synth", "train", {"data": data, "holdout": 0.5}, out=tmp_path / "run")
    assert rec.state == "done", rec.error
    leak = D.leakage(tmp_path / "run")
    from studio import manifest

    rows = list(manifest.read_examples(tmp_path / "run"))
    split = {r.path: r.split for r in rows}
    expected = sum(split[f"img{i:03d}.png"] != split[f"dup{i}.png"] for i in range(5))
    assert expected > 0
    assert len(leak["exact"]) == expected
    assert leak["near_checked"] and leak["near"] == []  # the copies are exact, not near


@pytest.mark.usefixtures("synth_registry")
def test_dataset_job_with_a_run(tmp_path):
    folder = image_folder(tmp_path / "imgs")
    rec = run_job("synth", "train", {"data": folder}, out=tmp_path / "run")
    assert rec.state == "done"
    rec = run_job("audit", "dataset", {"data": folder, "run": tmp_path / "run"},
                  out=tmp_path / "audit")
    assert rec.state == "done", rec.error
    doc = json.loads((tmp_path / "audit" / "audit.json").read_text())
    leak = doc["result"]["leakage"]
    assert leak["train"] + leak["held_out"] == 18  # the PNGs
    assert "Dataset audit" in (tmp_path / "audit" / "report.html").read_text()
    rec = run_job("audit", "dataset", {"data": tmp_path / "missing"}, out=tmp_path / "a2")
    assert rec.state == "failed" and "does not exist" in rec.error
