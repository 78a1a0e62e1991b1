"""Generation speed through the studio vs plain ``model.generate`` (bar: ratio >= 0.95).

The studio path is the real one a user takes: the Writer panel's Continue button submits the
``generate`` job on the interactive lane, the job streams every text chunk as a preview event,
the Qt job manager delivers them to the GUI thread and the panel inserts them into the editor.
Its time runs from pressing Continue to the last chunk being in the document (the model is
loaded and cached by a warm-up run first, as it is after the first Continue in the window).

The reference is ``model.generate`` on the same model, prompt and sampling settings
(temperature, top-k, top-p, ``min_new_tokens = max_new_tokens`` on both sides so both produce
exactly N tokens), in the same process, interleaved round by round so machine load hits both
alike. It runs as a job of the studio's runner on the same lane (a thread of its own, as every
job), never on the main thread: torch's OpenMP pool of a long-lived main thread ran
``model.generate`` up to ten times slower on a busy 2-core machine, which made the ratio
meaningless (DEVELOPERS.md, "Every job runs on a thread of its own"). Prints tokens/s of each
and the median ratio.

    python bench/writer_speed.py                    # tiny preset model, 200 tokens, 5 rounds
    python bench/writer_speed.py --model DIR        # any local model folder
    python bench/writer_speed.py --preset small --tokens 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, "
          "speak.\n\nFirst Citizen:\n")


def build_model(preset: str, folder: Path) -> Path:
    """A randomly initialised preset model with a BPE tokenizer trained on a little text
    (speed does not depend on what the weights say)."""
    import torch

    from plugins.common.lm.loading import save_pretrained_folder
    from plugins.writer.engine.pipeline import build_new_model
    from plugins.writer.engine.presets import get_preset
    from plugins.writer.engine.tokenizer import train_tokenizer

    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
    text = shared.read_text(encoding="utf-8")[:300_000] if shared.exists() else PROMPT * 500
    tok = train_tokenizer([text], "bpe", 2048)
    p = get_preset(preset)
    model = build_new_model(p, tok, p.block_size, seed=0)
    with torch.no_grad():  # spread the output distribution so no token dominates
        model.lm_head.weight.mul_(0.5)
    save_pretrained_folder(model, tok, folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a local model folder (default: a fresh preset model)")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
    ap.add_argument("--tokens", type=int, default=200,
                    help="new tokens per run (prompt + tokens must fit the context, so both "
                         "sides do the same work)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args(argv)

    from studio.device import configure_allocator

    configure_allocator()  # as the studio's entry point does; both sides share it
    import torch
    from PySide6.QtWidgets import QApplication

    from plugins.writer.plugin import WriterPlugin
    from studio import settings as settings_mod
    from studio.host import PanelHost
    from studio.qtjobs import JobManager

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="writer-speed-"))
    os.environ["STUDIO_HOME"] = str(tmp / "home")
    model_dir = Path(args.model) if args.model else build_model(args.preset, tmp / "model")

    app = QApplication.instance() or QApplication([])
    settings = settings_mod.load()
    settings.cpu_threads = args.threads
    manager = JobManager(settings)
    plugin = WriterPlugin()
    panel = plugin.create_panel(PanelHost(manager, plugin))
    panel.add_model(str(model_dir))
    w = panel.write_tab
    w.temperature.setValue(0.8)
    w.top_k.setValue(50)
    w.top_p.setValue(0.95)
    w.max_new.setValue(args.tokens)
    w.random_seed.setChecked(False)
    w.seed.setValue(1)
    w.form.set_value("min_new_tokens", args.tokens)  # the reference makes exactly N tokens too

    def studio_run() -> tuple[float, int]:
        w.editor.setPlainText(PROMPT)
        w.editor.moveCursor(w.editor.textCursor().MoveOperation.End)
        t0 = time.perf_counter()
        handle = w.continue_text()
        assert handle is not None
        while not (handle.is_finished and not w.busy):
            app.processEvents()
            manager.drain()
            time.sleep(0.002)
        dt = time.perf_counter() - t0
        if handle.record.state != "done":
            raise SystemExit(f"studio run failed: {handle.record.error}")
        assert w.editor.toPlainText() == PROMPT + handle.record.result
        gen = load_generator(str(model_dir), "cpu")
        return dt, gen.last_stats.new_tokens

    from plugins.common.lm.generation import load_generator

    studio_run()  # warm-up: loads and caches the model, as the first Continue does
    gen = load_generator(str(model_dir), "cpu")
    model, tok = gen.model, gen.tokenizer
    ids = torch.tensor([gen.encode(PROMPT)])

    def reference_run() -> tuple[float, int]:
        torch.manual_seed(1)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(ids, do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
                                 max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                                 pad_token_id=tok.pad_token_id)
        return time.perf_counter() - t0, out.shape[1] - ids.shape[1]

    from studio.plugin import JobSpec

    ref_spec = JobSpec("reference", "writer_speed:reference", "model.generate",
                       lane="interactive")

    def reference_job() -> tuple[float, int]:
        """reference_run() as a job of the studio's runner (its own worker thread)."""
        rec = manager.runner.submit("writer", ref_spec, {}, func=lambda ctx: reference_run())
        manager.runner.wait(rec.id)
        if rec.state != "done":
            raise SystemExit(f"reference run {rec.state}: {rec.error}")
        return rec.result

    reference_job()  # warm-up
    room = gen.context - ids.shape[1]
    if args.tokens > room:
        raise SystemExit(f"--tokens {args.tokens} does not fit the model's context "
                         f"({gen.context} tokens, prompt {ids.shape[1]}): use at most {room}")
    ratios, ref_tps, studio_tps = [], [], []
    for r in range(args.rounds):
        rt, rn = reference_job()
        st, sn = studio_run()
        ref_tps.append(rn / rt)
        studio_tps.append(sn / st)
        ratios.append(studio_tps[-1] / ref_tps[-1])
        print(f"round {r + 1}: model.generate {ref_tps[-1]:7.1f} tok/s | studio (job + "
              f"stream + editor) {studio_tps[-1]:7.1f} tok/s | ratio {ratios[-1]:.3f}",
              flush=True)
    manager.shutdown()
    n_params = sum(p.numel() for p in model.parameters())
    ratio = statistics.median(ratios)
    print(f"\nmodel: {model_dir} ({n_params / 1e6:.1f}M parameters), {args.tokens} new tokens, "
          f"temperature 0.8, top-k 50, top-p 0.95, {torch.get_num_threads()} threads")
    print(f"median tokens/s: model.generate {statistics.median(ref_tps):.1f}, studio "
          f"{statistics.median(studio_tps):.1f}")
    print(f"ratio studio / model.generate: {ratio:.3f} (bar >= 0.95: "
          f"{'PASS' if ratio >= 0.95 else 'FAIL'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
