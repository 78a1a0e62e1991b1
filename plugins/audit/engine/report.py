"""The audit's outputs for people: a self-contained HTML report, a model card and the audit log.

Every audit job saves what it found as ``audit.json`` in its own run folder (:func:`save`);
the report is rendered from those files, so it can be rebuilt at any time and a report for a
model gathers every audit ever run on it (found through the workspace's audit log).

- :func:`render_html`: one HTML file with no outside references (plots are PNGs embedded as
  data URIs, drawn by matplotlib's Agg backend; no scripts, no fonts, no links), every number
  with its method and its sample size. It names runs and datasets by their folder names,
  never by absolute path, so it can be shared.
- :func:`model_card`: a Hugging Face style ``README.md`` (YAML metadata block, then sections
  for the model, its training data, and the audit's figures).
- :class:`AuditLog`: ``<workspace>/audit/log.jsonl``, one line per audit run.

No Qt, no torch.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from studio import manifest as manifest_mod
from studio import storage

AUDIT_FILE = "audit.json"
SCHEMA = 1
TITLES = {"mia": "Membership inference", "memorization": "Memorisation of training examples",
          "canaries": "Canary exposure", "dataset": "Dataset audit", "pii": "Personal data",
          "fairness": "Classifier fairness", "leakage": "Train / held-out leakage",
          "representation": "Representation in generated samples",
          "bias": "Bias towards groups (language models)"}
CARD_MARK = "<!-- written by Generative Studio's audit -->"


# ----------------------------------------------------------------------------------------------
# Saving and reading audit results
# ----------------------------------------------------------------------------------------------
def target_info(run_dir: Path | None) -> dict[str, Any]:
    """What an audit says about the run it audited (no absolute path in the shared part)."""
    if run_dir is None:
        return {}
    m = manifest_mod.read(run_dir)
    info: dict[str, Any] = {"run": Path(run_dir).name, "path": str(Path(run_dir).resolve())}
    if m is not None:
        info.update(plugin=m.plugin, job=m.job, title=m.title, state=m.state,
                    started=m.started,
                    datasets=[{"name": d.name, "examples": d.examples, "train": d.train,
                               "held_out": d.held_out, "unit": d.unit,
                               "fingerprint": d.fingerprint} for d in m.datasets],
                    models=[{"path": a.path, "model_kind": a.model_kind} for a in m.models()])
    return info


def save(run_dir: Path, audit: str, result: dict[str, Any], target: Path | None = None,
         subject: str = "") -> Path:
    """Write an audit's result as ``audit.json`` in its run folder."""
    doc = {"schema": SCHEMA, "audit": audit, "created": time.time(),
           "target": target_info(target), "subject": subject, "result": result}
    return storage.atomic_write_json(Path(run_dir) / AUDIT_FILE, _clean(doc))


def load(run_dir: Path) -> dict[str, Any] | None:
    try:
        doc = storage.read_json(Path(run_dir) / AUDIT_FILE)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "audit" in doc else None


def _clean(obj: Any) -> Any:
    """JSON without NaN/inf (written as null) and with numpy scalars as numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return obj.name
    return obj


# ----------------------------------------------------------------------------------------------
# The audit log
# ----------------------------------------------------------------------------------------------
class AuditLog:
    """``<workspace>/audit/log.jsonl``: every audit run, one JSON object per line."""

    _lock = threading.Lock()

    def __init__(self, workspace: Path) -> None:
        self.path = Path(workspace) / "audit" / "log.jsonl"

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(_clean({"time": time.time(), **entry})) + "\n"
        with self._lock:
            old = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
            self.path.parent.mkdir(parents=True, exist_ok=True)
            storage.atomic_write_text(self.path, old + line)

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if isinstance(e, dict):
                out.append(e)
        return out

    def for_target(self, run_dir: Path) -> list[dict[str, Any]]:
        key = str(Path(run_dir).resolve())
        return [e for e in self.entries() if e.get("target") == key]


def audits_of(workspace: Path, run_dir: Path) -> list[dict[str, Any]]:
    """The newest saved result of each audit kind run on ``run_dir`` (from the audit log)."""
    newest: dict[str, dict[str, Any]] = {}
    for e in AuditLog(workspace).for_target(run_dir):
        if e.get("state") != "done" or not e.get("audit_run"):
            continue
        doc = load(Path(e["audit_run"]))
        if doc is None:
            continue
        kind = doc["audit"]
        if kind not in newest or doc["created"] >= newest[kind]["created"]:
            doc["_folder"] = Path(e["audit_run"])
            newest[kind] = doc
    order = list(TITLES)
    return sorted(newest.values(), key=lambda d: order.index(d["audit"])
                  if d["audit"] in order else 99)


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float = 4.8, h: float = 3.4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(w, h))


def plot_roc(attacks: Sequence[dict[str, Any]]) -> str:
    """ROC curves on log-log axes (the low-FPR region is what matters)."""
    fig, ax = _figure()
    for a in attacks:
        fpr = np.asarray(a["roc"]["fpr"], dtype=float)
        tpr = np.asarray(a["roc"]["tpr"], dtype=float)
        keep = (fpr > 0) & (tpr > 0)
        ax.plot(fpr[keep], tpr[keep], lw=1.4, label=f"{a['attack']} (AUC {a['auc']:.3f})")
    lo = 1.0 / max(2, min(a["nonmembers"] for a in attacks))
    ax.plot([lo, 1], [lo, 1], ls="--", lw=0.8, color="grey", label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, 1)
    ax.set_ylim(lo, 1.05)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def plot_histogram(values: Sequence[float], threshold: float | None, xlabel: str,
                   groups: dict[str, Sequence[float]] | None = None) -> str:
    fig, ax = _figure(4.8, 3.0)
    if groups:
        for name, vals in groups.items():
            ax.hist(np.asarray(vals, dtype=float), bins=40, alpha=0.55, label=name)
        ax.legend(fontsize=7)
    else:
        ax.hist(np.asarray(values, dtype=float), bins=40, color="#4a7bb7")
    if threshold is not None:
        ax.axvline(threshold, color="#c0392b", lw=1.2, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _png(fig)


def plot_shares(rows: Sequence[dict[str, Any]], label: str, title: str = "",
                compare: str | None = None) -> str:
    """Horizontal bars of shares with their 95% intervals (and a second series to compare)."""
    names = [str(r.get("name", r.get("class", r.get("group", "")))) for r in rows][:30]
    fig, ax = _figure(5.2, max(2.0, 0.28 * len(names) + 1.0))
    y = np.arange(len(names))

    def series(key: str | None) -> tuple[np.ndarray, np.ndarray]:
        vals = [r[key] if key else r for r in rows][:30]
        v = np.array([float(s["value"]) for s in vals])
        err = np.array([[v_ - float(s["lo"]) for v_, s in zip(v, vals, strict=True)],
                        [float(s["hi"]) - v_ for v_, s in zip(v, vals, strict=True)]])
        return v, np.clip(err, 0, None)

    if compare is None:
        v, err = series(None)
        ax.barh(y, v, xerr=err, color="#4a7bb7", ecolor="#333", capsize=2)
    else:
        v1, e1 = series(label)
        v2, e2 = series(compare)
        ax.barh(y - 0.2, v1, height=0.4, xerr=e1, label=label, capsize=2)
        ax.barh(y + 0.2, v2, height=0.4, xerr=e2, label=compare, capsize=2)
        ax.legend(fontsize=7)
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share" if compare else label)
    if title:
        ax.set_title(title, fontsize=9)
    return _png(fig)


def image_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:980px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.method{color:#555;font-size:.88em}.headline{font-size:1.15em}
.pair{display:inline-block;margin:.4em;text-align:center;font-size:.8em}
.pair img{image-rendering:pixelated;width:96px;height:96px;border:1px solid #ccc}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em;font-size:.85em;max-height:16em;
overflow:auto}.warn{color:#a04000}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def pct(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{100 * float(x):.{digits}f}%"


def share_text(s: dict[str, Any] | None) -> str:
    if not s or not s.get("n"):
        return "n/a (no data)"
    return (f"{pct(s['value'])} ({s['k']} of {s['n']}; 95% CI {pct(s['lo'])}-{pct(s['hi'])})")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    h = "".join(f"<th>{esc(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _method(text: str) -> str:
    return f'<p class="method">Method: {esc(text)}</p>'


def section_mia(r: dict[str, Any], folder: Path | None) -> str:
    attacks = r["attacks"]
    out = [f'<p class="headline">Best attack: <b>{esc(r["best"]["attack"])}</b>, AUC '
           f'{r["best"]["auc"]:.3f} on {r["members"]} training and {r["nonmembers"]} held-out '
           f"examples (0.5 = the model gives nothing away; 1.0 = every training example is "
           f"recognisable).</p>"]
    rows = []
    for a in attacks:
        cells = [esc(a["attack"]), f"{a['auc']:.3f} ({a['auc_ci'][0]:.3f}-{a['auc_ci'][1]:.3f})"
                 if a["auc_ci"][0] is not None else f"{a['auc']:.3f}"]
        for p in a["at"]:
            t = p["tpr"]
            txt = f"{pct(t['value'])} ({t['k']} of {t['n']})"
            if not p["resolvable"]:
                txt += (f' <span class="warn">at 0 false positives: {a["nonmembers"]} held-out '
                        f"examples cannot resolve {p['target_fpr']:.1%}</span>")
            cells.append(txt)
        rows.append(cells)
    out.append(_table(["attack", "AUC (95% CI)", "TPR at 0.1% FPR", "TPR at 1% FPR"], rows))
    out.append(f'<img alt="ROC curves" src="{plot_roc(attacks)}">')
    for a in attacks:
        out.append(_method(f"{a['attack']}: {a['method']}"))
    if r.get("reference_models"):
        out.append(f"<p>{r['reference_models']} reference models, each trained by the "
                   f"plugin's own training job on a random half of the same data.</p>")
    exposed = r["best"].get("most_exposed", [])[:10]
    if exposed:
        out.append("<p>Most exposed training examples (the best attack is surest about "
                   "them):</p>")
        out.append(_table(["example", "score"], [[esc(e["id"]), f"{e['score']:.4g}"]
                                                 for e in exposed]))
    return "".join(out)


def section_memorization(r: dict[str, Any], folder: Path | None) -> str:
    out = []
    for res in r["results"]:
        c = res["copied"]
        out.append(f'<p class="headline">{esc(res["kind"])}: <b>{share_text(c)}</b> of '
                   f"generated samples are at or under the threshold ({res['threshold']:g}, "
                   f"{esc(res['unit'])}).</p>")
        out.append(_method(res["method"]))
        d = [x for x in res["distances"] if x is not None]
        if d:
            uri = plot_histogram(d, res["threshold"], res["unit"])
            out.append(f'<img alt="distances" src="{uri}">')
        pairs = res["closest"][:12]
        if res["kind"] == "image" and folder is not None:
            cells = []
            for p in pairs:
                s, t = folder / "pairs" / f"sample-{p['sample']}.png", \
                    folder / "pairs" / f"train-{p['sample']}.png"
                if s.exists() and t.exists():
                    cells.append(f'<div class="pair"><img src="{image_uri(s)}"><img '
                                 f'src="{image_uri(t)}"><br>{p["distance"]:.3f}</div>')
            if cells:
                out.append("<p>Closest pairs (generated, then nearest training image):</p>"
                           + "".join(cells))
        elif res["kind"] == "text":
            rows = [[str(p["sample"]), esc(p.get("exact_tokens", 0)), esc(p.get("near_tokens", 0)),
                     f"<pre>{esc(p.get('sample_passage', ''))}</pre>",
                     f"<pre>{esc(p.get('training_passage', ''))}</pre>"]
                    for p in pairs if p.get("example")]
            if rows:
                out.append(_table(["sample", "exact words", "near words", "generated",
                                   "training passage"], rows))
        else:
            rows = [[str(p["sample"]), esc(p["example"]), f"{p['distance']:.4g}"]
                    for p in pairs]
            out.append(_table(["sample", "nearest training example", "distance"], rows))
    return "".join(out)


def section_canaries(r: dict[str, Any], folder: Path | None) -> str:
    rows = [[esc(c["canary"]), str(c["repeats"]), f"{c['exposure_bits']:.2f} of "
             f"{c['max_bits']:.1f}", esc(c["method"])] for c in r["canaries"]]
    out = ['<p class="headline">Exposure in bits: 0 = the inserted secret is no more likely '
           "than a random one; the maximum = the model prefers it to every other secret of "
           "its shape.</p>", _table(["canary", "inserted", "exposure (bits)", "method"], rows)]
    for reps, v in sorted(r.get("by_repeats", {}).items(), key=lambda kv: int(kv[0])):
        out.append(f"<p>Inserted {esc(reps)} times: mean exposure {v:.2f} bits.</p>")
    out.append(_method(r["method"]))
    return "".join(out)


def section_dataset(r: dict[str, Any], folder: Path | None) -> str:
    out = [f"<p>{r['files']} files: {r['kinds'].get('images', 0)} images, "
           f"{r['kinds'].get('texts', 0)} text files, {r['kinds'].get('csv', 0)} CSV files.</p>"]
    for b in r.get("balance", []):
        if "classes" in b:
            out.append(f"<p>{esc(b['what'])}: {b['total']} in {len(b['classes'])} classes, "
                       f"largest/smallest {b['imbalance_ratio']:.2f}, evenness "
                       f"{b['evenness']:.3f}.</p>")
            out.append(f'<img alt="balance" src="{plot_shares(b["classes"], "share")}">')
            out.append(_method(b["method"]))
        for col, cb in b.get("columns", {}).items():
            out.append(f"<p>{esc(b['file'])}, column {esc(col)}: {cb['total']} rows, "
                       f"largest/smallest {cb['imbalance_ratio']:.2f}.</p>")
            out.append(f'<img alt="balance" src="{plot_shares(cb["classes"], "share")}">')
    out.append(f"<p>Exact duplicate groups: {len(r['exact_duplicates'])}; near duplicate "
               f"pairs: {len(r['near_duplicates'])}.</p>")
    rows = [[esc(", ".join(g[:4]) + (" ..." if len(g) > 4 else ""))]
            for g in r["exact_duplicates"][:20]]
    if rows:
        out.append(_table(["identical files"], rows))
    rows = [[esc(d["kind"]), esc(d["a"]), esc(d["b"]),
             esc(d.get("differing_bits", d.get("jaccard", "")))]
            for d in r["near_duplicates"][:30]]
    if rows:
        out.append(_table(["kind", "file", "near duplicate", "bits / Jaccard"], rows))
    for k, v in r.get("methods", {}).items():
        out.append(_method(f"{k}: {v}"))
    t = r.get("text")
    if t:
        out.append(_table(["characters", "words", "vocabulary", "lines", "repeated lines"],
                          [[str(t["characters"]), str(t["words"]), str(t["vocabulary"]),
                            str(t["lines"]), pct(t["repeated_line_share"])]]))
    if r.get("leakage"):
        out.append(section_leakage(r["leakage"], folder))
    for p in r.get("problems", [])[:20]:
        out.append(f'<p class="warn">{esc(p)}</p>')
    return "".join(out)


def section_leakage(r: dict[str, Any], folder: Path | None) -> str:
    out = [f"<p>{len(r['exact'])} of {r['held_out']} held-out examples have identical "
           f"content among the {r['train']} training examples"
           + (f" ({share_text(r['exact_share'])})" if r.get("exact_share") else "") + ".</p>",
           _method(r["method"])]
    if r.get("near_checked"):
        out.append(f"<p>{len(r['near'])} near-duplicate pairs across the split "
                   f"({share_text(r.get('near_share'))} of held-out examples).</p>")
        out.append(_method(r.get("near_method", "")))
    return "".join(out)


def section_pii(r: dict[str, Any], folder: Path | None) -> str:
    tot = r["totals"]
    out = [f"<p class=\"headline\">{sum(tot.values())} findings in "
           f"{r['files_with_findings']} of {r['scanned_files']} files ({r['chars']} "
           "characters).</p>",
           _table(["kind", "found"], [[esc(k), str(v)] for k, v in tot.items()])]
    rows = [[esc(f["path"]), esc(", ".join(f"{k}: {v}" for k, v in f["counts"].items() if v)),
             esc("; ".join(e["masked"] + f" (line {e['line']})" for e in f["examples"]))]
            for f in r["files"] if any(f["counts"].values())][:40]
    if rows:
        out.append(_table(["file", "found", "examples (masked)"], rows))
    if r.get("redacted_dir"):
        out.append("<p>A redacted copy of every file was written to the audit's run folder "
                   "(the source was not changed).</p>")
    for n in r.get("notes", []):
        out.append(f'<p class="warn">{esc(n)}</p>')
    out.append(_method(r.get("method", "")))
    return "".join(out)


def section_fairness(r: dict[str, Any], folder: Path | None) -> str:
    out = [f"<p class=\"headline\">Demographic parity difference "
           f"<b>{r['demographic_parity_difference']:.3f}</b>; equalized odds difference "
           f"<b>{r['equalized_odds_difference']:.3f}</b> ({r['rows'] - r['dropped']} rows, "
           f"positive outcome {esc(r['positive'])!s}).</p>"]
    rows = []
    for g in r["groups"]:
        def cell(d: dict[str, Any]) -> str:
            if d["n"] == 0 or d["value"] is None:
                return "n/a"
            return f"{pct(d['value'])} ({pct(d['lo'])}-{pct(d['hi'])}, n={d['n']})"
        rows.append([esc(g["group"]), str(g["count"]), cell(g["selection_rate"]),
                     cell(g["true_positive_rate"]), cell(g["false_positive_rate"]),
                     cell(g["accuracy"])])
    out.append(_table(["group", "rows", "selection rate", "true positive rate",
                       "false positive rate", "accuracy"], rows))
    sel = [{"name": g["group"], **g["selection_rate"]} for g in r["groups"]
           if g["selection_rate"]["value"] is not None]
    if sel:
        out.append(f'<img alt="selection rates" src="{plot_shares(sel, "selection rate")}">')
    for k, v in r.get("methods", {}).items():
        out.append(_method(f"{k}: {v}"))
    for n in r.get("notes", []):
        out.append(f'<p class="warn">{esc(n)}</p>')
    return "".join(out)


def section_representation(r: dict[str, Any], folder: Path | None) -> str:
    out = [f'<p class="headline">{esc(r["headline"])}</p>' if r.get("headline") else "",
           f"<p>{r['generated']} generated samples against {r['training']} training "
           "examples.</p>",
           f'<img alt="shares" src="{plot_shares(r["classes"], "generated", compare="training")}">']
    if r.get("total_variation") is not None:
        ci = (f" (95% CI {r['total_variation_lo']:.3f}-{r['total_variation_hi']:.3f})"
              if r.get("total_variation_lo") is not None else "")
        out.append(f"<p>Total variation distance between the two mixes "
                   f"{r['total_variation']:.3f}{ci}: the share of samples that would have to "
                   "change class to match the training data.</p>")
    if r.get("p_value") is not None:
        out.append(f"<p>Chi-square {r['chi_square']:.2f}, p = {r['p_value']:.3g}.</p>")
    for f in r.get("findings", [])[1:]:
        out.append(f"<p>{esc(f)}</p>")
    out.append(_method(r["method"]))
    return "".join(out)


def section_bias(r: dict[str, Any], folder: Path | None) -> str:
    out = [f'<p class="headline">{esc(r["headline"])}</p>']
    if r.get("findings"):
        out.append("<ul>" + "".join(f"<li>{esc(f)}</li>" for f in r["findings"]) + "</ul>")

    def fig(f: dict[str, Any], signed: bool) -> str:
        if f["mean"] is None:
            return "n/a"
        fmt = "{:+.2f}" if signed else "{:.2f}"
        ci = (f" ({fmt.format(f['lo'])} to {fmt.format(f['hi'])})"
              if f["lo"] is not None and f["hi"] is not None else "")
        return f"{fmt.format(f['mean'])}{ci}, n={f['n']}"

    for c in r["categories"]:
        rows = []
        sentiment = {f["group"]: f for f in c["sentiment"]}
        for f in c["regard"]:
            s = sentiment.get(f["group"])
            neg = s.get("negative") if s else None
            rows.append([esc(f["group"]), fig(f, True), fig(s, True) if s else "n/a",
                         f"{pct(neg['value'])} (n={neg['n']})" if neg and neg.get("value")
                         is not None else "n/a"])
        out.append(f"<h3>{esc(c['category'])}</h3>")
        out.append(_table(["group", "regard (nats)", "sentiment (-1..+1)",
                           "negative continuations"], rows))
        words = [[esc(w["word"].strip()), esc(w["prompt"]), esc(w["high"]), esc(w["low"]),
                  f"{w['ratio']:.1f}x"] for w in c.get("words", [])[:5]]
        if words:
            out.append(_table(["word", "prompt", "likelier after", "than after", "ratio"],
                              words))
    out.append(_method(f"{r['method']}; templates: {r['templates']}, {r['prompts']} prompts, "
                       f"{r['samples']} continuations per prompt and group"))
    return "".join(out)


SECTIONS = {"mia": section_mia, "memorization": section_memorization,
            "canaries": section_canaries, "dataset": section_dataset, "pii": section_pii,
            "fairness": section_fairness, "leakage": section_leakage,
            "representation": section_representation, "bias": section_bias}


def _when(t: float | None) -> str:
    return _dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "unknown"


def render_html(title: str, audits: Sequence[dict[str, Any]],
                target: dict[str, Any] | None = None,
                missing: Sequence[str] = ()) -> str:
    """One self-contained HTML page for ``audits`` (documents as :func:`save` writes them)."""
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
             f"{esc(title)}</title><style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"]
    if target:
        parts.append(_table(["run", "made by", "started", "state"],
                            [[esc(target.get("run", "")),
                              esc(f"{target.get('plugin', '')} {target.get('job', '')}"),
                              esc(_when(target.get("started"))), esc(target.get("state", ""))]]))
        rows = [[esc(d["name"]), str(d["examples"]), str(d["train"]), str(d["held_out"]),
                 esc(d["unit"]), esc(d["fingerprint"][:16])]
                for d in target.get("datasets", [])]
        if rows:
            parts.append("<p>Training data as the run recorded it:</p>")
            parts.append(_table(["dataset", "examples", "trained on", "held out", "unit",
                                 "fingerprint"], rows))
    if not audits:
        parts.append("<p>No audit has been run on this model yet.</p>")
    for doc in audits:
        kind = doc["audit"]
        fn = SECTIONS.get(kind)
        parts.append(f"<h2>{esc(TITLES.get(kind, kind))}</h2>")
        parts.append(f'<p class="method">Audited {esc(_when(doc.get("created")))}'
                     + (f", {esc(doc['subject'])}" if doc.get("subject") else "") + ".</p>")
        parts.append(fn(doc["result"], doc.get("_folder")) if fn else
                     f"<pre>{esc(json.dumps(doc['result'], indent=1)[:4000])}</pre>")
    if missing:
        parts.append("<h2>Not audited yet</h2><ul>" + "".join(
            f"<li>{esc(TITLES.get(m, m))}</li>" for m in missing) + "</ul>")
    parts.append(f'<p class="method">Generated by Generative Studio on {_when(time.time())}. '
                 "Every rate is given with the number it was measured on and a 95% "
                 "interval.</p></body></html>")
    return "".join(parts)


# ----------------------------------------------------------------------------------------------
# The model card
# ----------------------------------------------------------------------------------------------
_PIPELINE = {"gan": "unconditional-image-generation", "diffusion": "unconditional-image-generation",
             "writer": "text-generation", "chat": "text-generation",
             "music": "text-to-audio"}


def _yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def model_card(target: dict[str, Any], audits: Sequence[dict[str, Any]]) -> str:
    """A Hugging Face style model card: the YAML metadata block, then plain sections."""
    plugin = target.get("plugin", "")
    meta = ["---", "library_name: generative-studio", "tags:", "- generative-studio"]
    if plugin:
        meta.append(f"- {plugin}")
    kinds = sorted({m["model_kind"] for m in target.get("models", []) if m.get("model_kind")})
    meta += [f"- {k}" for k in kinds]
    meta.append("- privacy-audit")
    if plugin in _PIPELINE:
        meta.append(f"pipeline_tag: {_PIPELINE[plugin]}")
    ds = target.get("datasets", [])
    if ds:
        meta.append("datasets:")
        meta += [f"- {_yaml_str(d['name'])}" for d in ds]
    by = {d["audit"]: d["result"] for d in audits}
    mia = by.get("mia")
    if mia:
        meta += ["model-index:", f"- name: {_yaml_str(target.get('run', 'model'))}",
                 "  results:", "  - task:", "      type: membership-inference",
                 "      name: Membership inference audit", "    dataset:",
                 f"      name: {_yaml_str(ds[0]['name'] if ds else 'training data')}",
                 "      type: training-data", "    metrics:"]
        for a in mia["attacks"]:
            meta += ["    - type: auc", f"      name: {a['attack']} AUC",
                     f"      value: {a['auc']:.4f}"]
    meta.append("---")
    lines = [*meta, CARD_MARK, "", f"# {target.get('title') or target.get('run', 'Model')}", "",
             f"Trained with Generative Studio's **{plugin}** plugin "
             f"(job `{target.get('job', '')}`, run `{target.get('run', '')}`, started "
             f"{_when(target.get('started'))}).", "", "## Training data", ""]
    if ds:
        for d in ds:
            lines.append(f"- **{d['name']}**: {d['examples']} {d['unit']}s, {d['train']} "
                         f"trained on, {d['held_out']} held out (fingerprint "
                         f"`{d['fingerprint'][:16]}`).")
    else:
        lines.append("The run did not record its training data.")
    lines += ["", "## Privacy and bias audit", ""]
    if not audits:
        lines.append("No audit has been run on this model yet.")
    if mia:
        b = mia["best"]
        lines.append(f"- **Membership inference** ({b['attack']}): AUC {b['auc']:.3f} on "
                     f"{mia['members']} training and {mia['nonmembers']} held-out examples "
                     "(0.5 means nothing can be told apart).")
    mem = by.get("memorization")
    if mem:
        for res in mem["results"]:
            lines.append(f"- **Memorisation** ({res['kind']}): {share_text(res['copied'])} of "
                         f"generated samples at or under the copy threshold "
                         f"({res['threshold']:g}).")
    can = by.get("canaries")
    if can:
        for reps, v in sorted(can.get("by_repeats", {}).items(), key=lambda kv: int(kv[0])):
            lines.append(f"- **Canary exposure**: secrets inserted {reps} times reach "
                         f"{v:.2f} bits on average.")
    fair = by.get("fairness")
    if fair:
        lines.append(f"- **Fairness**: demographic parity difference "
                     f"{fair['demographic_parity_difference']:.3f}, equalized odds difference "
                     f"{fair['equalized_odds_difference']:.3f}.")
    lines += ["", "## Limitations", "",
              "The audit measures what its attacks can find; a low figure is evidence, not "
              "proof, that the model does not leak its training data. Figures measured on "
              "few examples carry wide intervals (see the full HTML report).", ""]
    return "\n".join(lines)


def write_card(model_dir: Path, text: str) -> Path:
    """Write the card as ``README.md`` in ``model_dir``, unless a README that the audit did
    not write is there: then as ``README.audit.md`` beside it (never over someone's card)."""
    target = Path(model_dir) / "README.md"
    if target.exists() and CARD_MARK not in target.read_text(encoding="utf-8", errors="replace"):
        target = Path(model_dir) / "README.audit.md"
    return storage.atomic_write_text(target, text)
