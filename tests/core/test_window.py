"""The main window with pytest-qt: navigator, docks, jobs, plots, cancel, errors, closing."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from studio import settings as settings_mod
from studio.jobs import CANCELLED, DONE, FAILED
from studio.params import Range, Widget
from studio.window import ErrorPage, MainWindow


@pytest.fixture
def window(qtbot):
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win._force_close = True  # tests close without the confirmation dialog unless they ask
    yield win
    win.shutdown(timeout=10)


def _nav_ids(win: MainWindow) -> list[str]:
    return [win.navigator.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(win.navigator.count())]


def test_window_lists_plugins_and_docks(window: MainWindow) -> None:
    assert window.windowTitle() == "Generative Studio"
    ids = _nav_ids(window)
    assert ids[0] == "demo" and "broken" in ids
    assert {"gan", "music", "diffusion", "writer", "levels"} <= set(ids)
    assert {d.windowTitle() for d in (window.jobs_dock, window.plots_dock, window.log_dock)} == {
        "Jobs", "Live plots", "Log"}
    broken_item = window.navigator.item(ids.index("broken"))
    assert "(disabled)" in broken_item.text()


def test_broken_plugin_page_shows_the_error(window: MainWindow) -> None:
    page = window.select_plugin("broken")
    assert isinstance(page, ErrorPage)
    texts = " ".join(w.text() for w in page.findChildren(type(window.job_label)))
    assert "broken on purpose" in texts


def test_job_progress_and_metrics_reach_dock_and_plot(window: MainWindow, qtbot) -> None:
    panel = window.select_plugin("demo")
    form = panel.forms["count"]
    form.form.editor("steps").setValue(12)
    qtbot.mouseClick(form.run_button, Qt.MouseButton.LeftButton)
    handle = form.handle
    assert handle is not None
    qtbot.waitUntil(lambda: handle.is_finished, timeout=20000)
    window.manager.drain()
    assert handle.record.state == DONE
    item = window.jobs_widget.items[handle.id]
    assert item.text(1) == DONE
    assert window.jobs_widget.bars[handle.id].value() == 1000
    window.plots_widget._force_redraw()
    assert window.plots_widget.current_source == handle.id
    assert window.plots_widget.curve_names() == ["loss/a", "loss/b"]  # lr: under Advanced
    window.plots_widget.advanced.setChecked(True)
    assert window.plots_widget.curve_names() == ["loss/a", "loss/b", "lr"]
    x, y = window.plots_widget.curve_data("lr")
    assert list(x) == list(range(1, 13)) and set(y) == {0.1}
    assert "done" in form.status.text()


def test_cancel_button_stops_a_running_job(window: MainWindow, qtbot) -> None:
    host = window.hosts.get("demo") or (window.select_plugin("demo") and window.hosts["demo"])
    handle = host.submit("slow", {"seconds": 60})
    qtbot.waitUntil(lambda: handle.record.state == "running", timeout=20000)
    window.manager.drain()
    qtbot.mouseClick(window.jobs_widget.cancel_buttons[handle.id], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: handle.is_finished, timeout=10000)
    window.manager.drain()
    assert handle.record.state == CANCELLED
    assert window.jobs_widget.items[handle.id].text(1) == CANCELLED
    assert not window.jobs_widget.cancel_buttons[handle.id].isEnabled()


def test_failing_job_shows_error_and_app_keeps_working(window: MainWindow, qtbot) -> None:
    window.select_plugin("demo")
    host = window.hosts["demo"]
    bad = host.submit("fail", {})
    qtbot.waitUntil(lambda: bad.is_finished, timeout=20000)
    window.manager.drain()
    assert bad.record.state == FAILED
    message = window.jobs_widget.items[bad.id].text(5)
    assert message == "ZeroDivisionError: division by zero in step 1"
    assert "Traceback" in window.log_widget.text()
    good = host.submit("echo", {"text": "still alive"})
    qtbot.waitUntil(lambda: good.is_finished, timeout=20000)
    assert good.record.state == DONE and good.record.result == "still alive"


def test_open_run_restores_curves_from_metrics_jsonl(window: MainWindow, tmp_path: Path) -> None:
    run = tmp_path / "old_run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(
        f'{{"step": {i}, "name": "loss/G", "value": {1.0 / i}}}\n' for i in range(1, 51)))
    window.show()
    window.open_run(run)
    window.plots_widget._force_redraw()
    assert window.plots_widget.curve_names() == ["loss/G"]
    x, y = window.plots_widget.curve_data("loss/G")
    assert len(x) == 50 and y[0] == 1.0


def test_plots_draw_their_grid_apart_from_the_axes(window: MainWindow, tmp_path: Path) -> None:
    """The grid is a GridItem in each view; an axis grid would make every curve update repaint
    the axes and their text (2-3x the cost of a redraw, bench/plot_cost.py)."""
    import pyqtgraph as pg

    run = tmp_path / "grid_run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(
        f'{{"step": {i}, "name": "{n}", "value": {i % 7}}}\n'
        for i in range(1, 21) for n in ("loss/D", "loss/G", "diversity")))
    window.open_run(run)
    window.plots_widget._force_redraw()
    plots = window.plots_widget._plots
    assert sorted(plots) == ["diversity", "loss"]
    for plot in plots.values():
        grids = [item for item in plot.items if isinstance(item, pg.GridItem)]
        assert len(grids) == 1
        assert all(plot.getAxis(a).grid is False for a in ("left", "bottom"))


def test_replaced_plots_leave_no_qt_objects_for_the_garbage_collector(
        window: MainWindow, tmp_path: Path) -> None:
    """pyqtgraph plots sit in reference cycles; if Python's collector frees their Qt objects it
    may do so on a job's worker thread, which crashed the app. Replaced plots must be
    destroyed on the GUI thread, leaving only empty wrappers in cycles."""
    import gc

    import shiboken6
    from PySide6.QtCore import QObject

    gc.collect()  # earlier tests' garbage
    gc.disable()  # so that nothing collects the evidence before we look
    try:
        for name in ("first", "second"):
            run = tmp_path / name
            run.mkdir()
            (run / "metrics.jsonl").write_text("".join(
                f'{{"step": {i}, "name": "loss/{name}", "value": {i}}}\n' for i in range(1, 9)))
            window.open_run(run)  # showing the second replaces the first one's plots
            window.plots_widget._force_redraw()
        assert window.plots_widget.curve_names() == ["loss/second"]
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        alive = [type(o).__name__ for o in gc.garbage
                 if isinstance(o, QObject) and shiboken6.isValid(o)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert alive == []


def test_settings_persist(window: MainWindow) -> None:
    new = settings_mod.Settings(device="cpu", cpu_threads=1, theme="dark",
                                workspace=str(window.settings.workspace_path()))
    window.apply_settings(new)
    loaded = settings_mod.load()
    assert (loaded.device, loaded.cpu_threads, loaded.theme) == ("cpu", 1, "dark")
    assert window.manager.runner.settings.device == "cpu"


def test_settings_dialog_round_trip(qtbot) -> None:
    from studio.widgets.settings_dialog import SettingsDialog

    dlg = SettingsDialog(settings_mod.Settings())
    qtbot.addWidget(dlg)
    dlg.theme.setCurrentIndex(1)
    dlg.threads.setValue(2)
    dlg.folders.addItem("/models/a1111")
    s = dlg.result_settings()
    assert (s.theme, s.cpu_threads, s.device) == ("dark", 2, "auto")
    assert s.model_folders == ["/models/a1111"]


def test_close_with_running_job_asks_then_stops_cleanly(qtbot, monkeypatch) -> None:
    win = MainWindow()
    qtbot.addWidget(win)
    win.select_plugin("demo")
    handle = win.hosts["demo"].submit("slow", {"seconds": 120})
    qtbot.waitUntil(lambda: handle.record.state == "running", timeout=20000)
    asked: list[str] = []

    def answer(no_or_yes):
        def fake(*args, **kwargs):
            asked.append(args[2])
            return no_or_yes
        return fake

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert not win.close()  # the user said no: still open, job still running
    assert handle.record.state == "running" and "Slow loop" in asked[0]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    assert win.close()
    assert handle.record.state == CANCELLED
    workers = [t for t in threading.enumerate() if t.name.startswith("studio-")]
    assert not any(t.is_alive() for t in workers if t.name != "studio-device-probe")


def test_recent_runs_menu_lists_workspace_runs(window: MainWindow, qtbot) -> None:
    window.select_plugin("demo")
    handle = window.hosts["demo"].submit("count", {"steps": 3})
    qtbot.waitUntil(lambda: handle.is_finished, timeout=20000)
    window._fill_recent_runs()
    labels = [a.text() for a in window.recent_menu.actions()]
    assert len(labels) == 1 and labels[0].startswith("Count (Demo), today ")
    assert labels[0].endswith("· done")
    window.recent_menu.actions()[0].trigger()
    assert window.plots_widget.current_source == handle.record.run_dir


def test_exception_in_a_slot_is_reported_not_fatal(window: MainWindow) -> None:
    try:
        raise ValueError("a slot broke")
    except ValueError as exc:
        window.report_exception(type(exc), exc, exc.__traceback__)
    assert "ValueError: a slot broke" in window.log_widget.text()
    assert "a slot broke" in window.statusBar().currentMessage()


def test_quick_jobs_neither_steal_the_plot_nor_clutter_the_jobs_list(
        window: MainWindow, qtbot) -> None:
    window.select_plugin("demo")
    host = window.hosts["demo"]
    train = host.submit("count", {"steps": 5})
    qtbot.waitUntil(lambda: train.is_finished, timeout=20000)
    window.manager.drain()
    assert window.plots_widget.current_source == train.id
    quick = host.submit("echo", {"text": "x"})  # an interactive job that logs no metric
    qtbot.waitUntil(lambda: quick.is_finished, timeout=20000)
    window.manager.drain()
    assert window.plots_widget.current_source == train.id  # still showing the training curves
    assert window.plots_widget.source_box.count() == 1
    assert window.jobs_widget.items[quick.id].isHidden()
    assert not window.jobs_widget.items[train.id].isHidden()
    window.jobs_widget.show_quick.setChecked(True)
    assert not window.jobs_widget.items[quick.id].isHidden()
    window.jobs_widget.clear_finished()
    assert window.jobs_widget.tree.topLevelItemCount() == 0


def test_every_panel_fits_the_default_window_size(window: MainWindow) -> None:
    """A panel's minimum size must not force the window wider than 1400 px."""
    window.resize(1400, 900)
    for rec in window.records:
        window.select_plugin(rec.id)
        window.resize(1400, 900)
        assert window.width() <= 1400, rec.id


def test_reopening_a_run_brings_back_its_settings_and_the_form_remembers(
        window: MainWindow, qtbot) -> None:
    panel = window.select_plugin("demo")
    form = panel.forms["count"]
    form.form.editor("steps").setValue(7)
    form.form.editor("shape").setCurrentIndex(1)  # ramp
    qtbot.mouseClick(form.run_button, Qt.MouseButton.LeftButton)
    handle = form.handle
    qtbot.waitUntil(lambda: handle.is_finished, timeout=20000)
    run_dir = handle.record.run_dir
    form.form.editor("steps").setValue(30)
    window.open_run(run_dir)
    assert form.form.p.steps == 7 and form.form.editor("steps").value() == 7
    assert form.form.p.shape == "ramp" and form.out.text() == str(run_dir)
    # the next session's form starts from the last submitted values
    assert window.hosts["demo"].recall("count", type(form.form.p)).steps == 7


@dataclass(kw_only=True)
class Mix:
    strength: Annotated[float, Range(0, 1, 0.05), Widget("slider")] = 0.6
    key: Annotated[str, Widget(suggestions=("C", "G", "F#m"))] = "random"


def test_form_sliders_and_suggestions_bind_both_ways(qtbot) -> None:
    from PySide6.QtWidgets import QComboBox, QWidget

    from studio.widgets.form import Form

    host = QWidget()
    qtbot.addWidget(host)
    form = Form(Mix, host)
    slider, combo = form.editor("strength"), form.editor("key")
    assert isinstance(combo, QComboBox) and combo.isEditable()
    assert slider.value() == pytest.approx(0.6) and combo.currentText() == "random"
    changed: list[str] = []
    form.changed.connect(changed.append)
    slider.setValue(0.25)
    combo.setCurrentText("F#m")
    assert form.value().strength == pytest.approx(0.25) and form.p.key == "F#m"
    assert changed == ["strength", "key"]
    form.set(Mix(strength=0.9, key="G"))
    assert slider.value() == pytest.approx(0.9) and combo.currentText() == "G"


def test_a_session_end_keeps_running_training_to_resume(qtbot, tmp_path: Path) -> None:
    """Logout or shutdown: the job stops as on Stop, its run is marked interrupted, the window
    closes without asking; the next start offers Resume, which continues the same run."""
    import subprocess
    import sys

    from studio import manifest

    win = MainWindow()
    qtbot.addWidget(win)
    win.select_plugin("demo")
    run = tmp_path / "run"
    handle = win.hosts["demo"].submit("count", {"steps": 100000, "delay": 0.01}, out=run)
    qtbot.waitUntil(lambda: (run / "metrics.jsonl").exists(), timeout=20000)
    win.end_session("test")
    assert handle.record.state == "interrupted" and not win.isVisible()
    assert manifest.read(run).state == "interrupted"

    # a run left "running" by a process that died (kill -9, a power cut) reads the same
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    m = manifest.Manifest(plugin="demo", job="count", params={"steps": 3}, title="Count",
                          pid=int(dead))
    manifest.write(crashed, m)
    from studio import runindex

    runindex.remember(win.settings.workspace_path(), crashed)

    again = MainWindow()
    qtbot.addWidget(again)
    assert again.notice is not None and len(again.notice.runs) == 2
    assert manifest.read(crashed).state == "interrupted"
    path = again.notice.runs[0].path
    qtbot.mouseClick(again.notice.resume_buttons[0], Qt.MouseButton.LeftButton)
    jobs = [h for h in again.manager.handles.values() if h.record.out == path]
    assert jobs and jobs[0].record.params.resume is True
    again._force_close = True
    again.shutdown(5)


def test_a_long_session_keeps_a_bounded_history(window: MainWindow, qtbot) -> None:
    """Issue 17: a thousand Explore moves grew a session by 212 MB (handles, rows, curves and
    results of every job kept); now the newest HISTORY finished jobs are kept."""
    from studio.jobs import HISTORY
    from studio.plugin import JobSpec

    spec = JobSpec("quick", "x:y", "Quick", lane="interactive")

    def move(ctx):
        ctx.metric("quality", 1, 0.5)
        return bytes(10_000)

    handles = []
    for _ in range(HISTORY + 10):
        h = window.manager.submit("demo", spec, {}, func=move)
        qtbot.waitUntil(lambda h=h: h.is_finished, timeout=10_000)
        handles.append(h)
    assert len(window.manager.handles) == HISTORY
    assert len(window.jobs_widget.items) == HISTORY
    assert handles[0].id not in window.jobs_widget.items
    shown = window.plots_widget.current_source  # the curves on show stay, the others go
    gone = [h.id for h in handles[:10] if h.id != shown]
    assert gone and not any(i in window.manager.metrics.series for i in gone)
    assert handles[-1].id in window.jobs_widget.items
    assert handles[0].record.result == bytes(10_000)  # a panel's own handle stays whole


def test_settings_show_and_clear_the_prepared_data(qtbot, tmp_path) -> None:
    import numpy as np

    from studio.cache import PrepCache
    from studio.widgets.settings_dialog import SettingsDialog

    cache = PrepCache.of_workspace(tmp_path / "ws")
    assert cache.put("images", "k", lambda w: w.array("x", np.zeros(250_000, dtype=np.uint8)))
    dlg = SettingsDialog(settings_mod.Settings(workspace=str(tmp_path / "ws")))
    qtbot.addWidget(dlg)
    text = dlg.cache_used.text()
    assert text.startswith("250.") and text.endswith(" kB kept now"), text
    assert dlg.clear_cache.isEnabled()
    from PySide6.QtCore import Qt

    qtbot.mouseClick(dlg.clear_cache, Qt.MouseButton.LeftButton)
    assert cache.size() == 0 and cache.get("images", "k") is None
    assert dlg.cache_used.text().startswith("Cleared 250.") and not dlg.clear_cache.isEnabled()
    dlg.cache_limit.setValue(0.0)  # "Off"
    assert dlg.cache_limit.text() == "Off" and dlg.result_settings().cache_limit_gb == 0.0
