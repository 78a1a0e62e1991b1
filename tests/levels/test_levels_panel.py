"""The editor panel with pytest-qt: every action runs a real job on the host's workers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from plugins.levels.engine import files
from plugins.levels.plugin import LevelsPlugin


@pytest.fixture
def panel(qtbot, make_host):
    host = make_host(LevelsPlugin())
    widget = LevelsPlugin().create_panel(host)
    qtbot.addWidget(widget)
    widget.resize(1100, 700)
    widget.generate_tab.live.setChecked(False)
    widget.show()  # showing it generates a first dungeon
    qtbot.waitUntil(lambda: widget.level is not None, timeout=20000)
    host.manager.wait_idle(20)
    widget.host = host
    return widget


def _idle(panel) -> None:
    assert panel.host.manager.wait_idle(30)


def _choose(form, name: str, value: object) -> None:
    """Pick ``value`` in a form's combo box, as a user would."""
    combo = form.editor(name)
    combo.setCurrentIndex(combo.findData(value))


def _report(panel):
    return panel.document.report


def test_panel_opens_with_a_generated_map_and_its_check(panel) -> None:
    assert panel.level.legend.name == "Dungeon"
    _idle(panel)
    assert _report(panel) is not None and _report(panel).playable
    assert panel.view.path  # the agent's path overlay
    assert "playable ✓" in panel.status.text()
    # the Check tab reads as words, not JSON
    table = panel.check_tab.table
    rows = {table.item(i, 0).text(): table.item(i, 1).text() for i in range(table.rowCount())}
    assert panel.check_tab.verdict.text() == "Playable ✓"
    assert rows["Path length"].endswith("tiles") and rows["Agent"].startswith("top-down")
    assert "Rooms reachable" in rows and not any("{" in v for v in rows.values())
    img = panel.grab().toImage()
    assert img.width() > 0


def test_generate_methods_and_undo_redo(panel, qtbot) -> None:
    first = panel.level.grid.copy()
    tab = panel.generate_tab
    _choose(tab.form, "method", "caves")
    assert tab.form.p.method == "caves" and tab.settings_box.title() == "Caves settings"
    tab.form.editor("seed").setValue(5)
    tab.generate()
    qtbot.waitUntil(lambda: panel.level.legend.name == "Cave", timeout=20000)
    caves = panel.level.grid.copy()
    panel.undo.undo()
    assert np.array_equal(panel.level.grid, first)
    panel.undo.redo()
    assert np.array_equal(panel.level.grid, caves)


def test_live_preview_merges_into_one_undo_step(panel, qtbot) -> None:
    panel.generate_tab.live.setChecked(True)
    count = panel.undo.count()
    for seed in (10, 11, 12):
        panel.generate_tab.form.editor("seed").setValue(seed)
        qtbot.waitUntil(lambda s=seed: panel.level.meta.get("seed") == s, timeout=20000)
    assert panel.undo.count() == count + 1


def test_paint_erase_undo_and_pins(panel, qtbot) -> None:
    view = panel.view
    lv = panel.level
    y, x = (int(v) for v in np.argwhere(lv.grid[:20, :20] == ord("."))[0])  # a floor tile
    panel.tile_list.setCurrentRow(panel.level.legend.chars.index("#"))
    pos = QPoint(x * view.tile + 1, y * view.tile + 1)
    before = lv.grid[y, x]
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=pos)
    assert panel.level.grid[y, x] == ord("#")
    assert view.pins[y, x]
    panel.set_tool("erase")
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=pos)
    assert panel.level.grid[y, x] == ord(panel.level.legend.empty)
    panel.undo.undo()
    assert panel.level.grid[y, x] == ord("#")
    panel.undo.undo()
    assert panel.level.grid[y, x] == before
    panel.undo.redo()
    assert panel.level.grid[y, x] == ord("#")


def test_select_and_regenerate_a_region(panel, qtbot) -> None:
    view = panel.view
    panel.set_tool("select")
    t = view.tile
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(2 * t + 1, 2 * t + 1))
    qtbot.mouseMove(view, QPoint(20 * t + 1, 30 * t + 1))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(20 * t + 1, 30 * t + 1))
    assert view.selection == (2, 2, 21, 31)
    tab = panel.generate_tab
    assert tab.region_button.isEnabled()
    before = panel.level.grid.copy()
    tab.form.editor("seed").setValue(77)
    tab.regenerate_selection()
    qtbot.waitUntil(lambda: panel.level.meta.get("regenerated") is not None, timeout=20000)
    after = panel.level.grid
    changed = after != before
    assert changed[2:31, 2:21].any()
    outside = changed.copy()
    outside[2:31, 2:21] = False
    assert not outside.any()
    assert tab.form.p.seed == 78  # the next press gives another variant
    panel.undo.undo()
    assert np.array_equal(panel.level.grid, before)


def test_open_vglc_check_repair_and_export(panel, qtbot, shared_dir: Path,
                                           tmp_path: Path) -> None:
    smb = shared_dir / "data" / "vglc" / "Super_Mario_Bros"
    panel.open_file(smb / "mario-1-1.txt")
    qtbot.waitUntil(lambda: panel.level.name == "mario-1-1", timeout=20000)
    _idle(panel)
    assert _report(panel).playable and panel.view.path
    assert panel.tile_list.count() == len(panel.level.legend)
    # cut the floor under the start: unplayable, then repaired
    cells = [(x, panel.level.height - 1, ord("-")) for x in range(40)]
    panel.document.set_cells(cells)
    panel.check_tab.run_check()
    _idle(panel)
    qtbot.waitUntil(lambda: _report(panel) is not None and not _report(panel).playable,
                    timeout=20000)
    assert "Not playable" in panel.check_tab.verdict.text()
    panel.check_tab.run_repair()
    qtbot.waitUntil(lambda: panel.level.meta.get("repaired") is True, timeout=20000)
    _idle(panel)
    qtbot.waitUntil(lambda: _report(panel) is not None and _report(panel).playable,
                    timeout=20000)
    # export: Tiled with an external tileset, then VGLC text
    out = tmp_path / "export" / "fixed.tmj"
    panel.export_to(out, "external")
    _idle(panel)
    doc = json.loads(out.read_text())
    assert doc["tilesets"][0]["source"] == "fixed.tsj"
    assert any(layer["type"] == "objectgroup" for layer in doc["layers"])  # the agent path
    back = files.load_level(out)
    assert np.array_equal(back.grid, panel.level.grid)
    panel.export_to(tmp_path / "export" / "fixed.txt")
    _idle(panel)
    assert (tmp_path / "export" / "fixed.txt").read_text().splitlines() == panel.level.lines()


def test_wfc_from_the_current_level_keeps_painted_pins(panel, qtbot,
                                                       shared_dir: Path) -> None:
    smb = shared_dir / "data" / "vglc" / "Super_Mario_Bros"
    tab = panel.generate_tab
    tab.load_example(smb / "mario-1-1.txt")
    qtbot.waitUntil(lambda: tab.example is not None, timeout=20000)
    assert tab.example.name == "mario-1-1" and "mario-1-1" in tab.example_label.text()
    _choose(tab.form, "method", "wfc")
    tab.form.editor("width").setValue(60)
    tab.form.editor("height").setValue(14)
    tab.generate()
    qtbot.waitUntil(lambda: panel.level.meta.get("method") == "wfc", timeout=20000)
    _idle(panel)
    x, y = 30, 9
    panel.document.set_cells([(x, y, ord("?"))])  # a painted (pinned) question block
    assert panel.document.pinned() == {(x, y): ord("?")}
    seed = tab.form.p.seed + 1
    tab.form.editor("seed").setValue(seed)
    tab.generate()
    qtbot.waitUntil(lambda: panel.level.meta.get("seed") == seed, timeout=20000)
    assert panel.level.grid[y, x] == ord("?")
    # without an example file WFC learns from the level being edited
    prev = panel.level.name
    tab.set_example(None)
    tab.form.editor("seed").setValue(seed + 1)
    tab.generate()
    qtbot.waitUntil(lambda: panel.level.meta.get("seed") == seed + 1, timeout=20000)
    assert panel.level.meta["example"] == prev


def test_bad_file_shows_a_message_not_a_crash(panel, qtbot, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("")
    panel.open_file(bad)
    _idle(panel)
    qtbot.waitUntil(lambda: "could not open" in panel.status.text(), timeout=10000)
    assert panel.level.legend.name == "Dungeon"  # the edited level is untouched


def test_train_and_sample_from_the_learn_tab(panel, qtbot, shared_dir: Path,
                                             tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    data = tmp_path / "smb"
    data.mkdir()
    src = shared_dir / "data" / "vglc" / "Super_Mario_Bros"
    for name in ("mario-1-1.txt", "smb.json"):
        shutil.copy(src / name, data / name)
    tab = panel.learn_tab
    tab.train_form.set_value("data", data)
    tab.train_form.editor("steps").setValue(12)
    tab.set_run_folder(tmp_path / "run")
    handle = tab.train()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=60000)
    _idle(panel)
    assert handle.record.state == "done", handle.record.error
    assert tab.sample_form.p.model == tmp_path / "run"
    assert tab.run_folder == tmp_path / "run"
    assert not tab.train_preview.pixmap().isNull()
    tab.sample_form.editor("n").setValue(3)
    tab.sample_form.editor("segments").setValue(2)
    tab.sample()
    qtbot.waitUntil(lambda: tab.sample_list.count() == 3 and "playable" in
                    tab.sample_status.text(), timeout=60000)
    assert panel.level.width == 56  # the first sample is in the editor
    assert panel.document.report is not None  # with its check


def test_plugin_params_and_jobs_import_neither_torch_nor_qt() -> None:
    code = ("import sys; import plugins.levels.plugin, plugins.levels.jobs; "
            "import plugins.levels.params; "
            "import plugins.levels.engine.generate, plugins.levels.engine.agents; "
            "bad = [m for m in ('torch', 'PySide6') if m in sys.modules]; "
            "import plugins.levels.ui.panel; "
            "bad += ['torch (ui)'] if 'torch' in sys.modules else []; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def test_palette_and_path_toggle_stay_visible_when_narrow(panel, qtbot) -> None:
    """Plain layouts, not toolbars: nothing hides behind an overflow arrow."""
    panel.resize(760, 560)
    qtbot.wait(50)
    for w in (panel.tile_list, panel.tools.path_toggle, panel.toolbar.file_button,
              panel.toolbar.undo_button, *panel.tools.tool_buttons.values()):
        assert w.isVisible() and not w.visibleRegion().isEmpty(), w
    assert panel.tile_list.count() == len(panel.level.legend)


def test_no_scratch_files_and_reopened_runs_fill_the_form(panel, qtbot, tmp_path: Path
                                                          ) -> None:
    from plugins.levels.params import TrainParams

    panel.check_tab.run_check()
    panel.export_to(tmp_path / "out.txt")
    _idle(panel)
    assert (tmp_path / "out.txt").exists()
    assert not (panel.host.workspace / "levels" / "scratch").exists()
    params = TrainParams(data=tmp_path / "levels", steps=77, width=20)
    panel.host.run_reopened.emit("train", params, tmp_path / "old-run")
    tab = panel.learn_tab
    assert tab.train_form.p.steps == 77 and tab.train_form.editor("steps").value() == 77
    assert tab.run_folder == tmp_path / "old-run" and tab.run_label.text() == "old-run"


def test_forms_remember_their_values(panel, qtbot, make_host) -> None:
    tab = panel.generate_tab
    _choose(tab.form, "method", "terrain")
    tab.form.editor("octaves").setValue(6)
    tab.generate()
    _idle(panel)
    again = LevelsPlugin().create_panel(make_host(LevelsPlugin()))
    qtbot.addWidget(again)
    assert again.generate_tab.form.p.method == "terrain"
    assert again.generate_tab.form.editor("octaves").value() == 6


def test_tileset_image_draws_and_exports(panel, qtbot, tmp_path: Path) -> None:
    from PIL import Image

    from plugins.levels.engine.render import TilesetImage

    n = len(panel.level.legend)
    sheet = np.zeros((8, 8 * n, 3), dtype=np.uint8)
    for i in range(n):
        sheet[:, 8 * i:8 * i + 8] = (40 * i % 256, 200, 255 - 30 * i % 256)
    Image.fromarray(sheet).save(tmp_path / "tiles.png")
    panel.set_tileset(TilesetImage(tmp_path / "tiles.png", 8, 8))
    assert panel.view.tiles is not None and panel.view.tiles.shape == (n, 8, 8, 3)
    panel.export_to(tmp_path / "pic.png")
    _idle(panel)
    pic = np.asarray(Image.open(tmp_path / "pic.png").convert("RGB"))
    assert pic.shape[:2] == (panel.level.height * 8, panel.level.width * 8)
    panel.set_tileset(TilesetImage(tmp_path / "missing.png", 8, 8))  # a message, no crash
    assert panel.document.tileset is None and panel.view.tiles is None


def test_check_tab_says_which_agent_direction_and_physics_judged(panel, qtbot,
                                                                  tmp_path: Path) -> None:
    from test_levels_games import TOWER, tower_rows

    (tmp_path / "tower.json").write_text(json.dumps({"tiles": TOWER}), encoding="utf-8")
    (tmp_path / "sealed.txt").write_text("\n".join(tower_rows(sealed=True)) + "\n",
                                         encoding="utf-8")
    panel.open_file(tmp_path / "sealed.txt")
    qtbot.waitUntil(lambda: panel.level.name == "sealed", timeout=20000)
    _idle(panel)
    tab = panel.check_tab
    qtbot.waitUntil(lambda: _report(panel) is not None, timeout=20000)

    def rows() -> dict[str, str]:
        return {tab.table.item(i, 0).text(): tab.table.item(i, 1).text()
                for i in range(tab.table.rowCount())}

    assert "Not playable" in tab.verdict.text()
    shown = rows()
    assert shown["Agent"] == "platformer (jumps)"
    assert shown["Direction"].startswith("from the bottom to the top")
    assert shown["Physics"].startswith("jumps up to 4 tiles high")
    assert "rows below the top" in shown["Why not"]
    _choose(tab.form, "direction", "right")  # the artist overrides the direction
    tab.run_check()
    _idle(panel)
    qtbot.waitUntil(lambda: rows().get("Direction", "").endswith("(as you set it)"),
                    timeout=20000)
    assert rows()["Direction"] == "left to right (as you set it)"


def _drop(widget, paths: list[Path]) -> bool:
    """Drag ``paths`` over ``widget`` and drop them, as a file manager would (the handlers are
    called directly: offscreen, Qt delivers a drop only inside a real drag); True when both
    the drag and the drop were taken."""
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter.ignore()
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    drop.ignore()
    widget.dragEnterEvent(enter)
    if enter.isAccepted():
        widget.dropEvent(drop)
    return enter.isAccepted() and drop.isAccepted()


def test_a_level_file_dropped_on_the_panel_opens_in_the_editor(panel, qtbot,
                                                               tmp_path: Path) -> None:
    _idle(panel)
    panel.export_to(tmp_path / "mine.tmj")
    _idle(panel)
    # the export says so in words, with the file behind the buttons (no path in the text)
    assert panel.result.isVisibleTo(panel) and panel.result.path == tmp_path / "mine.tmj"
    assert str(tmp_path) not in panel.result.text.text()
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n")
    assert not _drop(panel, [tmp_path / "photo.png"])  # not a level: refused
    assert panel.acceptDrops() and _drop(panel, [tmp_path / "photo.png", tmp_path / "mine.tmj"])
    qtbot.waitUntil(lambda: panel.level.name == "mine", timeout=20000)
    _idle(panel)
    assert panel.level.legend.name == "Dungeon"


def test_a_quick_start_shows_its_levels_in_the_generate_tab(panel, qtbot) -> None:
    from plugins.levels.params import GenerateParams

    panel.tabs.setCurrentWidget(panel.check_tab)
    p = GenerateParams(method="caves", count=3, seed=5)
    handle = panel.host.submit("generate", p)
    panel.host.job_started.emit("generate", p, handle)
    tab = panel.generate_tab
    assert panel.tabs.currentWidget() is tab
    assert tab.form.p.method == "caves" and tab.form.p.count == 3  # its settings in the form
    qtbot.waitUntil(lambda: handle.is_finished, timeout=30000)
    _idle(panel)
    assert handle.record.state == "done", handle.record.error
    assert tab.batch_list.isVisibleTo(tab) and tab.batch_list.count() == 3
    assert panel.level.meta.get("method") == "caves"
    saved = tab.result.path
    assert tab.result.isVisibleTo(tab) and saved is not None and saved.exists()
    tab.batch_list.setCurrentRow(2)
    assert panel.level.name == handle.record.result.levels[2].name
    assert panel.document.report is handle.record.result.report(2)
