"""The audit panel with pytest-qt, on synthetic runs made in each test: choosing a run (runs of
a plugin without a probe listed as not auditable), running checks through the job runner and
reading their results (headline, closest pairs, ROC, most exposed), the report, personal data,
fairness with a bad CSV, Stop and continue, and reopening an audit run."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from audit_helpers import run_job
from audit_synthetic import make_images
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices

from plugins.audit.plugin import AuditPlugin
from plugins.audit.ui import words
from plugins.audit.ui.pairs import MARK
from plugins.common.probes import Note, ProbeBase, ProbeExample
from plugins.common.splits import held_out
from studio.manifest import file_examples
from studio.params import Range
from studio.plugin import JobSpec, Plugin
from studio.storage import atomic_write_json

pytestmark = [pytest.mark.usefixtures("synth_registry"), pytest.mark.timeout(240)]


# ----------------------------------------------------------------------------------------------
# Level and music stand-ins: a "model" that copies a training item with probability copy_rate
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class CopierParams:
    data: Path
    holdout: Annotated[float, Range(0.0, 0.9)] = 0.25
    seed: Annotated[int, Range(0, 10_000)] = 0
    copy_rate: Annotated[float, Range(0.0, 1.0)] = 0.5


def train_copier(ctx: Any, p: CopierParams) -> str:
    files = sorted(f for f in Path(p.data).iterdir() if f.suffix in (".txt", ".json"))
    examples = file_examples(p.data, files)
    held = held_out([e.id for e in examples], p.holdout, p.seed)
    ctx.record_data(Path(p.data).name, p.data, examples, held_out=held, unit="file")
    atomic_write_json(ctx.run_dir / "model.json", {"copy_rate": p.copy_rate})
    ctx.add_artifact(ctx.run_dir / "model.json", "model", model_kind="synthetic")
    return str(ctx.run_dir)


class _CopierProbe(ProbeBase):
    def open(self) -> None:
        self.rate = json.loads((self.run_dir / "model.json").read_text())["copy_rate"]

    def per_example_loss(self, items: Sequence[Any]) -> np.ndarray:
        return np.array([float(len(str(it)) % 7) for it in items])

    def sample(self, n: int, seed: int) -> list[Any]:
        rng = np.random.default_rng(seed)
        train = [self.read(e) for e in self.examples() if e.member]
        return [train[int(rng.integers(len(train)))] if rng.random() < self.rate
                else self.fresh(rng) for _ in range(n)]


class LevelProbe(_CopierProbe):
    item_kind = "level"

    def read(self, example: ProbeExample) -> list[str]:
        return self.example_path(example).read_text().splitlines()

    def fresh(self, rng: np.random.Generator) -> list[str]:
        return ["".join(rng.choice(list("-XQ?E"), 24)) for _ in range(10)]

    def embed(self, items: Sequence[Any]) -> np.ndarray:
        return np.array([[sum(r.count(c) for r in it) + 1.0 for c in "-XQ?E"] for it in items])


class MusicProbe(_CopierProbe):
    item_kind = "music"

    def read(self, example: ProbeExample) -> list[Note]:
        return [Note(*n) for n in json.loads(self.example_path(example).read_text())]

    def fresh(self, rng: np.random.Generator) -> list[Note]:
        return [Note(int(rng.integers(48, 72)), i * 0.5, 0.5) for i in range(24)]

    def embed(self, items: Sequence[Any]) -> np.ndarray:
        return np.array([np.bincount([n.pitch % 12 for n in it], minlength=12) + 1.0
                         for it in items])


class LevelPlugin(Plugin):
    id = "lvl"
    name = "Levels stand-in"
    jobs = (JobSpec("train", f"{__name__}:train_copier", "Train levels", makes_run=True),)
    audit_probe = f"{__name__}:LevelProbe"


class MusicPlugin(Plugin):
    id = "mus"
    name = "Music stand-in"
    jobs = (JobSpec("train", f"{__name__}:train_copier", "Train music", makes_run=True),)
    audit_probe = f"{__name__}:MusicProbe"


@pytest.fixture
def more_plugins(synth_registry, monkeypatch):
    from studio import registry

    before = registry.discover

    def discover():
        return [*before(), *[registry.PluginRecord(p.id, p.name, p())
                             for p in (LevelPlugin, MusicPlugin)]]

    monkeypatch.setattr(registry, "discover", discover)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def train(tmp_path: Path, plugin: str = "synth", name: str = "", **params: Any) -> Path:
    data = tmp_path / "faces"
    if not data.exists():
        make_images(data, n=60)
    rec = run_job(plugin, "train", {"data": data, **params})
    assert rec.state == "done", rec.error
    return Path(rec.run_dir)


@pytest.fixture
def panel(qtbot, make_host):
    def make():
        host = make_host(AuditPlugin())
        p = AuditPlugin().create_panel(host)
        qtbot.addWidget(p)
        p.resize(1100, 800)
        p.show()
        p.runs.refresh(wait=True)
        return p
    return make


@pytest.fixture
def opened(monkeypatch) -> list[Path]:
    """What "Open report" and "Show in folder" asked the system to open."""
    urls: list[Path] = []
    monkeypatch.setattr(QDesktopServices, "openUrl",
                        lambda url: urls.append(Path(QUrl(url).toLocalFile())) or True)
    return urls


def choose(p, run: Path, check: str) -> None:
    assert p.runs.select(run)
    p.check.setCurrentIndex(p.check.findData(check))


def run_check(qtbot, p, kind: str | None = None):
    handle = p.start()
    assert handle is not None, p.status.text()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=120_000)
    assert handle.record.state == "done", handle.record.error
    want = kind or p.page.job
    qtbot.waitUntil(lambda: p.results.current is not None
                    and p.results.current.doc.get("audit") == want, timeout=30_000)
    return handle


def run_of(p, plugin: str):
    return next(r for g in p.runs.groups for r in g.runs if r.plugin == plugin)


# ----------------------------------------------------------------------------------------------
# Choosing a model
# ----------------------------------------------------------------------------------------------
def test_runs_are_grouped_by_plugin_and_a_plugin_without_probe_is_not_auditable(
        qtbot, panel, tmp_path):
    synth = train(tmp_path, "synth")
    plain = train(tmp_path, "plain")
    p = panel()
    groups = {g.plugin: g for g in p.runs.groups}
    assert {"synth", "plain"} <= set(groups)
    assert "audit" not in groups
    assert groups["synth"].has_probe and not groups["plain"].has_probe
    # listed, not hidden, and saying so
    top = p.runs.tree.findItems("Plain", Qt.MatchFlag.MatchStartsWith)
    assert top and "not auditable yet" in top[0].text(0)
    assert top[0].child(0).font(0).italic()
    # the newest auditable run is chosen first, with what it recorded
    assert p.runs.current().path.resolve() == synth.resolve()
    assert "30 images trained it, 30 held out" in p.run_info.text()
    choose(p, plain, "memorization")
    assert p.runs.current().path.resolve() == plain.resolve()
    assert "Not auditable yet" in p.run_info.text()
    assert "does not let the audit read its models" in p.run_info.text()
    assert not p.run_btn.isEnabled()
    assert "Memorisation reads the model" in p.status.text()
    p.check.setCurrentIndex(p.check.findData("mia"))
    assert not p.run_btn.isEnabled()
    # its data can still be checked: the Dataset check is prefilled with the run's data
    p.check.setCurrentIndex(p.check.findData("dataset"))
    assert p.run_btn.isEnabled()
    assert Path(p.page.form.p.data) == tmp_path / "faces"
    assert p.status.text() == ""
    # canaries need a text model: an image model is refused with the reason
    choose(p, synth, "canaries")
    qtbot.waitUntil(lambda: p.page.kind == "image", timeout=10_000)
    assert not p.run_btn.isEnabled() and "Canaries need a text model" in p.status.text()


def test_an_empty_workspace_says_how_to_begin(qtbot, panel):
    p = panel()
    assert p.runs.current() is None
    assert p.runs.tree.topLevelItem(0).text(0) == "No training runs yet"
    assert "Train a model in another plugin" in p.run_info.text()
    assert not p.run_btn.isEnabled()
    assert "Choose a model" in p.status.text()


# ----------------------------------------------------------------------------------------------
# Checks and their results
# ----------------------------------------------------------------------------------------------
def test_memorisation_shows_the_share_in_words_and_the_closest_pairs(
        qtbot, panel, tmp_path, opened):
    run = train(tmp_path, "synth", copy_rate=0.5)
    p = panel()
    choose(p, run, "memorization")
    p.page.form.editor("n").setValue(40)
    handle = run_check(qtbot, p)
    doc = json.loads((handle.record.run_dir / "audit.json").read_text())
    copied = doc["result"]["results"][0]["copied"]
    head = p.results.headline.text()
    m = re.fullmatch(r"(\d+) of 40 samples (are near-copies|is a near-copy) of a training "
                     r"image \((.+)%\)", head)
    assert m, head
    assert int(m.group(1)) == copied["k"] > 0
    assert m.group(3) + "%" == words.percent(copied["k"] / 40)
    assert "95% interval" in p.results.detail.text()
    # the closest pairs side by side, as thumbnails, named by the training file
    cards = p.results.pairs.cards
    assert cards and not p.results.pairs.isHidden()
    first = cards[0].pair
    assert first.caption.startswith("distance 0.000 · img") and first.caption.endswith(".png")
    assert first.sample is not None and first.train is not None
    assert first.sample.width() >= 96  # 8 px images shown at 96 px, crisp
    # the check is listed among the model's earlier checks, and its report opens
    qtbot.waitUntil(lambda: p.results.earlier.count() == 1, timeout=10_000)
    assert p.results.earlier.currentIndex() == 0  # the one shown
    p.results.open_report.click()
    p.results.show_folder.click()
    assert opened == [handle.record.run_dir / "report.html", handle.record.run_dir]
    assert p.status.text() == "Memorisation: done."


def test_membership_inference_shows_the_roc_on_log_axes_and_the_most_exposed(
        qtbot, panel, tmp_path):
    run = train(tmp_path, "synth", gap=1.0)
    p = panel()
    choose(p, run, "mia")
    p.page.form.editor("reference_models").setValue(2)
    assert "2 reference models take about" in p.page.estimate.text()
    run_check(qtbot, p)
    r = p.results.current.doc["result"]
    assert p.results.headline.text().startswith("An attacker can easily tell")
    assert f"AUC {r['best']['auc']:.2f}" in p.results.headline.text()
    assert "30 held-out examples are too few to measure 1 false alarm in 1,000" in \
        p.results.detail.text()
    roc = p.results.mia.roc
    assert roc.plot.getPlotItem().ctrl.logXCheck.isChecked()
    assert roc.plot.getPlotItem().ctrl.logYCheck.isChecked()
    assert set(roc.curves) == {a["attack"] for a in r["attacks"]}
    for fpr, tpr in roc.curves.values():  # only what a log axis can draw
        assert len(fpr) and (fpr > 0).all() and (tpr > 0).all()
    table = p.results.mia.attacks
    assert table.rowCount() == len(r["attacks"])
    names = [table.item(i, 0).text() for i in range(table.rowCount())]
    assert "LiRA (online)" in names and "Loss threshold" in names
    assert re.fullmatch(r"\d+ of 30 \(.+%\) at 0 false alarms", table.item(0, 2).text())
    exposed = [p.results.mia.exposed.item(i).text() for i in range(p.results.mia.exposed.count())]
    assert exposed and all(re.match(r"img\d{3}\.png ", e) for e in exposed)  # file names


def test_text_memorisation_highlights_the_matched_words(qtbot, panel, tmp_path):
    corpus = tmp_path / "poems"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the quick brown fox jumps over the lazy dog " * 30)
    (corpus / "b.txt").write_text("a stitch in time saves nine said the early bird " * 30)
    rec = run_job("ngram", "train", {"data": corpus})
    assert rec.state == "done", rec.error
    p = panel()
    choose(p, rec.run_dir, "memorization")
    qtbot.waitUntil(lambda: p.page.kind == "text", timeout=10_000)
    assert "number of words in a row" in p.page.note.text()
    p.page.form.editor("n").setValue(12)
    p.page.form.editor("threshold").setValue(6)
    handle = run_check(qtbot, p)
    assert "or more words in a row from the training text" in p.results.headline.text()
    assert list((handle.record.run_dir / "pairs").glob("sample-*.txt"))  # saved whole
    cards = p.results.pairs.cards
    assert cards
    pair = cards[0].pair
    assert MARK in pair.sample and MARK in pair.train
    assert pair.caption.endswith(".txt") and "words shared" in pair.caption
    # 6 words is no image distance: an image model starts from its own default again
    images = train(tmp_path, "synth")
    p.runs.refresh(wait=True)
    choose(p, images, "memorization")
    qtbot.waitUntil(lambda: p.page.kind == "image", timeout=10_000)
    assert p.page.form.p.threshold is None


def test_canaries_train_a_text_model_on_a_copy_and_show_the_exposure(qtbot, panel, tmp_path):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    text = "the cat sat on the mat and the dog ran under the tree by the river\n" * 40
    (corpus / "a.txt").write_text(text)
    rec = run_job("ngram", "train", {"data": corpus})
    assert rec.state == "done", rec.error
    p = panel()
    choose(p, rec.run_dir, "canaries")
    page = p.page
    qtbot.waitUntil(lambda: page.text_model, timeout=10_000)
    assert page.form.p.plugin == "ngram"  # the chosen text model's plugin
    assert "N-gram" in page.model.text()
    assert Path(page.form.p.data) == corpus  # and its corpus
    page.form.set_value("secret", "pin is ##")
    page.form.editor("steps").setValue(1)
    run_check(qtbot, p)
    assert p.results.title.text() == "Canaries · notes"
    head = p.results.headline.text()
    assert re.fullmatch(r"Secrets inserted 10 times: \d\.\d of 6\.6 bits exposed; inserted "
                        r"once: \d\.\d bits\.", head), head
    assert "trained for 1 step on a copy" in p.results.detail.text()
    assert p.results.table.rowCount() == 4
    assert (corpus / "a.txt").read_text() == text  # the corpus is not changed


@pytest.mark.usefixtures("more_plugins")
@pytest.mark.parametrize("plugin", ["lvl", "mus"])
def test_levels_and_music_pairs_are_small_renders(qtbot, panel, tmp_path, plugin):
    data = tmp_path / plugin
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(12):
        if plugin == "lvl":
            rows = ["".join(rng.choice(list("-XQ?E"), 24)) for _ in range(10)]
            (data / f"level{i:02d}.txt").write_text("\n".join(rows) + "\n")
        else:
            notes = [[int(rng.integers(48, 72)), k * 0.5, 0.5] for k in range(24)]
            (data / f"piece{i:02d}.json").write_text(json.dumps(notes))
    rec = run_job(plugin, "train", {"data": data, "copy_rate": 0.5})
    assert rec.state == "done", rec.error
    p = panel()
    choose(p, rec.run_dir, "memorization")
    p.page.form.editor("n").setValue(10)
    handle = run_check(qtbot, p)
    res = p.results.current.doc["result"]["results"][0]
    assert res["kind"] == ("level" if plugin == "lvl" else "music")
    assert res["copied"]["k"] > 0
    suffix = ".txt" if plugin == "lvl" else ".json"
    assert list((handle.record.run_dir / "pairs").glob(f"train-*{suffix}"))
    pair = p.results.pairs.cards[0].pair
    assert pair.sample is not None and not pair.sample.isNull()
    assert pair.train is not None and not pair.train.isNull()
    if plugin == "lvl":
        assert pair.caption.startswith("100% of patches found · level")
    else:
        assert pair.caption.startswith("24 notes shared · piece")


def test_report_writes_the_html_and_the_model_card(qtbot, panel, tmp_path, opened):
    run = train(tmp_path, "synth")
    p = panel()
    choose(p, run, "memorization")
    p.page.form.editor("n").setValue(20)
    run_check(qtbot, p)
    p.check.setCurrentIndex(p.check.findData("report"))
    out = tmp_path / "share" / "audit.html"
    p.page.form.set_value("out", out)
    run_check(qtbot, p, "report")
    assert out.exists() and (run / "README.md").exists()
    assert p.results.headline.text() == ("The report audit.html is written, with 1 check "
                                         "(memorisation). Not checked yet: membership "
                                         "inference.")
    assert p.results.title.text() == "Report · Train synthetic"
    p.results.open_report.click()
    assert opened == [out]


def test_personal_data_scan_writes_the_redacted_copy_where_asked(qtbot, panel, tmp_path,
                                                                  opened):
    src = tmp_path / "letters"
    src.mkdir()
    (src / "a.txt").write_text("Write to jane.doe@example.com or call +44 20 7946 0958.\n")
    (src / "b.txt").write_text("Nothing personal here.\n")
    p = panel()
    p.check.setCurrentIndex(p.check.findData("pii"))
    page = p.page
    page.form.set_value("data", src)
    page.dest.setText(str(src / "inside"))  # never into the source
    p._refresh()
    assert not p.run_btn.isEnabled() and "cannot go inside" in p.status.text()
    page.dest.setText(str(tmp_path / "clean"))
    page.kinds["name"].setChecked(False)
    assert page.form.p.kinds == ["email", "phone", "card", "iban", "address"]
    p._refresh()
    run_check(qtbot, p)
    assert p.results.headline.text() == ("2 pieces of personal data in 1 of 2 files: 1 e-mail "
                                         "address, 1 phone number.")
    assert "your files were not changed" in p.results.detail.text()
    assert p.results.table.rowCount() == 1 and p.results.table.item(0, 0).text() == "a.txt"
    p.results.show_folder.click()
    redacted = tmp_path / "clean" / "redacted-letters" / "redacted"
    assert opened == [redacted]
    assert "[EMAIL]" in (redacted / "a.txt").read_text()
    assert "jane.doe@example.com" in (src / "a.txt").read_text()  # the source untouched


def test_dataset_check_with_leakage_of_the_chosen_run(qtbot, panel, tmp_path):
    run = train(tmp_path, "synth")
    p = panel()
    choose(p, run, "dataset")
    assert p.page.leak.isEnabled() and p.page.leak.isChecked()
    run_check(qtbot, p)
    doc = p.results.current.doc
    assert doc["result"]["leakage"]["held_out"] == 30
    assert p.results.headline.text() == ("60 files: no identical files, no near duplicates. "
                                         "None of the 30 held-out examples is also in the "
                                         "training set.")


# ----------------------------------------------------------------------------------------------
# Fairness: columns from the file's header, bad input as messages
# ----------------------------------------------------------------------------------------------
def _choose_file(page, path: Path) -> None:
    line = page.form.editor("predictions")
    line.setText(str(path))
    line.editingFinished.emit()  # as when the user leaves the field or picks with "…"


def test_fairness_offers_the_files_columns_and_says_when_one_is_missing(qtbot, panel, tmp_path):
    p = panel()
    p.check.setCurrentIndex(p.check.findData("fairness"))
    page = p.page
    csv = tmp_path / "preds.csv"
    csv.write_text("y_true,y_pred\n1,1\n0,1\n")
    _choose_file(page, csv)
    assert "has only 2 columns (y_true, y_pred)" in page.file_note.text()
    assert p.start() is None
    assert "has only 2 columns" in p.status.text()
    # three columns: offered, with the likely ones chosen
    rows = ["id,sex,y_true,y_pred"] + [f"{i},{'f' if i % 2 else 'm'},{i % 3 > 0:d},"
                                        f"{i % 4 > 0:d}" for i in range(80)]
    csv.write_text("\n".join(rows) + "\n")
    _choose_file(page, tmp_path / "other.csv")  # a file that cannot be read
    assert "cannot be read" in page.file_note.text()
    _choose_file(page, csv)
    combos = page.combos
    assert [combos["label"].itemText(i) for i in range(combos["label"].count())] == \
        ["id", "sex", "y_true", "y_pred"]
    assert (page.form.p.label, page.form.p.prediction, page.form.p.group) == \
        ("y_true", "y_pred", "sex")
    # the file changes under the panel: the missing column is named, nothing is submitted
    csv.write_text("id,y_true,y_pred\n1,1,1\n")
    assert p.start() is None
    assert "preds.csv has no column “sex” for the group: choose one of its columns " \
           "(id, y_true, y_pred)" in p.status.text()
    # a job's own message names the field as the window labels it, not a command-line flag
    letters = tmp_path / "letters.csv"
    letters.write_text("sex,outcome,pred\n" + "".join(
        f"{'f' if i % 2 else 'm'},{'abc'[i % 3]},{'abc'[i % 2]}\n" for i in range(30)))
    _choose_file(page, letters)
    assert (page.form.p.label, page.form.p.prediction, page.form.p.group) == \
        ("outcome", "pred", "sex")
    handle = p.start()
    assert handle is not None, p.status.text()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=60_000)
    assert handle.record.state == "failed"
    assert "“Positive value”" in p.status.text() and "--positive" not in p.status.text()
    # and a good file gives the figures, per group
    csv.write_text("\n".join(rows) + "\n")
    _choose_file(page, csv)
    run_check(qtbot, p)
    assert p.results.headline.text().startswith("Demographic parity difference ")
    assert p.results.table.rowCount() == 2
    assert {p.results.table.item(i, 0).text() for i in range(2)} == {"f", "m"}


# ----------------------------------------------------------------------------------------------
# Stop, continue, reopen
# ----------------------------------------------------------------------------------------------
def test_stop_then_continue_reuses_the_finished_reference_models(qtbot, panel, tmp_path):
    run = train(tmp_path, "synth")
    p = panel()
    choose(p, run, "mia")
    p.page.form.editor("reference_models").setValue(40)
    handle = p.start()
    assert handle is not None and p.stop_btn.isEnabled() and not p.run_btn.isEnabled()
    qtbot.waitUntil(lambda: handle.record.run_dir is not None and (
        Path(handle.record.run_dir) / "references" / "reference-1" / "run.json").exists(),
        timeout=60_000)
    first = Path(handle.record.run_dir) / "references" / "reference-1" / "run.json"
    qtbot.waitUntil(lambda: json.loads(first.read_text()).get("state") == "done",
                    timeout=60_000)
    p.stop_btn.click()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=60_000)
    if handle.record.state == "done":
        pytest.skip("the check finished before Stop reached it")
    assert handle.record.state == "cancelled"
    assert "Run it again to continue" in p.status.text()
    assert p.run_btn.isEnabled() and not p.stop_btn.isEnabled()
    p.page.form.editor("reference_models").setValue(2)
    again = p.start()
    assert again is not None
    assert again.record.out == handle.record.run_dir  # the same folder: its models reused
    logs: list[str] = []
    again.log.connect(lambda _level, text: logs.append(text))
    qtbot.waitUntil(lambda: again.is_finished, timeout=120_000)
    assert again.record.state == "done", again.record.error
    assert any("reusing reference model 1" in t for t in logs)


def test_reopening_an_audit_run_shows_its_result_again(qtbot, make_host, tmp_path):
    run = train(tmp_path, "synth")
    rec = run_job("audit", "memorization", {"run": run, "n": 16})
    assert rec.state == "done", rec.error
    host = make_host(AuditPlugin())
    p = AuditPlugin().create_panel(host)
    qtbot.addWidget(p)
    p.runs.refresh(wait=True)
    p.check.setCurrentIndex(p.check.findData("fairness"))
    assert host.reopen(rec.run_dir)
    qtbot.waitUntil(lambda: p.results.current is not None
                    and p.results.current.folder == Path(rec.run_dir), timeout=30_000)
    assert p.check.currentData() == "memorization"
    assert p.page.form.p.n == 16
    assert p.runs.current().path.resolve() == run.resolve()
    assert re.match(r"\d+ of 16 samples", p.results.headline.text())
    # a folder that holds no result says so
    empty = tmp_path / "empty"
    empty.mkdir()
    p.show_folder(empty, wait=True)
    qtbot.waitUntil(lambda: p.results.current is None, timeout=10_000)
    assert "holds no audit result" in p.results.placeholder.text()


# ----------------------------------------------------------------------------------------------
# Words
# ----------------------------------------------------------------------------------------------
def test_words_for_results():
    share = {"k": 3, "n": 500, "value": 0.006, "lo": 0.002, "hi": 0.0175}
    assert words.memorization_headline({"kind": "image", "threshold": 0.1, "copied": share}) \
        == "3 of 500 samples are near-copies of a training image (0.6%)"
    one = {**share, "k": 1, "value": 0.002}
    assert words.memorization_headline({"kind": "text", "threshold": -32.0, "copied": one}) \
        == "1 of 500 samples repeats 32 or more words in a row from the training text (0.2%)"
    assert words.interval(share) == "likely between 0.2% and 1.8% (95% interval)"
    assert words.example_name("cats/01.png@0123456789abcdef") == "cats/01.png"
    assert words.example_name("bach.mid@0123456789abcdef#phrase 3") == "bach.mid (phrase 3)"
    assert words.reference_estimate(125, 4) == (
        "Each reference model is one more training run of this model (it took 2:05), so 4 "
        "reference models take about 8:20 here, plus scoring.")
    assert "only the quick loss attack" in words.reference_estimate(125, 0)
    assert words.gui_message("--positive: say which value", {"positive": "Positive value"}) \
        == "“Positive value”: say which value"
    assert words.percent(0.25) == "25%" and words.percent(0.0) == "0%"
