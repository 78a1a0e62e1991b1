"""Personal data in text corpora: find it, count it, and write a redacted copy beside the source.

Detectors, each chosen for precision as much as recall (a scan that flags every number is
ignored):

- e-mail addresses: a pattern for ``local@domain.tld``;
- phone numbers: Google's libphonenumber (the ``phonenumbers`` package) finds and *validates*
  numbers for a default region plus any ``+``-prefixed international number, with the digits
  grouped as that country groups them ("7017-8591-30" is a lot number, not a phone); a bare
  run of digits only counts right after a word such as "phone", "tel", "call me on";
- payment card numbers: 13-19 digits (spaces or dashes allowed) that pass the Luhn checksum
  and start like a card of a known network (Visa, Mastercard, Amex, Discover, JCB, Diners,
  Maestro, UnionPay);
- IBANs: the country's length and the ISO 13616 mod-97 check (``python-stdnum``);
- street addresses: heuristics for "12 Baker Street" / "1600 Pennsylvania Ave NW" forms (a house
  number, capitalised words, a street word; a following unit, town and postcode are included)
  and the German/Dutch "Hauptstraße 5" form;
- names: only with a local spaCy English model installed (``en_core_web_sm`` or larger); the
  scan never downloads one, and the report says when names were not looked for.

:func:`scan_folder` writes the redacted copy into an output folder that must not be, or lie
inside, the source; the source is only read. Reports show findings masked ("j***@e***.com"),
so the report itself does not repeat the personal data it found.

:func:`synthetic_set` generates a labelled set (sentences with planted personal data and
look-alike distractors) for ``bench/audit_pii.py``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import UserError
from studio.storage import atomic_write_text

KINDS = ("email", "phone", "card", "iban", "address", "name")
LABELS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "iban": "[IBAN]",
          "address": "[ADDRESS]", "name": "[NAME]"}
TEXT_EXTS = (".txt", ".md", ".csv", ".tsv", ".json", ".jsonl", ".text", ".html", ".xml",
             ".yaml", ".yml", ".srt", ".vtt", ".log", ".tex", ".rst")
_PRIORITY = {"iban": 0, "card": 1, "email": 2, "address": 3, "phone": 4, "name": 5}


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    text: str

    def masked(self) -> str:
        return mask(self.text)


def mask(text: str) -> str:
    """Personal data shown without revealing it: the first character of each word or digit
    group, the rest as ``*``; ``@`` and separators kept."""
    out = []
    first = True
    for ch in text:
        if ch.isalnum():
            out.append(ch if first else "*")
            first = False
        else:
            out.append(ch)
            first = True
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# Detectors
# ----------------------------------------------------------------------------------------------
EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
                   r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b")
CARD = re.compile(r"(?<![\d+-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_STREET_WORDS = (
    "Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Way|Place|Pl|"
    "Terrace|Close|Square|Sq|Parkway|Pkwy|Highway|Hwy|Crescent|Grove|Gardens|Row|Mews|Walk|"
    "Circle|Cir|Trail|Alley")
ADDRESS_EN = re.compile(
    r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][a-z]+\.?\s+|[NSEW]\.?\s+|\d{1,3}(?:st|nd|rd|th)\s+){1,4}"
    rf"(?:{_STREET_WORDS})\b\.?"
    r"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|#)\.?\s*[\w-]+)?"
    r"(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+)*)?"
    r"(?:,?\s*(?:[A-Z]{2}\s+)?\d{5}(?:-\d{4})?\b|,?\s*[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b)?")
ADDRESS_DE = re.compile(
    r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|"
    r"straat|laan|gracht)\s+\d{1,4}[a-z]?\b(?:,\s*\d{4,5}\s+[A-ZÄÖÜ][a-zäöüß]+)?")
_PHONE_CONTEXT = re.compile(r"\b(?:phone|tel|telephone|mobile|cell|call|fax|ring|whatsapp|"
                            r"contact)\b[\s:.#-]*(?:(?:me|us|her|him|them|on|at|is|no|"
                            r"number)[\s:.#-]+){0,3}$", re.IGNORECASE)

_CARD_PREFIXES = (
    (("4",), (13, 16, 19)),  # Visa
    ((*(str(p) for p in range(51, 56)), *(str(p) for p in range(2221, 2721))), (16,)),
    (("34", "37"), (15,)),  # Amex
    (("6011", "65", *(str(p) for p in range(644, 650))), (16, 19)),  # Discover
    (tuple(str(p) for p in range(3528, 3590)), (16, 19)),  # JCB
    (("36", "300", "301", "302", "303", "304", "305", "38", "39"), (14, 16)),  # Diners
    (("50", "56", "57", "58", "6304", "6759", "676770", "676774"), tuple(range(12, 20))),
    (("62",), (16, 17, 18, 19)),  # UnionPay
)


def card_network_ok(digits: str) -> bool:
    return any(digits.startswith(prefixes) and len(digits) in lengths
               for prefixes, lengths in _CARD_PREFIXES)


def luhn_ok(digits: str) -> bool:
    from stdnum import luhn

    return bool(luhn.is_valid(digits))


def iban_ok(text: str) -> bool:
    from stdnum import iban

    return bool(iban.is_valid(text))


def find_emails(text: str) -> list[Finding]:
    return [Finding("email", m.start(), m.end(), m.group()) for m in EMAIL.finditer(text)]


def find_cards(text: str) -> list[Finding]:
    out = []
    for m in CARD.finditer(text):
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        seps = set(re.findall(r"[ -]", raw))
        if len(seps) > 1:
            continue  # "1234-5678 9012" mixes separators: not how cards are written
        if seps and len(re.split(r"[ -]", raw)[0]) != 4:
            continue  # grouped card numbers start with a group of four
        if card_network_ok(digits) and luhn_ok(digits):
            out.append(Finding("card", m.start(), m.end(), raw))
    return out


def find_ibans(text: str) -> list[Finding]:
    out = []
    for m in IBAN.finditer(text):
        raw = m.group().rstrip()
        # the pattern may run on into the next word: shrink until the checksum holds
        while len(re.sub(r"\s", "", raw)) >= 15:
            if iban_ok(raw):
                out.append(Finding("iban", m.start(), m.start() + len(raw), raw))
                break
            raw = raw[:-1].rstrip()
    return out


def find_addresses(text: str) -> list[Finding]:
    out = [Finding("address", m.start(), m.end(), m.group().rstrip(" ,."))
           for m in ADDRESS_EN.finditer(text)]
    out += [Finding("address", m.start(), m.end(), m.group()) for m in ADDRESS_DE.finditer(text)]
    return [Finding(f.kind, f.start, f.start + len(f.text), f.text) for f in out]


def find_phones(text: str, region: str = "US") -> list[Finding]:
    import phonenumbers

    out = []
    for m in phonenumbers.PhoneNumberMatcher(text, region,
                                             leniency=phonenumbers.Leniency.STRICT_GROUPING):
        raw = m.raw_string
        formatted = raw.startswith("+") or bool(re.search(r"[\s().-]", raw.strip()))
        if not formatted and not _PHONE_CONTEXT.search(text[max(0, m.start - 40):m.start]):
            continue
        out.append(Finding("phone", m.start, m.end, raw))
    return out


class NameFinder:
    """Person names with a local spaCy model, when one is installed (never downloaded)."""

    MODELS = ("en_core_web_trf", "en_core_web_lg", "en_core_web_md", "en_core_web_sm")

    def __init__(self) -> None:
        self.nlp: Any = None
        self.model = ""
        self.reason = ""
        try:
            import spacy  # optional
        except ImportError:
            self.reason = "no local name model (spaCy is not installed): names were not looked for"
            return
        for name in self.MODELS:
            try:
                self.nlp = spacy.load(name)
                self.model = name
                return
            except OSError:
                continue
        self.reason = ("no local name model (no spaCy English model is installed): names were "
                       "not looked for")

    @property
    def available(self) -> bool:
        return self.nlp is not None

    def __call__(self, text: str) -> list[Finding]:
        if self.nlp is None:
            return []
        doc = self.nlp(text)
        return [Finding("name", e.start_char, e.end_char, e.text) for e in doc.ents
                if e.label_ == "PERSON"]


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """Overlapping findings reduced to one each: checksummed kinds win, then the longer."""
    ordered = sorted(findings, key=lambda f: (_PRIORITY[f.kind], -(f.end - f.start), f.start))
    taken: list[Finding] = []
    for f in ordered:
        if all(f.end <= t.start or f.start >= t.end for t in taken):
            taken.append(f)
    return sorted(taken, key=lambda f: f.start)


class Scanner:
    """Every detector, configured once (the name model loads once per scan)."""

    def __init__(self, kinds: Sequence[str] = KINDS, region: str = "US",
                 names: bool = True) -> None:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise UserError(f"unknown kind of personal data {unknown[0]!r} (known: "
                            f"{', '.join(KINDS)})")
        self.kinds = tuple(kinds)
        self.region = region.upper()
        self.names = NameFinder() if names and "name" in kinds else None
        self.notes: list[str] = []
        if "name" in kinds and (self.names is None or not self.names.available):
            self.notes.append(self.names.reason if self.names is not None else
                              "names were not looked for (switched off)")

    def scan(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        detectors: dict[str, Callable[[str], list[Finding]]] = {
            "email": find_emails, "card": find_cards, "iban": find_ibans,
            "address": find_addresses, "phone": lambda t: find_phones(t, self.region)}
        for kind, fn in detectors.items():
            if kind in self.kinds:
                found += fn(text)
        if self.names is not None and self.names.available:
            found += self.names(text)
        return resolve(found)


def redact(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with each finding replaced by its label (``[EMAIL]``, ``[CARD]``...)."""
    out, last = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        out.append(text[last:f.start])
        out.append(LABELS[f.kind])
        last = f.end
    out.append(text[last:])
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# Folders
# ----------------------------------------------------------------------------------------------
@dataclass
class FileReport:
    path: str  # relative to the source
    counts: dict[str, int]
    examples: list[dict[str, Any]]  # masked, with line numbers
    redacted: str  # relative to the output folder ("" when nothing was written)


@dataclass
class PiiReport:
    files: list[FileReport]
    totals: dict[str, int]
    skipped: list[str]
    notes: list[str]
    chars: int
    redacted_dir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"files": [f.__dict__ for f in self.files], "totals": self.totals,
                "skipped": self.skipped, "notes": self.notes, "chars": self.chars,
                "redacted_dir": self.redacted_dir, "scanned_files": len(self.files),
                "files_with_findings": sum(1 for f in self.files if any(f.counts.values())),
                **self.extra}


def text_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    return sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_EXTS)


def scan_folder(src: Path, out: Path | None, scanner: Scanner | None = None,
                check: Callable[[], None] | None = None,
                progress: Callable[[int, int, str], None] | None = None,
                examples_per_file: int = 5) -> PiiReport:
    """Scan every text file of ``src`` (a file or a folder); with ``out``, write each file's
    redacted copy under ``out`` at the same relative path. ``out`` must not be ``src`` or lie
    inside it; ``src`` is never written."""
    src = Path(src).expanduser()
    if not src.exists():
        raise UserError(f"{src.name or src} does not exist: choose a text file or a folder")
    if out is not None:
        s, o = src.resolve(), Path(out).resolve()
        base = s if s.is_dir() else s.parent
        if o == base or (base in o.parents and s.is_dir()):
            raise UserError("the redacted copy must go outside the source folder (it is "
                            "written beside the source, never over or into it)")
        if s.is_file() and o == s:
            raise UserError("the redacted copy must not replace the source file")
    scanner = scanner or Scanner()
    files = text_files(src)
    if not files:
        raise UserError(f"{src.name} holds no text files ({', '.join(TEXT_EXTS)})")
    reports, skipped, chars = [], [], 0
    totals = dict.fromkeys(scanner.kinds, 0)
    for i, f in enumerate(files):
        if check is not None:
            check()
        rel = f.name if src.is_file() else f.relative_to(src).as_posix()
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            skipped.append(f"{rel}: not UTF-8 text")
            continue
        except OSError as exc:
            skipped.append(f"{rel}: {exc.strerror or exc}")
            continue
        chars += len(text)
        found = scanner.scan(text)
        counts = dict.fromkeys(scanner.kinds, 0)
        for fd in found:
            counts[fd.kind] += 1
            totals[fd.kind] += 1
        examples = [{"kind": fd.kind, "line": text.count("\n", 0, fd.start) + 1,
                     "masked": fd.masked()} for fd in found[:examples_per_file]]
        written = ""
        if out is not None:
            target = Path(out) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, redact(text, found))
            written = rel
        reports.append(FileReport(rel, counts, examples, written))
        if progress is not None:
            progress(i + 1, len(files), rel)
    return PiiReport(reports, totals, skipped, list(scanner.notes), chars)


# ----------------------------------------------------------------------------------------------
# A labelled synthetic set (for the bench and tests)
# ----------------------------------------------------------------------------------------------
_FIRST = ("Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
          "Kofi", "Lena", "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Yuki")
_LAST = ("Smith", "Garcia", "Müller", "Okafor", "Rossi", "Dubois", "Kowalski", "Tanaka",
         "Andersen", "Novak", "Haddad", "Silva", "Jansen", "Ivanova", "Murphy", "Costa")
_STREETS = ("Baker", "Maple", "Oak", "Elm", "High", "Church", "Mill", "Park", "Station",
            "Victoria", "Green", "King", "Queen", "Cedar", "Willow", "Lake")
_SUFFIXES = ("Street", "Avenue", "Road", "Lane", "Drive", "Boulevard", "Court", "Way", "St",
             "Ave", "Rd")
_CITIES = ("Springfield", "Riverton", "Lakewood", "Fairview", "Greenville", "Bristol",
           "Oxford", "Madison")
_DOMAINS = ("example.com", "mail.example.org", "post.example.net", "example.co.uk")
_DE_STREETS = ("Haupt", "Bahnhof", "Schiller", "Goethe", "Linden", "Berg", "Garten")
_FILLERS = (
    "The meeting moved to Thursday afternoon.", "Please bring the signed forms.",
    "Invoice 2024-0173 covers 14 items at 12.50 each.", "We shipped order 88213 on 3 May 2023.",
    "The reference number is 4471-2209-33.", "Version 10.4.2 fixed 3 bugs.",
    "Room 101 is on the second floor.", "The train leaves at 17:45 from platform 9.",
    "Temperatures reached 31 degrees on 12/07/2022.", "Serial 9780306406157 is a book's ISBN.",
    "The total came to 1,250,000 units in 2021.", "Call the front desk if the door sticks.",
    "Tracking code 1Z999AA10123456784 arrived.", "Chapter 12 starts on page 245.",
)


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    from stdnum import luhn

    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def _iban(country: str, bban: str) -> str:
    from stdnum import iban

    check = iban.calc_check_digits(country + "00" + bban)
    raw = country + check + bban
    return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def _synthetic_value(kind: str, rng: random.Random) -> str:
    import phonenumbers

    if kind == "email":
        sep = rng.choice((".", "_", ""))
        first, last = rng.choice(_FIRST), rng.choice(_LAST).replace("ü", "u")
        if rng.random() < 0.7:
            first, last = first.lower(), last.lower()
        tag = rng.choice(("", "", str(rng.randint(1, 99)), "+news", "+2024"))
        return f"{first}{sep}{last}{tag}@{rng.choice(_DOMAINS)}"
    if kind == "card":
        prefix, length = rng.choice((("4", 16), ("5", 16), ("37", 15), ("6011", 16),
                                     ("35", 16)))
        if prefix == "5":
            prefix = str(rng.randint(51, 55))
        if prefix == "35":
            prefix = str(rng.randint(3528, 3589))
        digits = _luhn_complete(prefix, length, rng)
        style = rng.choice(("space", "dash", "none"))
        groups = [digits[:4], digits[4:10], digits[10:]] if length == 15 else \
            [digits[i:i + 4] for i in range(0, length, 4)]
        return {"space": " ".join(groups), "dash": "-".join(groups), "none": digits}[style]
    if kind == "iban":
        country, bban = rng.choice((
            ("DE", "".join(rng.choice("0123456789") for _ in range(18))),
            ("FR", "".join(rng.choice("0123456789") for _ in range(23))),
            ("NL", "ABNA" + "".join(rng.choice("0123456789") for _ in range(10))),
            ("GB", "NWBK" + "".join(rng.choice("0123456789") for _ in range(14))),
            ("ES", "".join(rng.choice("0123456789") for _ in range(20))),
        ))
        from stdnum import iban

        for _ in range(100):
            value = _iban(country, bban)
            if iban.is_valid(value):
                return value if rng.random() < 0.7 else value.replace(" ", "")
            bban = bban[:-1] + rng.choice("0123456789")
        return _iban("DE", "370400440532013000")
    if kind == "phone":
        while True:
            region = rng.choice(("US", "US", "GB", "DE"))
            ex = phonenumbers.example_number_for_type(region,
                                                      phonenumbers.PhoneNumberType.MOBILE)
            nsn = str(ex.national_number)
            tail = "".join(rng.choice("0123456789") for _ in range(3))
            num = phonenumbers.parse("+" + str(ex.country_code) + nsn[:-3] + tail)
            if not phonenumbers.is_valid_number(num):
                continue
            if region == "US":
                fmt = rng.choice((phonenumbers.PhoneNumberFormat.NATIONAL,
                                  phonenumbers.PhoneNumberFormat.INTERNATIONAL))
            else:
                fmt = phonenumbers.PhoneNumberFormat.INTERNATIONAL
            text = phonenumbers.format_number(num, fmt)
            if region == "US" and rng.random() < 0.4:
                d = nsn[:-3] + tail
                text = rng.choice((f"{d[:3]}-{d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}",
                                   f"+1 {d[:3]}-{d[3:6]}-{d[6:]}", f"({d[:3]}) {d[3:6]}-{d[6:]}"))
            return text
    if kind == "address":
        if rng.random() < 0.2:
            return f"{rng.choice(_DE_STREETS)}straße {rng.randint(1, 120)}"
        street = rng.choice(_STREETS) if rng.random() < 0.8 else \
            f"{rng.randint(2, 99)}th" if rng.random() < 0.5 else \
            f"{rng.choice(('North', 'West'))} {rng.choice(_STREETS)}"
        addr = f"{rng.randint(1, 9999)} {street} {rng.choice(_SUFFIXES)}"
        if rng.random() < 0.15:
            addr += f" {rng.choice(('NW', 'SE'))}"
        if rng.random() < 0.2:
            addr += f", {rng.choice(('Apt', 'Suite', 'Unit'))} {rng.randint(1, 40)}" \
                    f"{rng.choice(('', 'B'))}"
        r = rng.random()
        if r < 0.3:
            addr += f", {rng.choice(_CITIES)}"
        elif r < 0.5:
            addr += f", {rng.choice(_CITIES)}, {rng.choice(('CA', 'NY', 'TX'))} " \
                    f"{rng.randint(10000, 99999)}"
        return addr
    raise ValueError(kind)


_TEMPLATES = {
    "email": ("You can write to {} about it.", "My address is {}.", "Contact: {}",
              "cc {} on the reply"),
    "card": ("Charge it to {} please.", "The card number was {} and it expired.",
             "Paid with {}."),
    "iban": ("Transfer the deposit to {}.", "IBAN: {}", "Our account {} is at the bank."),
    "phone": ("Call me on {} after six.", "Phone: {}", "You can reach her at {} tomorrow."),
    "address": ("She lives at {}.", "Send the parcel to {}.", "The office is at {} now."),
}


@dataclass
class LabelledText:
    text: str
    spans: list[tuple[str, int, int]]  # (kind, start, end)


def synthetic_set(n: int = 500, seed: int = 0,
                  kinds: Sequence[str] = ("email", "phone", "card", "iban", "address")
                  ) -> list[LabelledText]:
    """``n`` short documents with planted personal data of each kind (labelled spans) mixed
    with distractors that look alike (order numbers, dates, ISBNs, invalid card numbers,
    IBANs with a wrong checksum)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts: list[str] = []
        spans: list[tuple[str, int, int]] = []
        pos = 0
        for _ in range(rng.randint(2, 4)):
            if rng.random() < 0.55:
                kind = rng.choice(tuple(kinds))
                value = _synthetic_value(kind, rng)
                template = rng.choice(_TEMPLATES[kind])
                before, after = template.split("{}")
                sentence = before + value + after
                spans.append((kind, pos + len(before), pos + len(before) + len(value)))
            else:
                sentence = rng.choice(_FILLERS + _distractors(rng))
            parts.append(sentence)
            pos += len(sentence) + 1
        out.append(LabelledText(" ".join(parts), spans))
    return out


def _distractors(rng: random.Random) -> tuple[str, ...]:
    bad_card = "4" + "".join(rng.choice("0123456789") for _ in range(15))
    from stdnum import luhn

    if luhn.is_valid(bad_card):
        bad_card = bad_card[:-1] + str((int(bad_card[-1]) + 1) % 10)
    good = _iban("DE", "".join(rng.choice("0123456789") for _ in range(18))).replace(" ", "")
    bad_iban = good[:2] + f"{(int(good[2:4]) + 1) % 100:02d}" + good[4:]
    return (f"Ticket {bad_card} was not valid.", f"The code {bad_iban} was mistyped.",
            f"Order {rng.randint(10**9, 10**10)} shipped.",
            f"The server at 192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)} restarted.",
            f"ISBN 978-3-16-{rng.randint(100000, 999999)}-0 is out of print.",
            f"It cost ${rng.randint(1, 9)},{rng.randint(100, 999)}.00 on "
            f"2023-05-{rng.randint(10, 28)}.",
            f"Meet at {rng.randint(1, 12)}:{rng.randint(10, 59)} near gate "
            f"{rng.randint(1, 80)}.",
            f"Lot {rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-{rng.randint(10, 99)} "
            "passed.")


def score(predicted: Sequence[Sequence[Finding]], gold: Sequence[LabelledText]
          ) -> dict[str, Any]:
    """Recall and precision of findings against labelled spans: a finding counts when it has
    the gold span's kind and overlaps at least half of it (and half of itself)."""
    tp = fp = fn = 0
    per: dict[str, dict[str, int]] = {}
    for found, g in zip(predicted, gold, strict=True):
        matched: set[int] = set()
        for f in found:
            hit = None
            for gi, (kind, a, b) in enumerate(g.spans):
                ov = min(b, f.end) - max(a, f.start)
                if kind == f.kind and gi not in matched and ov >= 0.5 * (b - a) \
                        and ov >= 0.5 * (f.end - f.start):
                    hit = gi
                    break
            d = per.setdefault(f.kind, {"tp": 0, "fp": 0, "fn": 0})
            if hit is None:
                fp += 1
                d["fp"] += 1
            else:
                tp += 1
                d["tp"] += 1
                matched.add(hit)
        for gi, (kind, _a, _b) in enumerate(g.spans):
            if gi not in matched:
                fn += 1
                per.setdefault(kind, {"tp": 0, "fp": 0, "fn": 0})["fn"] += 1
    return {"tp": tp, "fp": fp, "fn": fn,
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan"), "per_kind": per}
