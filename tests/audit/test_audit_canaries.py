"""Canary exposure: formats, the corpus copy, exposure by enumeration and by estimate, and the
whole job on a small character n-gram model."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from audit_helpers import run_job

from plugins.audit.engine import canaries as C
from studio.errors import UserError


def test_secret_formats():
    fmt = C.SecretFormat("my pin is ###")
    assert fmt.space == 1000
    assert fmt.render(("4", "0", "7")) == "my pin is 4 0 7"
    assert fmt.secret_of(407) == ("4", "0", "7")
    assert len(set(fmt.all_secrets())) == 1000
    assert C.SecretFormat("code AA-#").space == 26 * 26 * 10
    with pytest.raises(UserError, match="placeholder"):
        C.SecretFormat("no secret here")


def test_canaries_go_into_a_copy(tmp_path):
    src = tmp_path / "corpus"
    src.mkdir()
    (src / "a.txt").write_text("line one\nline two\n")
    (src / "b.txt").write_text("other\n")
    (src / "vocab.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    cans = C.make_canaries(C.SecretFormat("pin ####"), [1, 5], seed=1)
    info = C.insert_canaries(src, tmp_path / "copy", cans)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    text = "".join(p.read_text() for p in (tmp_path / "copy").glob("*.txt"))
    assert text.count(cans[0].text) == 1 and text.count(cans[1].text) == 5
    assert info["inserted"] == 6 and (tmp_path / "copy" / "vocab.json").exists()
    with pytest.raises(UserError, match="outside"):
        C.insert_canaries(src, src / "inside", cans)


def test_exposure_exact_is_log2_space_minus_log2_rank():
    cand = np.arange(1000, dtype=float)  # the canary's own value is among them
    assert C.exposure_exact(0.0, cand) == pytest.approx(math.log2(1000))
    assert C.exposure_exact(999.0, cand) == pytest.approx(0.0)
    assert C.exposure_exact(499.0, cand) == pytest.approx(1.0)


def test_the_skew_normal_estimate_agrees_with_enumeration():
    rng = np.random.default_rng(0)
    space = rng.normal(100, 10, 100_000)
    for canary in (80.0, 70.0, 100.0):
        exact = C.exposure_exact(canary, space)
        est, info = C.exposure_estimate(canary, rng.choice(space, 4000), len(space))
        assert est == pytest.approx(exact, abs=0.6), canary
        assert info["sampled"] == 4000


@pytest.mark.usefixtures("synth_registry")
def test_canaries_repeated_ten_times_are_more_exposed(tmp_path):
    rnd = random.Random(0)
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "under", "mat", "hat",
             "house", "tree", "river"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rnd.choice(words) for _ in range(9))
                                for _ in range(300)) + "\n")
    before = corpus.read_bytes()
    rec = run_job("audit", "canaries", {"data": corpus, "plugin": "ngram", "steps": 1,
                                        "repeats": [1, 1, 10, 10], "secret": "pin is ###"},
                  out=tmp_path / "canary")
    assert rec.state == "done", rec.error
    assert corpus.read_bytes() == before
    doc = json.loads((tmp_path / "canary" / "audit.json").read_text())["result"]
    by = doc["by_repeats"]
    assert by["10"] > by["1"] + 2  # bits
    assert all(c["method"] == "exact" for c in doc["canaries"])
    assert doc["space"] == 1000
    assert (Path(rec.result) / "model" / "run.json").exists()


@pytest.mark.usefixtures("synth_registry")
def test_a_plugin_that_cannot_measure_text(tmp_path):
    (tmp_path / "c.txt").write_text("x\n")
    rec = run_job("audit", "canaries", {"data": tmp_path / "c.txt", "plugin": "synth"},
                  out=tmp_path / "out")
    assert rec.state == "failed" and "does not measure text" in rec.error
