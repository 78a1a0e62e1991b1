"""The audit jobs end to end on synthetic runs with known answers, through the job runner."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
from audit_helpers import run_job
from audit_synthetic import make_images

from studio import manifest

pytestmark = pytest.mark.usefixtures("synth_registry")


def train(tmp_path: Path, name: str, plugin: str = "synth", **params) -> Path:
    data = make_images(tmp_path / "data", n=60)
    rec = run_job(plugin, "train", {"data": data, **params}, out=tmp_path / name)
    assert rec.state == "done", rec.error
    return tmp_path / name


def audit_doc(rec) -> dict:
    assert rec.state == "done", rec.error
    return json.loads((Path(rec.result) / "audit.json").read_text())


def test_mia_finds_a_model_that_memorised_half_its_data(tmp_path):
    run = train(tmp_path, "memorised", gap=1.0, holdout=0.5)
    rec = run_job("audit", "mia", {"run": run, "reference_models": 2}, out=tmp_path / "mia")
    doc = audit_doc(rec)
    r = doc["result"]
    by = {a["attack"]: a for a in r["attacks"]}
    assert set(by) == {"loss", "lira-online", "lira-offline", "rmia", "rmia-offline"}
    assert r["members"] == 30 and r["nonmembers"] == 30
    assert by["lira-online"]["auc"] > 0.95
    assert by["rmia"]["auc"] > 0.9
    # the plain threshold cannot separate easy images from trained ones as well
    assert by["loss"]["auc"] < by["lira-online"]["auc"]
    # two reference runs, trained by the synthetic plugin's own job on random halves
    refs = sorted((tmp_path / "mia" / "references").iterdir())
    assert [p.name for p in refs] == ["reference-1", "reference-2"]
    halves = [manifest.membership(p) for p in refs]
    assert all(sum(v == "train" for v in h.values()) == 30 for h in halves)
    assert halves[0] != halves[1]
    # honest about sample size: 30 non-members cannot resolve 0.1% or 1% FPR
    assert not any(p["resolvable"] for p in by["loss"]["at"])
    assert (tmp_path / "mia" / "scores.csv").read_text().count("\n") == 61
    assert "Membership inference" in (tmp_path / "mia" / "report.html").read_text()


def test_mia_on_a_model_that_memorised_nothing_is_chance(tmp_path):
    run = train(tmp_path, "clean", gap=0.0, holdout=0.5)
    rec = run_job("audit", "mia", {"run": run, "reference_models": 2}, out=tmp_path / "mia")
    for a in audit_doc(rec)["result"]["attacks"]:
        assert abs(a["auc"] - 0.5) < 0.2, a["attack"]


def test_mia_reuses_finished_reference_models(tmp_path):
    run = train(tmp_path, "memorised")
    out = tmp_path / "mia"
    assert run_job("audit", "mia", {"run": run, "reference_models": 1}, out=out).state == "done"
    first = (out / "references" / "reference-1" / "run.json").stat().st_mtime_ns
    events: list = []
    rec = run_job("audit", "mia", {"run": run, "reference_models": 1}, out=out, events=events)
    assert rec.state == "done"
    assert (out / "references" / "reference-1" / "run.json").stat().st_mtime_ns == first
    assert any("reusing reference model 1" in str(e.data.get("text", "")) for e in events)


def test_memorization_measures_the_share_of_copies(tmp_path):
    run = train(tmp_path, "copier", copy_rate=0.5)
    rec = run_job("audit", "memorization", {"run": run, "n": 80}, out=tmp_path / "mem")
    res = audit_doc(rec)["result"]["results"]
    pixel, feats = res
    assert pixel["kind"] == "image" and feats["kind"] == "features"
    copied = pixel["copied"]
    assert copied["n"] == 80
    assert 0.3 < copied["value"] < 0.7  # the synthetic model copies half its samples
    assert copied["lo"] < 0.5 < copied["hi"]
    assert feats["copied"]["k"] == copied["k"]  # exact copies are exact in both spaces
    assert pixel["closest"][0]["distance"] == pytest.approx(0.0, abs=1e-6)
    pairs = list((tmp_path / "mem" / "pairs").glob("sample-*.png"))
    assert pairs
    html = (tmp_path / "mem" / "report.html").read_text()
    assert "data:image/png;base64," in html


def test_a_plugin_without_a_probe_is_not_auditable_yet(tmp_path):
    run = train(tmp_path, "plainrun", plugin="plain")
    rec = run_job("audit", "mia", {"run": run}, out=tmp_path / "mia")
    assert rec.state == "failed"
    assert "not auditable yet" in rec.error
    rec = run_job("audit", "targets", {})
    assert rec.state == "done"


def test_a_folder_without_a_manifest_gets_a_clear_message(tmp_path):
    folder = tmp_path / "not_a_run"
    folder.mkdir()
    for job in ("mia", "memorization"):
        rec = run_job("audit", job, {"run": folder}, out=tmp_path / job)
        assert rec.state == "failed"
        assert "no run manifest" in rec.error and "Traceback" not in rec.error


def test_a_run_without_held_out_examples_says_so(tmp_path):
    run = train(tmp_path, "noheld", holdout=0.0)
    rec = run_job("audit", "mia", {"run": run, "reference_models": 0}, out=tmp_path / "mia")
    assert rec.state == "failed"
    assert "held-out fraction" in rec.error


def test_report_gathers_every_audit_and_writes_a_model_card(tmp_path, studio_home):
    run = train(tmp_path, "target")
    assert run_job("audit", "mia", {"run": run, "reference_models": 1},
                   out=tmp_path / "a1").state == "done"
    assert run_job("audit", "memorization", {"run": run, "n": 20},
                   out=tmp_path / "a2").state == "done"
    out = tmp_path / "share" / "report.html"
    rec = run_job("audit", "report", {"run": run, "out": out})
    assert rec.state == "done", rec.error
    html = out.read_text()
    for title in ("Membership inference", "Memorisation of training examples"):
        assert title in html
    assert "Not audited yet" not in html
    assert "src=\"http" not in html and "<script" not in html  # self-contained
    assert str(tmp_path) not in html and f"/{getpass.getuser()}/" not in html
    card = (run / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: generative-studio\n")
    assert "model-index:" in card and "membership-inference" in card
    assert str(tmp_path) not in card
    # the workspace's audit log has both audits, and the report found them through it
    log = (Path(studio_home) / "workspace" / "audit" / "log.jsonl")
    logs = list(Path(studio_home).rglob("log.jsonl"))
    assert logs, "the audit log is written in the workspace"
    entries = [json.loads(line) for line in logs[0].read_text().splitlines()]
    assert {e["audit"] for e in entries} == {"mia", "memorization"}
    del log


def test_report_keeps_someone_elses_readme(tmp_path):
    run = train(tmp_path, "target")
    (run / "README.md").write_text("# my notes\n")
    rec = run_job("audit", "report", {"run": run, "out": tmp_path / "r.html"})
    assert rec.state == "done", rec.error
    assert (run / "README.md").read_text() == "# my notes\n"
    assert (run / "README.audit.md").exists()
    assert "No audit has been run on this model yet" in (tmp_path / "r.html").read_text()
