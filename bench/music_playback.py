"""Playback bench for the music plugin: time from Play to sound, and what the callback touches.

Measures, through PortAudio (a real output device if the machine has one, else ALSA's null
device via a temporary ``~/.asoundrc``, as the tests do):

* render time of an 8-phrase strip (done ahead of time, on the transport's thread),
* Play -> first non-silent frame handed to PortAudio: cold (the stream opens) and warm, idle
  and while a torch training loop runs in another thread (a training job in the background),
* how much audio the callback delivers while the GUI thread is busy in Python for 300 ms,
* PortAudio's reported output latency (device buffering after the callback), added to give the
  time to sound,
* callback durations idle vs under load (the ratio shows the callback never waits on torch),
* every function the callback calls (traced for 50 callbacks): no torch, no Qt.

Bar: Play -> sound within 100 ms. Note: ALSA's null device has no clock (it consumes blocks as
fast as they come), so there the figures are the software part plus the reported device latency.

    python bench/music_playback.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _needs_null_device() -> bool:
    return not Path("/dev/snd").exists() and not (Path.home() / ".asoundrc").exists() \
        and sys.platform.startswith("linux")


def _torch_load(stop: threading.Event, steps: list[int]) -> None:
    """The default melody VAE training on random phrases until ``stop``."""
    import torch

    from plugins.music.engine.config import preset
    from plugins.music.engine.models import build_model, kl_divergence, reparameterise

    mc, _ = preset("default", "melody", 2)
    model = build_model(mc)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randint(0, 90, (128, 32))
    while not stop.is_set():
        mu, lv = model.encode(x)
        nll, _ = model.reconstruction(x, reparameterise(mu, lv))
        loss = (nll + kl_divergence(mu, lv)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps[0] += 1


def busy(seconds: float) -> None:
    """The GUI thread doing pure-Python work (a slow repaint, a big list update)."""
    t = time.perf_counter()
    x = 0
    while time.perf_counter() - t < seconds:
        x += 1


CALL_TIMES: list[float] = []  # how long play() itself took (stream start), per press


def measure(player, repeats: int, until: list[int] | None = None,
            need: int = 0) -> list[float]:
    """``repeats`` Play presses (and more, 0.1 s apart, until ``until[0] >= need``)."""
    out = []
    i = 0
    while i < repeats or (until is not None and until[0] < need):
        i += 1
        if until is not None:
            time.sleep(0.1)
        player.play()
        CALL_TIMES.append(time.perf_counter() - player.t_play)
        end = time.perf_counter() + 2.0
        while player.latency_to_sound is None and time.perf_counter() < end:
            time.sleep(0.0005)
        if player.latency_to_sound is not None:
            out.append(player.latency_to_sound)
        player.stop()
        time.sleep(0.01)
    return out


def trace_callback(player) -> set[str]:
    """Modules of every function (Python or C) the callback calls, over 50 callbacks."""
    seen: set[str] = set()
    original = player._callback
    count = [0]

    def prof(frame, event, arg):
        if event == "call":
            seen.add(frame.f_globals.get("__name__", "?"))
        elif event == "c_call":
            seen.add(getattr(arg, "__module__", None) or type(getattr(arg, "__self__", None))
                     .__module__)

    def traced(*a):
        if count[0] < 50:
            count[0] += 1
            sys.setprofile(prof)
            try:
                return original(*a)
            finally:
                sys.setprofile(None)
        return original(*a)

    player._callback = traced
    stream_cb = player._stream  # the stream keeps the bound method it was opened with
    player.close()
    player.loop = True
    player.play()
    end = time.perf_counter() + 3.0
    while count[0] < 50 and time.perf_counter() < end:
        time.sleep(0.001)
    player.stop()
    player.loop = False
    player._callback = original
    player.close()
    del stream_cb
    return seen


def stats(xs: list[float], unit: str = "ms") -> str:
    if not xs:
        return "n/a"
    xs = sorted(xs)
    k = 1e3 if unit == "ms" else 1e6
    p99 = xs[min(len(xs) - 1, int(0.99 * len(xs)))]
    return (f"median {statistics.median(xs) * k:.2f} {unit}, p99 {p99 * k:.2f} {unit}, "
            f"max {xs[-1] * k:.2f} {unit} (n={len(xs)})")


def run(repeats: int) -> int:
    import numpy as np

    from plugins.music.engine.phrase import Phrase
    from plugins.music.engine.playback import Player, Transport, load_sounddevice

    sd = load_sounddevice()
    try:
        dev = sd.query_devices(kind="output")["name"]
    except Exception as exc:
        print(f"no output device: {exc}")
        return 2
    kind = "ALSA null device" if os.environ.get("MUSIC_BENCH_NULL") else "as found"
    print(f"device: {dev} ({kind})")

    rng = np.random.default_rng(0)
    phrases = []
    for _ in range(8):
        starts = np.arange(0, 32, 4)
        phrases.append(Phrase(np.stack([60 + rng.integers(0, 12, 8), starts, starts + 4,
                                        np.full(8, 90)], 1).astype(np.int32), 32))
    t = Transport()
    t0 = time.perf_counter()
    t.set_strip(phrases, 120.0).result()
    render = time.perf_counter() - t0
    print(f"render ahead of Play: 8 two-bar phrases ({t.player.buffer_frames / 44100:.0f} s of "
          f"audio) in {render * 1e3:.0f} ms on the transport's thread")
    t.close()

    player = Player()
    tone = (0.2 * np.sin(np.arange(44100) * 2 * np.pi * 440 / 44100)).astype(np.float32)
    player.set_buffer(tone)
    cold = measure(player, 1)
    warm = measure(player, repeats)
    idle_cb = player.callback_times()
    out_lat = player.output_latency or 0.0
    player.close()

    stop = threading.Event()
    steps = [0]
    loaders = [threading.Thread(target=_torch_load, args=(stop, steps), daemon=True)]
    for th in loaders:
        th.start()
    end = time.perf_counter() + 60
    while steps[0] < 3 and time.perf_counter() < end:  # let training get going
        time.sleep(0.05)
    before = steps[0]
    loaded_player = Player()
    loaded_player.set_buffer(tone)
    CALL_TIMES.clear()
    loaded = measure(loaded_player, repeats, steps, before + 5)
    load_cb = loaded_player.callback_times()
    steps[0] -= before
    loaded_player.close()
    stop.set()
    for th in loaders:
        th.join(120)

    gui_player = Player()
    gui_player.set_buffer(tone)
    gui_player.play(loop=True)
    time.sleep(0.05)
    f0 = gui_player.frames_out
    busy(0.3)
    delivered = (gui_player.frames_out - f0) / gui_player.sample_rate
    gui_player.stop()
    gui_player.close()

    traced_player = Player()
    traced_player.set_buffer(tone)
    touched = trace_callback(traced_player)

    print(f"Play -> first non-silent frame to PortAudio: cold {cold[0] * 1e3:.1f} ms "
          f"(stream opens)")
    print(f"  warm, idle:                    {stats(warm)}")
    print(f"  warm, during torch training ({steps[0]} training steps meanwhile): "
          f"{stats(loaded)}")
    print(f"    of which inside play() itself, under load: {stats(CALL_TIMES)}")
    print(f"GUI thread busy in Python for 0.3 s: the callback delivered {delivered:.2f} s of "
          "audio meanwhile (0.3 s needed; the null device has no clock, so it takes more)")
    print(f"PortAudio output latency (device buffer): {out_lat * 1e3:.1f} ms")
    worst = max([*warm, *loaded, *cold]) + out_lat
    print(f"worst Play -> sound: {worst * 1e3:.1f} ms")
    print(f"callback duration idle:       {stats(list(idle_cb), 'us')}")
    print(f"callback duration under load: {stats(list(load_cb), 'us')}")
    if len(idle_cb) and len(load_cb):
        ratio = float(np.median(load_cb) / np.median(idle_cb))
        print(f"  median under load / idle = {ratio:.2f}")
    bad = sorted(m for m in touched if m and (m.startswith("torch") or "PySide" in m
                                              or "shiboken" in m or ".ui" in m))
    touched.discard("sys")  # the tracer's own sys.setprofile(None)
    print(f"modules the callback calls into: {sorted(m for m in touched if m)}")
    print(f"torch / Qt in the callback: {bad if bad else 'NONE'}")
    ok = worst < 0.100 and not bad
    print(f"BAR Play -> sound < 100 ms and no torch/Qt in the callback: "
          f"{'PASS' if ok else 'FAIL'}")
    print(json.dumps({"bench": "music_playback", "device": dev, "cold_ms": cold[0] * 1e3,
                      "warm_median_ms": statistics.median(warm) * 1e3,
                      "loaded_median_ms": statistics.median(loaded) * 1e3,
                      "loaded_max_ms": max(loaded) * 1e3, "output_latency_ms": out_lat * 1e3,
                      "worst_to_sound_ms": worst * 1e3, "callback_touches_torch_or_qt": bad}))
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if _needs_null_device() and not os.environ.get("MUSIC_BENCH_NULL"):
        with tempfile.TemporaryDirectory() as home:
            Path(home, ".asoundrc").write_text("pcm.!default { type null }\n")
            env = dict(os.environ, HOME=home, MUSIC_BENCH_NULL="1")
            return subprocess.call([sys.executable, __file__, *sys.argv[1:]], env=env)
    import torch

    torch.set_num_threads(args.threads)
    return run(args.repeats)


if __name__ == "__main__":
    raise SystemExit(main())
