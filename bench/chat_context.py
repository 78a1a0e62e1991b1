"""A 200-turn chat against a 2,048-token model under each context policy (issue 12).

For every turn the real reply path runs (``plugins.chat.engine.answer.reply``: store, persona,
ChatML template, pinned notes and a memory note, the policy, the transformers backend), and a
probe between the chat and the backend checks what the model is actually given:

- **no reply from a silently truncated prompt**: the prompt the backend reads is the planned
  prompt, whole (the backend's own token count equals the plan's, and prompt + reply fit the
  context), and whenever the whole chat would not fit, the reply's context report says what was
  left out or summarised (never an omission without a note);
- **pinned notes always in the prompt**: both notes are in every prompt the model reads;
- under ``stop`` the chat ends with a message the first time it does not fit, and no reply is
  generated for that turn.

The model is a random-weight Llama (4 layers, 2,048 positions) with a byte-level BPE tokenizer
trained on the chatterbot corpus: token accounting does not depend on what the weights say.
Messages are lines of the corpus (10 to 60 tokens), replies 24 tokens.

    python bench/chat_context.py                 # 200 turns, every policy
    python bench/chat_context.py --turns 60 --policies rolling,summarise
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONTEXT = 2048
PINNED = ("The user's name is Ada Lovelace.", "Always answer in English.")
MEMORY = "Ada prefers short answers."


def build_model(folder: Path) -> Path:
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

    tok = train_chat_tokenizer(list(load_dialogs("builtin").texts()), 2048)
    eos, pad = tok.convert_tokens_to_ids(IM_END), tok.convert_tokens_to_ids(PAD)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=CONTEXT, tie_word_embeddings=True,
                      bos_token_id=None, eos_token_id=eos, pad_token_id=pad)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = eos
    model.save_pretrained(str(folder))
    save_tokenizer(tok, folder)
    write_template_config(folder, CHATML)
    return folder


class Probe:
    """Between the chat and the backend: records what the model is given."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.info = backend.info
        self.lock = threading.Lock()
        self.prompts: list[str] = []
        self.replies = 0

    @property
    def last_stats(self) -> Any:
        return self.backend.last_stats

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def template_info(self) -> Any:
        return self.backend.template_info()

    def stream(self, prompt: str, settings: Any, cancel: Any = None) -> Any:
        self.prompts.append(prompt)
        yield from self.backend.stream(prompt, settings, cancel)

    def close(self) -> None:
        pass


def run_policy(policy: str, model: Path, turns: int, lines: list[str], tmp: Path
               ) -> dict[str, Any]:
    from plugins.chat.engine import context as context_mod
    from plugins.chat.engine.answer import ReplyOptions, reply
    from plugins.chat.engine.backends import open_backend
    from plugins.chat.engine.personas import DEFAULT_PERSONA
    from plugins.chat.engine.store import Store
    from studio.errors import UserError

    probe = Probe(open_backend(model, backend="transformers"))
    store = Store(tmp / f"{policy}.db")
    chat = store.new_chat(policy)
    for note in PINNED:
        store.pin_note(chat, note)
    store.add_memory(MEMORY, approved=True)
    rng = random.Random(0)
    out = {"policy": policy, "answered": 0, "incomplete": 0, "silent_cuts": 0,
           "pinned_missing": 0, "max_prompt": 0, "stopped_at": None, "stop_generated": 0,
           "summaries": 0, "seconds": 0.0, "overflows": 0}
    t0 = time.perf_counter()
    for turn in range(1, turns + 1):
        message = " ".join(rng.sample(lines, 2))
        before = len(probe.prompts)
        try:
            r = reply(store, lambda: probe, chat_id=chat, message=message,
                      opts=ReplyOptions(policy=policy, seed=turn, max_new_tokens=24,
                                        intents=False, reserve=24))
        except context_mod.ContextOverflow as exc:
            out["stopped_at"] = turn
            out["stop_generated"] = len(probe.prompts) - before  # must be 0
            out["stop_message"] = str(exc)
            break
        except UserError as exc:
            raise SystemExit(f"{policy}, turn {turn}: {exc}") from None
        if len(probe.prompts) == before:
            raise SystemExit(f"{policy}, turn {turn}: no prompt reached the model")
        prompt = probe.prompts[-1]
        stats = probe.last_stats
        ctx = r.context
        assert ctx is not None
        used = probe.count_tokens(prompt)
        out["max_prompt"] = max(out["max_prompt"], used)
        whole = stats.prompt_tokens == used == ctx.used and used + 24 <= CONTEXT
        need, _ = context_mod.measure(
            store.branch(chat, r.parent_id), budget=context_mod.Budget(CONTEXT, 24),
            counter=probe, render=lambda m: probe.template_info().pick().render(m),
            system_prompt=DEFAULT_PERSONA.full_system_prompt(), pinned=PINNED,
            memory=[MEMORY])
        overflow = need > CONTEXT - 24
        out["overflows"] += overflow
        reported = ctx.complete or bool(ctx.notes)
        if not whole or (overflow and ctx.complete) or not reported:
            out["silent_cuts"] += 1
        out["incomplete"] += not ctx.complete
        out["pinned_missing"] += sum(1 for note in PINNED if note not in prompt)
        out["answered"] += 1
    out["summaries"] = len(store.summary_cache())
    out["seconds"] = time.perf_counter() - t0
    out["model_calls"] = len(probe.prompts)
    store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--policies", default="stop,drop_middle,rolling,summarise")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from plugins.chat.engine.dialogs import load_dialogs

    tmp = Path(tempfile.mkdtemp(prefix="chat-context-"))
    model = build_model(tmp / "model")
    lines = [t for t in load_dialogs("builtin").texts() if 40 <= len(t) <= 250]
    failures = 0
    print(f"{args.turns} turns against a {CONTEXT}-token model, replies of 24 tokens")
    for policy in args.policies.split(","):
        r = run_policy(policy, model, args.turns, lines, tmp)
        ok = r["silent_cuts"] == 0 and r["pinned_missing"] == 0 and r["stop_generated"] == 0
        if policy == "stop":
            ok = ok and r["stopped_at"] is not None
        else:
            ok = ok and r["answered"] == args.turns and r["incomplete"] > 0
        failures += not ok
        print(f"{policy:12s} {'PASS' if ok else 'FAIL'}: answered {r['answered']} turns "
              f"(whole chat too long for {r['overflows']} of them; {r['incomplete']} prompts "
              f"left out or summarised older turns, each said so), largest prompt "
              f"{r['max_prompt']} tokens, silent cuts {r['silent_cuts']}, pinned notes "
              f"missing {r['pinned_missing']}, model calls {r['model_calls']}, summaries "
              f"cached {r['summaries']}, {r['seconds']:.0f} s", flush=True)
        if policy == "stop" and r["stopped_at"]:
            print(f"{'':12s} stopped at turn {r['stopped_at']} with no reply generated "
                  f"({r['stop_generated']} model calls): \"{r['stop_message'][:110]}...\"")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
