"""Playback for real through PortAudio (ALSA's null device), and without PortAudio at all.

Each scenario runs in a fresh Python process: sounddevice reads ``$HOME/.asoundrc`` (through
ALSA) when it is first imported, and a missing PortAudio has to be simulated before that import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, home: Path, extra_path: Path | None = None) -> dict:
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(
        str(p) for p in (extra_path, ROOT, env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def null_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default { type null }\n", encoding="utf-8")
    return home


PLAY = """
import json, time
import numpy as np
from plugins.music.engine.playback import Player, Transport
from plugins.music.engine.phrase import Phrase

def wait(cond, t=10.0):
    end = time.monotonic() + t
    while not cond() and time.monotonic() < end:
        time.sleep(0.002)
    return cond()

res = {}
p = Player(capture=True)
sr = p.sample_rate
buf = (0.3 * np.sin(np.arange(sr) * 2 * np.pi * 440 / sr)).astype(np.float32)
buf[:2000] = 0.0
p.set_buffer(buf)
p.play()
res["finished"] = wait(lambda: not p.playing)
res["equal"] = bool(np.array_equal(p.capture[:, 0], buf))
res["frames"] = p.frames_out
res["latency"] = p.latency_to_sound
res["output_latency"] = p.output_latency
res["callbacks"] = p.n_callbacks
# a range, looped, then stopped
p.capture[:] = 0
p.play(1000, 5000, loop=True)
res["looping"] = wait(lambda: p.frames_out > 200000) and p.playing
p.stop()
res["stopped"] = wait(lambda: not p.playing)
res["range_only"] = bool(np.array_equal(p.capture[1000:5000, 0], buf[1000:5000])
                         and not p.capture[5000:, 0].any())
p.loop = False
p.play()
res["replay"] = wait(lambda: not p.playing) and p.latency_to_sound is not None
p.close()
# the transport: render ahead, play one phrase of the strip
t = Transport(player=Player(capture=True))
notes = np.array([[60, 0, 8, 90], [67, 8, 16, 90]], dtype=np.int32)
t.set_strip([Phrase(notes, 16), Phrase(notes + [12, 0, 0, 0], 16)], tempo=120.0)
t.play(1)  # may be pressed while the render is still running: starts when it lands
res["transport_played"] = wait(lambda: t.player.latency_to_sound is not None)
wait(lambda: not t.player.playing)
cap = t.player.capture[:, 0]
b = t.bounds
res["bounds"] = b
res["only_second"] = bool(cap[b[1]:b[2]].any() and not cap[:b[1]].any())
t.close()
print(json.dumps(res))
"""


def test_playback_through_portaudio_null_device(tmp_path: Path) -> None:
    res = run_python(PLAY, null_home(tmp_path))
    assert res["finished"] and res["equal"], res
    assert res["frames"] >= 44100
    assert res["latency"] is not None and 0 <= res["latency"] < 1.0
    assert res["output_latency"] is not None
    assert res["looping"] and res["stopped"] and res["range_only"], res
    assert res["replay"], res
    assert res["transport_played"] and res["only_second"], res
    assert res["bounds"] == [0, 88200, 176400]


MISSING = """
import json
import numpy as np
from plugins.music.engine import playback
from plugins.music.engine.phrase import Phrase

res = {}
try:
    playback.load_sounddevice()
except playback.AudioUnavailable as exc:
    res["message"] = str(exc)
t = playback.Transport()
t.set_strip([Phrase(np.array([[60, 0, 8, 90]], dtype=np.int32), 16)], 120.0)
try:
    t.play()
    res["played"] = True
except playback.AudioUnavailable:
    res["played"] = False
res["rendered"] = int(len(t.audio()))  # export keeps working without PortAudio
t.close()
print(json.dumps(res))
"""


def test_missing_portaudio_gives_a_clear_message(tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    # exactly what sounddevice raises when libportaudio is not installed
    (fake / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    res = run_python(MISSING, tmp_path, extra_path=fake)
    msg = res["message"]
    assert "PortAudio library was not found" in msg and "libportaudio2" in msg
    assert "Export to MIDI and WAV still works" in msg
    assert res["played"] is False
    assert res["rendered"] > 44100


def test_playback_module_stays_light(tmp_path: Path) -> None:
    res = run_python("""
        import json, sys
        import plugins.music.engine.playback, plugins.music.plugin
        print(json.dumps({m: m in sys.modules for m in ("torch", "PySide6", "sounddevice")}))
    """, tmp_path)
    assert res == {"torch": False, "PySide6": False, "sounddevice": False}


class _Status:
    output_underflow = False


def test_callback_only_copies_and_allocates_nothing() -> None:
    from plugins.music.engine.playback import Player

    p = Player()
    buf = np.linspace(-0.5, 0.5, 10_000, dtype=np.float32)
    p.set_buffer(buf)
    p._req = (100, 9_000, 100)  # what play(100, 9000) posts, without opening a stream
    p._req_seq += 1
    p._want = True
    out = np.empty((512, 2), dtype=np.float32)
    status = _Status()
    p._callback(out, 512, None, status)  # warm up (first-call attribute caches)
    assert np.array_equal(out[:, 0], buf[100:612]) and np.array_equal(out[:, 1], buf[100:612])
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(12):
        p._callback(out, 512, None, status)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 4096, grown  # no buffers: at most a few small Python objects
    assert p.position == 612 + 12 * 512
    p.loop = True
    for _ in range(20):
        p._callback(out, 512, None, status)
    assert 100 <= p.position < 9_000  # wrapped around the loop range
    assert p.n_callbacks == 33 and p.callback_times().max() < 0.05
