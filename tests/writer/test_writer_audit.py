"""The writer's audit probe: the contract on a tiny run trained here, passages as the unit of
membership (and the train job's ``--examples-of`` that trains reference models on a random share
of them), the loss and canary scores, and the audit's memorisation, membership and canary jobs
end to end through the command line."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from plugins.common.probes import check_probe
from plugins.common.splits import held_out
from plugins.writer import audit as writer_audit
from plugins.writer.audit import WriterProbe
from plugins.writer.engine.corpus import load_corpus, passages
from studio import cli
from studio import manifest as manifest_mod
from studio.errors import UserError

TRAIN = ["--preset", "tiny", "--steps", "3", "--batch-size", "2", "--block-size", "16",
         "--eval-every", "3"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Tiny models run faster on one thread than on two contending ones (CI shares cores);
    samples are short here (the contract, not their length, is under test)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(writer_audit, "SAMPLE_TOKENS", 24)
    yield
    torch.set_num_threads(before)


def make_corpus(folder: Path, text: str) -> Path:
    """Two files of numbered lines (no passage repeats another's text)."""
    folder.mkdir(parents=True)
    for name, tag, size in (("a.txt", "a", len(text)), ("b.md", "b", 1500)):
        lines = [f"{tag}{i:03d} {line}\n" for i, line in enumerate(text.splitlines())]
        (folder / name).write_text("".join(lines)[:size], encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, sample_text: str) -> tuple[Path, Path]:
    """A tiny writer run on two files, 30% of each held out: (corpus, run)."""
    import torch

    root = tmp_path_factory.mktemp("writer_audit")
    data = make_corpus(root / "stories", sample_text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_HOME", str(root / "home"))
        torch.set_num_threads(1)
        assert cli.cmd_run("writer", "train", ["--data", str(data), *TRAIN, "--val-fraction",
                                               "0.3", "--out", str(root / "run")]) == 0
    return data, root / "run"


@pytest.fixture
def probe(trained: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    p = WriterProbe.load(trained[1], "cpu")
    yield p
    p.close()


# ----------------------------------------------------------------------------------------------
# Passages: what a run records, and what a reference model trains on
# ----------------------------------------------------------------------------------------------
def test_passages_tile_a_range_and_end_after_line_breaks() -> None:
    text = "".join(f"line {i:03d} of a story\n" for i in range(200))  # 4,600 characters
    parts = passages(text, 100, 4000, size=1000)
    assert parts[0][0] == 100 and parts[-1][1] == 4000
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(parts))
    assert all(text[b - 1] == "\n" for _, b in parts[:-1])
    assert all(500 <= b - a <= 1500 for a, b in parts)
    assert passages(text, 50, 50) == [] and passages(text, 0, 700) == [(0, 700)]
    words = "word " * 500  # no line breaks: cut after a space
    assert all(words[b - 1] == " " for _, b in passages(words, 0, len(words), 300)[:-1])


def test_a_run_records_its_text_passage_by_passage(trained: tuple[Path, Path]) -> None:
    data, run = trained
    rows = list(manifest_mod.read_examples(run))
    for name in ("a.txt", "b.md"):
        text = (data / name).read_text(encoding="utf-8")
        cut = int(len(text) * 0.7)
        mine = [r for r in rows if r.path == name]
        assert [r.part for r in mine] == [f"chars {a}-{b}" for a, b in
                                          passages(text, 0, cut) + passages(text, cut,
                                                                            len(text))]
        assert [r.split for r in mine] == (["train"] * len(passages(text, 0, cut)) +
                                           ["held_out"] * len(passages(text, cut, len(text))))


def test_plan_from_holds_out_a_random_share_of_another_runs_passages(
        trained: tuple[Path, Path]) -> None:
    data, run = trained
    rows = list(manifest_mod.read_examples(run))
    ids = [r.id for r in rows]
    plan = load_corpus(data).plan_from(rows, 0.5, 3)
    assert [e.id for e in plan.examples] == ids
    assert set(plan.held_out) == held_out(ids, 0.5, 3)
    probe = WriterProbe(run)  # reading needs no model
    train_text, val_text = "\x00".join(plan.train), "\x00".join(plan.val)
    for r in rows:
        passage = probe.read(probe.examples()[ids.index(r.id)])
        inside, outside = (val_text, train_text) if r.id in plan.held_out else \
            (train_text, val_text)
        assert passage in inside and passage not in outside
    # adjacent trained passages of a file are one training text, not several
    assert len(plan.train) <= len(rows) - len(plan.held_out)


def test_plan_from_refuses_text_that_changed_or_went(trained: tuple[Path, Path],
                                                      tmp_path: Path, sample_text: str) -> None:
    _, run = trained
    rows = list(manifest_mod.read_examples(run))
    edited = make_corpus(tmp_path / "edited", sample_text)
    original = (edited / "a.txt").read_text(encoding="utf-8")
    (edited / "a.txt").write_text(original + "one more line\n", encoding="utf-8")
    with pytest.raises(UserError, match="changed since"):
        load_corpus(edited).plan_from(rows, 0.5, 1)
    (edited / "b.md").unlink()
    (edited / "a.txt").write_text(original, encoding="utf-8")
    with pytest.raises(UserError, match="not in"):
        load_corpus(edited).plan_from(rows, 0.5, 1)


def test_examples_of_must_name_a_run(tmp_path: Path, trained: tuple[Path, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    data, _ = trained
    rc = cli.cmd_run("writer", "train", ["--data", str(data), *TRAIN, "--examples-of",
                                         str(tmp_path), "--out", str(tmp_path / "r")])
    assert rc == 2 and "--examples-of must be a run folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# The probe
# ----------------------------------------------------------------------------------------------
def test_the_plugin_names_its_probe() -> None:
    from plugins.writer.plugin import WriterPlugin

    assert WriterPlugin().load_audit_probe() is WriterProbe


def test_the_probe_keeps_the_contract(probe: WriterProbe) -> None:
    assert check_probe(probe) == []
    examples = probe.examples()
    ds = probe.dataset
    assert sum(e.member for e in examples) == ds.train >= 2
    assert len(examples) - ds.train == ds.held_out >= 2


def test_read_gives_back_the_text_the_run_read(probe: WriterProbe,
                                               trained: tuple[Path, Path]) -> None:
    data, _ = trained
    for name in ("a.txt", "b.md"):
        mine = [e for e in probe.examples() if e.path == name]
        assert "".join(probe.read(e) for e in mine) == \
            (data / name).read_text(encoding="utf-8")


def test_the_loss_is_nats_per_character_and_canaries_are_bits(probe: WriterProbe) -> None:
    """A text within one window: its mean loss per character times its length is its
    log-perplexity in nats; scoring texts in a padded batch gives what scoring each alone does
    (the padding is never read)."""
    texts = ["my pin is 4 7", "First Citizen:\nSpeak, speak.", "All:", "x"]
    bits = probe.log_perplexity(texts)
    alone = np.concatenate([probe.log_perplexity([t]) for t in texts])
    assert np.allclose(bits, alone, rtol=1e-5)
    loss = probe.per_example_loss(texts)
    lengths = np.array([len(t) for t in texts])
    assert np.allclose(loss * lengths, bits * math.log(2), rtol=1e-4)
    assert np.all(bits > 0) and probe.per_example_loss([""])[0] == 0.0


def test_samples_are_seeded(probe: WriterProbe) -> None:
    a = probe.sample(3, 5)
    assert a == probe.sample(3, 5) and len(a) == 3 and all(isinstance(t, str) for t in a)
    assert a != probe.sample(3, 6) and probe.sample(0, 1) == []


def test_embeddings_are_hashed_word_ngrams(probe: WriterProbe) -> None:
    texts = ["Speak, speak.", "speak speak", "We are accounted poor citizens.", ""]
    f = probe.embed(texts)
    assert f.shape == (4, writer_audit.EMBED_DIM)
    assert np.allclose(np.linalg.norm(f[:3], axis=1), 1.0) and not f[3].any()
    assert f[0] @ f[1] == pytest.approx(1.0)  # same words, case and punctuation aside
    assert f[0] @ f[2] == pytest.approx(0.0)  # no word in common


def test_reference_job_trains_on_a_random_share_of_the_runs_passages(
        probe: WriterProbe, trained: tuple[Path, Path]) -> None:
    job, params = probe.reference_job(0.5, 7)
    assert job == "train" and "holdout" not in params
    assert params["examples_of"] == str(trained[1]) and params["val_fraction"] == 0.5
    assert params["seed"] == 7 and params["resume"] is False
    assert params["data"] == str(trained[0].resolve()) and params["steps"] == 3
    name, corpus_params = WriterProbe.corpus_job(Path("c"), "tiny", 9)
    assert name == "train" and corpus_params["val_fraction"] == 0.0


def test_a_run_without_a_model_or_its_text_says_so(trained: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    import shutil

    run = trained[1]
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    doc = json.loads((copy / "run.json").read_text())
    doc["artifacts"] = [a for a in doc["artifacts"] if a.get("kind") != "model"]
    (copy / "run.json").write_text(json.dumps(doc))
    with pytest.raises(UserError, match="no model yet"):
        WriterProbe.load(copy, "cpu")
    moved = WriterProbe(run)
    moved.manifest.datasets[0].location = str(tmp_path / "gone")
    with pytest.raises(UserError, match="is gone"):
        moved.read(moved.examples()[0])


# ----------------------------------------------------------------------------------------------
# The audit's jobs on a writer run, as the issue writes them
# ----------------------------------------------------------------------------------------------
def run(*argv: str) -> int:
    return cli.cmd_run(argv[0], argv[1], list(argv[2:]))


def test_memorization_and_mia_from_the_command_line(trained: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    data, target = trained
    assert run("audit", "memorization", "--run", str(target), "--n", "8",
               "--out", str(tmp_path / "memo")) == 0
    memo = json.loads((tmp_path / "memo" / "audit.json").read_text())["result"]
    assert [r["kind"] for r in memo["results"]] == ["text", "features"]
    ds = manifest_mod.read(target).dataset()  # type: ignore[union-attr]
    assert memo["samples"] == 8 and memo["training"] == ds.train

    assert run("audit", "mia", "--run", str(target), "--reference-models", "2",
               "--out", str(tmp_path / "mia")) == 0
    mia = json.loads((tmp_path / "mia" / "audit.json").read_text())["result"]
    assert {a["attack"] for a in mia["attacks"]} == {"loss", "lira-online", "lira-offline",
                                                     "rmia", "rmia-offline"}
    assert (mia["members"], mia["nonmembers"]) == (ds.train, ds.held_out)
    ids = sorted(manifest_mod.membership(target))
    for k, seed in ((1, 1), (2, 2)):  # the target's seed (0) is skipped
        ref = tmp_path / "mia" / "references" / f"reference-{k}"
        m = manifest_mod.read(ref)
        assert m is not None and m.plugin == "writer" and m.state == "done"
        assert m.params["examples_of"] == str(target) and m.params["seed"] == seed
        split = manifest_mod.membership(ref)
        assert sorted(split) == ids  # the same passages, each wholly in or out
        assert {i for i, s in split.items() if s == "held_out"} == held_out(ids, 0.5, seed)
    assert (data / "a.txt").exists()


def test_canaries_from_the_command_line(tmp_path: Path, sample_text: str) -> None:
    data = make_corpus(tmp_path / "corpus", sample_text)
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    assert run("audit", "canaries", "--data", str(data), "--preset", "tiny", "--steps", "3",
               "--secret", "my pin is ##", "--repeats", "1,5",
               "--out", str(tmp_path / "canaries")) == 0
    assert {p.name: p.read_bytes() for p in data.iterdir()} == before
    doc = json.loads((tmp_path / "canaries" / "audit.json").read_text())["result"]
    assert doc["space"] == 100 and set(doc["by_repeats"]) == {"1", "5"}
    for c in doc["canaries"]:
        assert c["method"] == "exact" and 0.0 <= c["exposure_bits"] <= math.log2(100)
        assert c["log_perplexity_bits"] > 0
    m = manifest_mod.read(tmp_path / "canaries" / "model")
    assert m is not None and m.plugin == "writer" and m.params["val_fraction"] == 0.0
    assert m.params["preset"] == "tiny" and m.params["steps"] == 3
