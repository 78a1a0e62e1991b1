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
    widget.live.setChecked(False)
    widget.show()  # showing it generates a first dungeon
    qtbot.waitUntil(lambda: widget.level is not None, timeout=20000)
    host.manager.wait_idle(20)
    widget.host = host
    return widget


def _idle(panel) -> None:
    assert panel.host.manager.wait_idle(30)


def test_panel_opens_with_a_generated_map_and_its_check(panel) -> None:
    assert panel.level.legend.name == "Dungeon"
    _idle(panel)
    assert panel.last_check is not None and panel.last_check["playable"] == "yes"
    assert panel.view.path  # the agent's path overlay
    assert "playable ✓" in panel.status.text()
    img = panel.grab().toImage()
    assert img.width() > 0


def test_generate_methods_and_undo_redo(panel, qtbot) -> None:
    first = panel.level.grid.copy()
    panel.method.setCurrentIndex([m for _l, m in
                                  __import__("plugins.levels.ui.panel", fromlist=["METHODS"])
                                  .METHODS].index("caves"))
    panel.seed.setValue(5)
    panel.generate()
    qtbot.waitUntil(lambda: panel.level.legend.name == "Cave", timeout=20000)
    caves = panel.level.grid.copy()
    panel.undo.undo()
    assert np.array_equal(panel.level.grid, first)
    panel.undo.redo()
    assert np.array_equal(panel.level.grid, caves)


def test_live_preview_merges_into_one_undo_step(panel, qtbot) -> None:
    panel.live.setChecked(True)
    count = panel.undo.count()
    for seed in (10, 11, 12):
        panel.seed.setValue(seed)
        qtbot.waitUntil(lambda s=seed: panel.level.meta.get("seed") == s, timeout=20000)
    assert panel.undo.count() == count + 1


def test_paint_erase_undo_and_pins(panel, qtbot) -> None:
    view = panel.view
    lv = panel.level
    x, y = 5, 5
    panel.brush.setCurrentIndex(panel.level.legend.chars.index("#"))
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
    assert panel.region_button.isEnabled()
    before = panel.level.grid.copy()
    panel.seed.setValue(77)
    panel.regenerate_selection()
    qtbot.waitUntil(lambda: panel.level.meta.get("regenerated") is not None, timeout=20000)
    after = panel.level.grid
    changed = after != before
    assert changed[2:31, 2:21].any()
    outside = changed.copy()
    outside[2:31, 2:21] = False
    assert not outside.any()
    panel.undo.undo()
    assert np.array_equal(panel.level.grid, before)


def test_open_vglc_check_repair_and_export(panel, qtbot, shared_dir: Path,
                                           tmp_path: Path) -> None:
    smb = shared_dir / "data" / "vglc" / "Super_Mario_Bros"
    panel.open_file(smb / "mario-1-1.txt")
    qtbot.waitUntil(lambda: panel.level.name == "mario-1-1", timeout=20000)
    _idle(panel)
    assert panel.last_check["playable"] == "yes" and panel.view.path
    assert panel.brush.count() == len(panel.level.legend)
    # cut the floor under the start: unplayable, then repaired
    grid = panel.level.grid
    grid[-1, :40] = ord("-")
    panel.view.refresh()
    panel.run_check()
    _idle(panel)
    qtbot.waitUntil(lambda: panel.last_check["playable"] == "no", timeout=20000)
    assert "Not playable" in panel.verdict.text()
    panel.run_repair()
    qtbot.waitUntil(lambda: panel.level.meta.get("repaired") is True, timeout=20000)
    _idle(panel)
    qtbot.waitUntil(lambda: panel.last_check["playable"] == "yes", timeout=20000)
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
    panel.example.setText(str(smb / "mario-1-1.txt"))
    panel.method.setCurrentIndex(0)
    panel.width_spin.setValue(60)
    panel.height_spin.setValue(14)
    panel.generate()
    qtbot.waitUntil(lambda: panel.level.meta.get("method") == "wfc", timeout=20000)
    _idle(panel)
    x, y = 30, 9
    panel.view.set_cells([(x, y, ord("?"))])  # a painted (pinned) question block
    panel.seed.setValue(panel.seed.value() + 1)
    panel.generate()
    qtbot.waitUntil(lambda: panel.level.meta.get("seed") == panel.seed.value(), timeout=20000)
    assert panel.level.grid[y, x] == ord("?")


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
    panel.data.setText(str(data))
    panel.steps.setValue(12)
    panel.run_dir.setText(str(tmp_path / "run"))
    handle = panel.train()
    qtbot.waitUntil(lambda: handle.is_finished, timeout=60000)
    _idle(panel)
    assert handle.record.state == "done", handle.record.error
    assert panel.model_dir.text() == str(tmp_path / "run")
    assert panel.train_preview.pixmap() is not None
    panel.n_samples.setValue(3)
    panel.segments.setValue(2)
    panel.sample()
    qtbot.waitUntil(lambda: panel.sample_list.count() == 3 and "playable" in
                    panel.sample_status.text(), timeout=60000)
    assert panel.level.width == 56  # the first sample is in the editor


def test_plugin_module_imports_neither_torch_nor_qt() -> None:
    code = ("import sys; import plugins.levels.plugin, plugins.levels.jobs; "
            "import plugins.levels.engine.generate, plugins.levels.engine.agents; "
            "bad = [m for m in ('torch', 'PySide6') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""
