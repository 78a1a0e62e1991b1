"""The probe protocol: the reference probe keeps it, and the checker catches broken probes."""

from __future__ import annotations

import numpy as np
import pytest
from audit_helpers import run_job
from audit_synthetic import NgramProbe, SyntheticProbe, make_images

from plugins.common.probes import AuditProbe, Note, TextProbe, check_item, check_probe
from studio.errors import UserError

pytestmark = pytest.mark.usefixtures("synth_registry")


@pytest.fixture
def synth_run(tmp_path):
    data = make_images(tmp_path / "data", n=20)
    rec = run_job("synth", "train", {"data": data, "seed": 3}, out=tmp_path / "run")
    assert rec.state == "done", rec.error
    return tmp_path / "run"


def test_the_reference_probe_keeps_the_contract(synth_run):
    probe = SyntheticProbe.load(synth_run, "cpu")
    assert isinstance(probe, AuditProbe)
    assert check_probe(probe) == []
    ex = probe.examples()
    assert len(ex) == 20 and sum(e.member for e in ex) == 10
    job, params = probe.reference_job(0.5, 9)
    assert job == "train" and params["holdout"] == 0.5 and params["seed"] == 9
    assert params["gap"] == 1.0  # every other setting as the audited run had it


def test_the_checker_catches_a_probe_that_is_not_deterministic(synth_run):
    class Noisy(SyntheticProbe):
        def per_example_loss(self, items):
            return np.random.default_rng().random(len(items))

    assert any("deterministic" in p for p in check_probe(Noisy.load(synth_run)))


def test_the_checker_catches_wrong_items_and_shapes(synth_run):
    class Wrong(SyntheticProbe):
        def sample(self, n, seed):
            return [np.zeros((4, 4, 3), dtype=np.float32)] * n

    assert any("uint8" in p for p in check_probe(Wrong.load(synth_run)))

    class Short(SyntheticProbe):
        def per_example_loss(self, items):
            return np.zeros(len(items) + 1)

    assert any("shape" in p for p in check_probe(Short.load(synth_run)))


def test_items_of_each_kind():
    assert check_item("image", np.zeros((4, 4), np.uint8)) is None
    assert check_item("image", np.zeros((4, 4, 2), np.uint8))
    assert check_item("text", "hello") is None and check_item("text", b"x")
    assert check_item("music", [Note(60, 0.0, 1.0), (62, 1.0, 0.5)]) is None
    assert check_item("music", [(60, 0.0)])
    assert check_item("level", ["--X", "XXX"]) is None
    assert check_item("level", ["--", "XXX"])
    assert check_item("video", 1)


def test_a_text_probe_offers_log_perplexity(tmp_path):
    assert issubclass(NgramProbe, object) and hasattr(NgramProbe, "corpus_job")
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\n" * 20)
    rec = run_job("ngram", "train", {"data": corpus}, out=tmp_path / "lm")
    assert rec.state == "done", rec.error
    probe = NgramProbe.load(tmp_path / "lm", "cpu")
    assert isinstance(probe, TextProbe)
    lp = probe.log_perplexity(["the cat sat", "zq xj vv"])
    assert lp[0] < lp[1]


def test_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="not a studio run"):
        SyntheticProbe.load(tmp_path)
