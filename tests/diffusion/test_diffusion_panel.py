"""The diffusion panel as issue 16 asks: one grammar (header, primary buttons, no loss plot of
its own beside the Live plots dock), drops (a folder or images onto Train, a picture onto the
canvas), a quick start from the welcome page shown on the Train page, and progress that says
which phase a training is in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QAbstractButton, QLabel

from plugins.diffusion.params import TrainParams
from plugins.diffusion.plugin import DiffusionPlugin

WAIT_MS = 90_000


@pytest.fixture
def panel(qtbot: Any, make_host: Any) -> Any:
    from plugins.diffusion.ui.panel import DiffusionPanel

    host = make_host(DiffusionPlugin())
    widget = DiffusionPanel(host)
    widget.resize(1100, 700)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def _mime(paths: list[Path]) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _drop(widget: Any, paths: list[Path]) -> bool:
    """Drag ``paths`` over ``widget`` and drop them (the handlers are called directly:
    offscreen, Qt delivers a drop only inside a real drag); True when both were taken."""
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


def test_one_grammar_header_primaries_and_no_loss_plot_of_its_own(panel: Any) -> None:
    import pyqtgraph as pg

    titles = [w.text() for w in panel.findChildren(QLabel, "pluginTitle")]
    assert titles == ["Diffusion editor"]
    primaries = {b.text() for b in panel.findChildren(QAbstractButton, "primary")}
    assert primaries == {"Generate", "Train"}
    assert panel.edit.cancel_button.text() == "Stop"
    assert [panel.train.start_button.text(), panel.train.cancel_button.text(),
            panel.train.resume_button.text()] == ["Train", "Stop", "Resume training"]
    # the loss is the Live plots dock's: no second plot in another style on the Train page
    assert not panel.findChildren(pg.PlotWidget)
    # advanced settings start folded on both pages
    assert panel.edit.advanced.isHidden() and not panel.edit.show_advanced.isChecked()
    assert panel.train.advanced.isHidden() and not panel.train.show_advanced.isChecked()
    # no tick box that changes what Train does: Resume training is its own button
    labels = [b.text() for b in panel.findChildren(QAbstractButton)]
    assert not [t for t in labels if t.startswith("Resume the run")]
    assert not panel.train.resume_button.isEnabled()  # nothing to resume yet


def test_a_folder_or_images_dropped_on_train_become_the_data(panel: Any,
                                                            image_folder: Path,
                                                            tmp_path: Path) -> None:
    tab = panel.train
    assert _drop(tab, [image_folder])
    assert tab.form.p.data == str(image_folder)
    assert tab.form.editor("data").text() == str(image_folder)  # type: ignore[attr-defined]
    images = sorted((image_folder / "a").glob("img*.png"))[:2]
    assert _drop(tab, images) and tab.form.p.data == str(image_folder / "a")
    assert "2 dropped images" in tab.status.text()
    text = tmp_path / "notes.txt"
    text.write_text("x")
    assert not _drop(tab, [text]) and tab.form.p.data == str(image_folder / "a")
    # images from two folders: which folder is meant is unclear, so nothing changes
    mixed = [next((image_folder / "a").glob("img*.png")),
             next((image_folder / "b").glob("img*.png"))]
    assert not _drop(tab, mixed)


def test_a_picture_dropped_on_the_canvas_opens(panel: Any, photo: Path,
                                               tmp_path: Path) -> None:
    edit = panel.edit
    canvas = edit.canvas
    assert edit.doc.is_empty
    assert _drop(canvas, [photo])
    assert not edit.doc.is_empty and (edit.doc.width, edit.doc.height) == (40, 48)
    assert "Opened photo.png" in edit.status.text()
    other = tmp_path / "notes.txt"
    other.write_text("x")
    assert not _drop(canvas, [other])


def test_a_quick_start_shows_on_the_train_page(qtbot: Any, panel: Any,
                                               image_folder: Path) -> None:
    """The welcome page submits through the host and emits job_started: the Train page shows
    the job's settings, progress and sample grids, and its result."""
    host = panel.host
    p = TrainParams(data=str(image_folder), preset="tiny", steps=3, batch_size=2,
                    sample_every=2)
    assert panel.tabs.currentWidget() is panel.edit
    handle = host.submit("train", p)
    host.job_started.emit("train", p, handle)
    tab = panel.train
    assert panel.tabs.currentWidget() is tab and tab.handle is handle
    assert tab.form.p.preset == "tiny" and tab.form.p.steps == 3
    assert tab.form.editor("steps").value() == 3  # type: ignore[attr-defined]
    assert not tab.start_button.isEnabled() and tab.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: tab.handle is None, timeout=WAIT_MS)
    assert handle.record.state == "done", handle.record.error
    assert tab.grid_label.pixmap() is not None and not tab.grid_label.pixmap().isNull()
    assert "Done at step 3" in tab.status.text()
    assert tab.result.open_button.text() == "Use in editor" and tab.resume_button.isEnabled()


def test_reading_images_is_a_phase_of_its_own_not_steps(panel: Any) -> None:
    tab = panel.train
    tab.progress.show()
    tab._on_progress({"done": 1797, "total": 1797, "message": "reading images"})
    assert tab.progress.format() == "Reading images: 1,797 of 1,797"
    assert tab.status.text() == "Reading images…"
    tab._on_progress({"done": 80, "total": 400, "message": "step 80/400, loss 0.08",
                      "rate": 9.9, "eta": 32})
    assert tab.progress.format() == "Step 80 of 400"
    assert tab.status.text().startswith("Training · ") and "loss" not in tab.status.text()
