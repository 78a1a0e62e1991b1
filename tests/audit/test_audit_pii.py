"""Personal data: detectors, redaction into a copy (source untouched), the labelled set."""

from __future__ import annotations

import json

import pytest
from audit_helpers import run_job

from plugins.audit.engine import pii
from studio.errors import UserError

TEXT = ("Write to anna.smith+news@example.co.uk or call (415) 555-2671. Card 4111 1111 1111 "
        "1111 expired; IBAN DE89 3704 0044 0532 0130 00. She lives at 221 Baker Street, "
        "London. Order 4111 1111 1111 1112 and lot 7017-8591-30 are not personal. "
        "Bahnhofstraße 12, 10115 Berlin.")


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.text) for f in pii.Scanner(names=False).scan(text)]


def test_each_detector_on_a_sentence():
    found = kinds(TEXT)
    assert ("email", "anna.smith+news@example.co.uk") in found
    assert ("phone", "(415) 555-2671") in found
    assert ("card", "4111 1111 1111 1111") in found
    assert ("iban", "DE89 3704 0044 0532 0130 00") in found
    assert ("address", "221 Baker Street, London") in found
    assert ("address", "Bahnhofstraße 12, 10115 Berlin") in found
    assert len(found) == 6  # the non-Luhn card and the lot number are not findings


def test_checksums_decide():
    assert pii.find_cards("4111111111111111") and not pii.find_cards("4111111111111112")
    assert pii.find_ibans("GB82 WEST 1234 5698 7654 32")
    assert not pii.find_ibans("GB83 WEST 1234 5698 7654 32")
    assert not pii.find_phones("Order 4155552671 shipped.")
    assert pii.find_phones("Phone: 4155552671")


def test_masking_does_not_repeat_the_data():
    assert pii.mask("anna@example.com") == "a***@e******.c**"
    assert pii.mask("4111 1111") == "4*** 1***"


def test_redacted_copy_beside_the_source(tmp_path):
    src = tmp_path / "corpus"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text(TEXT)
    (src / "sub" / "b.md").write_text("nothing here\n")
    (src / "bin.txt").write_bytes(b"\xff\xfe\x00")
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    rep = pii.scan_folder(src, tmp_path / "out", pii.Scanner(names=False))
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
    red = (tmp_path / "out" / "a.txt").read_text()
    assert "[EMAIL]" in red and "[CARD]" in red and "[IBAN]" in red and "[ADDRESS]" in red
    assert "4111 1111 1111 1111" not in red and "4111 1111 1111 1112" in red
    assert (tmp_path / "out" / "sub" / "b.md").read_text() == "nothing here\n"
    assert rep.totals["email"] == 1 and rep.skipped == ["bin.txt: not UTF-8 text"]
    assert "anna.smith" not in json.dumps(rep.to_json())  # the report masks its findings
    with pytest.raises(UserError, match="outside the source"):
        pii.scan_folder(src, src / "redacted")


def test_names_are_off_without_a_local_model_and_it_says_so():
    s = pii.Scanner()
    if s.names is not None and s.names.available:
        pytest.skip("a spaCy model is installed here")
    assert any("names were not looked for" in n for n in s.notes)


def test_the_labelled_set_meets_the_bars():
    gold = pii.synthetic_set(200, seed=5)
    scanner = pii.Scanner(names=False)
    r = pii.score([scanner.scan(g.text) for g in gold], gold)
    assert r["recall"] >= 0.95 and r["precision"] >= 0.9
    assert set(r["per_kind"]) == {"email", "phone", "card", "iban", "address"}


def test_pii_job_writes_into_its_run_folder(tmp_path):
    src = tmp_path / "texts"
    src.mkdir()
    (src / "a.txt").write_text(TEXT)
    rec = run_job("audit", "pii", {"data": src, "kinds": ["email", "card"]},
                  out=tmp_path / "scan")
    assert rec.state == "done", rec.error
    assert "[EMAIL]" in (tmp_path / "scan" / "redacted" / "a.txt").read_text()
    doc = json.loads((tmp_path / "scan" / "audit.json").read_text())["result"]
    assert doc["totals"] == {"email": 1, "card": 1}
    rec = run_job("audit", "pii", {"data": src}, out=src / "inside")
    assert rec.state == "failed" and "never into it" in rec.error
    rec = run_job("audit", "pii", {"data": src, "kinds": ["ssn"]}, out=tmp_path / "x")
    assert rec.state == "failed" and "unknown 'ssn'" in rec.error
