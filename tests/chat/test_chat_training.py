"""Training chat models: dialogs read from every format, a chatbot from scratch on the built-in
corpus, fine-tuning from feedback (SFT + DPO) into an adapter the model library lists, and
exact resume through the job runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugins.chat.engine.dialogs import load_dialogs, read_file
from plugins.chat.engine.store import Store
from studio import cli, manifest
from studio import settings as settings_mod
from studio.errors import UserError


def workspace() -> Path:
    return settings_mod.load().workspace_path()


# -- dialogs -----------------------------------------------------------------------------------
def test_dialog_formats(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"messages": [{"role": "system", "content": "Be kind."},
                                 {"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello!"}]}) + "\n\n"
        + json.dumps([{"role": "user", "content": "Only a question"}]) + "\n",
        encoding="utf-8")
    (tmp_path / "b.txt").write_text("User: How are you?\nBot: Fine, thanks.\nUser: Good.\n\n"
                                    "Where is Paris?\nIn France.\n", encoding="utf-8")
    (tmp_path / "c.yml").write_text("conversations:\n- - Ping\n  - Pong\n- just a string\n",
                                    encoding="utf-8")
    ds = load_dialogs(tmp_path)
    got = {(d.source, d.index): d.messages for d in ds.dialogs}
    assert got[("a.jsonl", 0)] == (("system", "Be kind."), ("user", "Hi"),
                                   ("assistant", "Hello!"))
    assert got[("b.txt", 0)] == (("user", "How are you?"), ("assistant", "Fine, thanks."),
                                 ("user", "Good."))
    assert got[("b.txt", 1)] == (("user", "Where is Paris?"), ("assistant", "In France."))
    assert got[("c.yml", 0)] == (("user", "Ping"), ("assistant", "Pong"))
    assert ds.skipped == 2 and "2 dialog(s) without a reply" in ds.notes[0]


def test_dialog_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{oops\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad\.jsonl, line 2: not JSON"):
        read_file(bad)
    role = tmp_path / "role.jsonl"
    role.write_text(json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n",
                    encoding="utf-8")
    with pytest.raises(UserError, match=r"role\.jsonl, line 1: every message needs a role"):
        read_file(role)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("déjà vu\nmerci\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin\.txt is not UTF-8"):
        read_file(latin)
    with pytest.raises(UserError, match="no language 'klingon'"):
        load_dialogs("builtin", "klingon")


def test_the_builtin_corpus_is_there_offline() -> None:
    english = load_dialogs("builtin")
    assert len(english.dialogs) > 1500 and english.name == "chatterbot-corpus (english)"
    assert all(d.replies for d in english.dialogs)
    french = load_dialogs("builtin", "french")
    assert 20 < len(french.dialogs) < 200


def test_replies_only_are_trained(tiny_chat_model: Path) -> None:
    from plugins.chat.engine.sequences import conversation_sequence
    from plugins.chat.engine.templates import builtin
    from plugins.common.lm.tokens import load_tokenizer

    tok = load_tokenizer(tiny_chat_model)
    msgs = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"},
            {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "See you"}]
    seq = conversation_sequence(tok, builtin("chatml"), msgs, train="all")
    trained = tok.decode([i for i, m in zip(seq.ids, seq.mask, strict=True) if m])
    assert trained == "Hi there<|im_end|>\nSee you<|im_end|>\n"
    last = conversation_sequence(tok, builtin("chatml"), msgs, train="last")
    assert tok.decode([i for i, m in zip(last.ids, last.mask, strict=True) if m]) == \
        "See you<|im_end|>\n"
    assert tok.decode(seq.ids) == builtin("chatml").render(msgs, add_generation_prompt=False)


# -- from scratch ------------------------------------------------------------------------------
def test_train_from_scratch_on_the_builtin_dialogs(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc = cli.cmd_run("chat", "train", ["--data", "builtin", "--preset", "tiny", "--steps", "2",
                                       "--out", str(run), "--batch-size", "2",
                                       "--block-size", "64", "--eval-every", "2"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert out.out.strip() == str(run / "model")
    cfg = json.loads((run / "model" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert "<|im_start|>" in cfg["chat_template"]
    assert "a sample reply" in out.err
    m = manifest.read(run)
    assert m is not None and [a.model_kind for a in m.models()] == ["causal-lm"]
    ds = m.dataset("train")
    assert ds is not None and ds.unit == "dialog" and ds.examples > 1500 and ds.held_out > 100
    members = manifest.membership(run)
    assert any(e.endswith("#dialog 0") for e in members)
    rc = cli.cmd_run("chat", "reply", ["--model", str(run), "--message", "Hello",
                                       "--backend", "transformers", "--max-new-tokens", "5"])
    assert rc == 0, capsys.readouterr().err  # its template came with it


def test_train_job_resumes_exactly_through_the_runner(tmp_path: Path) -> None:
    from chat_models import DIALOGS
    from resume_check import assert_exact_resume

    from plugins.chat.params import TrainParams
    from studio.storage import load_tensors

    data = tmp_path / "dialogs.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t}
        for i, t in enumerate(d)]}) + "\n" for d in DIALOGS), encoding="utf-8")
    cut = assert_exact_resume(
        tmp_path, "chat", "train",
        lambda resume: TrainParams(data=str(data), preset="tiny", steps=6, batch_size=2,
                                   block_size=64, eval_every=2, vocab_size=400, seed=1,
                                   resume=resume),
        weights=lambda run: load_tensors(run / "model" / "model.safetensors"),
        measured=("tokens_per_s",))
    assert 0 < cut < 6


# -- from feedback -----------------------------------------------------------------------------
def seed_feedback(ws: Path) -> dict[str, int]:
    """A chat with a liked reply, a corrected one and a thumbs-down without a correction."""
    with Store.open(ws) as s:
        chat = s.new_chat("feedback")
        s.add_message(chat, "user", "What is the capital of France?")
        liked = s.add_message(chat, "assistant", "The capital of France is Paris.")
        s.add_message(chat, "user", "And of Italy?")
        wrong = s.add_message(chat, "assistant", "Paris again.")
        s.add_message(chat, "user", "Tell me a joke")
        down = s.add_message(chat, "assistant", "No.")
        s.set_feedback(liked, 1)
        s.set_feedback(wrong, -1, "The capital of Italy is Rome.")
        s.set_feedback(down, -1)
    return {"chat": chat, "liked": liked, "wrong": wrong, "down": down}


def test_finetune_from_feedback_makes_an_adapter_the_library_lists(
        tiny_chat_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from studio.models import ModelLibrary

    ids = seed_feedback(workspace())
    run = tmp_path / "improve"
    rc = cli.cmd_run("chat", "finetune", ["--model", str(tiny_chat_model), "--out", str(run),
                                          "--steps", "3", "--batch-size", "2"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    adapter = run / "adapter"
    assert out.out.strip() == str(adapter)
    acfg = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert acfg["base_model_name_or_path"] == str(tiny_chat_model.resolve())
    assert "1 liked reply, 1 corrected" in out.err and "without a correction left out" in out.err
    entries = ModelLibrary(workspace(), hf_cache=False).scan(kinds=["lm-adapter"])
    assert [e.path for e in entries] == [adapter] and entries[0].plugin == "chat"
    members = manifest.membership(run)
    assert sorted(members) == sorted([
        e for e in members if e.startswith((f"chat-{ids['chat']}/message-{ids['liked']}@",
                                            f"chat-{ids['chat']}/message-{ids['wrong']}@"))])
    assert len(members) == 2
    names = {json.loads(line)["name"] for line in
             (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()}
    assert {"loss/train", "loss/sft", "loss/dpo", "reward/margin", "reward/accuracy"} <= names
    saved = [json.loads(x) for x in (run / "feedback.jsonl").read_text().splitlines()]
    assert {x["kind"] for x in saved} == {"liked", "corrected"}
    corrected = next(x for x in saved if x["kind"] == "corrected")
    assert corrected["target"] == "The capital of Italy is Rome."
    assert corrected["rejected"] == "Paris again."
    assert corrected["messages"][0]["role"] == "system"  # the persona's prompt, as at chat time
    # the adapter chats (merged into its base), by the library's path
    rc = cli.cmd_run("chat", "reply", ["--model", str(adapter), "--message", "Hi",
                                       "--max-new-tokens", "5", "--seed", "1"])
    assert rc == 0, capsys.readouterr().err


def test_finetune_without_feedback_or_from_gguf_says_what_to_do(
        tiny_chat_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.cmd_run("chat", "finetune", ["--model", str(tiny_chat_model),
                                          "--out", str(tmp_path / "r1")])
    err = capsys.readouterr().err
    assert rc == 1 and "no feedback to learn from yet" in err and "thumbs up" in err
    seed_feedback(workspace())
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    rc = cli.cmd_run("chat", "finetune", ["--model", str(gguf), "--out", str(tmp_path / "r2")])
    assert rc == 1 and "Hugging Face folder" in capsys.readouterr().err


def test_dpo_prefers_the_correction(tiny_chat_model: Path) -> None:
    """A few steps on one pair move the model towards the correction, relative to the
    reference (the adapter switched off): the preference term really trains."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on the test's own thread
    try:
        _dpo_steps(tiny_chat_model)
    finally:
        torch.set_num_threads(threads)


def _dpo_steps(tiny_chat_model: Path) -> None:
    import torch

    from plugins.chat.engine.finetune import FeedbackTask, PairData, sequence_logp
    from plugins.chat.engine.sequences import conversation_sequence
    from plugins.chat.engine.templates import builtin
    from plugins.common.lm.data import SequenceData
    from plugins.common.lm.loading import load_causal_lm
    from plugins.common.lm.training import TrainConfig, apply_lora
    from plugins.common.training import LoopState, QuietReporter

    torch.manual_seed(0)
    model, tok, _ = load_causal_lm(tiny_chat_model)
    cfg = TrainConfig(steps=12, batch_size=2, block_size=64, lr=5e-3, warmup=0,
                      method="lora", lora_r=4, lora_alpha=8, lora_dropout=0.0, weight_decay=0)
    model = apply_lora(model, cfg)
    prompt = [{"role": "user", "content": "Capital of Italy?"}]
    tpl = builtin("chatml")
    chosen = conversation_sequence(tok, tpl, [*prompt, {"role": "assistant", "content": "Rome"}],
                                   train="last")
    rejected = conversation_sequence(tok, tpl, [*prompt, {"role": "assistant",
                                                          "content": "Paris"}], train="last")
    pairs = PairData([(chosen, rejected)], pad_id=0)
    rep = QuietReporter()
    task = FeedbackTask(model, SequenceData([chosen]), pairs, cfg, rep, "cpu", beta=0.5,
                        dpo_weight=1.0)
    for step in range(12):
        task.train_step(LoopState(steps=12, step=step, horizon=12))
        if step == 0:
            first = task.log_values(LoopState(steps=12, step=1, horizon=12))
    last = task.log_values(LoopState(steps=12, step=12, horizon=12))
    assert last["reward/margin"] > first["reward/margin"] and last["reward/accuracy"] == 1.0
    batch = pairs.batch(1, torch.Generator().manual_seed(0), "cpu")
    model.eval()
    with torch.no_grad():
        logp = sequence_logp(model(input_ids=batch.inputs).logits, batch.labels)
        with model.disable_adapter():
            ref = sequence_logp(model(input_ids=batch.inputs).logits, batch.labels)
    assert (logp[0] - ref[0]) - (logp[1] - ref[1]) > 0


def test_finetune_resumes_exactly_through_the_runner(tiny_chat_model: Path,
                                                     tmp_path: Path) -> None:
    from resume_check import assert_exact_resume

    from plugins.chat.params import FinetuneParams
    from studio.storage import load_tensors

    seed_feedback(tmp_path / "ws")
    cut = assert_exact_resume(
        tmp_path, "chat", "finetune",
        lambda resume: FinetuneParams(model=tiny_chat_model, steps=6, batch_size=2, seed=2,
                                      resume=resume),
        weights=lambda run: load_tensors(run / "adapter" / "adapter_model.safetensors"),
        workspace=tmp_path / "ws", measured=("tokens_per_s",))
    assert 0 < cut < 6
