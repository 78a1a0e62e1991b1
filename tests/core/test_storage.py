"""Atomic writes, safetensors state files and refusing pickles."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from studio import storage


def test_atomic_write_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    storage.atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), storage.atomic_open(target) as fh:
        fh.write('{"a": 2, "half": ')
        raise RuntimeError("crash in the middle of writing")
    assert storage.read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left behind


def test_killed_process_leaves_no_half_written_checkpoint(tmp_path: Path) -> None:
    """A process killed (SIGKILL, no clean-up) mid-write leaves the previous checkpoint intact."""
    target = tmp_path / "ckpt.safetensors"
    storage.save_tensors(target, {"w": torch.zeros(4)})
    code = f"""
import os, torch
from studio import storage
big = {{"w": torch.ones(4), "pad": torch.ones(2_000_000)}}
with storage.atomic_path({str(target)!r}, suffix=".safetensors") as tmp:
    from safetensors.torch import save_file
    save_file(big, str(tmp))
    os.kill(os.getpid(), 9)   # dies after writing the temp file, before the rename
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    loaded = storage.load_tensors(target)
    assert torch.equal(loaded["w"], torch.zeros(4)) and "pad" not in loaded


def test_truncated_safetensors_is_reported(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    storage.save_tensors(target, {"w": torch.randn(100)})
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(storage.CorruptFileError, match=r"model\.safetensors"):
        storage.load_tensors(target)


def test_state_round_trip_with_optimiser_and_rng(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": 7,
             "rng": storage.capture_rng(), "note": None, "pair": (1, "x")}
    path = storage.save_state(tmp_path / "ckpt.safetensors", state)
    back = storage.load_state(path)
    assert back["step"] == 7 and back["note"] is None and back["pair"] == (1, "x")
    opt2 = torch.optim.Adam(model.parameters(), lr=1.0)
    opt2.load_state_dict(back["opt"])
    assert opt2.param_groups[0]["betas"] == (0.5, 0.99)
    assert opt2.param_groups[0]["lr"] == 1e-3
    restored, original = opt2.state_dict()["state"][0], opt.state_dict()["state"][0]
    assert torch.equal(restored["exp_avg"], original["exp_avg"])
    # restoring the RNG reproduces the same random numbers
    storage.restore_rng(back["rng"])
    a = torch.rand(3)
    storage.restore_rng(back["rng"])
    assert torch.equal(a, torch.rand(3))


def test_tied_weights_are_saved(tmp_path: Path) -> None:
    w = torch.randn(5, 5)
    storage.save_tensors(tmp_path / "t.safetensors", {"a": w, "b": w})
    back = storage.load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(back["a"], back["b"])


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"w": _Evil()}, fh)
    with pytest.raises(storage.CorruptFileError, match="pickled Python objects are refused"):
        storage.safe_torch_load(path)
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")
    assert torch.equal(storage.safe_torch_load(tmp_path / "plain.pt")["w"], torch.ones(2))


def test_workspace_follows_studio_home(studio_home: Path) -> None:
    assert storage.default_workspace() == studio_home / "workspace"
    assert storage.config_dir() == studio_home


def test_state_field_reads_one_value_from_the_header(tmp_path) -> None:
    from studio.storage import CorruptFileError, save_state, save_tensors, state_field

    path = save_state(tmp_path / "ckpt.safetensors", {"step": 42, "model": {"w": torch.ones(3)}})
    assert state_field(path, "step") == 42
    with pytest.raises(CorruptFileError, match="model"):
        state_field(path, "model")  # a nested structure, not a plain value
    with pytest.raises(CorruptFileError, match="missing"):
        state_field(path, "missing")
    plain = save_tensors(tmp_path / "plain.safetensors", {"w": torch.ones(2)})
    with pytest.raises(CorruptFileError, match="not a studio state file"):
        state_field(plain, "step")


def test_files_follow_the_umask_and_settings_stay_private(tmp_path: Path) -> None:
    """Exports are meant to be shared: 0644 under the usual umask, not mkstemp's 0600; the
    settings file (it may hold a secret) stays owner-only."""
    import os
    import stat
    import sys

    from studio import settings as settings_mod

    if sys.platform.startswith("win"):
        return  # POSIX permission bits
    out = storage.atomic_write_text(tmp_path / "level.txt", "#..#\n")
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~storage._UMASK
    path = settings_mod.save(settings_mod.Settings())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_read_only_folder_names_the_file_not_a_temporary_one(tmp_path: Path) -> None:
    import os
    import sys

    if sys.platform.startswith("win") or os.geteuid() == 0:
        locked = tmp_path / "file-not-folder"
        locked.write_text("x")  # root ignores permissions: a file where a folder should be
        target = locked / "x.png"
    else:
        locked = tmp_path / "ro"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "x.png"
    with pytest.raises(OSError) as err:
        storage.atomic_write_bytes(target, b"png")
    assert "x.png" in str(err.value) and ".x.png." not in str(err.value)


def test_a_corrupt_file_reads_as_a_user_message_naming_it(tmp_path: Path) -> None:
    from studio.errors import friendly

    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(storage.CorruptFileError) as err:
        storage.load_tensors(bad)
    text = friendly(err.value)
    assert not text.startswith("CorruptFileError") and "model.safetensors" in text
