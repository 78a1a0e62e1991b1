"""Training (all three modes), checkpoints and resume, the data a run records, and the
generation jobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from music_helpers import PHRASE_A, PHRASE_B
from resume_check import assert_exact_resume

from plugins.common.training import QuietReporter, TrainLoop
from plugins.music.engine import generate as gen
from plugins.music.engine import midi as midi_mod
from plugins.music.engine.config import ModelConfig, TrainConfig, preset
from plugins.music.engine.data import PhraseSet, load_midi_folder
from plugins.music.engine.models import MelodyVAE, build_model
from plugins.music.engine.phrase import Phrase, canonical_tokens, notes_to_tokens
from plugins.music.engine.train import CHECKPOINT, MusicTask, schedule
from plugins.music.params import TrainParams
from studio import manifest, storage
from studio.errors import Cancelled
from studio.runs import read_metrics


def test_train_job_writes_a_model_and_resumes(melody_folder: Path, tmp_path: Path,
                                              run_job) -> None:
    run = tmp_path / "run"
    rec = run_job("train", data=str(melody_folder), bars=2, steps=30, preset="tiny",
                  out=str(run), holdout=0.25)
    assert rec.state == "done", rec.error
    assert Path(rec.result) == run
    conf = json.loads((run / "config.json").read_text())
    assert conf["trained_steps"] == 30 and conf["model"]["mode"] == "melody"
    assert set(conf["evaluation"]) == {"tf_accuracy", "sampled_accuracy", "onset_accuracy"}
    metrics = read_metrics(run)
    for name in ("loss/recon", "loss/kl", "beta", "accuracy/train", "accuracy/val",
                 "accuracy/val_sampled", "lr"):
        assert name in metrics, name
    assert metrics["beta"][1][-1] > metrics["beta"][1][0]  # KL warm-up ramps beta
    state = storage.load_state(run / CHECKPOINT)
    assert state["__loop__"]["step"] == 30
    m = manifest.read(run)
    assert m is not None and m.datasets[0].examples > 0 and m.datasets[0].unit == "phrase"
    assert [(a.kind, a.model_kind) for a in m.artifacts] == [("model", "music-vae")]

    again = run_job("train", data=str(melody_folder), steps=30, preset="tiny", out=str(run))
    assert again.state == "failed" and "--resume" in again.error  # never overwrite a model

    rec = run_job("train", steps=50, out=str(run), resume=True)
    assert rec.state == "done", rec.error
    assert storage.load_state(run / CHECKPOINT)["__loop__"]["step"] == 50
    steps = read_metrics(run)["loss/recon"][0]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no duplicated tail
    assert steps[-1] == 50  # and the curves go on after the resume
    # the refused start changed nothing, so the run's history is its two real sessions
    assert [s.state for s in manifest.read(run).sessions] == ["done"]


def test_resume_continues_exactly_through_the_job(melody_folder: Path, tmp_path: Path) -> None:
    """Stop a real train job after its first logged point, Resume it: the same weights and the
    same curves as a run without a break. (Before the shared loop, resume truncated
    metrics.jsonl behind the run's open writer, so the resumed run's points were lost: this
    test failed with "the resumed run's curves differ in their points".)"""

    def params(resume: bool) -> TrainParams:
        return TrainParams(data=str(melody_folder), steps=30, preset="tiny", holdout=0.25,
                           resume=resume)

    cut = assert_exact_resume(tmp_path, "music", "train", params,
                              weights=lambda run: storage.load_tensors(run / "model.safetensors"))
    assert 0 < cut < 30


def test_the_run_records_every_phrase_and_the_held_out_files(melody_folder: Path,
                                                             tmp_path: Path, run_job) -> None:
    run = tmp_path / "run"
    rec = run_job("train", data=str(melody_folder), steps=2, preset="tiny", holdout=0.25,
                  seed=3, out=str(run))
    assert rec.state == "done", rec.error
    rows = list(manifest.read_examples(run))
    phrases = load_midi_folder(melody_folder, bars=2)
    assert len(rows) == len(phrases) == 24  # three 2-bar windows of each 4-bar song
    assert {r.part for r in rows} == {"bars 1-2", "bars 2-3", "bars 3-4"}
    held_files = {r.path for r in rows if r.split == "held_out"}
    train_files = {r.path for r in rows if r.split == "train"}
    assert len(held_files) == 2 and not held_files & train_files  # whole files held out
    expected = {phrases.files[i].name for i in set(phrases.split(0.25, 3)[1].file_index)}
    assert held_files == expected  # the split the validation curves use
    assert set(manifest.membership(run).values()) == {"train", "held_out"}
    sha = manifest.sha256_file(melody_folder / "song_0.mid")
    assert f"song_0.mid@{sha[:16]}#bars 1-2" in manifest.membership(run)
    ds = manifest.read(run).dataset()
    assert (ds.train, ds.held_out) == (18, 6) and ds.location == str(melody_folder.resolve())


def _tiny_set(melody_folder: Path) -> PhraseSet:
    return load_midi_folder(melody_folder, bars=2)


def _tiny_loop(ps: PhraseSet, run: Path, steps: int, rep: QuietReporter | None = None
               ) -> TrainLoop:
    mc, tc = preset("tiny", "melody", 2)
    tc.steps = steps
    tc.eval_every = 10**9
    tc.checkpoint_every = 10**9
    rep = rep or QuietReporter()
    return TrainLoop(MusicTask(mc, tc, ps, None, run, rep), schedule(tc), rep, run / CHECKPOINT)


def test_cancel_then_resume_continues_exactly(melody_folder: Path, tmp_path: Path) -> None:
    ps = _tiny_set(melody_folder)
    straight = _tiny_loop(ps, tmp_path / "a", 24)
    straight.run()
    first = _tiny_loop(ps, tmp_path / "b", 24, QuietReporter(cancel_after=11))  # Stop at 11
    with pytest.raises(Cancelled):
        first.run()
    assert storage.load_state(tmp_path / "b" / CHECKPOINT)["__loop__"]["step"] == 11
    assert gen.load_model(tmp_path / "b").model is not None  # a usable model survives
    torch.manual_seed(1234)  # a fresh process: nothing of the first run's RNG state remains
    second = _tiny_loop(ps, tmp_path / "b", 24)
    assert second.resume() == 11
    second.run()
    for (k, v), (_, w) in zip(straight.task.model.state_dict().items(),
                              second.task.model.state_dict().items(), strict=True):
        assert torch.allclose(v, w, atol=1e-5), k


def test_checkpoints_from_before_the_shared_loop_resume(melody_folder: Path,
                                                         tmp_path: Path) -> None:
    """A checkpoint the old trainer wrote (its own step, elapsed and rng keys, no loop state)
    resumes exactly like the loop's own."""
    import shutil

    ps = _tiny_set(melody_folder)
    _tiny_loop(ps, tmp_path / "new", 12).run()
    st = storage.load_state(tmp_path / "new" / CHECKPOINT)
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    storage.save_state(tmp_path / "old" / CHECKPOINT, {
        "model": st["model"], "optim": st["optim"], "step": 12, "elapsed": 1.5,
        "rng": st["__rng__"], "batcher": st["batcher"], "last_eval": {}})
    old, new = _tiny_loop(ps, tmp_path / "old", 20), _tiny_loop(ps, tmp_path / "new", 20)
    assert old.resume() == 12 and old.state.elapsed == 1.5
    assert old.run().step == 20
    new.resume()  # (resume restores the global generators: one run at a time)
    assert new.run().step == 20
    for (k, a), b in zip(old.task.model.state_dict().items(),
                         new.task.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_interpolation_endpoints_reconstruct_the_inputs(memorised_model: Path) -> None:
    lm = gen.load_model(memorised_model)
    a, b = Phrase(PHRASE_A, 32, label="A"), Phrase(PHRASE_B, 32, label="B")
    out = gen.interpolate(lm, a, b, steps=5)
    assert len(out) == 5
    assert np.array_equal(out[0].notes[:, :3], PHRASE_A[:, :3])
    assert np.array_equal(out[-1].notes[:, :3], PHRASE_B[:, :3])
    rec = gen.reconstruct(lm, [a, b])
    assert np.array_equal(rec[0].notes[:, :3], PHRASE_A[:, :3])
    for ph in out[1:-1]:
        assert len(ph.notes) and ph.notes[:, 2].max() <= 32


def test_sample_interpolate_variations_load_jobs(memorised_model: Path, tmp_path: Path,
                                                 run_job) -> None:
    rec = run_job("sample", model=str(memorised_model), n=4, seed=3, out=str(tmp_path / "s"))
    assert rec.state == "done", rec.error
    files = sorted(Path(rec.result).glob("*.mid"))
    assert [f.name for f in files] == [f"sample_0{i}.mid" for i in range(1, 5)] + \
        ["sample_all.mid"]
    first = midi_mod.read_midi(files[0])
    assert first.tempo == pytest.approx(110.0, abs=0.01)  # the model's tempo
    run_job("sample", model=str(memorised_model), n=4, seed=3, out=str(tmp_path / "t"))
    # seeded: the same notes (the files' provenance differs only in its time of export)
    from plugins.common import provenance

    again = provenance.verify(tmp_path / "t" / "sample_02.mid")
    assert again.unchanged and again.content_sha256 == provenance.verify(files[1]).content_sha256
    rec3 = run_job("sample", model=str(memorised_model), n=2, key="F#m",
                   out=str(tmp_path / "k"))
    assert rec3.state == "done", rec3.error
    bad = run_job("sample", model=str(memorised_model), key="H", out=str(tmp_path / "x"))
    assert bad.state == "failed" and "unknown key" in bad.error

    a = midi_mod.write_midi(Phrase(PHRASE_A, 32), tmp_path / "A.mid")
    b = midi_mod.write_midi(Phrase(PHRASE_B, 32), tmp_path / "B.mid")
    rec = run_job("interpolate", model=str(memorised_model), a=str(a), b=str(b), steps=5,
                  out=str(tmp_path / "i"))
    assert rec.state == "done", rec.error
    got = midi_mod.melody_tokens(midi_mod.read_midi(tmp_path / "i" / "interp_01.mid"), 2)[0]
    assert np.array_equal(got, canonical_tokens(notes_to_tokens(PHRASE_A, 32)))
    assert len(list((tmp_path / "i").glob("interp_0*.mid"))) == 5

    rec = run_job("variations", model=str(memorised_model), source=str(a), n=3,
                  out=str(tmp_path / "v"))
    assert rec.state == "done" and len(list((tmp_path / "v").glob("variation_0*.mid"))) == 3

    rec = run_job("load", midi=str(a), model=str(memorised_model), out=str(tmp_path / "r"))
    assert rec.state == "done", rec.error
    rec = run_job("load", midi=str(a))
    assert rec.state == "done" and rec.result == str(a)

    (tmp_path / "bad.mid").write_bytes(b"junk")
    rec = run_job("interpolate", model=str(memorised_model), a=str(tmp_path / "bad.mid"),
                  b=str(b), out=str(tmp_path / "j"))
    assert rec.state == "failed" and "bad.mid" in rec.error and "MIDI" in rec.error
    rec = run_job("sample", model=str(tmp_path), out=str(tmp_path / "y"))
    assert rec.state == "failed" and "not a music model folder" in rec.error


def test_empty_data_folder_is_a_clear_error(tmp_path: Path, run_job) -> None:
    (tmp_path / "data").mkdir()
    rec = run_job("train", data=str(tmp_path / "data"), steps=5, preset="tiny",
                  out=str(tmp_path / "run"))
    assert rec.state == "failed" and "has no MIDI files" in rec.error
    rec = run_job("train", data="bach", mode="audio", steps=5, out=str(tmp_path / "run2"))
    assert rec.state == "failed" and "audio mode needs" in rec.error
    rec = run_job("train", steps=5, out=str(tmp_path / "run3"), resume=True)
    assert rec.state == "failed" and "nothing to resume" in rec.error


@pytest.mark.parametrize(("job", "argv", "message"), [
    ("train", ["--steps", "0"], "--steps must be between 1 and 10_000_000"),
    ("train", ["--steps", "-1"], "--steps must be between 1 and 10_000_000"),
    ("train", ["--holdout", "0.95"], "--holdout must be between 0 and 0.9"),
    ("train", ["--bars", "3"], "--bars must be one of 2, 4"),
    ("train", ["--mode", "drums"], "--mode must be one of melody, pianoroll, audio"),
    ("train", ["--minutes", "0"], "--minutes must be between 0.05 and 100000"),
    ("train", ["--data", "bach", "--mode", "audio"], "audio mode needs a folder"),
    ("sample", ["--model", "m", "--n", "0"], "--n must be between 1 and 1_000"),
    ("sample", ["--model", "m", "--temperature", "-1"], "--temperature must be between 0"),
    ("sample", ["--n", "4"], "--model is required"),
    ("interpolate", ["--model", "m", "--a", "x.mid", "--b", "y.mid", "--steps", "1"],
     "--steps must be between 2 and 256"),
    ("variations", ["--model", "m", "--source", "x.mid", "--amount", "-0.5"],
     "--amount must be between 0 and 10"),
    ("load", ["--midi", "x.mid", "--limit", "0"], "--limit must be between 1 and 10_000"),
    ("render", ["--midi", "x.mid", "--out", "x.wav", "--sample-rate", "4000"],
     "--sample-rate must be between 8_000 and 192_000"),
])
def test_the_command_line_refuses_values_out_of_range(job: str, argv: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    from studio import cli

    assert cli.cmd_run("music", job, argv) == 2
    assert message in capsys.readouterr().err


def test_job_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    from studio import cli

    assert cli.cmd_run("music", "train", ["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--data", "--bars", "--steps", "--mode", "--preset", "--melody", "--minutes",
                 "--batch-size", "--lr", "--latent", "--beta", "--free-bits", "--kl-warmup",
                 "--transpose", "--holdout", "--seed", "--resume", "--out"):
        assert flag in text, flag


def test_pianoroll_mode_trains_and_samples(melody_folder: Path, tmp_path: Path,
                                           run_job) -> None:
    rec = run_job("train", data=str(melody_folder), mode="pianoroll", steps=8, preset="tiny",
                  out=str(tmp_path / "run"))
    assert rec.state == "done", rec.error
    assert "accuracy/val_f1" in read_metrics(tmp_path / "run")
    rec = run_job("sample", model=str(tmp_path / "run"), n=2, temperature=0.8,
                  out=str(tmp_path / "s"))
    assert rec.state == "done", rec.error
    assert len(list((tmp_path / "s").glob("*.mid"))) == 3


def test_audio_mode_trains_and_samples_wav(tmp_path: Path, run_job) -> None:
    import soundfile as sf

    t = np.arange(16000 * 5) / 16000
    for i, f in enumerate((220.0, 330.0)):
        sf.write(tmp_path / f"tone{i}.wav", (0.3 * np.sin(2 * np.pi * f * t)).astype("f4"),
                 16000)
    rec = run_job("train", data=str(tmp_path), mode="audio", steps=6, preset="tiny",
                  out=str(tmp_path / "run"), holdout=0.0)
    assert rec.state == "done", rec.error
    rows = list(manifest.read_examples(tmp_path / "run"))  # two 2.03 s clips of each file
    assert sorted((r.path, r.part, r.split) for r in rows) == [
        (f"tone{i}.wav", f"seconds {a}", "train") for i in (0, 1)
        for a in ("0.00-2.03", "2.03-4.06")]
    assert manifest.read(tmp_path / "run").dataset().unit == "clip"
    rec = run_job("sample", model=str(tmp_path / "run"), n=2, out=str(tmp_path / "s"))
    assert rec.state == "done", rec.error
    wavs = sorted((tmp_path / "s").glob("*.wav"))
    assert len(wavs) == 3 and sf.info(wavs[0]).samplerate == 16000
    rec = run_job("interpolate", model=str(tmp_path / "run"), a=str(tmp_path / "tone0.wav"),
                  b=str(tmp_path / "tone1.wav"), steps=3, out=str(tmp_path / "i"))
    assert rec.state == "done", rec.error


def test_hierarchical_decoder_for_four_bars() -> None:
    mc = ModelConfig(bars=4, latent=8, embed=8, enc_hidden=16, dec_hidden=24,
                     conductor_hidden=16)
    model = build_model(mc)
    assert isinstance(model, MelodyVAE) and model.units == 4
    x = torch.from_numpy(np.stack([notes_to_tokens(PHRASE_A, 64)] * 3))
    mu, _ = model.encode(x)
    nll, logits = model.reconstruction(x, mu)
    assert nll.shape == (3,) and logits.shape == (3, 64, 90)
    assert model.generate(mu, 0.0).shape == (3, 64)
    flat = build_model(ModelConfig(bars=2, latent=8, embed=8, enc_hidden=16, dec_hidden=24))
    assert flat.units == 1 and not hasattr(flat, "conductor")


def test_training_reduces_the_loss(melody_folder: Path, tmp_path: Path) -> None:
    mc = ModelConfig(latent=8, embed=16, enc_hidden=32, dec_hidden=64)
    tc = TrainConfig(steps=60, batch_size=16, lr=3e-3, kl_warmup=20, free_bits=8.0,
                     eval_every=10**9, checkpoint_every=10**9)
    rep = QuietReporter()
    TrainLoop(MusicTask(mc, tc, _tiny_set(melody_folder), None, tmp_path, rep), schedule(tc),
              rep).run()
    recon = [v for _, v in rep.history["loss/recon"]]
    assert recon[-1] < 0.5 * recon[0]
    assert rep.previews and rep.previews[-1][0] == "phrases"
