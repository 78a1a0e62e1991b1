"""The canvas editor with pytest-qt: brush strokes with undo/redo, a real inpainting job from the
canvas whose result arrives as a layer, layers, history, outpainting, PNG export and training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtTest import QTest

from plugins.diffusion.plugin import DiffusionPlugin

WAIT_MS = 90_000


@pytest.fixture
def panel(qtbot: Any, make_host: Any) -> Any:
    from plugins.diffusion.ui.panel import DiffusionPanel

    host = make_host(DiffusionPlugin())
    widget = DiffusionPanel(host)
    widget.resize(1200, 800)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def _stroke(view: Any, points: list[tuple[float, float]]) -> None:
    """Drag the left button through image coordinates ``points`` on the canvas."""
    vp = view.viewport()

    def at(p: tuple[float, float]) -> QPoint:
        return view.mapFromScene(QPointF(*p))

    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(points[0]))
    for p in points[1:]:
        QTest.mouseMove(vp, at(p))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       at(points[-1]))


def _open_photo(panel: Any, photo: Path) -> Any:
    edit = panel.edit
    assert edit.open_image(photo)
    edit.canvas.fit()
    return edit


def test_brush_stroke_undo_redo(panel: Any, photo: Path) -> None:
    edit = _open_photo(panel, photo)
    doc = edit.doc
    assert doc.mask_array().max() == 0
    edit.canvas.brush_size = 8
    edit.canvas.hardness = 1.0
    _stroke(edit.canvas, [(5, 24), (15, 24), (25, 24), (35, 24)])
    painted = doc.mask_array()
    assert painted[24, 20] > 0.9 and painted[24, 5:35].min() > 0.5  # along the stroke
    assert painted[2, 2] == 0 and painted[45, 20] == 0  # and nowhere else
    assert edit.act_undo.isEnabled()
    doc.undo_stack.undo()
    assert doc.mask_array().max() == 0
    doc.undo_stack.redo()
    np.testing.assert_array_equal(doc.mask_array(), painted)
    # the eraser removes part of it, also undoably
    edit.set_tool("eraser")
    _stroke(edit.canvas, [(20, 18), (20, 30)])
    assert doc.mask_array()[24, 20] < 0.1 and doc.mask_array()[24, 8] > 0.9
    doc.undo_stack.undo()
    np.testing.assert_array_equal(doc.mask_array(), painted)
    # opening the image was undoable too
    while doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    assert doc.is_empty


def test_inpaint_from_the_canvas_adds_a_result_layer(qtbot: Any, panel: Any, pixel_model: Path,
                                                     photo: Path) -> None:
    edit = _open_photo(panel, photo)
    edit.set_model(str(pixel_model))
    qtbot.waitUntil(lambda: edit.model_info is not None, timeout=WAIT_MS)
    assert "unconditional 16 px" in edit.model_label.text()
    original = edit.doc.flatten().copy()
    edit.canvas.brush_size = 12
    edit.canvas.hardness = 1.0
    _stroke(edit.canvas, [(10, 20), (25, 20)])
    mask = edit.doc.mask_array()
    edit.set_mode("inpaint")
    edit.gen.editor("steps").setValue(4)
    edit.gen.editor("seed").setValue(7)
    handle = edit.generate()
    assert handle is not None and not edit.generate_button.isEnabled()
    qtbot.waitUntil(lambda: len(edit.doc.layers) == 2 and edit.handle is None, timeout=WAIT_MS)
    result = edit.doc.layers[-1]
    assert result.params["mode"] == "inpaint" and result.params["seed"] == 7
    assert result.name.startswith("inpaint")
    flat = edit.doc.flatten().astype(int)
    assert np.abs(flat - original)[mask == 0].max() <= 1
    assert np.abs(flat - original)[mask > 0.99].mean() > 3
    assert edit.layers.list.count() == 2 and edit.history.count() == 1
    assert "Done: 1 image added as layer." in edit.status.text()
    # the saved file is behind the result line, not printed as a path
    assert not edit.result.isHidden() and edit.result.path is not None
    assert edit.result.path.is_file() and str(edit.result.path) not in edit.status.text()
    # the result is undoable like a stroke
    edit.doc.undo_stack.undo()
    assert len(edit.doc.layers) == 1
    edit.doc.undo_stack.redo()
    assert len(edit.doc.layers) == 2
    # the job received the canvas and the mask as arrays (no scratch files)
    sent = handle.record.params
    assert sent.image.shape == (48, 40, 3) and np.array_equal(sent.mask, mask)
    assert not (edit.host.workspace / "tmp").exists()
    # a history entry restores its settings with one click: its typed params, into the forms
    edit.gen.editor("seed").setValue(99)
    edit.gen.editor("steps").setValue(30)
    edit.forms["inpaint"].editor("strength").setValue(0.5)
    edit.set_mode("img2img")
    item = edit.history.item(0)
    edit.history.itemClicked.emit(item)
    assert edit.gen.editor("seed").value() == 7 and edit.gen.editor("steps").value() == 4
    assert edit.gen.p.steps == 4 and edit.forms["inpaint"].p.strength == 1.0
    assert edit.mode == "inpaint"


def test_layers_visibility_opacity_and_order(panel: Any, photo: Path) -> None:
    edit = _open_photo(panel, photo)
    doc = edit.doc
    red = np.zeros((48, 40, 3), np.uint8)
    red[..., 0] = 255
    top = doc.add_result(red, "red", {"seed": 1, "mode": "txt2img"})
    assert doc.flatten()[0, 0].tolist() == [255, 0, 0]
    doc.set_opacity(top.id, 0.5)
    assert 100 < doc.flatten()[0, 0, 0] < 255
    doc.set_visible(top.id, False)
    base = doc.flatten()[0, 0].tolist()
    assert base != [255, 0, 0]
    doc.undo_stack.undo()  # visible again
    doc.undo_stack.undo()  # opacity back to 1
    assert doc.flatten()[0, 0].tolist() == [255, 0, 0]
    doc.move_layer(top.id, -1)  # below the photo now
    assert doc.layers[0].id == top.id and doc.flatten()[0, 0].tolist() == base
    doc.undo_stack.undo()
    assert doc.layers[-1].id == top.id
    # the layers list mirrors it: top layer first, checkbox = visibility
    assert edit.layers.list.item(0).text() == "red"
    edit.layers.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert not doc.layers[-1].visible


def test_grow_canvas_masks_the_new_area(panel: Any, photo: Path) -> None:
    edit = _open_photo(panel, photo)
    edit.outpaint.editor("right").setValue(16)
    edit.outpaint.editor("top").setValue(8)
    edit.grow()
    doc = edit.doc
    assert (doc.width, doc.height) == (56, 56)
    m = doc.mask_array()
    assert m[0, 0] == 1.0 and m[30, 50] == 1.0 and m[30, 10] == 0.0
    assert edit.mode == "inpaint"
    doc.undo_stack.undo()
    assert (doc.width, doc.height) == (40, 48) and doc.mask_array().max() == 0


def test_export_png_carries_parameters_and_reads_back(panel: Any, photo: Path,
                                                      tmp_path: Path) -> None:
    from plugins.diffusion.engine.infotext import read_png_parameters

    edit = _open_photo(panel, photo)
    params = {"prompt": "a tiny house", "steps": 12, "scheduler": "unipc", "seed": 321,
              "guidance": 5.5, "mode": "img2img", "strength": 0.35, "width": 40, "height": 48}
    edit.doc.add_result(np.full((48, 40, 3), 90, np.uint8), "result", params)
    out = edit.export_png(tmp_path / "export.png")
    p = read_png_parameters(out)
    assert (p.prompt, p.steps, p.scheduler, p.seed, p.strength) == ("a tiny house", 12, "UniPC",
                                                                    321, 0.35)
    edit.gen.editor("prompt").setPlainText("something else")
    edit.gen.editor("seed").setValue(1)
    assert edit.read_parameters(out)
    assert edit.gen.editor("prompt").toPlainText() == "a tiny house"
    assert edit.gen.editor("seed").value() == 321 and edit.gen.p.seed == 321
    assert edit.gen.editor("scheduler").currentText() == "UniPC" and edit.mode == "img2img"
    assert edit.forms["img2img"].p.strength == 0.35
    assert not edit.read_parameters(photo)  # a PNG without parameters: a message, no crash
    assert "no generation parameters" in edit.status.text()


def test_bad_inputs_in_the_editor_show_messages(panel: Any, tmp_path: Path) -> None:
    edit = panel.edit
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    assert not edit.open_image(bad)
    assert "not an image" in edit.status.text()
    assert edit.generate() is None and "Choose a model" in edit.status.text()
    # each mode shows its own job's settings: the strength of img2img and of inpainting differ
    strength = {job: edit.forms[job].widget("strength") for job in ("img2img", "inpaint")}
    edit.set_mode("sample")
    assert not strength["img2img"].isVisible() and not strength["inpaint"].isVisible()
    edit.set_mode("img2img")
    assert strength["img2img"].isVisible() and not strength["inpaint"].isVisible()
    assert (edit.forms["img2img"].p.strength, edit.forms["inpaint"].p.strength) == (0.6, 1.0)
    edit.gen.set_value("model", Path("/nowhere"))
    edit.set_mode("inpaint")
    assert edit.forms["inpaint"].widget("mask_blur").isVisible()
    assert edit.generate() is None and "Open an image" in edit.status.text()


def test_train_tab_trains_and_hands_the_model_to_the_editor(qtbot: Any, panel: Any,
                                                            image_folder: Path,
                                                            tmp_path: Path) -> None:
    tab = panel.train
    data = tab.form.editor("data")
    data.setText(str(image_folder))
    data.editingFinished.emit()
    preset = tab.form.editor("preset")
    preset.setCurrentIndex(preset.findData("tiny"))
    tab.form.editor("steps").setValue(3)
    tab.form.editor("batch_size").setValue(2)
    tab.out_edit.setText(str(tmp_path / "run"))
    assert tab.start() is not None
    qtbot.waitUntil(lambda: tab.handle is None, timeout=WAIT_MS)
    assert "Done at step 3" in tab.status.text(), tab.status.text()
    assert tab.grid_label.pixmap() is not None and not tab.grid_label.pixmap().isNull()
    assert "step 3" in tab.grid_caption.text()
    # the result line offers the model to the editor; Resume training aims at the run
    assert not tab.result.isHidden() and tab.result.text.text() == "Saved"
    assert tab.result.open_button.text() == "Use in editor"
    assert tab.resume_button.isEnabled() and tab.target_run() == tmp_path / "run"
    # the next session's form starts with these settings
    assert panel.host.recall("train", type(tab.form.p)).data == str(image_folder)
    tab.result.open_button.click()
    assert panel.tabs.currentWidget() is panel.edit
    assert panel.edit.gen.p.model == tmp_path / "run" / "model"
    # reopening the run (Open run…) puts its settings and grid back
    other = type(tab.form.p)()
    tab.form.set(other)
    tab.out_edit.clear()
    tab.grid_label.set_picture(QPixmap())
    assert panel.host.reopen(tmp_path / "run")
    assert tab.form.p.steps == 3 and tab.form.p.preset == "tiny"
    assert tab.form.editor("steps").value() == 3
    assert "step 3" in tab.grid_caption.text()
    assert tab.out_edit.text() == str(tmp_path / "run") and tab.resume_button.isEnabled()
    # Resume training continues the run up to the steps asked for
    tab.form.editor("steps").setValue(5)
    handle = tab.resume()
    assert handle is not None and handle.record.params.resume
    qtbot.waitUntil(lambda: tab.handle is None, timeout=WAIT_MS)
    assert handle.record.state == "done", handle.record.error
    assert "Done at step 5" in tab.status.text(), tab.status.text()


def test_cancel_from_the_editor_keeps_the_canvas(qtbot: Any, panel: Any, pixel_model: Path,
                                                 photo: Path) -> None:
    edit = _open_photo(panel, photo)
    edit.gen.set_value("model", pixel_model)
    edit.set_mode("img2img")
    edit.forms["img2img"].editor("strength").setValue(1.0)
    edit.gen.editor("steps").setValue(1000)
    handle = edit.generate()
    qtbot.waitUntil(lambda: handle.record.done >= 1, timeout=WAIT_MS)
    edit.cancel_button.click()
    qtbot.waitUntil(lambda: edit.handle is None, timeout=WAIT_MS)
    assert handle.record.state == "cancelled" and handle.record.done < 1000
    assert len(edit.doc.layers) == 1 and "Stopped" in edit.status.text()
    assert not edit.canvas.preview_visible and edit.generate_button.isEnabled()


def test_text_to_image_on_an_empty_canvas_creates_the_picture(qtbot: Any, panel: Any,
                                                              text_model: Path) -> None:
    edit = panel.edit
    edit.set_model(str(text_model))
    qtbot.waitUntil(lambda: edit.model_info is not None, timeout=WAIT_MS)
    assert edit.gen.editor("prompt").isEnabled()
    edit.gen.editor("prompt").setPlainText("a green tree")
    edit.gen.editor("steps").setValue(3)
    edit.gen.editor("n").setValue(2)
    assert edit.generate() is not None
    qtbot.waitUntil(lambda: edit.handle is None, timeout=WAIT_MS)
    doc = edit.doc
    assert (doc.width, doc.height) == (32, 32) and len(doc.layers) == 2
    assert doc.layers[0].visible and not doc.layers[1].visible  # variations start hidden
    assert [layer.params["seed"] for layer in doc.layers] == [1, 2]
    assert doc.layers[0].params["prompt"] == "a green tree"
    assert edit.history.count() == 2
