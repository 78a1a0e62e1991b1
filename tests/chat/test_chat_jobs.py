"""The chat's jobs exactly as the command line runs them (``studio run chat ...``): replies that
stream and are stored with their figures, intents first, context policies reported, export and
import, documents, templates, bad input as clear messages, and a crash mid-reply."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugins.chat.engine.store import Store
from studio import cli
from studio import settings as settings_mod

ROOT = Path(__file__).resolve().parents[2]


def workspace() -> Path:
    return settings_mod.load().workspace_path()


def store() -> Store:
    return Store.open(workspace())


def reply(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = cli.cmd_run("chat", "reply", list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def outcome_of(text: str) -> dict:
    return next(e["payload"] for e in events(text) if e.get("kind") == "outcome")


def test_reply_prints_stores_and_repeats_with_a_seed(tiny_chat_model: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--model", str(tiny_chat_model), "--message", "Hello", "--backend", "transformers",
            "--seed", "5", "--temperature", "1.0", "--max-new-tokens", "20"]
    rc, first, err = reply(capsys, *base)
    assert rc == 0, err
    assert first.strip() and "tokens/s" in err and "first token after" in err
    rc, again, _ = reply(capsys, *base)
    assert rc == 0 and again == first  # same seed, same reply (each in a new chat)
    with store() as s:
        chats = s.chats()
        assert len(chats) == 2
        branch = s.branch(chats[0].id)
        assert [m.role for m in branch] == ["user", "assistant"]
        assert branch[0].content == "Hello" and branch[1].complete
        assert branch[1].content.strip() == first.strip()
        stats = s.stats(branch[1].id)
        assert stats is not None and stats.ttft_s and stats.ttft_s > 0
        assert stats.tokens_per_s and stats.context_used and stats.context_total == 256
        assert stats.backend and stats.model == "tiny-chat"
        assert branch[1].meta["seed"] == 5


def test_events_stream_text_chunks(tiny_chat_model: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = reply(capsys, "--model", str(tiny_chat_model), "--message", "Good morning",
                         "--backend", "transformers", "--seed", "1", "--max-new-tokens", "16",
                         "--events", "jsonl")
    assert rc == 0, err
    evs = events(out)
    chunks = [e["payload"] for e in evs if e.get("kind") == "text"]
    result = outcome_of(out)
    assert len(chunks) >= 2 and "".join(chunks) == result["text"]
    kinds = [e.get("kind") for e in evs if e["event"] == "preview"]
    assert kinds.index("context") < kinds.index("reply") < kinds.index("text") \
        < kinds.index("stats")
    assert result["context"]["used"] > 0 and result["context"]["policy"] == "drop_middle"
    assert result["backend"]["kind"] == "transformers"


def test_regenerate_continue_and_branch(tiny_chat_model: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--model", str(tiny_chat_model), "--backend", "transformers",
              "--max-new-tokens", "8", "--events", "jsonl"]
    rc, out, _ = reply(capsys, *common, "--message", "Hello", "--seed", "1")
    first = outcome_of(out)
    chat = str(first["chat_id"])
    rc, out, _ = reply(capsys, *common, "--chat", chat, "--mode", "regenerate", "--seed", "2")
    second = outcome_of(out)
    assert rc == 0 and second["parent_id"] == first["parent_id"]
    with store() as s:
        assert s.sibling_position(second["message_id"]) == (2, 2)  # the old reply is kept
    rc, out, _ = reply(capsys, *common, "--chat", chat, "--mode", "continue", "--seed", "3")
    cont = outcome_of(out)
    assert rc == 0 and cont["message_id"] == second["message_id"]
    assert cont["text"].startswith(second["text"])
    # send under the first reply: a branch beside the regenerated one
    rc, out, _ = reply(capsys, *common, "--chat", chat, "--message", "And you?",
                       "--parent", str(first["message_id"]), "--seed", "4")
    branched = outcome_of(out)
    with store() as s:
        path = [m.id for m in s.branch(int(chat))]
        assert path[:2] == [first["parent_id"], first["message_id"]]
        assert path[-1] == branched["message_id"]
    rc, _, err = reply(capsys, *common, "--chat", chat, "--mode", "answer")
    assert rc == 1 and "reply already" in err


def test_intents_answer_before_any_model(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from plugins.chat.engine.intents import Intent

    with store() as s:
        s.save_intent(Intent("hours", ("what are your opening hours", "when are you open"),
                             "We are open from 9 to 5, Monday to Friday."))
    # the model does not exist: an intent's answer never needs it
    rc, out, err = reply(capsys, "--model", str(tmp_path / "no-model"), "--message",
                         "When are you open?")
    assert rc == 0, err
    assert out.strip() == "We are open from 9 to 5, Monday to Friday."
    assert "intent 'hours'" in err
    rc, _, err = reply(capsys, "--model", str(tmp_path / "no-model"), "--message",
                       "Write me a poem about ducks")
    assert rc == 1 and "does not exist" in err  # no intent: the model is needed


def test_context_policies_are_applied_and_reported(tiny_chat_model: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with store() as s:
        chat = s.new_chat("long")
        for i in range(12):
            s.add_message(chat, "user", f"Question number {i} about the history of tea " * 2)
            s.add_message(chat, "assistant", f"Answer number {i}: tea came from China " * 2)
        s.pin_note(chat, "The user is called Ada.")
    common = ["--model", str(tiny_chat_model), "--backend", "transformers", "--chat", str(chat),
              "--max-new-tokens", "8", "--events", "jsonl"]
    rc, _, err = reply(capsys, *common, "--message", "What is my name?", "--policy", "stop")
    assert rc == 1 and "grown too long for the model" in err
    with store() as s:  # the message is kept: answer it under another policy
        assert s.branch(chat)[-1].content == "What is my name?"
    rc, out, err = reply(capsys, *common, "--mode", "answer", "--policy", "rolling")
    assert rc == 0, err
    ctx = outcome_of(out)["context"]
    assert not ctx["complete"] and ctx["dropped_messages"] > 0
    assert any("left out" in n for n in ctx["notes"]) and ctx["used"] <= ctx["available"]
    with store() as s:
        assert s.chat(chat).settings["policy"] == "rolling"  # remembered by the chat
    # the pinned note is in the prompt the next reply gets
    rc = cli.cmd_run("chat", "template", ["--model", str(tiny_chat_model), "--chat", str(chat)])
    preview = capsys.readouterr().out
    assert rc == 0 and "The user is called Ada." in preview
    assert "What is my name?" in preview and "Question number 0 " not in preview


def test_summarise_policy_uses_the_model(tiny_chat_model: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with store() as s:
        chat = s.new_chat("long")
        for i in range(10):
            s.add_message(chat, "user", f"Tell me about river number {i} in the north " * 2)
            s.add_message(chat, "assistant", f"River {i} is long and cold and wide " * 2)
    rc, out, err = reply(capsys, "--model", str(tiny_chat_model), "--backend", "transformers",
                         "--chat", str(chat), "--policy", "summarise", "--message", "Which?",
                         "--max-new-tokens", "8", "--events", "jsonl")
    assert rc == 0, err
    ctx = outcome_of(out)["context"]
    assert ctx["summarised_messages"] > 0 and any("summary" in n for n in ctx["notes"])
    with store() as s:
        assert len(s.summary_cache()) >= 1  # kept for the next reply


def test_export_and_import(tiny_chat_model: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = reply(capsys, "--model", str(tiny_chat_model), "--backend", "transformers",
                       "--message", "Hello there", "--seed", "2", "--max-new-tokens", "8",
                       "--events", "jsonl")
    chat = outcome_of(out)["chat_id"]
    md, js = tmp_path / "chat.md", tmp_path / "chat.json"
    assert cli.cmd_run("chat", "export", ["--chat", str(chat), "--out", str(md)]) == 0
    assert cli.cmd_run("chat", "export", ["--chat", str(chat), "--out", str(js)]) == 0
    capsys.readouterr()
    text = md.read_text(encoding="utf-8")
    assert "Hello there" in text and "tokens/s" in text
    assert str(tiny_chat_model.parent) not in text + js.read_text(encoding="utf-8")
    assert cli.cmd_run("chat", "import", ["--file", str(js)]) == 0
    new_id = int(capsys.readouterr().out.strip())
    with store() as s:
        assert [m.content for m in s.branch(new_id)] == [m.content for m in s.branch(chat)]
    rc = cli.cmd_run("chat", "export", ["--chat", str(chat), "--out", str(tmp_path / "c.txt")])
    assert rc == 2 and "--out must end in .md or .json" in capsys.readouterr().err


def test_documents_are_indexed_and_cited(tiny_chat_model: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kettle.md").write_text("# Kettle\nDescale the kettle every month with vinegar.\n",
                                    encoding="utf-8")
    (docs / "garden.txt").write_text("Water the tomatoes in the evening.\n", encoding="utf-8")
    rc, out, err = reply(capsys, "--model", str(tiny_chat_model), "--backend", "transformers",
                         "--message", "How do I descale the kettle?", "--documents", str(docs),
                         "--max-new-tokens", "6", "--events", "jsonl")
    assert rc == 0, err
    result = outcome_of(out)
    assert result["citations"] and result["citations"][0]["source"] == "kettle.md"
    assert result["context"]["passages_used"] >= 1
    assert any("2 new" in e.get("text", "") for e in events(out) if e["event"] == "log")
    rc = cli.cmd_run("chat", "index", ["--folder", str(docs), "--chat",
                                       str(result["chat_id"])])
    assert rc == 0 and "2 unchanged" in capsys.readouterr().out


def test_template_preview_and_a_model_without_a_template(tiny_chat_model: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    rc = cli.cmd_run("chat", "template", ["--model", str(tiny_chat_model)])
    out = capsys.readouterr().out
    assert rc == 0 and "<|im_start|>user\nHello!<|im_end|>" in out
    rc = cli.cmd_run("chat", "template", ["--template", "llama3"])
    assert rc == 0 and "<|start_header_id|>" in capsys.readouterr().out
    bare = tmp_path / "bare"
    shutil.copytree(tiny_chat_model, bare)
    cfg = json.loads((bare / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg.pop("chat_template")
    (bare / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    rc, _, err = reply(capsys, "--model", str(bare), "--backend", "transformers",
                       "--message", "Hello")
    assert rc == 1 and "has no chat template" in err and "chatml" in err
    rc, out, err = reply(capsys, "--model", str(bare), "--backend", "transformers",
                         "--message", "Hello", "--template", "chatml", "--max-new-tokens", "4")
    assert rc == 0, err


def test_a_template_that_fails_to_render_keeps_the_chats(tiny_chat_model: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    rc, out, _ = reply(capsys, "--model", str(tiny_chat_model), "--backend", "transformers",
                       "--message", "First chat", "--max-new-tokens", "4", "--events", "jsonl")
    other = outcome_of(out)["chat_id"]
    broken = tmp_path / "broken"
    shutil.copytree(tiny_chat_model, broken)
    cfg = json.loads((broken / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["chat_template"] = ("{% for m in messages %}{% if m.role == 'user' %}"
                            "{{ raise_exception('Only tools may speak here') }}{% endif %}"
                            "{% endfor %}")
    (broken / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    rc, _, err = reply(capsys, "--model", str(broken), "--backend", "transformers",
                       "--message", "Hello")
    assert rc == 1
    assert "could not render this chat" in err and "Only tools may speak here" in err
    assert "Traceback" not in err
    with store() as s:
        assert len(s.branch(other)) == 2  # the other chat is intact
        newest = s.chats()[0]
        assert [m.content for m in s.branch(newest.id)] == ["Hello"]  # the message is kept


def test_a_damaged_chat_database_is_moved_aside(tiny_chat_model: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db = workspace() / "chat" / "chats.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    rc, _, err = reply(capsys, "--model", str(tiny_chat_model), "--backend", "transformers",
                       "--message", "Hello", "--max-new-tokens", "4")
    assert rc == 1 and "damaged" in err and "moved aside" in err and "Traceback" not in err
    assert list(db.parent.glob("chats.db.corrupt-*"))  # kept, not deleted
    rc, _, err = reply(capsys, "--model", str(tiny_chat_model), "--backend", "transformers",
                       "--message", "Hello", "--max-new-tokens", "4")
    assert rc == 0, err


def test_a_damaged_documents_index_leaves_the_chats_intact(tiny_chat_model: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.txt").write_text("Green tea steeps for two minutes.\n", encoding="utf-8")
    common = ["--model", str(tiny_chat_model), "--backend", "transformers",
              "--max-new-tokens", "4", "--events", "jsonl"]
    rc, out, _ = reply(capsys, *common, "--message", "How long does green tea steep?",
                       "--documents", str(docs))
    chat = outcome_of(out)["chat_id"]
    from plugins.chat.jobs import close_shared

    close_shared()  # the studio closes; the file is damaged before it opens again
    index = workspace() / "chat" / "documents.db"
    index.write_bytes(b"garbage" * 1000)
    rc, out, err = reply(capsys, *common, "--chat", str(chat), "--message", "And green tea?")
    assert rc == 0, err
    logs = " ".join(e.get("text", "") for e in events(out) if e["event"] == "log")
    assert "documents index" in logs and "rebuilt" in logs
    assert outcome_of(out)["citations"]  # rebuilt from the folder at once
    with store() as s:
        assert len(s.branch(chat)) == 4


CRASH = textwrap.dedent("""
    import sys, threading, time
    from plugins.chat.engine.answer import ReplyOptions, reply
    from plugins.chat.engine.backends.base import BackendInfo
    from plugins.chat.engine.store import Store
    from plugins.chat.engine.templates import TemplateInfo
    from plugins.common.lm.generation import GenerationStats

    CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\\\n' + m['content'] "
              "+ '<|im_end|>\\\\n' }}{% endfor %}{% if add_generation_prompt %}"
              "{{ '<|im_start|>assistant\\\\n' }}{% endif %}")

    class Slow:
        info = BackendInfo("fake", "fake", "fake", 4096)
        last_stats = GenerationStats()
        lock = threading.Lock()
        def count_tokens(self, text): return len(text.split())
        def template_info(self): return TemplateInfo({"default": CHATML}, "test")
        def stream(self, prompt, settings, cancel=None):
            for i in range(100000):
                print("chunk", i, flush=True)
                yield f"word{i} "
                time.sleep(0.02)
        def close(self): pass

    store = Store(sys.argv[1])
    reply(store, Slow, chat_id=None, message="Tell me a very long story",
          opts=ReplyOptions(intents=False))
""")


def test_a_crash_mid_reply_loses_at_most_its_tail(tmp_path: Path) -> None:
    from plugins.chat.engine.answer import ReplyOptions
    from plugins.chat.engine.answer import reply as answer

    db = tmp_path / "chats.db"
    with Store(db) as s:
        other = s.new_chat("kept")
        s.add_message(other, "user", "Keep me")
        s.add_message(other, "assistant", "Kept.")
    script = tmp_path / "crash.py"
    script.write_text(CRASH, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("chunk 120"):
            break
    proc.send_signal(signal.SIGKILL)  # a crash: no cleanup, no flush
    proc.wait(30)
    with Store(db) as s:
        assert [m.content for m in s.branch(other)] == ["Keep me", "Kept."]
        chat = next(c for c in s.chats() if c.id != other)
        user, partial = s.branch(chat.id)
        assert user.content == "Tell me a very long story"
        assert partial.role == "assistant" and not partial.complete
        words = partial.content.split()
        assert len(words) >= 20 and words[:3] == ["word0", "word1", "word2"]  # committed
        assert words == [f"word{i}" for i in range(len(words))]  # a clean prefix

        class Finish:  # continue the unfinished reply
            from plugins.chat.engine.backends.base import BackendInfo
            from plugins.common.lm.generation import GenerationStats

            info = BackendInfo("fake", "fake", "fake", 4096)
            last_stats = GenerationStats(stop_reasons=["eos"])
            lock = __import__("threading").Lock()

            def count_tokens(self, text: str) -> int:
                return len(text.split())

            def template_info(self):
                from chat_models import CHATML

                from plugins.chat.engine.templates import TemplateInfo

                return TemplateInfo({"default": CHATML}, "test")

            def stream(self, prompt: str, settings, cancel=None):
                assert prompt.rstrip().endswith(words[-1])  # it continues the saved text
                yield " The end."

            def close(self) -> None:
                pass

        done = answer(s, Finish, chat_id=chat.id, mode="continue",
                      opts=ReplyOptions(intents=False))
        assert done.complete and done.text == partial.content + " The end."
        assert s.message(partial.id).complete


def test_refusals_name_the_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for args, message in [
        (["--model", str(tmp_path)], "--message is required"),
        (["--model", str(tmp_path), "--mode", "continue"], "--chat is required"),
        (["--model", str(tmp_path), "--message", "x", "--policy", "forget"],
         "--policy must be one of"),
        (["--model", str(tmp_path), "--message", "x", "--temperature", "9"],
         "--temperature must be between 0 and 5"),
    ]:
        rc = cli.cmd_run("chat", "reply", args)
        assert rc == 2 and message in capsys.readouterr().err
    rc = cli.cmd_run("chat", "reply", ["--model", str(tmp_path), "--message", "hi",
                                       "--persona", "Nobody"])
    assert rc == 1 and "no persona named 'Nobody'" in capsys.readouterr().err


def test_plugin_module_imports_neither_torch_nor_qt() -> None:
    code = ("import sys, plugins.chat.plugin as p, plugins.chat.params; p.ChatPlugin.jobs; "
            "bad = [m for m in ('torch', 'PySide6', 'transformers', 'llama_cpp') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_compare_answers_one_message_with_two_models(tiny_chat_model: Path, tiny_gguf: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.cmd_run("chat", "compare", ["--model", str(tiny_chat_model), "--model-b",
                                         str(tiny_gguf), "--message", "Hello", "--seed", "3",
                                         "--backend", "transformers", "--max-new-tokens", "6",
                                         "--events", "jsonl"])
    out = capsys.readouterr().out
    assert rc == 0
    outcomes = [e for e in events(out) if e.get("kind") == "outcome"]
    assert [e["index"] for e in outcomes] == [0, 1]
    a, b = (e["payload"] for e in outcomes)
    assert a["parent_id"] == b["parent_id"] and a["message_id"] != b["message_id"]
    assert a["backend"]["kind"] == "transformers" and b["backend"]["kind"] == "transformers-gguf"
    texts = {i: "".join(e["payload"] for e in events(out)
                        if e.get("kind") == "text" and e.get("index") == i) for i in (0, 1)}
    assert texts[0] == a["text"] and texts[1] == b["text"]
    with store() as s:
        assert s.sibling_position(b["message_id"]) == (2, 2)
        assert s.chat(a["chat_id"]).active_leaf == a["message_id"]  # A shown, B one arrow away
        assert s.message(b["message_id"]).meta["compare"] == "B"


def test_convert_makes_a_gguf_copy(tiny_chat_model: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny-q8.gguf"
    rc = cli.cmd_run("chat", "convert", ["--model", str(tiny_chat_model), "--out", str(out),
                                         "--type", "q8_0"])
    assert rc == 0 and capsys.readouterr().out.strip() == str(out)
    rc = cli.cmd_run("chat", "reply", ["--model", str(out), "--message", "Hi",
                                       "--max-new-tokens", "4"])
    assert rc == 0, capsys.readouterr().err
    rc = cli.cmd_run("chat", "convert", ["--model", str(tiny_chat_model), "--out",
                                         str(tmp_path / "x.bin")])
    assert rc == 2 and "--out must end in .gguf" in capsys.readouterr().err


def test_serve_from_the_command_line(tiny_chat_model: Path, tmp_path: Path) -> None:
    """``studio run chat serve --model M --port P``: the token is printed, required, and Ctrl-C
    (SIGINT) closes the server."""
    import http.client
    import re
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STUDIO_HOME": str(tmp_path / "home")}
    studio = Path(sys.executable).parent / "studio"
    proc = subprocess.Popen([str(studio), "run", "chat", "serve",
                             "--model", str(tiny_chat_model), "--port", str(port),
                             "--backend", "transformers"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        token = None
        for line in proc.stderr:
            m = re.search(r"bearer token (\S+)", line)
            if m:
                token = m.group(1)
                break
        assert token, "no token printed"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/v1/models")
        assert conn.getresponse().status == 401
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["data"][0]["id"] == "tiny-chat"
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
