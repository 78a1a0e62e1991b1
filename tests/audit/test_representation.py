"""Representation in generated samples vs training data: the figures against hand-computed
ones, the nearest-neighbour classifier, a known answer (a model that only generates one of two
classes is flagged, a faithful one is not), the probe's own classifier and asked-for classes,
bad input, and a tiny real GAN from the command line."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from audit_helpers import run_job
from audit_synthetic import SIZE, SyntheticProbe, SynthPlugin
from PIL import Image

from plugins.audit.engine import representation as rep
from plugins.audit.engine.stats import wilson
from studio import cli
from studio.errors import UserError
from studio.plugin import JobSpec


# ----------------------------------------------------------------------------------------------
# A synthetic model with a known answer: samples are copies of training images of the classes
# it was told to draw (with a little noise), so its class shares are known exactly
# ----------------------------------------------------------------------------------------------
class ClassyProbe(SyntheticProbe):
    """Samples only images of ``draw`` (all classes when empty), uniformly among them."""

    draw: tuple[str, ...] = ()

    def sample(self, n: int, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        pool = [self.read(e) for e in self.examples()
                if e.member and (not self.draw or e.path.split("/")[0] in self.draw)]
        out = []
        for _ in range(n):
            img = pool[int(rng.integers(len(pool)))].astype(np.int16)
            noise = rng.integers(-8, 9, img.shape)
            out.append(np.clip(img + noise, 0, 255).astype(np.uint8))
        return out


class CollapsedProbe(ClassyProbe):
    draw = ("dark",)


class LabelledProbe(ClassyProbe):
    """Knows its classes: a conditional model asked for classes in turn, with a classifier of
    its own (mean brightness), and labels of its own for examples."""

    draw = ("dark",)

    def labels(self, examples: Sequence) -> list[str]:
        return [e.path.split("/")[0].upper() for e in examples]

    def classify(self, items: Sequence[np.ndarray]) -> list[str]:
        return ["DARK" if float(np.mean(x)) < 128 else "LIGHT" for x in items]

    def sample_with_labels(self, n: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
        # asked for DARK and LIGHT in turn, but it always draws dark images
        return self.sample(n, seed), ["DARK" if i % 2 else "LIGHT"
                                                     for i in range(n)]


def _plugin(pid: str, probe: str) -> type:
    return type(f"Plugin_{pid}", (SynthPlugin,), {
        "id": pid, "name": pid,
        "jobs": (JobSpec("train", "audit_synthetic:train", "Train", makes_run=True),),
        "audit_probe": f"test_representation:{probe}"})


PLUGINS = [_plugin("faithful", "ClassyProbe"), _plugin("collapsed", "CollapsedProbe"),
           _plugin("labelled", "LabelledProbe")]


@pytest.fixture
def classy_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from studio import registry

    real = registry.discover

    def discover() -> list[registry.PluginRecord]:
        return [*real(), *[registry.PluginRecord(p.id, p.name, p()) for p in PLUGINS]]

    monkeypatch.setattr(registry, "discover", discover)


def make_classes(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """Class folders of random images: "dark" ones in 0..100, "light" ones in 155..255."""
    rng = np.random.default_rng(seed)
    for cls, n in counts.items():
        lo, hi = (0, 100) if cls == "dark" else (155, 256)
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.integers(lo, hi, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f"{cls}{i:03d}.png")
    return root


def train(plugin: str, data: Path, out: Path, holdout: float = 0.25) -> Path:
    rec = run_job(plugin, "train", {"data": str(data), "holdout": holdout}, out=out)
    assert rec.state == "done", rec.error
    return out


def audit(run: Path, out: Path, n: int = 200) -> dict:
    assert cli.cmd_run("audit", "representation", ["--run", str(run), "--n", str(n),
                                                   "--out", str(out)]) == 0
    return json.loads((out / "audit.json").read_text())["result"]


# ----------------------------------------------------------------------------------------------
# The figures
# ----------------------------------------------------------------------------------------------
def test_shares_ratio_total_variation_and_chi_square_against_hand_computed() -> None:
    from scipy.stats import chi2_contingency

    training = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    generated = ["a"] * 80 + ["b"] * 10 + ["c"] * 10
    r = rep.compare(training, generated, seed=1)
    rows = {c.name: c for c in r.classes}
    assert rows["a"].training == wilson(60, 100) and rows["b"].generated == wilson(10, 100)
    assert rows["b"].ratio == pytest.approx(1 / 3) and rows["c"].ratio == pytest.approx(1.0)
    assert r.tv == pytest.approx(0.5 * (0.2 + 0.2 + 0.0))
    assert r.tv_lo <= r.tv <= r.tv_hi
    chi = chi2_contingency(np.array([[60, 30, 10], [80, 10, 10]]))
    assert r.chi_square == pytest.approx(chi.statistic)
    assert r.p_value == pytest.approx(chi.pvalue)
    assert rows["b"].differs and rows["b"].ratio_hi < 1 and not rows["c"].differs
    assert r.headline().startswith("Class b is generated 3.0x less often than it appears in "
                                   "training (10.0% of samples vs 30.0% of training examples)")
    assert len(rep.findings(r)) == 1  # a, 1.3x more often, is under the 1.5x worth naming


def test_a_class_never_generated_is_said_so_and_equal_shares_find_nothing() -> None:
    r = rep.compare(["a"] * 50 + ["b"] * 50, ["a"] * 100, seed=0)
    assert r.headline().startswith("Class b is never generated (0.0% of samples vs 50.0%")
    same = rep.compare(["a"] * 50 + ["b"] * 50, ["a"] * 48 + ["b"] * 52, seed=0)
    assert same.headline().startswith("Every class is generated about as often")
    assert not any(c.differs for c in same.classes)


def test_knn_labels_vote_among_the_nearest_by_cosine() -> None:
    refs = np.array([[1, 0], [0.9, 0.1], [1, 0.2], [0, 1], [0.1, 1]], dtype=float)
    labels = ["x", "x", "x", "y", "y"]
    assert rep.knn_labels(np.array([[1, 0.05], [0.05, 1]]), refs, labels, k=1) == ["x", "y"]
    assert rep.knn_labels(np.array([[0.2, 1]]), refs, labels, k=3) == ["y"]
    # leave-one-out never lets an example vote for itself
    assert rep.knn_labels(refs, refs, labels, k=1, exclude_self=True) == labels


def test_examples_outside_class_folders_or_of_one_class_say_what_to_do() -> None:
    from plugins.common.probes import ProbeExample

    loose = [ProbeExample("a.png@x", "a.png", "x", "", "train")]
    with pytest.raises(UserError, match="sub-folder"):
        rep.example_labels(object(), loose)
    one = [ProbeExample(f"cats/{i}.png@x", f"cats/{i}.png", "x", "", "train") for i in range(3)]
    with pytest.raises(UserError, match="one class only"):
        rep.example_labels(object(), one)


# ----------------------------------------------------------------------------------------------
# Known answers through the job
# ----------------------------------------------------------------------------------------------
def test_a_model_that_draws_only_one_class_is_flagged(classy_registry, tmp_path: Path) -> None:
    data = make_classes(tmp_path / "data", {"dark": 24, "light": 24})
    run = train("collapsed", data, tmp_path / "run")
    r = audit(run, tmp_path / "audit")
    rows = {c["class"]: c for c in r["classes"]}
    assert rows["light"]["generated"]["k"] == 0 and rows["dark"]["generated"]["k"] == 200
    assert rows["light"]["training"]["k"] == 18  # 24 - 25% held out
    assert r["headline"].startswith("Class light is never generated")
    assert r["total_variation"] == pytest.approx(0.5, abs=0.01)
    assert r["p_value"] < 1e-6
    check = r["classifier_check"]
    assert check["method"] == "held-out examples" and check["accuracy"]["value"] == 1.0
    assert "5 nearest training examples" in r["classifier"]


def test_a_faithful_model_is_not_flagged(classy_registry, tmp_path: Path) -> None:
    data = make_classes(tmp_path / "data", {"dark": 30, "light": 10})
    run = train("faithful", data, tmp_path / "run", holdout=0.0)
    r = audit(run, tmp_path / "audit", n=300)
    assert r["headline"].startswith("Every class is generated about as often")
    rows = {c["class"]: c for c in r["classes"]}
    assert rows["light"]["generated"]["lo"] < 0.25 < rows["light"]["generated"]["hi"]
    # nothing held out: the classifier is checked leave-one-out
    assert r["classifier_check"]["method"] == "leave-one-out on training examples"
    assert math.isclose(sum(c["generated"]["value"] for c in r["classes"]), 1.0)


def test_a_probes_own_labels_classifier_and_asked_classes_are_used(
        classy_registry, tmp_path: Path) -> None:
    data = make_classes(tmp_path / "data", {"dark": 20, "light": 20})
    run = train("labelled", data, tmp_path / "run")
    r = audit(run, tmp_path / "audit", n=100)
    rows = {c["class"]: c for c in r["classes"]}
    assert set(rows) == {"DARK", "LIGHT"} and r["classifier"] == "the plugin's own classifier"
    # asked for LIGHT half of the time, never delivered it
    assert rows["LIGHT"]["fidelity"]["k"] == 0 and rows["LIGHT"]["fidelity"]["n"] == 50
    assert rows["DARK"]["fidelity"]["value"] == 1.0
    assert r["headline"].startswith("Class LIGHT is never generated")
    assert r["classifier_check"]["accuracy"]["value"] == 1.0


def test_a_run_without_classes_says_so(classy_registry, tmp_path: Path, capsys) -> None:
    data = tmp_path / "flat"
    make_classes(tmp_path / "tmp", {"dark": 6, "light": 6})
    data.mkdir()
    for f in (tmp_path / "tmp").rglob("*.png"):
        f.rename(data / f.name)
    run = train("faithful", data, tmp_path / "run")
    assert cli.cmd_run("audit", "representation", ["--run", str(run), "--n", "20", "--out",
                                                   str(tmp_path / "audit")]) != 0
    assert "sub-folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# A real model: a tiny GAN on two classes of bars
# ----------------------------------------------------------------------------------------------
def test_a_tiny_gan_run_from_the_command_line(tmp_path: Path) -> None:
    import torch

    from plugins.gan.plugin import GanPlugin
    from studio.jobs import JobRunner
    from studio.settings import Settings

    rng = np.random.default_rng(0)
    for cls, horizontal in (("bars_h", True), ("bars_v", False)):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(12):
            img = np.zeros((16, 16), dtype=np.uint8)
            p = int(rng.integers(2, 14))
            if horizontal:
                img[p - 1:p + 1, :] = 255
            else:
                img[:, p - 1:p + 1] = 255
            Image.fromarray(img).save(tmp_path / "data" / cls / f"img_{i:02d}.png")
    torch.set_num_threads(1)
    runner = JobRunner(None, settings=Settings(device="cpu"))
    try:
        rec = runner.submit("gan", GanPlugin().job("train"), {
            "data": str(tmp_path / "data"), "steps": 4, "holdout": 0.25,
            "out": str(tmp_path / "run"), "size": 32, "batch_size": 8, "preview_every": 3,
            "checkpoint_every": 4, "log_every": 2, "train_size": 16})
        runner.wait(rec.id, timeout=240)
    finally:
        runner.shutdown()
    assert rec.state == "done", rec.error
    r = audit(tmp_path / "run", tmp_path / "audit", n=64)
    assert {c["class"] for c in r["classes"]} <= {"bars_h", "bars_v"}
    assert sum(c["generated"]["k"] for c in r["classes"]) == 64
    assert sum(c["training"]["k"] for c in r["classes"]) == 18
    assert r["classifier_check"]["accuracy"]["n"] == 6
    assert r["headline"] and r["method"]
    assert (tmp_path / "audit" / "report.html").exists()


# ----------------------------------------------------------------------------------------------
# The panel
# ----------------------------------------------------------------------------------------------
def test_the_panel_offers_the_check_and_shows_the_result_in_words(
        classy_registry, qtbot, make_host, tmp_path: Path) -> None:
    import os

    from PySide6.QtWidgets import QTableWidget

    from plugins.audit.plugin import AuditPlugin

    data = make_classes(tmp_path / "data", {"dark": 12, "light": 12})
    run = train("collapsed", data, tmp_path / "run")
    rec = run_job("audit", "representation", {"run": run, "n": 40})
    assert rec.state == "done", rec.error
    host = make_host(AuditPlugin())
    p = AuditPlugin().create_panel(host)
    qtbot.addWidget(p)
    p.runs.refresh(wait=True)
    assert p.check.findData("representation") >= 0 and p.check.findData("bias") >= 0
    assert host.reopen(rec.run_dir)
    qtbot.waitUntil(lambda: p.results.current is not None
                    and p.results.current.folder == Path(rec.run_dir), timeout=30_000)
    assert p.check.currentData() == "representation"
    assert p.results.headline.text().startswith("Class light is never generated")
    assert "which recognises 100" in p.results.detail.text()
    tables = [t for t in p.results.findChildren(QTableWidget) if t.rowCount()]
    cells = {t.item(r, 0).text(): t.item(r, 3).text() for t in tables
             for r in range(t.rowCount()) if t.item(r, 0) is not None and t.columnCount() > 3}
    assert cells.get("light") == "never generated"
    if os.environ.get("AUDIT_SHOT"):
        p.resize(1280, 900)
        p.grab().save(os.environ["AUDIT_SHOT"])
