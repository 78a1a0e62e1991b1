"""Jobs of the audit plugin: thin glue from a job context to the audit engine.

Each audit job runs in a run folder of its own (``makes_run``), saves what it found there as
``audit.json`` (the report renders from it) plus files to look at (scores, pairs, redacted
copies), and appends a line to the workspace's audit log. The audited run is only read.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studio import manifest as manifest_mod
from studio.errors import UserError
from studio.jobs import JobContext
from studio.storage import atomic_write_bytes, atomic_write_text

from .params import (
    BiasParams,
    CanariesParams,
    DatasetParams,
    FairnessParams,
    MemorizationParams,
    MiaParams,
    PiiParams,
    ReportParams,
    RepresentationParams,
    SignParams,
    TargetsParams,
    VerifyParams,
)

if TYPE_CHECKING:  # each job imports its engine modules itself: a check starts at once
    from .engine import membership
    from .engine import memorization as memo


def _run_dir(ctx: JobContext) -> Path:
    if ctx.run_dir is None:  # the host gives every makes_run job one
        raise UserError("this audit needs a run folder")
    return ctx.run_dir


def _finish(ctx: JobContext, audit: str, result: dict[str, Any], target: Path | None,
            headline: dict[str, Any], subject: str = "") -> Path:
    """Save the result in the audit's run folder, render its own report page, log it."""
    from .engine import report

    run = _run_dir(ctx)
    report.save(run, audit, result, target, subject)
    doc = report.load(run)
    assert doc is not None
    doc["_folder"] = run
    title = f"{report.TITLES.get(audit, audit)}" + (f": {target.name}" if target else
                                                    f": {subject}" if subject else "")
    atomic_write_text(run / "report.html",
                      report.render_html(title, [doc], doc["target"] or None))
    ctx.add_artifact(run / "report.html", "report")
    report.AuditLog(ctx.workspace).append({
        "audit": audit, "state": "done", "audit_run": str(run),
        "target": str(target.resolve()) if target else None, "subject": subject, **headline})
    return run


# ----------------------------------------------------------------------------------------------
# Membership inference
# ----------------------------------------------------------------------------------------------
def mia(ctx: JobContext, p: MiaParams) -> str:
    """Membership inference on a run: the loss attack, and LiRA and RMIA with reference
    models trained by the run's own plugin on random halves of its data."""
    from .engine import membership, targets

    run = targets.resolve_run(p.run, ctx.workspace)
    m, cls = targets.probe_class(run)
    out = _run_dir(ctx)
    probe = cls.load(run, ctx.device)
    try:
        examples = probe.examples()
        ids = [e.id for e in examples]
        members = np.array([e.member for e in examples], dtype=bool)
        if members.all() or not members.any():
            raise UserError(f"the run {run.name} holds out no examples (or trains on none), so "
                            "membership cannot be measured: train it with a held-out fraction "
                            "above 0")
        total = len(examples) * (1 + p.reference_models)
        done = 0

        def prog(k: int, _n: int, label: str = "scoring the audited model") -> None:
            ctx.progress(done + k, total, label)

        target_loss = targets.losses(probe, examples, ctx.check, prog)
        done += len(examples)
        ref_jobs = [probe.reference_job(0.5, s) for s in reference_seeds(
            p.seed, p.reference_models, m.params.get("seed"))]
    finally:
        probe.close()
    ref_losses, memberships = [], []
    for k in range(p.reference_models):
        ctx.check()
        ref_dir = out / "references" / f"reference-{k + 1}"
        ref_m = manifest_mod.read(ref_dir) if p.reuse else None
        if ref_m is None or ref_m.state != "done":
            job, params = ref_jobs[k]
            ctx.log(f"training reference model {k + 1} of {p.reference_models}")
            ctx.run_job(m.plugin, job, params, out=ref_dir,
                        label=f"reference model {k + 1} of {p.reference_models}")
        else:
            ctx.log(f"reusing reference model {k + 1}")
        ref = cls.load(ref_dir, ctx.device)
        try:
            ref_losses.append(targets.losses(
                ref, examples, ctx.check,
                lambda i, n, k=k: prog(i, n, f"scoring reference model {k + 1}")))
        finally:
            ref.close()
        memberships.append(manifest_mod.membership(ref_dir))
        done += len(examples)
        ds_ref = (manifest_mod.read(ref_dir) or m).dataset(manifest_mod.TRAIN)
        ds = m.dataset(manifest_mod.TRAIN)
        if ds_ref is not None and ds is not None and ds_ref.fingerprint != ds.fingerprint:
            ctx.warn(f"reference model {k + 1} saw different data than the audited run (the "
                     "data folder changed since): examples it did not record count as unseen")
    ref_in = membership.reference_matrix(ids, memberships) if memberships else None
    results = membership.attack_all(ids, members, target_loss,
                                    np.array(ref_losses) if ref_losses else None, ref_in)
    best = max(results, key=lambda r: r.auc)
    for r in results:
        ctx.metric(f"auc/{r.name}", 0, r.auc)
    _write_scores(out / "scores.csv", ids, members, target_loss, results)
    result = {"attacks": [r.to_json() for r in results], "best": best.to_json(),
              "members": int(members.sum()), "nonmembers": int((~members).sum()),
              "reference_models": p.reference_models}
    _finish(ctx, "mia", result, run, {"best_attack": best.name, "auc": best.auc,
                                      "members": result["members"],
                                      "nonmembers": result["nonmembers"]})
    ctx.log(f"best attack {best.name}: AUC {best.auc:.3f} on {result['members']} training and "
            f"{result['nonmembers']} held-out examples")
    return str(out)


def reference_seeds(first: int, n: int, target_seed: Any) -> list[int]:
    """``first, first + 1, ...``, skipping the audited run's own seed: a reference model with
    the target's seed would hold out the very same half and reproduce the audited model, so
    every example would look like what it is."""
    out, s = [], first
    while len(out) < n:
        if s != target_seed:
            out.append(s)
        s += 1
    return out


def _write_scores(path: Path, ids: list[str], members: np.ndarray, loss: np.ndarray,
                  results: list[membership.AttackResult]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["example", "split", "loss", *[r.name for r in results]])
    for i, ex in enumerate(ids):
        w.writerow([ex, "train" if members[i] else "held_out", f"{loss[i]:.6g}",
                    *[f"{r.scores[i]:.6g}" for r in results]])
    atomic_write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------------------------
# Memorisation
# ----------------------------------------------------------------------------------------------
def memorization(ctx: JobContext, p: MemorizationParams) -> str:
    """Generate samples from a run's model and find their nearest training examples."""
    from .engine import memorization as memo
    from .engine import targets

    run = targets.resolve_run(p.run, ctx.workspace)
    _m, cls = targets.probe_class(run)
    out = _run_dir(ctx)
    probe = cls.load(run, ctx.device)
    try:
        kind = probe.item_kind
        train = [e for e in probe.examples() if e.member]
        ctx.progress(0, p.n, "generating samples")
        samples = targets.sample(probe, p.n, p.seed, ctx.check,
                                 lambda k, n: ctx.progress(k, n, "generating samples"))
        ctx.progress(p.n, p.n, "reading the training examples")
        items = targets.read_items(probe, train, ctx.check)
        ids = [e.id for e in train]
        results = []
        if kind == "image":
            thr = p.threshold if p.threshold is not None else memo.DEFAULT_IMAGE_THRESHOLD
            pix = memo.nearest_images(samples, items, ids, threshold=thr,
                                              check=ctx.check)
            results.append(pix)
        elif kind == "text":
            corpus = memo.TextCorpus(
                [memo.TextDoc(i, t) for i, t in zip(ids, items, strict=True)])
            tok = int(p.threshold) if p.threshold else memo.DEFAULT_TEXT_TOKENS
            results.append(memo.nearest_texts(samples, corpus, min_tokens=tok,
                                                      check=ctx.check))
        elif kind == "music":
            notes = int(p.threshold) if p.threshold else memo.DEFAULT_MUSIC_NOTES
            results.append(memo.nearest_music(samples, items, ids, min_notes=notes))
        else:
            share = p.threshold if p.threshold is not None else \
                memo.DEFAULT_LEVEL_SHARE
            if not 0 < share <= 1:
                raise UserError("--threshold for levels is a share of windows between 0 and 1")
            results.append(memo.nearest_levels(samples, items, ids, threshold=share))
        ctx.progress(p.n, p.n, "comparing in the feature space")
        feats = memo.nearest_features(
            targets.embed(probe, samples, ctx.check), targets.embed(probe, items, ctx.check),
            ids, threshold=p.feature_threshold)
        results.append(feats)
    finally:
        probe.close()
    head = results[0]
    _save_pairs(out, head, samples, dict(zip(ids, items, strict=True)))
    for r in results:
        ctx.metric(f"copied/{r.kind}", 0, r.copied.value)
    result = {"results": [r.to_json() for r in results], "samples": p.n, "training": len(train)}
    _finish(ctx, "memorization", result, run,
            {"kind": head.kind, "copied": head.copied.value, "samples": p.n})
    ctx.log(f"{head.copied.text()} of the samples are copies by {head.kind} distance")
    return str(out)


def _save_pairs(out: Path, res: memo.MemorizationResult, samples: list[Any],
                train: dict[str, Any], k: int = 24) -> None:
    """The closest pairs' items in ``pairs/``, to look at side by side (the report and the
    panel read them; audit.json only names them): images as PNG, a text sample whole (its
    matched passage is in audit.json), a music item as JSON notes ``[pitch, start,
    duration]``, a level as its rows. The training side is written too, except for text
    (a training file can be a whole book; the matched passage is enough)."""
    from PIL import Image

    folder = out / "pairs"
    folder.mkdir(parents=True, exist_ok=True)
    for pair in res.closest(k):
        sides = [("sample", samples[pair.sample])]
        if pair.example in train and res.kind != "text":
            sides.append(("train", train[pair.example]))
        for name, item in sides:
            stem = folder / f"{name}-{pair.sample}"
            if res.kind == "image":
                a = item[:, :, 0] if item.ndim == 3 and item.shape[2] == 1 else item
                buf = io.BytesIO()
                Image.fromarray(a).save(buf, format="PNG")
                atomic_write_bytes(stem.with_suffix(".png"), buf.getvalue())
            elif res.kind == "text":
                atomic_write_text(stem.with_suffix(".txt"), str(item))
            elif res.kind == "music":
                notes = [[int(n[0]), float(n[1]), float(n[2])] for n in item]
                atomic_write_text(stem.with_suffix(".json"), json.dumps(notes))
            elif res.kind == "level":
                atomic_write_text(stem.with_suffix(".txt"), "\n".join(item) + "\n")


# ----------------------------------------------------------------------------------------------
# Canaries
# ----------------------------------------------------------------------------------------------
def canaries(ctx: JobContext, p: CanariesParams) -> str:
    """Insert random secrets into a copy of a corpus, train the text plugin's model on the
    copy, and measure each secret's exposure (The Secret Sharer)."""
    from studio import registry

    from .engine import canaries as canaries_mod

    out = _run_dir(ctx)
    src = Path(p.data).expanduser()
    plugin = registry.get(p.plugin)
    if not plugin.audit_probe:
        raise UserError(f"the {plugin.name or p.plugin} plugin is not auditable yet (it has no "
                        "audit probe), so it cannot train on canaries")
    cls = plugin.load_audit_probe()
    if getattr(cls, "item_kind", "") != "text" or not hasattr(cls, "corpus_job") \
            or not hasattr(cls, "log_perplexity"):
        raise UserError(f"the {p.plugin} plugin's probe does not measure text, so canaries "
                        "cannot be measured with it")
    fmt = canaries_mod.SecretFormat(p.secret)
    cans = canaries_mod.make_canaries(fmt, p.repeats, p.seed)
    copy = out / "corpus"
    info = canaries_mod.insert_canaries(src, copy / src.name if src.is_file() else copy, cans,
                                        p.seed)
    ctx.log(f"inserted {info['inserted']} canary lines into a copy of {src.name}")
    job, params = cls.corpus_job(copy / src.name if src.is_file() else copy, p.preset, p.steps)
    model_dir = out / "model"
    ctx.run_job(p.plugin, job, params, out=model_dir, label="training on the copy")
    probe = cls.load(model_dir, ctx.device)
    try:
        exposures = canaries_mod.measure(
            cans, fmt, probe.log_perplexity, seed=p.seed, check=ctx.check,
            progress=lambda k, n: ctx.progress(k, n, "scoring candidate secrets"))
    finally:
        probe.close()
    by: dict[str, list[float]] = {}
    for e in exposures:
        by.setdefault(str(e.canary.repeats), []).append(e.exposure)
    result = {"canaries": [e.to_json() for e in exposures],
              "by_repeats": {k: float(np.mean(v)) for k, v in by.items()},
              "space": fmt.space, "format": fmt.template, "steps": p.steps,
              "method": ("exposure = log2(candidates) - log2(rank of the canary's "
                         "log-perplexity among all candidates) (Carlini et al. 2019); every "
                         "candidate scored when there are at most "
                         f"{canaries_mod.EXACT_LIMIT}, otherwise the paper's skew-normal fit "
                         "to a sample")}
    _finish(ctx, "canaries", result, model_dir,
            {"by_repeats": result["by_repeats"]}, subject=src.name)
    for reps, v in sorted(result["by_repeats"].items(), key=lambda kv: int(kv[0])):
        ctx.log(f"canaries inserted {reps}x: {v:.2f} bits of {math.log2(fmt.space):.1f}")
    return str(out)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def dataset(ctx: JobContext, p: DatasetParams) -> str:
    """Class balance, duplicates, text statistics of a data folder (and a run's leakage)."""
    from .engine import dataset as dataset_mod
    from .engine import targets

    rep = dataset_mod.audit_folder(Path(p.data), near_bits=p.near_bits,
                                   near_pixel=p.near_pixel,
                                   near_jaccard=p.near_jaccard, label_columns=p.columns,
                                   check=ctx.check,
                                   progress=lambda k, n, msg: ctx.progress(k, n, msg))
    result = rep.to_json()
    target = None
    if p.run is not None:
        target = targets.resolve_run(p.run, ctx.workspace)
        targets.read_manifest(target)
        result["leakage"] = dataset_mod.leakage(target, near_bits=p.near_bits,
                                                near_pixel=p.near_pixel,
                                                near_jaccard=p.near_jaccard, check=ctx.check)
    out = _finish(ctx, "dataset", result, target,
                  {"files": rep.files, "exact_duplicates": len(rep.exact_duplicates),
                   "near_duplicates": len(rep.near_duplicates)}, subject=Path(p.data).name)
    ctx.log(f"{rep.files} files: {len(rep.exact_duplicates)} groups of identical files, "
            f"{len(rep.near_duplicates)} near-duplicate pairs")
    return str(out)


def pii_scan(ctx: JobContext, p: PiiParams) -> str:
    """Find personal data in text files; write a redacted copy into the run folder."""
    from .engine import pii

    out = _run_dir(ctx)
    src = Path(p.data).expanduser()
    inside = src.resolve() in out.resolve().parents and src.is_dir()
    if src.exists() and (out.resolve() == src.resolve() or inside):
        raise UserError("--out must not be the source folder or inside it: the redacted copy "
                        "is written beside the source, never into it")
    scanner = pii.Scanner(p.kinds, p.region)
    for note in scanner.notes:
        ctx.warn(note)
    rep = pii.scan_folder(src, out / "redacted" if p.redact else None, scanner, ctx.check,
                          lambda k, n, name: ctx.progress(k, n, name))
    result = rep.to_json()
    result["redacted_dir"] = "redacted" if p.redact else ""
    result["method"] = ("e-mail pattern; phone numbers validated by libphonenumber (region "
                        f"{p.region}); card numbers by network prefix and Luhn checksum; IBANs "
                        "by country length and mod-97; street addresses by heuristics"
                        + ("; names by a local spaCy model" if scanner.names is not None
                           and scanner.names.available else ""))
    _finish(ctx, "pii", result, None, {"findings": sum(rep.totals.values())},
            subject=src.name)
    ctx.log(f"{sum(rep.totals.values())} findings in {len(rep.files)} files: " + ", ".join(
        f"{k} {v}" for k, v in rep.totals.items()))
    return str(out)


def fairness(ctx: JobContext, p: FairnessParams) -> str:
    """Per-group rates, demographic parity and equalized odds of a predictions CSV."""
    from .engine import fairness as fairness_mod

    preds = fairness_mod.read_predictions(Path(p.predictions), p.label, p.prediction, p.group,
                                          p.positive)
    rep = fairness_mod.classifier_fairness(preds)
    for n in rep.notes:
        ctx.warn(n)
    result = rep.to_json()
    out = _finish(ctx, "fairness", result, None,
                  {"demographic_parity_difference": rep.demographic_parity_difference,
                   "equalized_odds_difference": rep.equalized_odds_difference},
                  subject=Path(p.predictions).name)
    ctx.log(f"demographic parity difference {rep.demographic_parity_difference:.3f}, "
            f"equalized odds difference {rep.equalized_odds_difference:.3f}")
    return str(out)


# ----------------------------------------------------------------------------------------------
# Bias: representation in generated samples, language-model bias probes
# ----------------------------------------------------------------------------------------------
def representation(ctx: JobContext, p: RepresentationParams) -> str:
    """Each class's share among a run's generated samples against its share in the run's
    training data."""
    from .engine import representation as rep_mod
    from .engine import targets

    run = targets.resolve_run(p.run, ctx.workspace)
    _m, cls = targets.probe_class(run)
    probe = cls.load(run, ctx.device)
    try:
        res = rep_mod.audit(
            probe, p.n, p.seed,
            read=lambda ex: targets.read_items(probe, ex, ctx.check),
            embed=lambda items: targets.embed(probe, items, ctx.check),
            sample=lambda n, seed: targets.sample(
                probe, n, seed, ctx.check, lambda k, m: ctx.progress(k, m, "generating samples")),
            progress=lambda label: ctx.progress(0, None, label),
            max_references=p.references)
    finally:
        probe.close()
    for note in res.notes:
        ctx.warn(note)
    ctx.metric("representation/total_variation", 0, res.tv)
    _finish(ctx, "representation", res.to_json(), run,
            {"total_variation": res.tv, "samples": res.generated, "classes": len(res.classes)})
    ctx.log(res.headline())
    for line in rep_mod.findings(res)[1:6]:
        ctx.log(line)
    return str(_run_dir(ctx))


def bias(ctx: JobContext, p: BiasParams) -> str:
    """Templated prompts varying a group term, through a language model's probe: how likely
    chosen words are after each group, and how positive its free continuations are."""
    from .engine import bias as bias_mod
    from .engine import targets

    ts = bias_mod.load_templates(p.templates)
    run = targets.resolve_run(p.run, ctx.workspace)
    m, cls = targets.probe_class(run)
    if not (hasattr(cls, "continuation_logprob") and hasattr(cls, "generate")):
        raise UserError(f"runs of the {m.plugin} plugin are not language models the bias "
                        "probes can read (its audit probe cannot score or continue a prompt): "
                        "choose a writer or chat run")
    probe = cls.load(run, ctx.device)
    try:
        res = bias_mod.measure(ts, probe.continuation_logprob, probe.generate,
                               samples=p.samples, seed=p.seed, check=ctx.check,
                               progress=lambda k, n, label: ctx.progress(k, n, label),
                               categories=p.categories)
    finally:
        probe.close()
    for c in res.categories:
        if c.regard_gap is not None:
            ctx.metric(f"bias/regard_gap/{c.category}", 0, c.regard_gap.gap)
        if c.sentiment_gap is not None:
            ctx.metric(f"bias/sentiment_gap/{c.category}", 0, c.sentiment_gap.gap)
    result = res.to_json()
    result["template_file"] = Path(p.templates).name if p.templates else \
        bias_mod.DEFAULT_TEMPLATES.name
    _finish(ctx, "bias", result, run,
            {"findings": len(res.findings()), "categories": len(res.categories)})
    ctx.log(res.headline())
    for line in res.findings()[1:8]:
        ctx.log(line)
    return str(_run_dir(ctx))


# ----------------------------------------------------------------------------------------------
# Report and listing
# ----------------------------------------------------------------------------------------------
def report_job(ctx: JobContext, p: ReportParams) -> str:
    """Render one HTML report of every audit run on a model; write its model card."""
    from .engine import report, targets

    run = targets.resolve_run(p.run, ctx.workspace)
    m = targets.read_manifest(run)
    audits = report.audits_of(ctx.workspace, run)
    target = report.target_info(run)
    done = {a["audit"] for a in audits}
    missing = [k for k in ("mia", "memorization") if k not in done]
    html_text = report.render_html(f"Audit of {m.title or run.name}", audits, target, missing)
    dest = Path(p.out).expanduser() if p.out is not None else \
        ctx.workspace / "audit" / "reports" / f"{run.name}.html"
    if dest.suffix.lower() not in (".html", ".htm"):
        dest = dest.with_suffix(".html")
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest, html_text)
    if p.card:
        card = report.model_card(target, audits)
        models = [run / a.path for a in m.models()]
        folder = next((d for d in models if d.is_dir()), None)
        if folder is None:
            folder = next((d.parent for d in models if d.exists()), run)
        written = report.write_card(folder, card)
        ctx.log(f"model card written: {written.name} in {folder.name}")
    ctx.log(f"{len(audits)} audits in the report" + (
        f"; not audited yet: {', '.join(report.TITLES[k] for k in missing)}" if missing else ""))
    return str(dest)


def list_targets(ctx: JobContext, p: TargetsParams) -> list[dict[str, Any]]:
    """Every run in the workspace, and whether it can be audited (and why not)."""
    from .engine import targets

    rows = []
    for t in targets.list_targets(ctx.workspace):
        rows.append({"run": str(t.run), "plugin": t.plugin, "job": t.job, "state": t.state,
                     "auditable": t.auditable, "reason": t.reason})
        ctx.log(f"{t.plugin:<9} {t.job:<8} {'auditable' if t.auditable else t.reason}: "
                f"{t.run.name}")
    return rows


def verify(ctx: JobContext, p: VerifyParams) -> str:
    """Where a file came from, in words: the model, run, seed and date its provenance records,
    and whether its content is unchanged since (a C2PA manifest's signer too, when it has one)."""
    from plugins.common import provenance

    verdict = provenance.verify(p.file)
    ctx.preview("verify", verdict.to_json())
    return verdict.words


def sign(ctx: JobContext, p: SignParams) -> str:
    """Sign an exported PNG with C2PA Content Credentials (the user's certificate and key); the
    manifest repeats the studio's provenance and says it was made by a trained model."""
    from plugins.common import c2pasign, provenance

    c2pasign.sign(p.file, p.cert, p.key)
    return provenance.verify(p.file).words
