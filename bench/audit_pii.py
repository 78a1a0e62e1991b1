"""Personal-data detection on a synthetic labelled set: recall and precision per kind.

The set (``plugins.audit.engine.pii.synthetic_set``) plants e-mails, phone numbers (US, UK,
German; national and international formats), Luhn-valid card numbers of several networks,
mod-97-valid IBANs of five countries and street addresses (English and German forms) in short
documents, mixed with look-alikes that must *not* be flagged: order and lot numbers, ISBNs,
IP addresses, prices, dates, a card number with a wrong check digit, an IBAN with a wrong
checksum. A finding counts when it has the planted span's kind and overlaps at least half of
it (and half of itself).

Bars (issue 13): recall >= 0.95 and precision >= 0.9. The reference run in the same process is
a plain regex baseline (any 13-19 digit run is a card, any 10-15 digit run a phone), to show
what the checksums and validation buy. Names are not part of the set: they need a local NER
model the studio does not ship.

    python bench/audit_pii.py [--n 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from plugins.audit.engine import pii  # noqa: E402


def baseline(text: str) -> list[pii.Finding]:
    """What a naive scanner does: patterns without checksums or validation."""
    out = pii.find_emails(text)
    out += [pii.Finding("card", m.start(), m.end(), m.group())
            for m in re.finditer(r"\b(?:\d[ -]?){12,18}\d\b", text)]
    out += [pii.Finding("phone", m.start(), m.end(), m.group())
            for m in re.finditer(r"\+?\(?\d[\d ().-]{8,16}\d", text)]
    out += [pii.Finding("iban", m.start(), m.end(), m.group())
            for m in re.finditer(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}", text)]
    out += pii.find_addresses(text)
    return pii.resolve(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    gold = pii.synthetic_set(a.n, a.seed)
    planted = sum(len(g.spans) for g in gold)
    scanner = pii.Scanner(names=False)
    t0 = time.perf_counter()
    found = [scanner.scan(g.text) for g in gold]
    t_scan = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = [baseline(g.text) for g in gold]
    t_base = time.perf_counter() - t0
    r, b = pii.score(found, gold), pii.score(base, gold)
    chars = sum(len(g.text) for g in gold)
    print(f"{a.n} documents, {planted} planted findings, {chars} characters")
    print(f"{'kind':<9} {'recall':>7} {'precision':>9}   baseline recall/precision")
    for kind, d in sorted(r["per_kind"].items()):
        bd = b["per_kind"].get(kind, {"tp": 0, "fp": 0, "fn": 0})
        rec = d["tp"] / max(1, d["tp"] + d["fn"])
        prec = d["tp"] / max(1, d["tp"] + d["fp"])
        brec = bd["tp"] / max(1, bd["tp"] + bd["fn"])
        bprec = bd["tp"] / max(1, bd["tp"] + bd["fp"])
        print(f"{kind:<9} {rec:7.3f} {prec:9.3f}   {brec:.3f} / {bprec:.3f}")
    print(f"{'all':<9} {r['recall']:7.3f} {r['precision']:9.3f}   "
          f"{b['recall']:.3f} / {b['precision']:.3f}")
    print(f"speed: {chars / t_scan / 1e3:.0f} k chars/s (baseline {chars / t_base / 1e3:.0f} k "
          f"chars/s; ratio {t_scan / t_base:.1f}x the baseline's time)")
    ok = r["recall"] >= 0.95 and r["precision"] >= 0.9
    print(f"bars: recall >= 0.95 and precision >= 0.9: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
