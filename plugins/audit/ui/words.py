"""What an audit found, in plain words for the panel: headlines, attack names, file names.

Why a module of its own: every sentence the panel shows about a result is built here from the
``audit.json`` documents the jobs write (``plugins.audit.engine.report.save``), so the words
can be tested without a window, and the panel holds no arithmetic beyond formatting.

No Qt, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from studio import fmt

ATTACKS = {"loss": "Loss threshold", "lira-online": "LiRA (online)",
           "lira-offline": "LiRA (offline)", "rmia": "RMIA (online)",
           "rmia-offline": "RMIA (offline)"}
PII_KINDS = {"email": ("e-mail address", "e-mail addresses"),
             "phone": ("phone number", "phone numbers"),
             "card": ("card number", "card numbers"), "iban": ("IBAN", "IBANs"),
             "address": ("street address", "street addresses"), "name": ("name", "names")}
CHECKS = {"memorization": "Memorisation", "mia": "Membership inference",
          "canaries": "Canaries", "dataset": "Dataset", "pii": "Private information",
          "fairness": "Fairness", "representation": "Representation",
          "bias": "Language bias", "report": "Report"}


def percent(value: float | None, digits: int = 1) -> str:
    """``0.6%``, ``12%``, ``0%``: one decimal below 10%, none above, none for a round zero."""
    if value is None or not math.isfinite(value):
        return "n/a"
    v = 100.0 * float(value)
    if v == 0:
        return "0%"
    if v >= 10:
        return f"{v:.0f}%"
    return f"{v:.{digits}f}%"


def sentence(text: str) -> str:
    """An engine's note as a sentence: capital first letter, full stop."""
    text = text.strip()
    if not text:
        return ""
    text = text[:1].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def unit_plural(unit: str, n: int) -> str:
    """A dataset's unit counted: ``1 image``, ``60 images``, ``3 text ranges``."""
    unit = unit or "example"
    return plural(n, unit, unit if unit.endswith("s") else unit + "s")


def example_name(example_id: str) -> str:
    """A training example's id (``path@hash#part``) as a person reads it: ``cats/01.png``,
    ``bach.mid (phrase 3)``."""
    if not example_id:
        return "no training example"
    path, _, rest = example_id.rpartition("@")
    if not path and "@" not in example_id:
        path, rest = example_id, ""
    part = rest.partition("#")[2]
    name = path or "the data file"
    return f"{name} ({part})" if part else name


def attack_name(key: str) -> str:
    return ATTACKS.get(key, key)


def interval(share: Mapping[str, Any]) -> str:
    """``likely between 0.2% and 1.7%``: a share's 95% interval."""
    lo, hi = share.get("lo"), share.get("hi")
    if lo is None or hi is None:
        return ""
    return f"likely between {percent(lo)} and {percent(hi)} (95% interval)"


# ----------------------------------------------------------------------------------------------
# Memorisation
# ----------------------------------------------------------------------------------------------
def _copy_phrase(res: Mapping[str, Any]) -> tuple[str, str]:
    """How a sample under the threshold is described, singular and plural."""
    kind = res.get("kind", "")
    thr = float(res.get("threshold") or 0.0)
    if kind == "image":
        return "is a near-copy of a training image", "are near-copies of a training image"
    if kind == "text":
        words = int(round(-thr))
        return (f"repeats {words} or more words in a row from the training text",
                f"repeat {words} or more words in a row from the training text")
    if kind == "music":
        notes = int(round(-thr))
        return (f"repeats a run of {notes} or more notes from a training piece",
                f"repeat a run of {notes} or more notes from a training piece")
    if kind == "level":
        share = percent(1.0 - thr)
        win = (res.get("info") or {}).get("window", 8)
        return (f"is mostly copied from a training level ({share} or more of its {win} x {win} "
                "tile patches)",
                f"are mostly copied from a training level ({share} or more of their {win} x "
                f"{win} tile patches)")
    return ("looks like a training example in the model's own feature space",
            "look like a training example in the model's own feature space")


def memorization_headline(res: Mapping[str, Any]) -> str:
    """``3 of 500 samples are near-copies of a training image (0.6%)``."""
    c = res["copied"]
    k, n = int(c["k"]), int(c["n"])
    one, many = _copy_phrase(res)
    return f"{k:,} of {plural(n, 'sample')} {one if k == 1 else many} ({percent(c['value'])})"


def memorization_detail(doc: Mapping[str, Any]) -> str:
    r = doc["result"]
    results = r.get("results", [])
    if not results:
        return ""
    head = results[0]
    lines = [f"The true share for this model is {interval(head['copied'])}."]
    for extra in results[1:]:
        c = extra["copied"]
        lines.append(f"Compared in the model's own feature space: {int(c['k']):,} of "
                     f"{int(c['n']):,} ({percent(c['value'])}) are that close to a training "
                     "example.")
    lines.append(f"{plural(int(r.get('training', 0)), 'training example')} compared.")
    return " ".join(lines)


# ----------------------------------------------------------------------------------------------
# Membership inference
# ----------------------------------------------------------------------------------------------
def how_easily(auc: float) -> str:
    if auc < 0.55:
        return "cannot tell"
    if auc < 0.6:
        return "can barely tell"
    if auc < 0.7:
        return "can somewhat tell"
    if auc < 0.85:
        return "can clearly tell"
    return "can easily tell"


def mia_headline(r: Mapping[str, Any]) -> str:
    b = r["best"]
    return (f"An attacker {how_easily(float(b['auc']))} training examples from held-out ones: "
            f"AUC {b['auc']:.2f} ({attack_name(b['attack'])}).")


def _alarm(fpr: float) -> str:
    return f"1 false alarm in {round(1 / fpr):,}" if fpr > 0 else "no false alarm"


def rate_point(point: Mapping[str, Any], nonmembers: int) -> str:
    """``12 of 30 (40%)``; where the held-out examples are too few to measure the rate (one
    false alarm is already more), the engine gives the rate at zero false alarms, and so do
    these words."""
    t = point["tpr"]
    text = f"{int(t['k'])} of {int(t['n'])} ({percent(t['value'])})"
    if not point.get("resolvable", True):
        text += f" at no false alarm ({nonmembers:,} held out: too few for this rate)"
    return text


def rate_cell(point: Mapping[str, Any]) -> str:
    """A rate point in a table cell: ``12 of 30 (40%)``, or ``... at 0 false alarms`` when
    the held-out examples are too few to measure the rate itself."""
    t = point["tpr"]
    text = f"{int(t['k'])} of {int(t['n'])} ({percent(t['value'])})"
    return text if point.get("resolvable", True) else text + " at 0 false alarms"


def mia_detail(r: Mapping[str, Any]) -> str:
    """The best attack's true-positive rates at low false-alarm rates, with their sample
    sizes, and how many reference models it used."""
    b = r["best"]
    nonmembers = int(r["nonmembers"])
    parts = []
    short = [p for p in b.get("at", []) if not p.get("resolvable", True)]
    for p in b.get("at", []):
        if p.get("resolvable", True):
            t = p["tpr"]
            parts.append(f"At {_alarm(float(p['target_fpr']))} it finds {int(t['k'])} of "
                         f"{int(t['n'])} training examples ({percent(t['value'])})")
    if short:
        t = short[0]["tpr"]
        rates = " or ".join(_alarm(float(p["target_fpr"])) for p in short)
        parts.append(f"{nonmembers:,} held-out examples are too few to measure {rates}; with "
                     f"no false alarm at all it finds {int(t['k'])} of {int(t['n'])} training "
                     f"examples ({percent(t['value'])})")
    refs = int(r.get("reference_models", 0))
    parts.append(f"{plural(refs, 'reference model')} trained for the test" if refs else
                 "No reference models: only the loss attack ran")
    return (f"Measured on {int(r['members']):,} training and {nonmembers:,} held-out examples; "
            "an AUC of 0.5 would mean they cannot be told apart. " + ". ".join(parts) + ".")


# ----------------------------------------------------------------------------------------------
# Canaries, data, personal data, fairness
# ----------------------------------------------------------------------------------------------
def canaries_headline(r: Mapping[str, Any]) -> str:
    """``Secrets inserted 10 times: 6.1 of 6.6 bits exposed; inserted once: 3.7 bits.``"""
    top = math.log2(float(r.get("space") or 2))
    parts = []
    for i, (reps, v) in enumerate(sorted(r.get("by_repeats", {}).items(),
                                         key=lambda kv: -int(kv[0]))):
        times = "once" if int(reps) == 1 else f"{reps} times"
        parts.append(f"inserted {times}: {v:.1f} of {top:.1f} bits exposed" if i == 0 else
                     f"inserted {times}: {v:.1f} bits")
    text = "; ".join(parts)
    return f"Secrets {text}." if text else "No canary was measured."


def canaries_detail(r: Mapping[str, Any]) -> str:
    top = math.log2(float(r.get("space") or 2))
    return (f"0 bits: the model has not learnt the secret; {top:.1f} bits: it prefers it to "
            "every other secret of its shape. The model was trained for "
            f"{plural(int(r.get('steps', 0)), 'step')} on a copy of the corpus with the secrets "
            "inserted; your corpus was not changed.")


def _count(n: int, one: str, many: str, none: str) -> str:
    return none if n == 0 else plural(n, one, many)


def dataset_headline(r: Mapping[str, Any]) -> str:
    exact, near = len(r.get("exact_duplicates", [])), len(r.get("near_duplicates", []))
    same = _count(exact, "group of identical files", "groups of identical files",
                  "no identical files")
    alike = _count(near, "near-duplicate pair", "near-duplicate pairs", "no near duplicates")
    text = f"{plural(int(r['files']), 'file')}: {same}, {alike}."
    leak = r.get("leakage")
    if leak:
        k, n = len(leak.get("exact", [])), int(leak.get("held_out", 0))
        text += (f" None of the {n:,} held-out examples is also in the training set." if k == 0
                 else f" {k:,} of {n:,} held-out examples are also in the training set.")
    return text


def dataset_detail(r: Mapping[str, Any]) -> str:
    lines = []
    for b in r.get("balance", []):
        ratio = b.get("imbalance_ratio")
        if b.get("classes"):
            biggest = max(b["classes"], key=lambda c: c.get("value") or 0)
            smallest = min(b["classes"], key=lambda c: c.get("value") or 0)
            lines.append(f"{b.get('what', 'Classes')}: {len(b['classes'])} classes"
                         + (f"; the largest ({biggest.get('name')}, "
                            f"{percent(biggest.get('value'))}) is {ratio:.1f} times the "
                            f"smallest ({smallest.get('name')}, "
                            f"{percent(smallest.get('value'))})" if ratio is not None else "")
                         + ".")
        for col, cb in b.get("columns", {}).items():
            r_col = cb.get("imbalance_ratio")
            if r_col is not None:
                lines.append(f"Column {col} in {b.get('file', '')}: the most common value is "
                             f"{r_col:.1f} times as common as the rarest.")
    t = r.get("text")
    if t:
        lines.append(f"Text: {int(t['words']):,} words, {int(t['vocabulary']):,} different; "
                     f"{percent(t['repeated_line_share'])} of lines repeat.")
    return " ".join(lines)


def pii_headline(r: Mapping[str, Any]) -> str:
    totals = {k: int(v) for k, v in r.get("totals", {}).items()}
    found = sum(totals.values())
    if not found:
        return (f"No personal data found in {plural(int(r.get('scanned_files', 0)), 'file')}.")
    kinds = ", ".join(f"{v:,} {PII_KINDS.get(k, (k, k + 's'))[v != 1]}"
                      for k, v in totals.items() if v)
    return (f"{plural(found, 'piece')} of personal data in {int(r['files_with_findings']):,} of "
            f"{plural(int(r['scanned_files']), 'file')}: {kinds}.")


def pii_detail(r: Mapping[str, Any]) -> str:
    text = ("A copy with each finding replaced ([EMAIL], [PHONE], ...) was written to the "
            "check's folder; your files were not changed." if r.get("redacted_dir") else
            "No redacted copy was asked for.")
    return " ".join([text, *[sentence(n) for n in r.get("notes", [])]])


def fairness_headline(r: Mapping[str, Any]) -> str:
    groups = [g for g in r.get("groups", []) if g["selection_rate"].get("value") is not None]
    text = (f"Demographic parity difference {r['demographic_parity_difference']:.2f}, "
            f"equalized odds difference {r['equalized_odds_difference']:.2f} (0 = every group "
            "treated alike).")
    if len(groups) >= 2:
        hi = max(groups, key=lambda g: g["selection_rate"]["value"])
        lo = min(groups, key=lambda g: g["selection_rate"]["value"])
        text += (f" Group {hi['group']} gets the positive outcome "
                 f"{percent(hi['selection_rate']['value'])} of the time, group {lo['group']} "
                 f"{percent(lo['selection_rate']['value'])}.")
    return text


def fairness_detail(r: Mapping[str, Any]) -> str:
    rows = int(r.get("rows", 0))
    used = rows - int(r.get("dropped", 0))
    notes = list(r.get("notes", []))
    more = f" ({len(notes) - 2} more notes in the report)" if len(notes) > 2 else ""
    groups = len(r.get("groups", []))
    odd = (f" {groups} groups: is the group column right? Groups should be a few values such "
           "as age bands, not one per row." if groups > 20 else "")
    return (f"{used:,} of {plural(rows, 'row')} used (rows with an empty cell are left out); "
            f"positive outcome: {r.get('positive')}.{odd} "
            + " ".join(sentence(n) for n in notes[:2]) + more)


def group_rate(d: Mapping[str, Any]) -> str:
    if not d.get("n") or d.get("value") is None:
        return "n/a"
    return f"{percent(d['value'])} ({percent(d['lo'])}–{percent(d['hi'])}, n={int(d['n'])})"


# ----------------------------------------------------------------------------------------------
# Any audit
# ----------------------------------------------------------------------------------------------
def headline(doc: Mapping[str, Any]) -> str:
    """The one sentence that says what an audit found."""
    kind, r = doc.get("audit", ""), doc.get("result", {})
    if kind == "memorization":
        return memorization_headline(r["results"][0]) if r.get("results") else \
            "No samples were compared."
    if kind == "mia":
        return mia_headline(r)
    if kind == "canaries":
        return canaries_headline(r)
    if kind == "dataset":
        return dataset_headline(r)
    if kind == "pii":
        return pii_headline(r)
    if kind == "fairness":
        return fairness_headline(r)
    if kind in ("representation", "bias") and r.get("headline"):
        return str(r["headline"])
    return f"{CHECKS.get(kind, kind)} finished."


def detail(doc: Mapping[str, Any]) -> str:
    kind, r = doc.get("audit", ""), doc.get("result", {})
    if kind == "memorization":
        return memorization_detail(doc)
    if kind == "mia":
        return mia_detail(r)
    if kind == "dataset":
        return dataset_detail(r)
    if kind == "pii":
        return pii_detail(r)
    if kind == "fairness":
        return fairness_detail(r)
    if kind == "canaries":
        return canaries_detail(r)
    if kind == "representation":
        return representation_detail(r)
    if kind == "bias":
        return bias_detail(r)
    return ""


def representation_detail(r: Mapping[str, Any]) -> str:
    """How the classes were told apart and how well, and what else stands out."""
    check = r.get("classifier_check") or {}
    acc = check.get("accuracy")
    how = (f"Samples were classified by {r.get('classifier', 'a classifier')}"
           + (f", which recognises {group_rate(acc)} of real examples ({check['method']})"
              if acc and acc.get("n") else "") + ".")
    more = [sentence(f) for f in r.get("findings", [])[1:4]]
    return " ".join([how, *more, *[sentence(n) for n in r.get("notes", [])]])


def bias_detail(r: Mapping[str, Any]) -> str:
    found = list(r.get("findings", []))
    more = [sentence(f) for f in found[1:4]]
    rest = f" ({len(found) - 4} more in the report)" if len(found) > 4 else ""
    return " ".join([*more, f"Prompts from {r.get('template_file', 'the studio templates')}; "
                     "regard is how much likelier good words are than bad ones after a group "
                     "(in nats), sentiment runs from -1 (very negative) to +1."]) + rest


def subject(doc: Mapping[str, Any]) -> str:
    """What an audit looked at: the model's run, or the data's name."""
    if doc.get("subject"):  # data, a corpus, a predictions file (canaries: not the model)
        return str(doc["subject"])
    t = doc.get("target") or {}
    return str(t.get("title") or t.get("run") or "")


def audit_label(doc: Mapping[str, Any]) -> str:
    """``Memorisation · today 14:03``: an earlier result in a list."""
    return f"{CHECKS.get(doc.get('audit', ''), doc.get('audit', ''))} · " \
           f"{fmt.when(doc.get('created'))}"


def reference_estimate(seconds: float, n: int) -> str:
    """What ``n`` reference models cost, from the audited run's own training time."""
    if n <= 0:
        return ("No reference models: only the quick loss attack runs (it misses much of what "
                "LiRA and RMIA find).")
    each = "one more training run of this model"
    if seconds and seconds > 0:
        took = fmt.duration(seconds) if seconds >= 1 else "under a second"
        total = fmt.duration(seconds * n) if seconds * n >= 1 else "under a second"
        return (f"Each reference model is {each} (it took {took}), so "
                f"{plural(n, 'reference model')} take about {total} here, plus scoring.")
    return f"Each reference model is {each}: {n} training runs in all, plus scoring."


def gui_message(text: str, labels: Mapping[str, str]) -> str:
    """An engine's message with its command-line flags named as the window labels them
    (``--positive`` becomes “Positive value”)."""
    for name, label in sorted(labels.items(), key=lambda kv: -len(kv[0])):
        text = text.replace("--" + name.replace("_", "-"), f"“{label}”")
    return text


def closest_caption(pair: Mapping[str, Any], kind: str) -> str:
    """Under a pair: how close, and which training example."""
    name = example_name(str(pair.get("example", "")))
    d = float(pair.get("distance", 0.0))
    if kind == "image":
        return f"distance {d:.3f} · {name}"
    if kind == "text":
        return f"{int(pair.get('near_tokens', 0) or pair.get('exact_tokens', 0))} words " \
               f"shared · {name}"
    if kind == "music":
        return f"{int(pair.get('notes', 0))} notes shared · {name}"
    if kind == "level":
        return f"{percent(pair.get('share', 0.0))} of patches found · {name}"
    return f"distance {d:.3f} · {name}"


def most_exposed(best: Mapping[str, Any], k: int = 10) -> Sequence[tuple[str, float]]:
    return [(example_name(e["id"]), float(e["score"])) for e in best.get("most_exposed", [])[:k]]
