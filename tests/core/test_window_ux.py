"""The window as an artist's tool (issue 16): the work area first, plain words in the plots,
honest progress, keyboard and contrast, the welcome page, remembered layout, notifications."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel, QMessageBox, QPlainTextEdit, QVBoxLayout, QWidget

from studio import fmt, plotlabels, theme
from studio import settings as settings_mod
from studio.jobs import CANCELLED, DONE, RUNNING, JobContext, JobRecord
from studio.params import Label, Widget
from studio.plugin import QuickStart
from studio.registry import PluginRecord, discover
from studio.settings import Settings
from studio.widgets.jobs_dock import progress_text
from studio.widgets.panelarea import PanelArea
from studio.window import MainWindow, default_size


def _window(qtbot, **kw) -> MainWindow:
    win = MainWindow(**kw)
    qtbot.addWidget(win)
    win.resize(1280, 720)
    win.show()
    win._force_close = True
    return win


@pytest.fixture
def window(qtbot):
    win = _window(qtbot)
    yield win
    win.shutdown(timeout=10)


def _finish(win: MainWindow, qtbot, handle) -> None:
    qtbot.waitUntil(lambda: handle.is_finished, timeout=20000)
    win.manager.drain()


# -- the work area first -------------------------------------------------------------------------
def test_first_launch_shows_the_welcome_page_with_every_dock_folded(window: MainWindow) -> None:
    assert window.stack.currentWidget() is window.welcome
    assert not window.plots_dock.isVisible()
    assert not window.jobs_dock.isVisible() and not window.log_dock.isVisible()


def test_plots_dock_opens_on_the_first_metric_and_follows_the_open_plugin(
        window: MainWindow, qtbot, tmp_path: Path) -> None:
    window.select_plugin("demo")
    assert not window.plots_dock.isVisible()
    handle = window.hosts["demo"].submit("count", {"steps": 3})
    qtbot.waitUntil(window.jobs_dock.isVisible, timeout=5000)  # Jobs opens with the job
    assert window.jobs_dock.height() < 260  # a short strip, not a third of the window
    _finish(window, qtbot, handle)
    assert window.plots_dock.isVisible()
    assert window.plots_widget.current_source == handle.id
    assert window.plots_dock.width() < window.width() // 2
    # another plugin without curves: the dock folds away instead of showing demo's run
    window.select_plugin("gan")
    assert not window.plots_dock.isVisible()
    window.select_plugin("demo")
    assert window.plots_dock.isVisible() and window.plots_widget.current_source == handle.id
    # pinned, the curves stay whatever panel is open
    window.plots_widget.pin.setChecked(True)
    window.select_plugin("gan")
    assert window.plots_dock.isVisible() and window.plots_widget.current_source == handle.id


def test_a_job_of_another_plugin_does_not_take_the_plots(window: MainWindow, qtbot) -> None:
    window.select_plugin("gan")
    window.panel("demo")
    handle = window.hosts["demo"].submit("count", {"steps": 3})
    _finish(window, qtbot, handle)
    assert not window.plots_dock.isVisible()
    assert window.plots_widget.latest_source("demo") == handle.id


def test_default_size_fits_a_laptop_screen() -> None:
    assert default_size(QSize(1366, 738)).width() <= 1366
    assert default_size(QSize(1366, 738)).height() <= 738 - 30
    assert default_size(QSize(2560, 1400)) == QSize(1400, 900)


def test_size_and_dock_layout_come_back(qtbot) -> None:
    first = _window(qtbot)
    first.select_plugin("demo")
    handle = first.hosts["demo"].submit("count", {"steps": 3})
    _finish(first, qtbot, handle)
    # the user moves the plots below the panel and makes the window small (within the
    # offscreen screen, 800x600: Qt keeps a restored window on its screen)
    first.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, first.plots_dock)
    first.plots_dock.hide()
    first.jobs_dock.hide()
    first.log_dock.hide()
    QTest.qWait(20)
    first.resize(700, 520)
    QTest.qWait(20)
    size = (first.width(), first.height())
    assert size == (700, 520)
    first.close()
    again = MainWindow()
    qtbot.addWidget(again)
    again._force_close = True
    assert (again.width(), again.height()) == size
    assert again.dockWidgetArea(again.plots_dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert not again.plots_dock.isVisible()  # nothing to show yet: folded until a metric
    assert again.current_plugin() == "demo"  # and the last plugin, not the welcome page
    again.shutdown(5)


class _Tall(QWidget):
    """A panel shaped like the real ones: a word-wrapped caption (height-for-width) and an
    editor that would like to be 1200 px tall."""

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        caption = QLabel("A long caption that wraps over several lines when the window is "
                         "narrow, as the panels' descriptions do. " * 3)
        caption.setWordWrap(True)
        self.editor = QPlainTextEdit()
        self.editor.sizeHint = lambda: QSize(600, 1200)  # type: ignore[method-assign]
        self.editor.setMinimumHeight(120)
        lay.addWidget(caption)
        lay.addWidget(self.editor, 1)


def test_a_panel_gets_the_room_there_is_not_its_preferred_size(qtbot) -> None:
    panel = _Tall()
    area = PanelArea(panel)
    qtbot.addWidget(area)
    area.resize(800, 500)
    area.show()
    QTest.qWait(20)
    assert panel.height() == area.viewport().height()  # no scrolling, the editor shrank
    assert not area.verticalScrollBar().isVisible()
    area.resize(800, 150)  # smaller than the panel's minimum: now it scrolls
    QTest.qWait(20)
    assert panel.height() > area.viewport().height()


def test_panels_fill_the_work_area_when_their_minimum_fits(window: MainWindow) -> None:
    """At 1366x768 every panel whose minimum size fits gets exactly the room there is: no
    scroll bar and no preferred size pushing it past the window's edge."""
    window.resize(1366, 740)
    for rec in window.records:
        window.select_plugin(rec.id)
        area = window._containers[rec.id]
        assert window.width() <= 1366, rec.id
        vp = area.maximumViewportSize()
        min_w, min_h = area.minimum_for(vp.width())
        if min_w <= vp.width() and min_h <= vp.height():
            assert (area.widget().width(), area.widget().height()) == (vp.width(),
                                                                        vp.height()), rec.id


# -- plain words in the plots --------------------------------------------------------------------
def _run(tmp_path: Path, names: list[str], points: int = 40) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(
        f'{{"step": {i}, "name": "{n}", "value": {1.0 / i}}}\n'
        for n in names for i in range(1, points + 1)))
    return run


def test_plot_titles_are_words_with_the_main_loss_first(window: MainWindow, tmp_path) -> None:
    # written in an order where the loss comes last, as a live run may report it
    run = _run(tmp_path, ["tokens_per_s", "lr", "bits_per_char/val", "loss/val", "loss/train"])
    window.open_run(run)
    plots = window.plots_widget
    plots._force_redraw()
    assert plots.plot_titles() == ["Loss", "Validation loss (bits per character)"]
    plots.advanced.setChecked(True)
    assert plots.plot_titles() == ["Loss", "Validation loss (bits per character)",
                                   "Tokens per second", "Learning rate"]
    title = plots._plots["loss"].titleLabel.text
    assert "training" in title and "held-out" in title  # the legend, above the data
    assert title.index("training") < title.index("held-out")
    assert plots._plots["lr"].getAxis("left").labelText == "learning rate"


def test_every_metric_the_plugins_log_has_words() -> None:
    """The central table covers what the plugins emit (a key nobody described would show
    as a humanised code name)."""
    emitted = ["loss/D", "loss/G", "D/real", "D/fake", "gp", "diversity", "loss/train",
               "loss/smoothed", "loss/held_out", "lr", "tokens_per_s", "loss/val",
               "perplexity/val", "bits_per_char/val", "loss/recon", "loss/kl", "beta",
               "accuracy/train", "accuracy/val", "accuracy/val_sampled", "loss/reconstruction",
               "loss/KL", "quality/playable", "quality/score", "loss/sft", "loss/dpo",
               "reward/margin", "privacy spent (ε)", "mel_error_db/val"]
    for name in emitted:
        group = plotlabels.group_of(name)
        assert group in plotlabels.GROUPS, name
        if "/" in name:
            assert name in plotlabels.CURVES, name
    assert plotlabels.plot_label("val_sampled").title == "Val sampled"
    labels = {"loss": "Loss (nats per note)"}
    assert plotlabels.plot_label("loss", labels).title == "Loss (nats per note)"
    assert plotlabels.plot_label("loss", labels).rank == 0


def test_few_points_get_markers_and_the_order_is_the_same_live_and_reopened(
        window: MainWindow, qtbot) -> None:
    window.select_plugin("demo")
    handle = window.hosts["demo"].submit("count", {"steps": 4})
    _finish(window, qtbot, handle)
    plots = window.plots_widget
    plots._force_redraw()
    live = (plots.plot_titles(), plots._plots["loss"].titleLabel.text)
    assert plots._curves["loss/a"].opts["symbol"] == "o"  # 4 points: each one marked
    window.open_run(handle.record.run_dir)
    plots._force_redraw()
    assert (plots.plot_titles(), plots._plots["loss"].titleLabel.text) == live


# -- honest progress -----------------------------------------------------------------------------
def test_a_count_that_starts_again_is_a_new_phase(window: MainWindow) -> None:
    events = []
    rec = JobRecord(id=999, plugin="demo", job="x", title="X", params={}, state=RUNNING)
    ctx = JobContext(rec, events.append, __import__("threading").Event(), Settings())
    ctx.progress(1797, 1797, "reading images")
    assert rec.fraction == 1.0
    ctx.progress(3, None, "training")
    assert rec.total is None and rec.fraction is None and rec.rate is None
    jobs = window.jobs_widget
    assert jobs._phase(JobRecord(id=5, plugin="demo", job="x", title="X", params={},
                                 done=1797, total=1797)) == 1
    second = JobRecord(id=5, plugin="demo", job="x", title="X", params={}, done=3, total=400)
    assert jobs._phase(second) == 2
    assert progress_text(second, 2) == "Phase 2: 3/400  1%"
    assert progress_text(JobRecord(id=6, plugin="d", job="x", title="X", params={})) == \
        "working"


def test_job_titles_name_the_plugin_and_rates_read_alike(window: MainWindow, qtbot) -> None:
    window.select_plugin("demo")
    handle = window.hosts["demo"].submit("count", {"steps": 2})
    _finish(window, qtbot, handle)
    assert window.jobs_widget.items[handle.id].text(0) == "Demo · Count"
    assert fmt.rate(1.7, "steps") == "1.7 steps/s"
    assert fmt.rate(0.5) == "0.5/s"  # never "2.0 s/it" beside "0.5 steps/s"
    assert fmt.rate(1234) == "1,234/s"


# -- keyboard ------------------------------------------------------------------------------------
def test_shortcuts_are_explicit_and_listed(window: MainWindow) -> None:
    keys = dict(window.shortcuts())
    assert keys["Ctrl+Q"] == "Quit" and keys["Ctrl+,"] == "Settings"
    assert keys["Esc"] == "Stop the running job" and keys["F1"] == "Keyboard shortcuts"
    assert keys["Ctrl+1"].endswith(window.records[0].name)
    menus = [a.text() for a in window.menuBar().actions()]
    assert all(t.startswith("&") for t in menus)


def test_ctrl_number_opens_a_plugin_and_tab_starts_in_the_panel(window: MainWindow) -> None:
    ids = [r.id for r in window.records]
    QTest.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.current_plugin() == ids[1]
    window.select_plugin("demo")
    window.navigator.setFocus()
    assert window.focusNextPrevChild(True)
    focused = window.focusWidget()
    assert window.panels["demo"].isAncestorOf(focused)


def test_esc_asks_then_stops_the_running_job(window: MainWindow, qtbot, monkeypatch) -> None:
    window.select_plugin("demo")
    handle = window.hosts["demo"].submit("slow", {"seconds": 60})
    qtbot.waitUntil(lambda: handle.record.state == RUNNING, timeout=20000)
    qtbot.waitUntil(window.stop_action.isEnabled, timeout=5000)
    asked: list[str] = []

    def answer(reply):
        def fake(*args, **kwargs):
            asked.append(args[2])
            return reply
        return fake

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    QTest.keyClick(window, Qt.Key.Key_Escape)
    assert asked and "Demo · Slow loop" in asked[0] and handle.record.state == RUNNING
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    QTest.keyClick(window, Qt.Key.Key_Escape)
    _finish(window, qtbot, handle)
    assert handle.record.state == CANCELLED
    qtbot.waitUntil(lambda: not window.stop_action.isEnabled(), timeout=5000)


# -- contrast ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["light", "dark"])
def test_text_reads_at_4_5_to_1_in_both_themes(name: str) -> None:
    pal = theme.PALETTES[name]
    for fg, bg in theme.TEXT_PAIRS:
        assert theme.contrast(pal[fg], pal[bg]) >= 4.5, (name, fg, bg)
    for status in ("warning", "error", "success", "info", "muted"):
        for bg in (theme.R.Window, theme.R.Base):
            assert theme.contrast(theme.colour(status, name), pal[bg]) >= 4.5, (name, status)


# -- the welcome page ----------------------------------------------------------------------------
def test_the_welcome_page_starts_a_job_in_one_click(qtbot) -> None:
    from studio_testplugins.demo import CountParams, DemoPlugin

    class WithQuickStart(DemoPlugin):  # as the real plugins declare theirs
        quick_start = QuickStart("count", "Count to five", "Five steps, a second.",
                                 "studio_testplugins.demo:CountParams",
                                 {"steps": 5, "shape": "ramp"})

    win = _window(qtbot, records=[PluginRecord("demo", "Demo", WithQuickStart())])
    try:
        assert win.stack.currentWidget() is win.welcome
        card = win.welcome.cards["demo"]
        adopted: list = []
        win.panel("demo")
        win.hosts["demo"].job_started.connect(lambda *a: adopted.append(a))
        qtbot.mouseClick(card.start_button, Qt.MouseButton.LeftButton)
        handles = list(win.manager.handles.values())
        assert len(handles) == 1
        rec = handles[0].record
        assert isinstance(rec.params, CountParams) and rec.params.steps == 5
        assert rec.params.shape == "ramp" and win.current_plugin() == "demo"
        assert adopted and adopted[0][0] == "count" and adopted[0][2] is handles[0]
        _finish(win, qtbot, handles[0])
        assert rec.state == DONE and win.plots_dock.isVisible()
    finally:
        win.shutdown(5)


def test_the_real_plugins_quick_starts_build_their_jobs_params() -> None:
    from studio.params import job_params

    found = {r.id: r.plugin.quick_start for r in discover() if r.plugin is not None
             and r.plugin.quick_start is not None}
    assert {"gan", "music", "diffusion", "writer", "levels"} <= set(found)
    for pid, qs in found.items():
        plugin = next(r.plugin for r in discover() if r.id == pid)
        params = qs.build()
        assert type(params) is job_params(plugin.job(qs.job).load()), pid
    assert Path(found["writer"].build().data).is_file()


def test_a_bad_quick_start_says_why_on_its_card(qtbot) -> None:
    from studio_testplugins.demo import DemoPlugin

    class Bad(DemoPlugin):
        quick_start = QuickStart("count", "Count", "", "studio_testplugins.demo:CountParams",
                                 {"steps": -3})

    win = _window(qtbot, records=[PluginRecord("demo", "Demo", Bad())])
    try:
        assert win.welcome.start("demo") is None
        assert not win.manager.handles
        assert "cannot start" in win.welcome.cards["demo"].error.text()
    finally:
        win.shutdown(5)


# -- notifications -------------------------------------------------------------------------------
def test_a_long_job_that_ends_unseen_is_notified_unless_switched_off(
        window: MainWindow, qtbot, monkeypatch) -> None:
    import studio.window as window_mod

    monkeypatch.setattr(window_mod, "LONG_JOB_S", 0.0)
    monkeypatch.setattr(window, "isActiveWindow", lambda: False)
    window.select_plugin("demo")
    handle = window.hosts["demo"].submit("count", {"steps": 2})
    _finish(window, qtbot, handle)
    assert window.notifications and window.notifications[-1][0] == "Demo · Count: done"
    window.settings.notify_when_done = False
    window.notifications.clear()
    again = window.hosts["demo"].submit("count", {"steps": 2})
    _finish(window, qtbot, again)
    assert window.notifications == []


def test_settings_keep_the_notification_choice(qtbot) -> None:
    from studio.widgets.settings_dialog import SettingsDialog

    dlg = SettingsDialog(settings_mod.Settings())
    qtbot.addWidget(dlg)
    assert dlg.notify.isChecked()
    dlg.notify.setChecked(False)
    s = dlg.result_settings()
    settings_mod.save(s)
    assert settings_mod.load().notify_when_done is False



def test_quick_previews_leave_the_jobs_strip_folded(window: MainWindow, qtbot) -> None:
    window.select_plugin("demo")
    quick = window.hosts["demo"].submit("echo", {"text": "x"})  # an interactive-lane job
    _finish(window, qtbot, quick)
    assert not window.jobs_dock.isVisible()


def test_form_text_boxes_let_tab_through_and_choose_buttons_have_names(qtbot) -> None:
    from PySide6.QtWidgets import QPushButton

    from studio.widgets.form import Form

    @dataclass(kw_only=True)
    class P:
        prompt: Annotated[str, Widget("text")] = ""
        data: Annotated[Path | None, Label("Images"), Widget("folder")] = None

    host = QWidget()
    qtbot.addWidget(host)
    form = Form(P, host)
    assert form.editor("prompt").tabChangesFocus()
    row = form.widget("data")
    (button,) = row.findChildren(QPushButton)
    assert button.accessibleName() == "Choose images"


def test_primary_action_by_keyboard(window: MainWindow) -> None:
    """Ctrl+Enter presses the open panel's main button (object name "primary")."""
    from PySide6.QtWidgets import QPushButton

    panel = window.select_plugin("demo")
    pressed: list[bool] = []
    button = QPushButton("Go", panel)
    button.setObjectName("primary")
    button.clicked.connect(lambda: pressed.append(True))
    button.show()
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert pressed == [True]
