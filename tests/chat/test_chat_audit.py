"""The chat plugin's audit probe on a tiny chatbot trained here: the probe contract, dialogs
read back as the run trained on them, the loss as the replies' NLL per character, the bias
probes' scorer against a direct computation, and the audit's bias and memorisation jobs from the
command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from chat_models import DIALOGS

from plugins.chat.audit import ChatProbe
from plugins.common.probes import check_probe
from studio import cli
from studio import manifest as manifest_mod


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny chatbot trained from scratch on 20 dialogs, 20% held out."""
    import torch

    root = tmp_path_factory.mktemp("chat_audit")
    data = root / "dialogs.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t}
        for i, t in enumerate(d)]}) + "\n" for d in DIALOGS), encoding="utf-8")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STUDIO_HOME", str(root / "home"))
            assert cli.cmd_run("chat", "train", [
                "--data", str(data), "--preset", "tiny", "--steps", "6", "--batch-size", "2",
                "--block-size", "64", "--eval-every", "3", "--vocab-size", "400",
                "--val-fraction", "0.2", "--out", str(root / "run")]) == 0
    finally:
        torch.set_num_threads(before)
    return root / "run"


@pytest.fixture(autouse=True)
def short_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short replies: the contract, not their length, is under test."""
    from plugins.chat import audit

    monkeypatch.setattr(audit, "SAMPLE_TOKENS", 12)
    monkeypatch.setattr(audit, "CONTINUATION_TOKENS", 8)


@pytest.fixture
def probe(chat_run: Path):  # type: ignore[no-untyped-def]
    p = ChatProbe.load(chat_run, "cpu")
    yield p
    p.close()


def test_the_plugin_names_its_probe() -> None:
    from plugins.chat.plugin import ChatPlugin

    assert ChatPlugin().load_audit_probe() is ChatProbe


def test_the_probe_keeps_the_contract(probe: ChatProbe) -> None:
    assert check_probe(probe) == []


def test_dialogs_read_back_as_trained(probe: ChatProbe, chat_run: Path) -> None:
    examples = probe.examples()
    assert len(examples) == len(DIALOGS)
    assert sum(not e.member for e in examples) == 4
    first = next(e for e in examples if e.part == "dialog 0")
    d = DIALOGS[0]
    assert probe.read(first) == "\n".join(
        f"{'user' if i % 2 == 0 else 'assistant'}: {t}" for i, t in enumerate(d))
    assert probe._parse(probe.read(first)) == [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(d)]
    members = manifest_mod.membership(chat_run)
    assert all((members[e.id] == "train") == e.member for e in examples)


def test_loss_is_the_replies_nll_per_character(probe: ChatProbe) -> None:
    from plugins.chat.engine.sequences import conversation_sequence

    item = probe.read(probe.examples()[0])
    msgs = probe._parse(item)
    seq = conversation_sequence(probe.tokenizer, probe.template, msgs, train="all")
    import torch

    with torch.inference_mode():
        x = torch.tensor([seq.ids])
        logp = torch.log_softmax(probe.model(input_ids=x).logits[0, :-1].float(), -1)
        nll = -sum(float(logp[j - 1, seq.ids[j]]) for j in range(1, len(seq.ids))
                   if seq.mask[j])
    chars = sum(len(m["content"]) for m in msgs if m["role"] == "assistant")
    assert probe.per_example_loss([item])[0] == pytest.approx(nll / chars, rel=1e-4)


def test_continuations_are_scored_after_the_assistant_began_the_sentence(
        probe: ChatProbe) -> None:
    import torch

    prompt, cont = "The cat sat on the", " mat"
    head = probe._reply_prefix(prompt)
    tail = probe._encode(cont)
    with torch.inference_mode():
        x = torch.tensor([head + tail])
        logp = torch.log_softmax(probe.model(input_ids=x).logits[0, :-1].float(), -1)
    want = sum(float(logp[len(head) + k - 1, t]) for k, t in enumerate(tail))
    got = probe.continuation_logprob([prompt, prompt], [cont, " hat"])
    assert got[0] == pytest.approx(want, abs=1e-4) and np.isfinite(got[1])
    a = probe.generate(prompt, 2, 3)
    assert a == probe.generate(prompt, 2, 3) and len(a) == 2
    bits = probe.log_perplexity(["Paris", "Paris is the capital"])
    assert bits.shape == (2,) and bits[1] > bits[0] > 0


def test_bias_and_memorization_from_the_command_line(chat_run: Path, tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps({
        "groups": {"pets": ["cat", "dog"]},
        "templates": [{"prompt": "The {group} was", "positive": [" fine"], "negative": [" bad"],
                       "continuations": [" here"]},
                      {"prompt": "My {group} is", "positive": [" good"], "negative": [" sad"]}]}),
        encoding="utf-8")
    assert cli.cmd_run("audit", "bias", ["--run", str(chat_run), "--templates",
                                         str(tmp_path / "t.json"), "--samples", "3",
                                         "--out", str(tmp_path / "bias")]) == 0
    r = json.loads((tmp_path / "bias" / "audit.json").read_text())["result"]
    (cat,) = r["categories"]
    assert [f["group"] for f in cat["sentiment"]] == ["cat", "dog"]
    assert all(f["n"] == 6 for f in cat["sentiment"]) and r["headline"]
    assert cli.cmd_run("audit", "memorization", ["--run", str(chat_run), "--n", "4",
                                                 "--out", str(tmp_path / "memo")]) == 0
    m = json.loads((tmp_path / "memo" / "audit.json").read_text())["result"]
    assert m["samples"] == 4 and m["training"] == 16
