"""Chat reply speed: the studio's job against each backend's own plain call, and the backends
against each other on the same weights (issue 12).

Models: random-weight Llama nets of SmolLM2-135M and SmolLM2-360M shapes (576 wide, 30 layers,
9 heads, 3 key/value heads / 960 wide, 32 layers, 15 heads, 5 key/value heads; 1536 / 2560 MLP;
49,152-token vocabulary, tied embeddings), built here with a byte-level BPE tokenizer and a
ChatML template (speed does not depend on what the weights say). Torch and llama.cpp use the
same number of CPU threads (2 by default). A 16-token prompt, 128 new tokens.

1. **Studio vs plain** (bar: ratio >= 0.95 for transformers and for llama-cpp-python): the
   studio's ``reply`` job on the job runner (store writes, context policy, template, every
   chunk a preview event, as the window gets it), timed by an event listener from submit to the
   first chunk (time to first token) and from the first to the last chunk (tokens/s), against
   the backend's own call on the same loaded model, prompt tokens and sampler settings:
   ``model.generate`` with a streamer for transformers, ``Llama.create_completion(stream=True)``
   for llama.cpp (its KV cache reset before every run on both sides). Interleaved, each on a
   job thread of its own (DEVELOPERS.md: every job runs on a thread of its own).
2. **Backends on the same weights**: tokens/s and time to first token of transformers float32
   and bfloat16, llama.cpp F16, Q8_0 and Q4_0 (greedy, 128 tokens), and which backend the
   studio's default path (``--backend auto``) chooses for the Hugging Face folder.

    python bench/chat_speed.py                     # both shapes, 3 rounds
    python bench/chat_speed.py --shapes 135m --rounds 2 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = {
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                 num_attention_heads=9, num_key_value_heads=3),
    "360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                 num_attention_heads=15, num_key_value_heads=5),
}
VOCAB = 49152
NEW_TOKENS = 128
PROMPT_TOKENS = 16
STORY = ("please tell me a short story about a little red fox in the deep green wood and the "
         "old owl who lived by the river near the town")
SAMPLING = dict(temperature=0.8, top_k=0, top_p=1.0, min_p=0.05, repetition_penalty=1.0)


def in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` on a fresh thread (its own OpenMP pool, as a studio job gets)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def build_model(shape: str, folder: Path) -> Path:
    """A random-weight Llama of the shape, with a ChatML tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from plugins.chat.engine.dialogs import load_dialogs
    from plugins.chat.engine.scratch import (
        CHATML,
        IM_END,
        PAD,
        train_chat_tokenizer,
        write_template_config,
    )
    from plugins.common.lm.tokens import save_tokenizer

    if (folder / "model.safetensors").exists():
        return folder
    texts = list(load_dialogs("builtin").texts())
    tok = train_chat_tokenizer(texts, 4096)
    eos, pad = tok.convert_tokens_to_ids(IM_END), tok.convert_tokens_to_ids(PAD)
    cfg = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=8192, rms_norm_eps=1e-5,
                      tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos,
                      pad_token_id=pad, rope_theta=100000.0, **SHAPES[shape])
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = eos
    model.save_pretrained(str(folder))
    save_tokenizer(tok, folder)
    write_template_config(folder, CHATML)
    return folder


def prompt_message(tokenizer: Any, template: Any) -> str:
    """A user message whose ChatML prompt is exactly :data:`PROMPT_TOKENS` tokens."""
    words = STORY.split()

    def count(msg: str) -> int:
        text = template.render([{"role": "user", "content": msg}])
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    msg = ""
    for w in words:
        longer = f"{msg} {w}".strip()
        if count(longer) <= PROMPT_TOKENS:
            msg = longer
        if count(msg) == PROMPT_TOKENS:
            return msg
    raise SystemExit(f"no message makes a {PROMPT_TOKENS}-token prompt with this tokenizer")


# ----------------------------------------------------------------------------------------------
# 1. studio vs plain
# ----------------------------------------------------------------------------------------------
class Timer:
    """Listens to the reply job's events: submit, first and last text chunk."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.t0 = time.perf_counter()
        self.first = 0.0
        self.last = 0.0
        self.tokens = 0

    def __call__(self, ev: Any) -> None:
        if ev.kind != "preview":
            return
        now = time.perf_counter()
        if ev.data.get("kind") == "text":
            self.first = self.first or now
            self.last = now
        elif ev.data.get("kind") == "stats":
            self.tokens = int(ev.data["payload"]["tokens"])


def studio_vs_plain(kind: str, model: Path, message: str, rounds: int, threads: int,
                    workspace: Path) -> dict[str, float]:
    import torch

    from plugins.chat.engine.backends import open_backend
    from plugins.chat.engine.personas import Persona, Sampler
    from plugins.chat.engine.store import Store
    from studio import registry
    from studio.jobs import JobRunner
    from studio.settings import Settings

    with Store.open(workspace) as s:
        s.save_persona(Persona("bench", sampler=Sampler(
            temperature=SAMPLING["temperature"], top_k=SAMPLING["top_k"],
            top_p=SAMPLING["top_p"], min_p=SAMPLING["min_p"],
            repetition_penalty=SAMPLING["repetition_penalty"], max_new_tokens=NEW_TOKENS)))
    backend_name = "transformers" if kind == "transformers" else "llama.cpp"
    backend = open_backend(model, backend=backend_name, threads=threads,  # type: ignore[arg-type]
                           workspace=workspace)
    settings = Settings(workspace=str(workspace), device="cpu", cpu_threads=threads)
    timer = Timer()
    runner = JobRunner(timer, settings=settings)
    spec = registry.get("chat").job("reply")
    template = backend.template_info().pick()
    prompt = template.render([{"role": "user", "content": message}])

    def studio(seed: int) -> tuple[float, float, int]:
        if kind == "llama.cpp":
            backend.llm.reset()  # both sides read the prompt afresh
        timer.reset()
        rec = runner.submit("chat", spec, {"model": str(model), "message": message,
                                           "persona": "bench", "backend": backend_name,
                                           "seed": str(seed), "reserve": str(NEW_TOKENS)})
        runner.wait(rec.id)
        if rec.state != "done":
            raise SystemExit(f"studio reply failed: {rec.error}")
        return timer.first - timer.t0, timer.last - timer.first, timer.tokens

    def plain(seed: int) -> tuple[float, float, int]:
        return in_thread(lambda: (plain_transformers if kind == "transformers"
                                  else plain_llama)(backend, prompt, seed))

    studio(1)
    plain(1)  # warm-ups
    rows = []
    for r in range(rounds):
        p_ttft, p_dec, p_n = plain(r + 2)
        s_ttft, s_dec, s_n = studio(r + 2)
        p_tps, s_tps = (p_n - 1) / p_dec, (s_n - 1) / s_dec
        rows.append((s_tps / p_tps, p_ttft / s_ttft, p_tps, s_tps, p_ttft, s_ttft))
        print(f"  {kind:12s} round {r + 1}: plain {p_tps:6.1f} tok/s, first {p_ttft * 1e3:6.0f} "
              f"ms | studio {s_tps:6.1f} tok/s ({s_n} tokens), first {s_ttft * 1e3:6.0f} ms "
              f"| ratio {rows[-1][0]:.3f}", flush=True)
    runner.shutdown()
    del torch
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    return {"ratio": med[0], "ttft_ratio": med[1], "plain_tps": med[2], "studio_tps": med[3],
            "plain_ttft": med[4], "studio_ttft": med[5]}


def plain_transformers(backend: Any, prompt: str, seed: int) -> tuple[float, float, int]:
    """``model.generate`` with a streamer that notes when each token arrives."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    model, tok = backend.gen.model, backend.gen.tokenizer
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    times: list[float] = []

    class Clock(BaseStreamer):
        def put(self, value: Any) -> None:
            times.append(time.perf_counter())

        def end(self) -> None:
            pass

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        model.generate(ids, do_sample=True, temperature=SAMPLING["temperature"], top_k=0,
                       top_p=1.0, min_p=SAMPLING["min_p"], max_new_tokens=NEW_TOKENS,
                       min_new_tokens=NEW_TOKENS, pad_token_id=tok.pad_token_id,
                       streamer=Clock())
    new = times[1:]  # the first put() is the prompt
    return new[0] - t0, new[-1] - new[0], len(new)


def plain_llama(backend: Any, prompt: str, seed: int) -> tuple[float, float, int]:
    """``Llama.create_completion(stream=True)`` on the same prompt tokens."""
    llm = backend.llm
    ids = backend.encode(prompt)
    llm.reset()
    t0 = time.perf_counter()
    times = []
    for _chunk in llm.create_completion(ids, max_tokens=NEW_TOKENS, stream=True, seed=seed,
                                        temperature=SAMPLING["temperature"], top_k=0,
                                        top_p=1.0, min_p=SAMPLING["min_p"],
                                        repeat_penalty=1.0):
        times.append(time.perf_counter())
    return times[0] - t0, times[-1] - times[0], len(times)


# ----------------------------------------------------------------------------------------------
# 2. backends on the same weights
# ----------------------------------------------------------------------------------------------
def measure(backend: Any, prompt: str, rounds: int) -> tuple[float, float]:
    from plugins.common.lm.sampling import SamplingSettings

    s = SamplingSettings(max_new_tokens=NEW_TOKENS, temperature=0.0, stop_at_eos=False)

    def once() -> tuple[float, float]:
        if hasattr(backend, "llm"):
            backend.llm.reset()
        for _ in backend.stream(prompt, s):
            pass
        st = backend.last_stats
        assert st.new_tokens == NEW_TOKENS, st.new_tokens
        return st.tokens_per_s, st.first_token_s

    in_thread(once)  # warm-up
    runs = [in_thread(once) for _ in range(rounds)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def compare_backends(shape: str, folder: Path, tmp: Path, rounds: int, threads: int,
                     message: str) -> list[tuple[str, float, float]]:
    import torch

    from plugins.chat.engine.backends import clear_backends, open_backend
    from plugins.chat.engine.backends.llamacpp import LlamaCppBackend, available
    from plugins.chat.engine.gguf_export import export_folder

    rows = []
    tmpl = None
    for precision in ("float32", "bfloat16"):
        b = open_backend(folder, backend="transformers", precision=precision)
        tmpl = b.template_info().pick()
        prompt = tmpl.render([{"role": "user", "content": message}])
        assert b.count_tokens(prompt) == PROMPT_TOKENS, b.count_tokens(prompt)
        tps, ttft = measure(b, prompt, rounds)
        rows.append((f"transformers {precision}", tps, ttft))
        print(f"  {shape} transformers {precision:9s}: {tps:6.1f} tok/s, first token "
              f"{ttft * 1e3:5.0f} ms", flush=True)
        clear_backends()
    if available():
        from plugins.common.lm.tokens import load_tokenizer

        tok = load_tokenizer(folder)
        for ftype in ("f16", "q8_0", "q4_0"):
            path = export_folder(folder, tmp / f"{shape}-{ftype}.gguf", file_type=ftype)
            b = LlamaCppBackend(path, path.name, threads=threads, tokenizer=tok,
                                templates=None)
            assert tmpl is not None
            prompt = tmpl.render([{"role": "user", "content": message}])
            tps, ttft = measure(b, prompt, rounds)
            b.close()
            rows.append((f"llama.cpp {ftype.upper()}", tps, ttft))
            print(f"  {shape} llama.cpp {ftype.upper():12s}: {tps:6.1f} tok/s, first token "
                  f"{ttft * 1e3:5.0f} ms", flush=True)
    auto = open_backend(folder, workspace=tmp / "ws", threads=threads)
    assert tmpl is not None
    prompt = tmpl.render([{"role": "user", "content": message}])
    tps, ttft = measure(auto, prompt, rounds)
    rows.append((f"studio default: {auto.info.label}", tps, ttft))
    print(f"  {shape} studio default ({auto.info.label}): {tps:6.1f} tok/s, first token "
          f"{ttft * 1e3:5.0f} ms", flush=True)
    clear_backends()
    del torch
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="135m,360m")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-ratio", action="store_true")
    args = ap.parse_args(argv)

    from studio.device import configure_allocator

    configure_allocator()
    import torch

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="chat-speed-"))
    os.environ["STUDIO_HOME"] = str(tmp / "home")
    from plugins.chat.engine.backends.llamacpp import available, version

    print(f"threads {args.threads}; llama-cpp-python {version() or 'not installed'}; "
          f"torch {torch.__version__}")
    summary: dict[str, Any] = {}
    for shape in args.shapes.split(","):
        folder = build_model(shape, tmp / f"smollm2-{shape}-shape")
        from plugins.chat.engine.templates import builtin
        from plugins.common.lm.tokens import load_tokenizer

        message = prompt_message(load_tokenizer(folder), builtin("chatml"))
        print(f"\n{shape}: {folder.name}, prompt {PROMPT_TOKENS} tokens, {NEW_TOKENS} new",
              flush=True)
        summary[shape] = compare_backends(shape, folder, tmp, args.rounds, args.threads,
                                          message)
        if shape == "135m" and not args.skip_ratio:
            print("\nstudio (reply job, streamed) vs the backend's plain call, 135m shape:")
            ws = tmp / "ratio-ws"
            summary["ratio/transformers"] = studio_vs_plain(
                "transformers", folder, message, args.rounds, args.threads, ws)
            if available():
                from plugins.chat.engine.gguf_export import export_folder

                gguf = export_folder(folder, tmp / "ratio-f16.gguf", file_type="f16")
                summary["ratio/llama.cpp"] = studio_vs_plain(
                    "llama.cpp", gguf, message, args.rounds, args.threads, ws)
    print("\n== summary ==")
    for key, value in summary.items():
        if key.startswith("ratio/"):
            ok = "PASS" if value["ratio"] >= 0.95 else "FAIL"
            print(f"{key[6:]:12s} studio/plain tokens/s {value['ratio']:.3f} ({ok}, bar 0.95); "
                  f"plain {value['plain_tps']:.1f}, studio {value['studio_tps']:.1f} tok/s; "
                  f"first token plain {value['plain_ttft'] * 1e3:.0f} ms, studio "
                  f"{value['studio_ttft'] * 1e3:.0f} ms")
        else:
            for name, tps, ttft in value:
                print(f"{key:5s} {name:40s} {tps:7.1f} tok/s  first token {ttft * 1e3:6.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
