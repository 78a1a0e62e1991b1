"""Training (all three modes), checkpoints and resume, and the generation jobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from music_helpers import PHRASE_A, PHRASE_B

from plugins.music.engine import generate as gen
from plugins.music.engine import midi as midi_mod
from plugins.music.engine.config import ModelConfig, TrainConfig, preset
from plugins.music.engine.data import PhraseSet, load_midi_folder
from plugins.music.engine.models import MelodyVAE, build_model
from plugins.music.engine.phrase import Phrase, canonical_tokens, notes_to_tokens
from plugins.music.engine.train import QuietReporter, Trainer
from studio import storage
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
    state = storage.load_state(run / "checkpoints" / "last.safetensors")
    assert state["step"] == 30
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["datasets"][0]["phrases"] > 0
    assert any(a["kind"] == "model" for a in manifest["artifacts"])

    again = run_job("train", data=str(melody_folder), steps=30, preset="tiny", out=str(run))
    assert again.state == "failed" and "--resume" in again.error  # never overwrite a model

    rec = run_job("train", steps=50, out=str(run), resume=True)
    assert rec.state == "done", rec.error
    assert storage.load_state(run / "checkpoints" / "last.safetensors")["step"] == 50
    steps = read_metrics(run)["loss/recon"][0]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # no duplicated tail
    assert json.loads((run / "run.json").read_text())["history"]


def _tiny_set(melody_folder: Path) -> PhraseSet:
    return load_midi_folder(melody_folder, bars=2)


def _tiny_trainer(ps: PhraseSet, run: Path, steps: int, rep: QuietReporter | None = None
                  ) -> Trainer:
    mc, tc = preset("tiny", "melody", 2)
    tc.steps = steps
    tc.eval_every = 10**9
    tc.checkpoint_every = 10**9
    return Trainer(mc, tc, ps, None, run, rep or QuietReporter())


class CancelAfter(QuietReporter):
    """Presses Cancel after ``n`` steps."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.calls = 0

    def check(self) -> None:
        self.calls += 1
        if self.calls > self.n:
            raise Cancelled()


def test_cancel_then_resume_continues_exactly(melody_folder: Path, tmp_path: Path) -> None:
    ps = _tiny_set(melody_folder)
    straight = _tiny_trainer(ps, tmp_path / "a", 24)
    straight.run()
    first = _tiny_trainer(ps, tmp_path / "b", 24, CancelAfter(11))
    with pytest.raises(Cancelled):
        first.run()
    assert storage.load_state(tmp_path / "b" / "checkpoints" / "last.safetensors")["step"] == 11
    assert gen.load_model(tmp_path / "b").model is not None  # a usable model survives
    torch.manual_seed(1234)  # a fresh process: nothing of the first run's RNG state remains
    second = _tiny_trainer(ps, tmp_path / "b", 24)
    assert second.resume() and second.step == 11
    second.run()
    for (k, v), (_, w) in zip(straight.model.state_dict().items(),
                              second.model.state_dict().items(), strict=True):
        assert torch.allclose(v, w, atol=1e-5), k


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
    assert (tmp_path / "t" / "sample_02.mid").read_bytes() == files[1].read_bytes()  # seeded
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
    Trainer(mc, tc, _tiny_set(melody_folder), None, tmp_path, rep).run()
    recon = [v for _, v in rep.history["loss/recon"]]
    assert recon[-1] < 0.5 * recon[0]
    assert rep.previews and rep.previews[-1][0] == "phrases"
