"""`studio plugins`, `studio run` and `studio screenshot` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STUDIO = [sys.executable, "-m", "studio"]


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(STUDIO + args, capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy())


def test_console_script_is_installed() -> None:
    assert shutil.which("studio") or (Path(sys.executable).parent / "studio").exists()


def test_plugins_lists_each_plugin_with_status() -> None:
    proc = _run(["plugins"])
    assert proc.returncode == 0, proc.stderr
    lines = dict((ln.split("\t")[0], ln.split("\t")) for ln in proc.stdout.splitlines())
    assert lines["demo"] == ["demo", "Demo", "ok"]
    assert lines["broken"][2].startswith("disabled: ImportError: this plugin is broken")


def test_run_prints_result_path_and_progress_on_stderr(tmp_path: Path) -> None:
    out = tmp_path / "run1"
    proc = _run(["run", "demo", "count", "--steps", "15", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out.resolve())
    assert "15/15" in proc.stderr  # the progress bar
    assert (out / "metrics.jsonl").exists() and (out / "run.json").exists()


def test_run_events_jsonl() -> None:
    proc = _run(["run", "demo", "count", "--steps", "5", "--events", "jsonl"])
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"state", "progress", "metric", "preview", "log"} <= kinds
    assert {"event": "preview", "kind": "text", "payload": "chunk 5"}.items() <= next(
        e for e in events if e["event"] == "preview").items()
    assert events[-1]["event"] == "state" and events[-1]["state"] == "done"
    assert events[-1]["result"]


def test_job_error_exits_nonzero_with_message() -> None:
    proc = _run(["run", "demo", "fail", "--kind", "user"])
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("error: the folder /nowhere is empty: add some images")
    proc = _run(["run", "demo", "count", "--steps", "lots"])
    assert proc.returncode == 2 and "--steps expects a whole number, not 'lots'" in proc.stderr
    proc = _run(["run", "nope", "train"])
    assert proc.returncode == 2 and "no plugin 'nope'" in proc.stderr


def test_run_help_lists_options() -> None:
    proc = _run(["run", "demo", "count", "--help"])
    assert proc.returncode == 0
    assert "--steps STEPS  [default: 20; between 1 and 100_000]" in proc.stdout
    assert "how many steps" in proc.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT semantics differ on Windows")
def test_ctrl_c_cancels_cleanly(tmp_path: Path) -> None:
    args = ["run", "demo", "count", "--steps", "100000", "--delay", "0.01",
            "--out", str(tmp_path / "r")]
    proc = subprocess.Popen([*STUDIO, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "r" / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "cancelled" in err
    manifest = json.loads((tmp_path / "r" / "run.json").read_text())
    assert manifest["state"] == "cancelled"


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGTERM/SIGHUP on Windows")
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_the_system_stopping_a_run_keeps_it_to_resume(tmp_path: Path, signame: str) -> None:
    """timeout, systemd, a logout: the job stops as on Ctrl-C, its run is marked interrupted
    (not left "running" for ever) and the exit status is 128 + the signal."""
    out = tmp_path / "r"
    proc = subprocess.Popen([*STUDIO, "run", "demo", "count", "--steps", "100000", "--delay",
                             "0.01", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    sig = getattr(signal, signame)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig
    assert f"resume it with --resume --out {out.resolve()}" in err
    assert json.loads((out / "run.json").read_text())["state"] == "interrupted"


def test_a_warning_is_printed_once(tmp_path: Path) -> None:
    proc = _run(["run", "demo", "count", "--steps", "2", "--warn", "two files were skipped",
                 "--out", str(tmp_path / "r")])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("two files were skipped") == 1
    assert "warning: two files were skipped" in proc.stderr


def test_screenshot_renders_png(tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    proc = _run(["screenshot", "--plugin", "demo", "--size", "1000x700", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    with Image.open(out) as im:
        assert im.size == (1000, 700)
        # a real render, not a blank image: many distinct colours
        assert len(im.convert("RGB").getcolors(1_000_000) or []) > 20
    bad = _run(["screenshot", "--plugin", "nope", "--out", str(out)])
    assert bad.returncode == 2 and "no plugin 'nope'" in bad.stderr


def test_runs_lists_every_run_with_its_data_split(tmp_path: Path) -> None:
    elsewhere = tmp_path / "my runs" / "first"  # outside the workspace: remembered by the index
    assert _run(["run", "demo", "count", "--steps", "3", "--out", str(elsewhere)]).returncode == 0
    assert _run(["run", "demo", "count", "--steps", "4"]).returncode == 0
    proc = _run(["runs", "--json"])
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)
    assert len(runs) == 2 and {r["plugin"] for r in runs} == {"demo"}
    assert runs[1]["path"] == str(elsewhere.resolve())  # newest first
    assert runs[0]["params"]["steps"] == 4 and runs[0]["state"] == "done"
    ds = runs[0]["datasets"][0]
    assert (ds["name"], ds["train"], ds["held_out"], len(ds["fingerprint"])) == (
        "numbers", 8, 2, 32)
    text = _run(["runs", "--plugin", "demo"]).stdout
    assert "numbers: 8 trained, 2 held out" in text
    assert _run(["runs", "--plugin", "gan"]).stdout.strip() == "no runs yet for gan"


def test_when_reads_like_a_person_says_it() -> None:
    import datetime as dt

    from studio import fmt

    now = dt.datetime(2026, 12, 2, 15, 0).timestamp()
    assert fmt.when(dt.datetime(2026, 12, 2, 9, 5).timestamp(), now) == "today 09:05"
    assert fmt.when(dt.datetime(2026, 12, 1, 23, 0).timestamp(), now) == "yesterday 23:00"
    assert fmt.when(dt.datetime(2026, 3, 4, 8, 0).timestamp(), now) == "4 Mar 08:00"
    assert fmt.when(dt.datetime(2025, 3, 4, 8, 0).timestamp(), now) == "4 Mar 2025"


def test_progress_bar_starts_again_for_each_phase(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 18: a diffusion run read 210 images and then showed its two training steps on the
    same bar, as "210step". Each phase now has its own bar, without a unit."""
    from studio.cli import _Printer
    from studio.jobs import Event

    printer = _Printer("bar", "Train diffusion model")
    for done in range(1, 211):
        printer(Event("j", "progress", {"done": done, "total": 210,
                                        "message": "reading images"}))
    for done in range(3):
        printer(Event("j", "progress", {"done": done, "total": 2,
                                        "message": f"step {done}/2"}))
    assert printer.bar.n == 2 and printer.bar.total == 2
    printer.close()
    err = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [line for line in err if line.strip()][-1]
    assert "2/2" in last and "210" not in last and "step [" not in last and "it/s" not in last
