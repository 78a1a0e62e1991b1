"""The music plugin's audit probe: the contract on tiny melody and piano-roll runs trained here
(4/4 and 6/8), phrases read back exactly as the trainer cut them (format-1 runs' exact bars
too), the loss as the negative ELBO per step, seeded samples, latent features, the reference
job, and the audit's memorisation and membership jobs end to end through the command line
(reference models trained by the music train job)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from music_helpers import write_song, write_tune

from plugins.common.probes import Note, check_probe
from plugins.music.audit import MusicProbe, notes_item, step_notes
from studio import cli
from studio import manifest as manifest_mod
from studio.errors import UserError

FORMAT1 = Path(__file__).parent / "data" / "format1"
TINY = ["--preset", "tiny", "--steps", "3", "--holdout", "0.5"]


def run(*argv: str) -> int:
    return cli.cmd_run(argv[0], argv[1], list(argv[2:]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny runs: 2-bar melodies of six 4/4 songs (a 6/8 tune among them is skipped, the
    metre left to the data) and 2-bar piano-rolls of four 6/8 tunes; half the files held out."""
    import torch

    root = tmp_path_factory.mktemp("music_audit")
    songs, jigs = root / "songs", root / "jigs"
    for i in range(6):
        write_song(songs / f"song_{i}.mid", i, tracks=2 if i % 3 == 0 else 1)
    write_tune(songs / "jig.mid", "6/8", bars=8, seed=9)
    for i in range(4):
        write_tune(jigs / f"jig_{i}.mid", "6/8", bars=4, seed=i)
    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_HOME", str(root / "home"))
        torch.set_num_threads(1)
        try:
            assert run("music", "train", "--data", str(songs), *TINY,
                       "--out", str(root / "melody")) == 0
            assert run("music", "train", "--data", str(jigs), "--mode", "pianoroll", *TINY,
                       "--out", str(root / "pianoroll")) == 0
        finally:
            torch.set_num_threads(before)
    return {"melody": root / "melody", "pianoroll": root / "pianoroll", "songs": songs,
            "jigs": jigs, "home": root / "home"}


@pytest.fixture(params=["melody", "pianoroll"])
def probe(request: pytest.FixtureRequest, runs: dict[str, Path]):  # type: ignore[no-untyped-def]
    p = MusicProbe.load(runs[request.param], "cpu")
    yield p
    p.close()


def test_the_plugin_names_its_probe() -> None:
    from plugins.music.plugin import MusicPlugin

    assert MusicPlugin().load_audit_probe() is MusicProbe


def test_the_probe_keeps_the_contract(probe: MusicProbe) -> None:
    assert check_probe(probe) == []
    examples = probe.examples()
    assert any(e.member for e in examples) and not all(e.member for e in examples)
    assert probe.cfg.metre == ("4/4" if probe.cfg.mode == "melody" else "6/8")


def test_read_gives_the_phrases_the_trainer_learnt(probe: MusicProbe,
                                                   runs: dict[str, Path]) -> None:
    """Every example reads back as the very tokens (or piano-roll) the model trained on, in
    beats; the skipped 6/8 tune is no example of the 4/4 model."""
    from plugins.music.engine.data import load_midi_folder
    from plugins.music.engine.phrase import notes_to_roll, notes_to_tokens

    mode = probe.cfg.mode
    folder = runs["songs" if mode == "melody" else "jigs"]
    ps = load_midi_folder(folder, 2, mode, metre="auto")
    rows = {f"{ps.files[i].name}#{part}": row
            for i, part, row in zip(ps.file_index.tolist(), ps.parts, ps.data, strict=True)}
    examples = probe.examples()
    assert len(examples) == len(rows) and not any(e.path == "jig.mid" for e in examples)
    for e in examples:
        item = probe.read(e)
        assert all(isinstance(n, Note) for n in item)
        assert all((n.start * 4).is_integer() and (n.duration * 4).is_integer() for n in item)
        notes = step_notes(item)
        got = notes_to_tokens(notes, probe.steps) if mode == "melody" else \
            notes_to_roll(notes, probe.steps)
        assert np.array_equal(got, rows[f"{e.path}#{e.part}"]), e.id


def test_the_loss_is_the_negative_elbo_per_step(probe: MusicProbe) -> None:
    """NLL of the phrase decoded from its posterior mean plus the posterior's KL, per 16th
    step; the same for an item whatever else is in the batch."""
    import torch

    from plugins.music.engine import generate as gen
    from plugins.music.engine import keys as keys_mod
    from plugins.music.engine.models import kl_divergence
    from plugins.music.engine.phrase import Phrase

    items = [probe.read(e) for e in probe.examples()[:6]]
    loss = probe.per_example_loss(items)
    alone = np.concatenate([probe.per_example_loss([it]) for it in items])
    assert np.allclose(loss, alone, rtol=1e-5, atol=1e-6)
    phrases = [Phrase(step_notes(it), probe.steps, probe.cfg.mode, metre=probe.cfg.metre)
               for it in items]
    x = gen.model_input(probe.lm, phrases)
    with torch.no_grad():
        if probe.cfg.mode == "melody":
            x, _ = keys_mod.normalise(x)
        mu, logvar = probe.lm.model.encode(x)
        nll, _ = probe.lm.model.reconstruction(x, mu)
        expected = ((nll + kl_divergence(mu, logvar)) / probe.steps).numpy()
    assert np.allclose(loss, expected, rtol=1e-5)
    nll_t, kl_t = probe.terms(items)
    assert np.allclose(nll_t + kl_t, loss) and np.all(kl_t >= 0) and np.all(nll_t > 0)


def test_samples_are_seeded_phrases_on_the_grid(probe: MusicProbe) -> None:
    a = probe.sample(3, 5)
    assert a == probe.sample(3, 5) and a != probe.sample(3, 6) and probe.sample(0, 1) == []
    beats = probe.steps / 4
    for item in a:
        assert all(0 <= n.start < beats and 0 < n.duration <= beats for n in item)
        assert all((n.start * 4).is_integer() for n in item)
    # a sample reads back through the notes the model would be given
    assert [notes_item(step_notes(it)) for it in a] == a


def test_features_are_the_posterior_means(probe: MusicProbe) -> None:
    from plugins.music.engine import generate as gen
    from plugins.music.engine.phrase import Phrase

    items = [probe.read(e) for e in probe.examples()[:4]]
    f = probe.embed(items)
    phrases = [Phrase(step_notes(it), probe.steps, probe.cfg.mode, metre=probe.cfg.metre)
               for it in items]
    mu, _, _ = gen.encode(probe.lm, phrases)
    assert f.shape == (4, probe.cfg.latent) and np.allclose(f, mu.numpy(), atol=1e-6)


def test_reference_job_is_the_first_session_on_another_half(runs: dict[str, Path],
                                                            tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """The settings the run started with (not a resumed session's, which leave the model to
    config.json), the metre the model learnt instead of "auto", the steps it was trained,
    no time limit, and the data where the run found it."""
    import torch

    copy = tmp_path / "melody"
    shutil.copytree(runs["melody"], copy)
    doc = json.loads((copy / "run.json").read_text())
    doc["params"]["minutes"] = 0.5  # as if it had stopped on a time limit after 3 steps
    (copy / "run.json").write_text(json.dumps(doc))
    p = MusicProbe.load(copy, "cpu")
    job, params = p.reference_job(0.5, 7)
    assert job == "train" and params["holdout"] == 0.5 and params["seed"] == 7
    assert params["resume"] is False and params["data"] == str(runs["songs"].resolve())
    assert params["metre"] == "4/4" and params["preset"] == "tiny" and params["steps"] == 3
    assert params["minutes"] is None
    from plugins.music.params import TrainParams
    from studio.params import from_mapping

    assert from_mapping(TrainParams, params).metre == "4/4"  # the train job takes them
    monkeypatch.setenv("STUDIO_HOME", str(runs["home"]))
    torch.set_num_threads(1)
    assert run("music", "train", "--resume", "--steps", "4", "--out", str(copy)) == 0
    resumed = MusicProbe.load(copy, "cpu")
    assert resumed.manifest.params["resume"] is True
    assert resumed.manifest.params["preset"] == "default"  # what the resume command said
    _, params = resumed.reference_job(0.5, 8)
    assert params["preset"] == "tiny" and params["steps"] == 4 and params["resume"] is False
    assert params["minutes"] is None and params["data"] == str(runs["songs"].resolve())


def test_an_edited_training_file_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    songs = tmp_path / "songs"
    shutil.copytree(runs["songs"], songs)
    copy = tmp_path / "melody"
    shutil.copytree(runs["melody"], copy)
    doc = json.loads((copy / "run.json").read_text())
    doc["datasets"][0]["location"] = str(songs)
    (copy / "run.json").write_text(json.dumps(doc))
    p = MusicProbe.load(copy, "cpu")
    first = p.examples()[0]
    assert p.read(first)
    write_song(songs / first.path, 99)
    p = MusicProbe.load(copy, "cpu")
    with pytest.raises(UserError, match="changed since the run"):
        p.read(first)
    (songs / first.path).unlink()
    with pytest.raises(UserError, match="is gone"):
        p.read(first)


def test_a_format_one_run_reads_its_exact_bars(tmp_path: Path) -> None:
    """A run saved before metres (its 2/4 march skipped, its phrases named on a 16-step grid)
    reads back the phrases it trained on, and its reference job names the 4/4 it learnt."""
    from plugins.music.engine.data import load_midi_folder
    from plugins.music.engine.phrase import notes_to_tokens

    shutil.copytree(FORMAT1 / "run", tmp_path / "run")
    shutil.copytree(FORMAT1 / "tunes", tmp_path / "tunes")
    doc = json.loads((tmp_path / "run" / "run.json").read_text())
    doc["datasets"][0]["location"] = str(tmp_path / "tunes")
    (tmp_path / "run" / "run.json").write_text(json.dumps(doc))
    p = MusicProbe.load(tmp_path / "run", "cpu")
    assert p.strict
    ps = load_midi_folder(tmp_path / "tunes", 2, "melody", metre="4/4", strict=True)
    rows = {f"{ps.files[i].name}#{part}": row
            for i, part, row in zip(ps.file_index.tolist(), ps.parts, ps.data, strict=True)}
    examples = p.examples()
    assert len(examples) == 9 == len(rows)
    for e in examples:
        assert np.array_equal(notes_to_tokens(step_notes(p.read(e)), 32),
                              rows[f"{e.path}#{e.part}"])
    assert np.all(np.isfinite(p.per_example_loss([p.read(e) for e in examples])))
    _, params = p.reference_job(0.5, 1)
    assert params["metre"] == "4/4" and params["latent"] == 4


def test_a_model_of_sounds_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(runs["melody"], copy)
    conf = json.loads((copy / "config.json").read_text())
    conf["model"]["mode"] = "audio"
    (copy / "config.json").write_text(json.dumps(conf))
    with pytest.raises(UserError, match="model of sounds"):
        MusicProbe.load(copy, "cpu")


def test_memorization_and_mia_from_the_command_line(runs: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("STUDIO_HOME", str(runs["home"]))
    torch.set_num_threads(1)
    target = runs["melody"]
    members = sum(manifest_mod.membership(target)[k] == "train"
                  for k in manifest_mod.membership(target))
    assert run("audit", "memorization", "--run", str(target), "--n", "8",
               "--out", str(tmp_path / "memo")) == 0
    memo = json.loads((tmp_path / "memo" / "audit.json").read_text())["result"]
    assert [r["kind"] for r in memo["results"]] == ["music", "features"]
    assert memo["samples"] == 8 and memo["training"] == members
    pairs = sorted((tmp_path / "memo" / "pairs").glob("*.json"))
    assert pairs and all(isinstance(json.loads(f.read_text()), list) for f in pairs)

    assert run("audit", "mia", "--run", str(target), "--reference-models", "2",
               "--out", str(tmp_path / "mia")) == 0
    mia = json.loads((tmp_path / "mia" / "audit.json").read_text())["result"]
    assert {a["attack"] for a in mia["attacks"]} == {"loss", "lira-online", "lira-offline",
                                                     "rmia", "rmia-offline"}
    assert mia["members"] == members and mia["nonmembers"] > 0
    audited = manifest_mod.read(target)
    assert audited is not None
    for k in (1, 2):
        ref_dir = tmp_path / "mia" / "references" / f"reference-{k}"
        ref = manifest_mod.read(ref_dir)
        assert ref is not None and ref.plugin == "music" and ref.state == "done"
        assert ref.params["holdout"] == 0.5 and ref.params["seed"] != audited.params["seed"]
        assert ref.params["metre"] == "4/4" and ref.params["preset"] == "tiny"
        assert sorted(manifest_mod.membership(ref_dir)) == sorted(
            manifest_mod.membership(target))
