"""The command line exactly as documented: train, generate, eval (and the Hub job offline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studio import cli


def test_cli_train_generate_eval(tmp_path: Path, corpus_file: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc = cli.cmd_run("writer", "train", ["--data", str(corpus_file), "--preset", "tiny",
                                         "--steps", "3", "--out", str(run), "--batch-size", "2",
                                         "--block-size", "16", "--eval-every", "3"])
    out = capsys.readouterr().out.strip()
    assert rc == 0
    assert out == str(run / "model")
    assert (run / "model" / "model.safetensors").exists() and (run / "run.json").exists()
    assert (run / "metrics.jsonl").read_text().count("loss/train") >= 1

    rc = cli.cmd_run("writer", "generate", ["--model", str(run), "--prompt", "First Citizen:",
                                            "--max-new-tokens", "12", "--seed", "1"])
    first = capsys.readouterr().out
    assert rc == 0 and first.strip()
    cli.cmd_run("writer", "generate", ["--model", str(run), "--prompt", "First Citizen:",
                                       "--max-new-tokens", "12", "--seed", "1"])
    assert capsys.readouterr().out == first  # same seed, same text
    styled = ["--model", str(run), "--prompt", "First Citizen:", "--max-new-tokens", "12",
              "--seed", "1", "--sampler", "creative"]
    assert cli.cmd_run("writer", "generate", styled) == 0
    creative = capsys.readouterr().out
    cli.cmd_run("writer", "generate", styled)
    assert capsys.readouterr().out == creative  # a style with a seed repeats too

    held = tmp_path / "held.txt"
    held.write_text("All:\nSpeak, speak.\n", encoding="utf-8")
    rc = cli.cmd_run("writer", "eval", ["--model", str(run / "model"), "--data", str(held)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "perplexity:" in text and "bits per character:" in text


def test_unseen_characters_are_warned_and_counted(tmp_path: Path, corpus_file: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 18: evaluating German text with an English character model counted 1,403 unseen
    characters without a word; training, eval and generate now say so."""
    run = tmp_path / "run"
    text = corpus_file.read_text(encoding="utf-8")
    data = tmp_path / "mixed.txt"  # its held-out tail (10%) has umlauts the head never had
    data.write_text(text.replace("ü", "u").replace("ö", "o") + "\nÜber Öl und Übermut.\n" * 5,
                    encoding="utf-8")
    rc = cli.cmd_run("writer", "train", ["--data", str(data), "--tokenizer", "char",
                                         "--steps", "2", "--out", str(run), "--batch-size", "2",
                                         "--block-size", "16"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "held-out text has" in err and "'Ü'" in err and err.count("held-out text has") == 1
    german = tmp_path / "german.txt"
    german.write_text("Zwölf Boxkämpfer jagen Viktor über den großen Deich.\n", encoding="utf-8")
    rc = cli.cmd_run("writer", "eval", ["--model", str(run / "model"), "--data", str(german)])
    out, err = capsys.readouterr()
    assert rc == 0 and "never saw in training" in err and "spelled as bytes" in err
    assert "of those characters were never seen in training" in out
    rc = cli.cmd_run("writer", "generate", ["--model", str(run), "--prompt", "Grüße",
                                            "--max-new-tokens", "4", "--seed", "1"])
    err = capsys.readouterr().err
    assert rc == 0 and "The text to continue has" in err and "'ü'" in err

    # issue 18: damaged weights said "SafetensorError: ..." without naming the file
    (run / "model" / "model.safetensors").write_bytes(b"\xff" * 300)
    rc = cli.cmd_run("writer", "generate", ["--model", str(run), "--prompt", "Hi",
                                            "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert rc != 0 and "model.safetensors is damaged" in err and "SafetensorError" not in err


def test_cli_bad_input_is_a_clear_error(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "latin.txt"
    bad.write_bytes("déjà vu".encode("latin-1"))
    rc = cli.cmd_run("writer", "train", ["--data", str(bad), "--steps", "2",
                                         "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "latin.txt" in err and "not UTF-8" in err and "Traceback" not in err
    rc = cli.cmd_run("writer", "generate", ["--model", str(tmp_path), "--prompt", "x"])
    assert rc == 1 and "config.json" in capsys.readouterr().err


@pytest.mark.parametrize(("job", "args", "message"), [
    ("train", ["--steps", "0"], "--steps must be between 1 and"),
    ("train", ["--steps", "-1"], "--steps must be between 1 and"),
    ("train", ["--val-fraction", "0.95"], "--val-fraction must be between 0 and 0.9"),
    ("train", ["--lora-r", "0"], "--lora-r must be between 1 and"),
    ("train", ["--vocab-size", "100"], "--vocab-size must be 0 (automatic) or at least 258"),
    ("train", ["--preset", "huge"], "--preset must be one of tiny, small, base"),
    ("train", [], "--data is required"),
    ("generate", ["--max-new-tokens", "0"], "--max-new-tokens must be between 1 and"),
    ("generate", ["--temperature", "-1"], "--temperature must be between 0 and"),
    ("generate", ["--top-p", "0"], "--top-p must be between 0.01 and 1"),
    ("generate", ["--seed", "-5"], "--seed must be between 0 and"),
    ("generate", ["--min-p", "0.99"], "--min-p must be between 0 and 0.95"),
    ("generate", ["--sampler", "wild"], "--sampler must be one of custom, precise, balanced"),
    ("alternatives", ["--n", "17"], "--n must be between 1 and 16"),
    ("eval", ["--window", "-1"], "--window must be between 0 and"),
])
def test_cli_refuses_values_out_of_range(tmp_path: Path, corpus_file: Path, job: str,
                                         args: list[str], message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    base = {"train": ["--data", str(corpus_file), "--out", str(tmp_path / "run")],
            "generate": ["--model", str(tmp_path)], "alternatives": ["--model", str(tmp_path)],
            "eval": ["--model", str(tmp_path), "--data", str(corpus_file)]}[job]
    if job == "train" and not args:
        base = ["--out", str(tmp_path / "run")]
    rc = cli.cmd_run("writer", job, [*base, *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert not (tmp_path / "run").exists()  # refused before anything was made


def test_cli_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.cmd_run("writer", "train", ["--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--data", "--preset", "--steps", "--model", "--method", "--merge-lora",
                 "--tokenizer", "--vocab-size", "--val-fraction", "--batch-size",
                 "--block-size", "--lr", "--optimizer", "--eval-every", "--patience",
                 "--minutes", "--lora-r", "--seed", "--resume"):
        assert flag in text, flag


def test_download_is_refused_offline(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.cmd_run("writer", "download", ["--repo-id", "HuggingFaceTB/SmolLM2-135M"])
    err = capsys.readouterr().err
    assert rc == 1 and "offline" in err


def test_plugin_module_imports_neither_torch_nor_qt() -> None:
    code = ("import sys, plugins.writer.plugin as p; p.WriterPlugin.jobs; "
            "bad = [m for m in ('torch', 'PySide6', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stdout + res.stderr


def test_sampler_styles_decide_the_sampling_numbers() -> None:
    from typing import get_args

    from plugins.common.lm.sampling import CUSTOM, SAMPLER_PRESETS
    from plugins.writer.params import AlternativesParams, GenerateParams, SamplerName

    assert set(get_args(SamplerName)) == {CUSTOM, *SAMPLER_PRESETS}  # one list of styles
    custom = GenerateParams(model=Path("m"), temperature=0.5, min_p=0.2).settings()
    assert (custom.temperature, custom.min_p, custom.top_k) == (0.5, 0.2, 50)
    p = GenerateParams(model=Path("m"), sampler="precise", temperature=2.0, seed=4,
                       max_new_tokens=9)
    s = p.settings()
    assert s.to_json() | SAMPLER_PRESETS["precise"].values() == s.to_json()
    assert (s.seed, s.max_new_tokens) == (4, 9)  # a style leaves length and seed alone
    alt = AlternativesParams.following(p, 2)
    assert alt.sampler == "precise" and alt.settings().temperature == 0.3


def test_resume_finds_its_text_from_anywhere_and_an_explicit_data_wins(
        tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 18: resume read the text it started with and ignored --data. A run started with a
    relative path resumes from any folder; an explicit --data wins (a moved or edited text),
    with a warning that the data changed, and later resumes keep it."""
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text(corpus_file.read_text(encoding="utf-8"), encoding="utf-8")
    run = tmp_path / "run"
    tiny = ["--batch-size", "2", "--block-size", "16", "--out", str(run)]
    monkeypatch.chdir(texts)
    assert cli.cmd_run("writer", "train", ["--data", "a.txt", "--steps", "2", *tiny]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli.cmd_run("writer", "train", ["--resume", "--steps", "3", *tiny]) == 0
    assert "differs" not in capsys.readouterr().err
    edited = tmp_path / "edited.txt"
    edited.write_text((texts / "a.txt").read_text(encoding="utf-8").replace("Citizen", "Poet"),
                      encoding="utf-8")
    assert cli.cmd_run("writer", "train", ["--resume", "--data", str(edited), "--steps", "4",
                                           *tiny]) == 0
    err = capsys.readouterr().err
    assert "data differs from what this run was trained on before" in err
    (texts / "a.txt").unlink()  # the first text is gone: the run now reads the edited one
    assert cli.cmd_run("writer", "train", ["--resume", "--steps", "5", *tiny]) == 0
