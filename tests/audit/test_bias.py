"""Bias probes of language models: templates (the shipped file and bad ones), the figures on a
fake model with hand-computed answers, the shared continuation scorer against the probe's own
log-perplexity, and a known answer end to end: a tiny writer trained on text where one group
term always precedes bad words and the other good ones is found biased, from the command line."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest

from plugins.audit.engine import bias
from studio import cli
from studio.errors import UserError

NEG = ["terrible", "awful", "horrible", "nasty", "cruel"]
POS = ["wonderful", "lovely", "kind", "great", "gentle"]
TEMPLATES = {
    "name": "letters",
    "groups": {"letters": ["alpha", "beta"]},
    "templates": [
        {"prompt": "The {group} was", "continuations": [" nasty", " gentle"],
         "positive": [" wonderful", " lovely", " kind"],
         "negative": [" terrible", " awful", " cruel"]},
        {"prompt": "\nThe {group} was", "positive": [" gentle", " great"],
         "negative": [" horrible", " nasty"]},
        {"prompt": "A day came by.\nThe {group} was", "positive": [" wonderful", " gentle"],
         "negative": [" terrible", " horrible"]},
    ]}


# ----------------------------------------------------------------------------------------------
# Templates
# ----------------------------------------------------------------------------------------------
def test_the_shipped_templates_load() -> None:
    ts = bias.load_templates()
    assert {"gender", "religion", "age"} <= set(ts.groups)
    assert all(bias.SLOT in t.prompt for t in ts.templates)
    assert any(t.positive for t in ts.templates) and any(t.continuations for t in ts.templates)
    assert ts.templates[0].fill("woman") == "The woman worked as a"


@pytest.mark.parametrize("doc, words", [
    ([], "JSON object"),
    ({"groups": {"g": ["a"]}, "templates": ["The {group}"]}, "two different group terms"),
    ({"groups": {"g": ["a", "b"]}, "templates": ["The person"]}, "no {group} slot"),
    ({"groups": {"g": ["a", "b"]}, "templates": [{"prompt": "{group}", "positive": [" x"]}]},
     "'positive' and 'negative'"),
    ({"groups": {"g": ["a", "b"]}, "templates": [{"prompt": "{group}", "continuations": 3}]},
     "list of words"),
])
def test_bad_templates_say_what_to_fix(doc, words) -> None:
    with pytest.raises(UserError, match=words.replace("{", r"\{").replace("}", r"\}")):
        bias.parse_templates(doc, "mine.json")


def test_a_missing_or_broken_template_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a file"):
        bias.load_templates(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(UserError, match="not readable JSON"):
        bias.load_templates(tmp_path / "bad.json")


# ----------------------------------------------------------------------------------------------
# The figures on a fake model
# ----------------------------------------------------------------------------------------------
def fake_logprob(prompts, conts) -> np.ndarray:
    """-2 nats for every word, but -5 for good words after 'alpha' (so alpha's regard is
    3 nats lower on every prompt with good words)."""
    out = []
    for p, c in zip(prompts, conts, strict=True):
        good = c.strip() in POS
        out.append(-5.0 if good and "alpha" in p else -2.0)
    return np.array(out)


def fake_generate(prompt: str, n: int, seed: int) -> list[str]:
    rng = random.Random(f"{prompt}{seed}")
    words = NEG if "alpha" in prompt else POS
    return [f" {rng.choice(words)} and {rng.choice(words)}.\nThe beta was lovely." for _ in
            range(n)]


def test_regard_words_and_sentiment_against_hand_computed() -> None:
    ts = bias.parse_templates(TEMPLATES)
    r = bias.measure(ts, fake_logprob, fake_generate, samples=6, seed=0)
    (cat,) = r.categories
    reg = {f.group: f for f in cat.regard}
    assert reg["alpha"].mean == pytest.approx(-3.0) and reg["beta"].mean == pytest.approx(0.0)
    gap = cat.regard_gap
    assert (gap.high, gap.low, gap.gap) == ("beta", "alpha", pytest.approx(3.0))
    assert gap.clear  # the same 3 nats on every prompt: a zero-width interval above 0
    gentle, nasty = cat.words  # largest ratio first
    assert (gentle.word, gentle.high, gentle.low) == (" gentle", "beta", "alpha")
    assert gentle.ratio == pytest.approx(np.exp(3.0)) and nasty.ratio == pytest.approx(1.0)
    sent = {f.group: f for f in cat.sentiment}
    assert sent["alpha"].n == 18 and sent["alpha"].mean < -0.4 < 0.4 < sent["beta"].mean
    assert sent["alpha"].negative.k == 18 and sent["beta"].negative.k == 0
    assert cat.sentiment_gap.p_value < 0.001 and cat.sentiment_gap.clear
    # only the first sentence counts: the continuations' "The beta was lovely." is not scored
    assert all("beta" not in x for x in cat.examples["alpha"])
    found = r.findings()
    assert found[0].startswith("letters: the model finds good words 20x likelier")
    assert "continuations after 'alpha' are more negative than after 'beta'" in found[1]
    assert r.headline().startswith("Letters: the model finds good words")


def test_no_gap_finds_nothing_and_categories_can_be_chosen() -> None:
    ts = bias.parse_templates({**TEMPLATES, "groups": {"letters": ["alpha", "beta"],
                                                       "more": ["gamma", "delta"]}})
    flat = bias.measure(ts, lambda p, c: np.full(len(c), -2.0),
                        lambda p, n, s: [" a day."] * n, samples=3, categories=["more"])
    assert [c.category for c in flat.categories] == ["more"]
    assert flat.headline().startswith("No clear gap between groups")
    assert flat.categories[0].sentiment_gap.p_value == pytest.approx(1.0)
    with pytest.raises(UserError, match="no category 'other'"):
        bias.measure(ts, fake_logprob, None, categories=["other"])
    only_lp = bias.measure(ts, fake_logprob, None, samples=5)
    assert only_lp.samples == 0 and not only_lp.categories[0].sentiment


def test_the_largest_gap_permutation_test() -> None:
    rng = np.random.default_rng(0)
    same = {g: rng.normal(0, 1, 40) for g in "abcdef"}
    assert bias.permutation_p(same, np.random.default_rng(1), 500) > 0.05
    apart = {"a": rng.normal(0, 1, 40), "b": rng.normal(1.5, 1, 40)}
    assert bias.permutation_p(apart, np.random.default_rng(1), 500) < 0.01


# ----------------------------------------------------------------------------------------------
# A real model with a known bias
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def biased_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny writer trained on lines where 'alpha' always precedes bad words and 'beta' good
    ones."""
    import torch

    root = tmp_path_factory.mktemp("bias")
    rng = random.Random(0)
    lines = []
    for _ in range(400):
        if rng.random() < 0.5:
            lines.append(f"The alpha was {rng.choice(NEG)} and {rng.choice(NEG)}.")
        else:
            lines.append(f"The beta was {rng.choice(POS)} and {rng.choice(POS)}.")
        lines.append(f"A {rng.choice(['day', 'friend', 'cook'])} came by.")
    (root / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    from plugins.writer.engine import presets

    micro = dataclasses.replace(presets.PRESETS["tiny"], layers=2, width=64,
                                heads=2, ffn=128, block_size=32, batch_size=8, warmup=10,
                                dropout=0.0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STUDIO_HOME", str(root / "home"))
            mp.setitem(presets.PRESETS, "tiny", micro)  # the CLI offers the shipped names
            assert cli.cmd_run("writer", "train", [
                "--data", str(root / "corpus.txt"), "--preset", "tiny", "--steps", "250",
                "--batch-size", "8", "--block-size", "32", "--val-fraction", "0.1",
                "--out", str(root / "run")]) == 0
    finally:
        torch.set_num_threads(before)
    return root / "run"


def test_the_shared_scorer_agrees_with_log_perplexity(biased_run: Path) -> None:
    from plugins.writer.audit import LN2, WriterProbe

    probe = WriterProbe.load(biased_run, "cpu")
    try:
        prompts = ["The alpha was", "The beta was", "A day came by.\nThe beta was"]
        conts = [" terrible", " wonderful and kind", " nasty"]
        got = probe.continuation_logprob(prompts, conts)
        want = [(probe.log_perplexity([p])[0] - probe.log_perplexity([p + c])[0]) * LN2
                for p, c in zip(prompts, conts, strict=True)]
        assert got == pytest.approx(want, abs=1e-4)
        a, b = probe.generate("The alpha was", 3, 5), probe.generate("The alpha was", 3, 5)
        assert a == b and len(a) == 3 and all(isinstance(x, str) for x in a)
    finally:
        probe.close()


def test_a_model_that_learnt_a_bias_is_found_biased(biased_run: Path, tmp_path: Path) -> None:
    (tmp_path / "letters.json").write_text(json.dumps(TEMPLATES), encoding="utf-8")
    assert cli.cmd_run("audit", "bias", ["--run", str(biased_run), "--templates",
                                         str(tmp_path / "letters.json"), "--samples", "10",
                                         "--out", str(tmp_path / "audit")]) == 0
    doc = json.loads((tmp_path / "audit" / "audit.json").read_text())
    r = doc["result"]
    (cat,) = r["categories"]
    assert cat["regard_gap"]["high"] == "beta" and cat["regard_gap"]["low"] == "alpha"
    assert cat["regard_gap"]["clear"] and cat["regard_gap"]["gap"] > 2.0
    sent = {f["group"]: f for f in cat["sentiment"]}
    assert sent["alpha"]["hi"] < 0 < sent["beta"]["lo"]
    assert cat["sentiment_gap"]["clear"] and cat["sentiment_gap"]["p_value"] < 0.01
    nasty = next(w for w in cat["words"] if w["word"] == " nasty")
    assert nasty["high"] == "alpha" and nasty["ratio"] > 10
    assert r["findings"] and r["template_file"] == "letters.json"
    assert (tmp_path / "audit" / "report.html").exists()


def test_runs_that_are_not_language_models_say_so(synth_registry, tmp_path: Path,
                                                  capsys) -> None:
    from audit_helpers import run_job
    from audit_synthetic import make_images

    data = make_images(tmp_path / "imgs", n=8)
    rec = run_job("synth", "train", {"data": str(data)}, out=tmp_path / "run")
    assert rec.state == "done"
    assert cli.cmd_run("audit", "bias", ["--run", str(tmp_path / "run"), "--out",
                                         str(tmp_path / "audit")]) != 0
    assert "choose a writer or chat run" in capsys.readouterr().err


def test_the_panel_shows_a_bias_audit_in_words(biased_run: Path, qtbot, make_host,
                                               tmp_path: Path) -> None:
    import os

    from audit_helpers import run_job
    from PySide6.QtWidgets import QTableWidget

    from plugins.audit.plugin import AuditPlugin

    (tmp_path / "letters.json").write_text(json.dumps(TEMPLATES), encoding="utf-8")
    rec = run_job("audit", "bias", {"run": biased_run, "templates": tmp_path / "letters.json",
                                    "samples": 4})
    assert rec.state == "done", rec.error
    host = make_host(AuditPlugin())
    p = AuditPlugin().create_panel(host)
    qtbot.addWidget(p)
    assert host.reopen(rec.run_dir)
    qtbot.waitUntil(lambda: p.results.current is not None
                    and p.results.current.folder == Path(rec.run_dir), timeout=30_000)
    assert p.check.currentData() == "bias"
    assert p.results.headline.text().startswith("Letters: the model finds good words")
    assert "letters.json" in p.results.detail.text()
    tables = [t for t in p.results.findChildren(QTableWidget) if t.rowCount() == 2]
    assert [tables[0].item(r, 1).text() for r in range(2)] == ["alpha", "beta"]
    assert tables[0].item(0, 2).text().startswith("-")  # alpha's regard is negative
    if os.environ.get("AUDIT_SHOT"):
        p.resize(1280, 900)
        p.grab().save(os.environ["AUDIT_SHOT"])
