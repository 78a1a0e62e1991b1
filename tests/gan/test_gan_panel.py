"""The GAN panel with pytest-qt: train from the panel, watch previews and plots, stop, resume,
evaluate, and explore (generate, keep, interpolate, slider edits, export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plugins.common import pngmeta
from plugins.gan.plugin import GanPlugin

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def panel(qtbot, make_host):
    host = make_host(GanPlugin())
    p = GanPlugin().create_panel(host)
    qtbot.addWidget(p)
    p.resize(1300, 850)
    p.show()
    return p


def _wait(qtbot, handle, timeout: int = 120_000) -> None:
    qtbot.waitUntil(lambda: handle.is_finished, timeout=timeout)
    handle.manager.drain()


def _setup_train(panel, folder: Path, out: Path, steps: int) -> None:
    t = panel.train
    t.form.set_value("data", str(folder))
    t.form.editor("steps").setValue(steps)  # as a user would: the form follows its widgets
    t.form.editor("batch_size").setValue(8)
    t.form.editor("preview_every").setValue(2)
    t.form.editor("checkpoint_every").setValue(4)
    t.out.setText(str(out))


def test_train_from_panel_updates_preview_plots_and_explore(qtbot, panel, tiny_folder,
                                                            tmp_path) -> None:
    t = panel.train
    assert not t.resume_btn.isEnabled() and not t.stop_btn.isEnabled()
    _setup_train(panel, tiny_folder, tmp_path / "run", steps=4)
    handle = t.start()
    assert handle is not None and t.stop_btn.isEnabled() and not t.train_btn.isEnabled()
    _wait(qtbot, handle)
    assert handle.record.state == "done", handle.record.error
    assert t.preview.image is not None and t.preview.image.ndim == 3
    assert t.preview.pixmap() is not None and not t.preview.pixmap().isNull()
    assert "diversity" in t.preview_caption.text()
    series = handle.manager.metrics.of(handle.id)
    assert {"loss/D", "loss/G", "D/real", "D/fake", "diversity"} <= set(series)
    assert series["loss/D"][0][-1] == 4
    assert t.status.text().startswith("Done")
    assert t.result.isVisibleTo(t) and t.result.text.text() == "Saved"  # no path in words
    assert t.result.path == tmp_path / "run" / "generator.safetensors"
    remembered = t.host.recall("train", type(t.form.p))  # the next session starts from these
    assert (remembered.steps, remembered.batch_size, remembered.data) == (4, 8, str(tiny_folder))
    # the new model became the Explore / Evaluate model
    assert panel.explore.model_path == str(tmp_path / "run")
    assert panel.evaluate.form.p.model == tmp_path / "run"
    # the model picker offers the new run (its manifest records a model of kind "gan")
    picker = panel.explore.model
    picker.refresh(wait=True)
    assert any(e.path == tmp_path / "run" for e in picker.entries)
    assert t.resume_btn.isEnabled() and t.train_btn.isEnabled()


def test_stop_then_resume_from_panel(qtbot, panel, tiny_folder, tmp_path) -> None:
    t = panel.train
    _setup_train(panel, tiny_folder, tmp_path / "run", steps=400)
    t.form.editor("checkpoint_every").setValue(1000)
    handle = t.start()
    qtbot.waitUntil(lambda: handle.record.done >= 4, timeout=60_000)
    t.stop_btn.click()
    _wait(qtbot, handle)
    assert handle.record.state == "cancelled"
    assert "Resume training continues" in t.status.text()
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").exists()
    assert t.resume_btn.isEnabled()
    from plugins.gan.ui.train_tab import checkpoint_step

    stopped = checkpoint_step(tmp_path / "run")
    assert stopped is not None and 4 <= stopped < 400
    t.form.editor("steps").setValue(stopped + 3)
    t.resume_btn.click()
    resumed = t.handle
    assert resumed is not handle
    _wait(qtbot, resumed)
    assert resumed.record.state == "done", resumed.record.error
    assert checkpoint_step(tmp_path / "run") == stopped + 3


def test_train_without_data_says_what_to_do(panel) -> None:
    assert panel.train.start() is None
    assert "Choose a folder" in panel.train.status.text()


def test_explore_generate_keep_interpolate_edit_export(qtbot, panel, trained_run, tmp_path
                                                       ) -> None:
    ex = panel.explore
    panel.tabs.setCurrentWidget(ex)  # showing the tab computes its GANSpace directions
    assert ex.set_model(trained_run)
    assert ex.label.count() == 3  # any class + 2 classes
    qtbot.waitUntil(lambda: "%" in ex.slider_labels[0].text(), timeout=60_000)
    ex.n.setValue(6)
    ex.seed.setValue(5)
    assert (ex.form.p.n, ex.form.p.seed) == (6, 5)
    ex.gen_btn.click()
    qtbot.waitUntil(lambda: len(ex.grid.tiles) == 6, timeout=60_000)
    assert [s["seed"] for s in ex.samples] == [5, 6, 7, 8, 9, 10]
    before = ex.grid.images.copy()
    # click two samples to keep them; they become A and B
    ex.grid.tiles[0].click()
    ex.grid.tiles[3].click()
    assert ex.kept_list.count() == 2 and ex.ends["a"]["seed"] == 5 and ex.ends["b"]["seed"] == 8
    assert ex.interp_btn.isEnabled()
    h = ex.interpolate()
    _wait(qtbot, h)
    assert ex.strip_frames is not None and len(ex.strip_frames) == ex.frames.value()
    # a GANSpace slider edits every sample in the grid (through a quick interactive job)
    ex.sliders[0].setValue(25)
    qtbot.waitUntil(lambda: ex.samples and ex.samples[0]["edits"][:1] == [2.5], timeout=60_000)
    assert not np.array_equal(ex.grid.images, before)
    # export a kept sample with its recipe
    ex.kept_list.item(0).setSelected(True)
    h = ex.export_selected(tmp_path / "kept.png")
    _wait(qtbot, h)
    assert h.record.state == "done", h.record.error
    text = pngmeta.read_png_text(tmp_path / "kept.png")
    assert text["gan:seed"] == "5" and "gan:latent" in text and "gan:class" in text
    gif = ex.export_gif(tmp_path / "morph.gif")
    _wait(qtbot, gif)
    assert (tmp_path / "morph.gif").exists()
    regen = ex.ask_regenerate(tmp_path / "kept.png")
    _wait(qtbot, regen)
    assert regen.record.state == "done", regen.record.error


def test_evaluate_tab_shows_a_labelled_domain_fd(qtbot, panel, trained_run, tiny_folder
                                                 ) -> None:
    ev = panel.evaluate
    ev.set_model(trained_run)
    ev.form.set_value("data", str(tiny_folder))
    ev.form.editor("n").setValue(20)
    ev.form.editor("classifier_steps").setValue(15)
    h = ev.start()
    assert h is not None and not ev.run_btn.isEnabled()
    _wait(qtbot, h)
    assert h.record.state == "done", h.record.error
    assert "Domain FD" in ev.summary.text() and "never with published FID" in ev.summary.text()
    assert ev.history.rowCount() >= 1


def test_reopening_a_run_puts_its_settings_back(qtbot, panel, tiny_folder, tmp_path) -> None:
    """Reopen a run: the Train form shows the settings it ran with (the DiffAugment list
    included), Resume aims at it, and its model becomes the one to explore."""
    from gan_helpers import TINY, run_job

    rec = run_job("train", data=str(tiny_folder), steps=2, out=str(tmp_path / "old"),
                  diffaug="cutout", holdout=0.25, seed=7, **TINY)
    assert rec.state == "done", rec.error
    t = panel.train
    assert t.form.p.seed != 7
    assert panel.train.host.reopen(tmp_path / "old")
    assert (t.form.p.seed, t.form.p.holdout, t.form.p.steps) == (7, 0.25, 2)
    assert t.form.editor("seed").value() == 7 and t.diffaug.currentData() == "cutout"
    assert t.out.text() == str(tmp_path / "old") and t.resume_btn.isEnabled()
    assert panel.explore.model_path == str(tmp_path / "old")
    # the DiffAugment list sets the field
    t.diffaug.setCurrentIndex(t.diffaug.findData("off"))
    assert t.form.p.diffaug == "off"


def test_train_form_refuses_bad_values_in_words(panel) -> None:
    t = panel.train
    t.form.set_value("data", "digits")
    t.form.set_value("train_size", 24)  # not a power of two (the command line says the same)
    assert t.start() is None
    assert "power of two" in t.status.text() and t.handle is None


def _mime(paths: list[Path]):
    from PySide6.QtCore import QMimeData, QUrl

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _drop(widget, paths: list[Path]) -> bool:
    """Drag ``paths`` over ``widget`` and drop them (the handlers are called directly:
    offscreen, Qt delivers a drop only inside a real drag); True when both were taken."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    mime = _mime(paths)
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter.ignore()
    widget.dragEnterEvent(enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    drop.ignore()
    widget.dropEvent(drop)
    return drop.isAccepted()


def test_dropping_images_or_a_folder_on_train(panel, tiny_folder: Path, tmp_path) -> None:
    from plugins.gan.ui.widgets import dropped_data

    t = panel.train
    assert _drop(t, [tiny_folder])
    assert t.form.p.data == str(tiny_folder)
    images = sorted(p for p in tiny_folder.rglob("*.png"))[:2]
    assert dropped_data(_mime(images)) == (images[0].parent, 2)
    assert _drop(t, images) and t.form.p.data == str(images[0].parent)
    assert "2 dropped images" in t.status.text()
    text = tmp_path / "notes.txt"
    text.write_text("x")
    assert dropped_data(_mime([text])) is None and not _drop(t, [text])


def test_a_png_dropped_on_explore_is_drawn_again(qtbot, panel, trained_run, tmp_path) -> None:
    ex = panel.explore
    assert ex.set_model(trained_run)
    ex.n.setValue(2)
    ex.generate()
    qtbot.waitUntil(lambda: len(ex.samples) == 2, timeout=60_000)
    ex.keep(0)
    h = ex.export_selected(tmp_path / "one.png")
    _wait(qtbot, h)
    assert _drop(ex, [tmp_path / "one.png"])
    qtbot.waitUntil(lambda: ex.strip.image is not None, timeout=60_000)
    qtbot.waitUntil(lambda: "Regenerated into one-again.png" in ex.status.text(),
                    timeout=60_000)
    assert (tmp_path / "one-again.png").exists()


def test_a_quick_start_shows_in_the_train_tab(qtbot, panel, tiny_folder, tmp_path) -> None:
    from plugins.gan.params import TrainParams

    p = TrainParams(data=str(tiny_folder), steps=3, batch_size=8, preview_every=1,
                    checkpoint_every=3)
    panel.tabs.setCurrentWidget(panel.explore)
    handle = panel.train.host.submit("train", p, out=tmp_path / "quick")
    panel.train.host.job_started.emit("train", p, handle)
    t = panel.train
    assert panel.tabs.currentWidget() is t
    assert t.form.p.steps == 3 and t.handle is handle and not t.train_btn.isEnabled()
    _wait(qtbot, handle)
    assert handle.record.state == "done", handle.record.error
    assert t.preview.image is not None  # the job's samples arrived here
    assert t.result.text.text() == "Saved" and t.result.open_button.text() == "Explore it"
    t.result.open_button.click()
    assert panel.tabs.currentWidget() is panel.explore
    assert panel.explore.model_path == str(tmp_path / "quick")
