"""The command-line forms the issue names, exactly as a user types them."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_synthetic import make_images

from studio import cli

pytestmark = pytest.mark.usefixtures("synth_registry")


def run(*argv: str) -> int:
    return cli.cmd_run(argv[0], argv[1], list(argv[2:]))


def test_the_cli_forms(tmp_path, capsys):
    data = make_images(tmp_path / "data", n=30, classes=3)
    assert run("synth", "train", "--data", str(data), "--out", str(tmp_path / "run")) == 0
    assert run("audit", "dataset", "--data", str(data)) == 0
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("mail me at bob@example.com\n")
    assert run("audit", "pii", "--data", str(tmp_path / "texts"), "--out",
               str(tmp_path / "redacted")) == 0
    assert "[EMAIL]" in (tmp_path / "redacted" / "redacted" / "a.txt").read_text()
    (tmp_path / "p.csv").write_text("y,p,g\n1,1,a\n0,1,b\n1,0,a\n0,0,b\n")
    assert run("audit", "fairness", "--predictions", str(tmp_path / "p.csv"), "--label", "y",
               "--prediction", "p", "--group", "g") == 0
    assert run("audit", "memorization", "--run", str(tmp_path / "run"), "--n", "20") == 0
    assert run("audit", "mia", "--run", str(tmp_path / "run"), "--reference-models", "1") == 0
    assert run("audit", "report", "--run", str(tmp_path / "run"), "--out",
               str(tmp_path / "report.html")) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert Path(out[-1]) == tmp_path / "report.html"
    html = (tmp_path / "report.html").read_text()
    assert "Membership inference" in html and "Memorisation" in html


def test_bad_input_exits_with_a_message(tmp_path, capsys):
    assert run("audit", "mia", "--run", str(tmp_path)) == 1
    assert "no run manifest" in capsys.readouterr().err
    assert run("audit", "fairness", "--predictions", str(tmp_path / "none.csv"), "--label", "y",
               "--prediction", "p", "--group", "g") == 1
    assert "is not a file" in capsys.readouterr().err
    assert run("audit", "fairness", "--label", "y") == 2
    assert "--predictions" in capsys.readouterr().err
