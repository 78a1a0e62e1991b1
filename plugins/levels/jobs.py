"""Jobs of the levels plugin: thin glue from a job context to the engine.

The same functions run from the editor panel, from ``studio run levels ...`` and from the tests.
Each takes its params object (``plugins/levels/params.py``); levels, pins and regions arrive as
objects (the editor passes them, the command line's files are read by the params' codecs before
the job starts). torch is imported only by ``train`` and ``sample``; generating and checking
never load it.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from studio.errors import UserError
from studio.jobs import JobContext
from studio.storage import atomic_write_json

from .engine import agents, files, metrics, physics
from .engine import generate as gen
from .engine.batch import LevelBatch
from .engine.level import Level
from .engine.physics import Physics
from .engine.report import CheckResult, LevelReport
from .params import (
    CheckParams,
    ExportParams,
    GenerateParams,
    InfoParams,
    RepairParams,
    SampleParams,
    TrainParams,
)


def _out_folder(ctx: JobContext, out: Path | None, what: str) -> Path:
    if out is not None:
        return Path(out).expanduser()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return ctx.workspace / "levels" / f"{stamp}-{what}"


def _prov(job: str, p: Any, *, source_type: str, model: Path | None = None,
          seed: int | None = None) -> Any:
    """The provenance every exported level file carries (a model by name, never its path)."""
    from plugins.common import provenance

    return provenance.make("levels", job, model=model, seed=seed, params=p,
                           source_type=source_type)


def _level_prov(job: str, lv: Level, p: Any, source_type: str) -> Any:
    """Provenance for a level the user brings (export, repair): a level the studio generated
    keeps its method and seed; any other level is the user's, changed or converted."""
    from plugins.common import provenance

    made = bool(lv.meta.get("method"))
    seed = lv.meta.get("seed") if isinstance(lv.meta.get("seed"), int) else None
    if source_type == provenance.ENHANCED:
        return _prov(job, p, source_type=provenance.ENHANCED, seed=seed)
    return _prov(job, p, source_type=provenance.ALGORITHMIC if made else "", seed=seed)


def _save_batch(ctx: JobContext, batch: LevelBatch, folder: Path, formats: list[str],
                tileset: str, tile: int, manifest: dict[str, Any], prov: Any) -> list[Path]:
    from dataclasses import replace

    from plugins.common.provenance import scrub

    written: list[Path] = []
    entries = []
    per_level = tuple(f for f in formats if f != "ldtk")  # LDtk: one project for the batch
    for i, lv in enumerate(batch.levels):
        ctx.check()
        rep = batch.report(i)
        seed = lv.meta.get("seed")
        written += files.save_set(lv, folder, lv.name, per_level, tile=tile,
                                  external_tileset=tileset == "external",
                                  path_cells=rep.path if rep is not None else None,
                                  prov=replace(prov, seed=seed if isinstance(seed, int)
                                               else prov.seed))
        entry: dict[str, Any] = {"name": lv.name, "meta": scrub({
            k: v for k, v in lv.meta.items() if isinstance(v, str | int | float | bool)})}
        if rep is not None:
            entry["check"] = rep.to_json()
        entries.append(entry)
        ctx.progress(i + 1, len(batch.levels), f"saved {lv.name}")
    if "ldtk" in formats:
        from plugins.common.provenance import stamp

        from .engine.ldtk import write_ldtk

        project = write_ldtk(batch.levels, folder / "levels.ldtk", tile=tile,
                             path_cells=[r.path if r is not None else None
                                         for r in (batch.report(i)
                                                   for i in range(len(batch.levels)))])
        stamp(project[0], replace(prov))
        written += project
    # shared with a game's team: files are named, never their folders
    atomic_write_json(folder / "levels.json", {**scrub(manifest), "levels": entries})
    written.append(folder / "levels.json")
    return written


def generate(ctx: JobContext, p: GenerateParams) -> LevelBatch:
    """Generate levels with a classic method (deterministic per seed), or regenerate a region
    of ``p.base``."""
    settings = p.settings()
    levels: list[Level] = []
    reports: list[LevelReport | None] = []
    for i in range(p.count):
        ctx.check()
        s = p.seed + i
        if p.base is not None:
            rect = p.region or (0, 0, p.base.width, p.base.height)
            lv = gen.regenerate(p.base, settings, rect, s, example=p.example, pins=p.pins,
                                check=ctx.check, warn=ctx.warn)
            lv.name = f"{p.base.name}-{settings.method}-{s}"
        else:
            lv = gen.make(settings, p.width, p.height, s, example=p.example, pins=p.pins,
                          check=ctx.check,
                          progress=(lambda d, t: ctx.progress(d, t, f"WFC {d}/{t} cells"))
                          if p.count == 1 else None)
        levels.append(lv)
        res = agents.check(lv) if p.check else None
        reports.append(LevelReport.of(lv, res) if res is not None else None)
        ctx.progress(i + 1, p.count, lv.name)
        if i == 0 or p.count <= 20:
            ctx.preview("level", lv, check=res)
    batch = LevelBatch(levels, reports)
    if not p.save:
        return batch
    folder = _out_folder(ctx, p.out, settings.method)
    from plugins.common import provenance

    kind = (provenance.COMPOSITE if p.base is not None else
            provenance.TRAINED if p.example is not None else provenance.ALGORITHMIC)
    batch.files = _save_batch(ctx, batch, folder, p.formats, p.tileset, p.tile,
                              {"job": "generate", "method": p.method, "seed": p.seed,
                               "params": provenance.params_json(p)},
                              _prov("generate", p, source_type=kind, seed=p.seed))
    batch.folder = folder
    if batch.checked:
        ok = sum(r.playable for r in batch.checked)
        ctx.log(f"{len(levels)} level(s) in {folder}; {ok} playable")
    return batch


def _calibrated(ctx: JobContext, p: CheckParams) -> Physics | None:
    """``--calibrate``: the smallest limits under which the game's real levels all pass."""
    if p.calibrate is None:
        return None
    real = files.load_folder(p.calibrate, p.legend, ctx.warn)
    ctx.log(f"calibrating on {len(real)} real level(s)")
    cal = physics.calibrate(real, p.mode, p.direction, ctx.check)
    if cal.unfinished:
        ctx.warn(f"{len(cal.unfinished)} of the real levels cannot be finished with any limits "
                 f"the checker tries, so the calibration leaves them out: "
                 f"{', '.join(cal.unfinished)}")
    return cal


def check(ctx: JobContext, p: CheckParams) -> CheckResult:
    """Check playability and measure levels; the command line prints the report as JSON
    (``--json``: "playable" is a JSON boolean, for scripts; without it, "yes" or "no").

    The agent judges with the game's physics (:func:`physics.resolve`): the limits set here,
    else a calibration on ``--calibrate``'s real levels, else the legend's, the game's profile or
    the defaults; the report says which."""
    levels = p.level
    if not levels:
        raise UserError("no level to check")
    cal = _calibrated(ctx, p)
    train = files.load_folder(p.data, p.legend, ctx.warn) if p.data else None
    train_hist = None
    if train:
        lg = levels[0].legend
        for t in train:
            lg = lg.merged(t.legend)
        train_hist = metrics.histogram(train, lg)
    reports = []
    for i, lv in enumerate(levels):
        ctx.check()
        ph = physics.resolve(lv.legend, [lv], direction=p.direction, jump=p.jump or 0,
                             run=p.run or 0, calibrated=cal)
        res = agents.check(lv, p.mode, ph)
        rep = LevelReport.of(lv, res)
        if train:
            rep.comparison = metrics.level_report(lv, train, train_hist)
        if p.repair and not res.playable:
            rep.repair = _repair_beside(lv, p, ph)
        reports.append(rep)
        ctx.progress(i + 1, len(levels), lv.name)
        if i == 0:
            ctx.preview("level", lv, check=res)
    result = CheckResult(levels, reports, booleans=p.json)
    if len(reports) > 1:
        result.summary = {
            "levels": len(reports),
            "playable_fraction": round(sum(r.playable for r in reports) / len(reports), 4),
            "diversity": round(metrics.diversity(levels), 5)}
        if train and train_hist is not None:
            lg = levels[0].legend
            for t in train:
                lg = lg.merged(t.legend)
            result.summary["tile_js"] = round(metrics.js_divergence(
                metrics.histogram(levels, lg), train_hist), 5)
            result.summary["novelty"] = round(float(sum(
                r.comparison.get("novelty", 0) for r in reports) / len(reports)), 5)
    return result


def _repair_beside(lv: Level, p: CheckParams, ph: Physics) -> dict[str, Any]:
    """``check --repair``: write a repaired copy to ``--out`` or beside the level's file."""
    from .engine import repair as repair_mod

    source = Path(str(lv.meta["source"])) if lv.meta.get("source") else None
    if p.out is None and source is None:
        return {"error": "this level has no file to write the repaired copy beside: pass --out"}
    try:
        fixed = repair_mod.repair(lv, p.mode, physics=ph)
    except UserError as exc:
        return {"error": str(exc)}
    folder = Path(p.out).expanduser() if p.out else source.parent  # type: ignore[union-attr]
    stem = f"{lv.name}-repaired" if p.out is None else lv.name
    fixed.level.name = stem
    written = files.save_set(fixed.level, folder, stem, ("tmj", "txt", "png"),
                             path_cells=fixed.check.path if fixed.check else None,
                             path_on_png=True,
                             prov=_level_prov("check", lv, p, "algorithmicallyEnhanced"))
    return {"changes": fixed.count,
            "playable_after": "yes" if (fixed.check and fixed.check.playable) else "no",
            "file": str(written[0]),
            "changed_tiles": [[x, y, a, b] for x, y, a, b in fixed.changes[:200]]}


def repair(ctx: JobContext, p: RepairParams) -> LevelBatch:
    """Make an unplayable level playable with the fewest tile changes."""
    from .engine import repair as repair_mod

    lv = p.level
    fixed = repair_mod.repair(lv, p.mode)
    ctx.log(f"{fixed.count} tile(s) changed; playable: "
            f"{'yes' if fixed.check and fixed.check.playable else 'no'}")
    ctx.preview("level", fixed.level, check=fixed.check)
    cells = fixed.check.path if fixed.check else None
    written: list[Path] = []
    if p.save and p.out is not None:
        out = Path(p.out).expanduser()
        prov = _level_prov("repair", lv, p, "algorithmicallyEnhanced")
        if out.suffix:
            written = files.save_as(fixed.level, out, path_cells=cells, prov=prov)
        else:
            written = files.save_set(fixed.level, out, lv.name, path_cells=cells, prov=prov)
    rep = LevelReport.of(fixed.level, fixed.check) if fixed.check else None
    if rep is not None:
        rep.changes = fixed.count
    return LevelBatch([fixed.level], [rep], files=written)


def export(ctx: JobContext, p: ExportParams) -> LevelBatch:
    """Convert a level to another format, chosen by the extension of ``--to``: .tmj or .tmx
    (Tiled JSON or XML), .ldtk (LDtk), .txt (VGLC), .png or .csv."""
    from .engine.render import TilesetImage

    lv = p.level
    tiles = None
    if p.tileset_image is not None:
        tiles = TilesetImage(Path(p.tileset_image).expanduser(), p.tile_width, p.tile_height,
                             p.margin, p.spacing).tiles_for(lv.legend)
    elif isinstance(lv.meta.get("tileset_image"), TilesetImage):
        tiles = lv.meta["tileset_image"].tiles_for(lv.legend)
    cells = agents.check(lv).path if p.path else None
    written = files.save_as(lv, p.to, tile=p.tile, external_tileset=p.tileset == "external",
                            tiles=tiles, path_cells=cells,
                            prov=_level_prov("export", lv, p, ""))
    return LevelBatch([lv], files=written)


def info(ctx: JobContext, p: InfoParams) -> LevelBatch:
    """Open a level and describe it (the editor opens files through this job)."""
    import json

    lv = p.level
    res = agents.check(lv)
    ctx.preview("level", lv, check=res)
    rep = LevelReport.of(lv, res)
    entry = rep.to_json()
    entry.update({"width": lv.width, "height": lv.height, "game": lv.legend.name,
                  "tiles": {c: list(t.props) for c, t in lv.legend.tiles.items()}})
    return LevelBatch([lv], [rep], summary=entry, text=json.dumps(entry, indent=2))


def train(ctx: JobContext, p: TrainParams) -> str:
    """Train a GAN or a VAE on level segments, with live loss and quality plots.

    Every level file is one example of the run's data; ``holdout`` keeps a fraction of them
    out of training (not cut into windows), and the samples' tile mix is compared with theirs.
    """
    from plugins.common.splits import held_out
    from studio import manifest

    from .engine import learned
    from .engine.level import levels_legend

    run_dir = ctx.run_dir
    if run_dir is None:
        raise UserError("train needs a run folder (--out RUN_DIR)")
    given = p.data or ctx.recorded_data()
    if given is None:
        raise UserError("this run does not say where its levels are: choose them (--data)")
    data = Path(given).expanduser().resolve()
    levels = files.load_folder(data, p.legend, ctx.warn)
    sources = [Path(str(lv.meta.get("source") or data)) for lv in levels]
    examples = manifest.file_examples(data, sources, check=ctx.check)
    held = held_out([e.id for e in examples], p.holdout, p.seed)
    legend = levels_legend(levels)  # every level's tiles: the same channels for any split
    train_levels = [lv for lv, e in zip(levels, examples, strict=True) if e.id not in held]
    held_levels = [lv for lv, e in zip(levels, examples, strict=True) if e.id in held]
    for lv in held_levels:
        lv.legend = legend
    segs = learned.make_segments(train_levels, p.height or None, p.width, legend=legend)
    used = {id(lv) for lv in segs.levels}
    skipped = [lv for lv in train_levels if id(lv) not in used]
    if skipped:
        ctx.warn(f"{len(skipped)} level(s) smaller than the {p.width}x{segs.shape[0]} window "
                 f"(width x height) are not trained on: {learned.sizes(skipped)}. "
                 f"{learned.window_advice(train_levels)}")
    recorded = [e for lv, e in zip(levels, examples, strict=True)
                if id(lv) in used or e.id in held]
    ctx.record_data(data.name, data, recorded, held_out=held, unit="level",
                    game=legend.name, windows=int(len(segs.windows)))
    ctx.log(f"{len(segs.levels)} levels, {len(segs.windows)} windows of "
            f"{segs.shape[1]}x{segs.shape[0]} tiles, {len(segs.legend)} tile types"
            + (f"; {len(held_levels)} level(s) held out" if held_levels else ""))
    try:
        learned.train(ctx, segs, p.config(), run_dir, resume=p.resume, device=ctx.device,
                      held_out=held_levels)
    finally:
        if (run_dir / learned.WEIGHTS).exists():
            ctx.add_artifact(run_dir, "model", model_kind="level-model", model=p.model,
                             weights=learned.WEIGHTS)
    return str(run_dir)


def sample(ctx: JobContext, p: SampleParams) -> LevelBatch:
    """Sample levels from a trained model: segments stitched along the game's direction."""
    from .engine import learned

    if (p.enemies is not None or p.gaps is not None) and not p.search:
        ctx.warn("--enemies/--gaps only steer the latent search: add --search")
    m = learned.LevelModel(p.model)
    targets = learned.Targets(p.enemies, p.gaps)
    levels: list[Level] = []
    reports: list[LevelReport | None] = []
    for i in range(p.n):
        ctx.check()
        lv = m.generate(1, p.seed * 100_003 + i, p.segments, p.search, targets, p.budget,
                        ctx.check)[0]
        lv.name = f"{m.cfg.model}-{p.seed}-{i:03d}"
        lv.meta.update({"seed": p.seed, "index": i})
        res = agents.check(lv, physics=m.physics)
        levels.append(lv)
        reports.append(LevelReport.of(lv, res))
        ctx.progress(i + 1, p.n, lv.name)
        ctx.preview("level", lv, check=res)
    batch = LevelBatch(levels, reports)
    ok = sum(r.playable for r in batch.checked)
    batch.summary = {"playable_fraction": ok / len(levels),
                     "diversity": metrics.diversity(levels)}
    ctx.log(f"{ok} of {len(levels)} levels playable")
    if not p.save:
        return batch
    folder = _out_folder(ctx, p.out, f"{m.cfg.model}-samples")
    batch.files = _save_batch(ctx, batch, folder, p.formats, p.tileset, p.tile,
                              {"job": "sample", "model": Path(p.model).name, "seed": p.seed,
                               "search": p.search,
                               "targets": {"enemies": p.enemies, "gaps": p.gaps}},
                              _prov("sample", p, source_type="trainedAlgorithmicMedia",
                                    model=Path(p.model), seed=p.seed))
    batch.folder = folder
    return batch
