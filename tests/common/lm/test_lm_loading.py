"""Model folders: safetensors only, no remote code, clear messages for bad folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plugins.common.lm.loading import (
    inspect_model_dir,
    load_causal_lm,
    resolve_model_dir,
    save_model_folder,
)
from studio.errors import UserError


def test_loads_a_local_gpt2_folder(tiny_gpt2: Path) -> None:
    model, tok, info = load_causal_lm(tiny_gpt2)
    assert info.kind == "full" and info.model_type == "gpt2"
    assert not model.training
    assert tok.pad_token_id is not None
    assert "gpt2" in info.describe()


def test_folder_without_weights(tmp_path: Path, tiny_gpt2: Path) -> None:
    shutil.copy(tiny_gpt2 / "config.json", tmp_path / "config.json")
    with pytest.raises(UserError, match="no weights"):
        inspect_model_dir(tmp_path)


def test_pickle_only_checkpoint_is_refused(tmp_path: Path, tiny_gpt2: Path) -> None:
    import torch

    for f in tiny_gpt2.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, tmp_path / f.name)
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(UserError) as err:
        load_causal_lm(tmp_path)
    msg = str(err.value)
    assert "pytorch_model.bin" in msg and "pickle" in msg and "safetensors" in msg


def test_remote_code_models_are_refused(tmp_path: Path, tiny_gpt2: Path) -> None:
    shutil.copytree(tiny_gpt2, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="trust_remote_code"):
        load_causal_lm(tmp_path / "m")


def test_missing_and_file_paths(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        resolve_model_dir(tmp_path / "nope")
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(UserError, match="is a file"):
        resolve_model_dir(f)
    with pytest.raises(UserError, match="no config\\.json"):
        inspect_model_dir(tmp_path)


def test_run_folder_resolves_to_its_model(tmp_path: Path, tiny_gpt2: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_gpt2, run / "model")
    (run / "config.json").write_text(json.dumps({"format": "studio-writer-run-1"}))
    assert resolve_model_dir(run) == run / "model"
    model, _, info = load_causal_lm(run)
    assert info.path == run / "model" and not model.training


def test_adapter_with_missing_base_is_explained(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": str(tmp_path / "gone"), "peft_type": "LORA"}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="not a folder on this machine"):
        inspect_model_dir(tmp_path)


def test_atomic_folder_save_keeps_old_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "model"
    save_model_folder(target, lambda d: (d / "a.txt").write_text("old"))

    def broken(d: Path) -> None:
        (d / "a.txt").write_text("new")
        raise OSError(28, "disk full")

    with pytest.raises(OSError):
        save_model_folder(target, broken)
    assert (target / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folders left
