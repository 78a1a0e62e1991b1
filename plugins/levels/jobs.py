"""Jobs of the levels plugin: thin glue from a job context to the engine.

The same functions run from the editor panel, from ``studio run levels ...`` and from the tests.
torch is imported only by ``train`` and ``sample``; generating and checking never load it.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Literal

from studio.errors import UserError
from studio.jobs import JobContext
from studio.storage import atomic_write_json

from .engine import agents, files, metrics
from .engine import generate as gen
from .engine.batch import LevelBatch
from .engine.level import Level

Method = Literal["wfc", "dungeon", "caves", "terrain", "lsystem"]
Mode = Literal["auto", "platformer", "ladder", "topdown"]


def _out_folder(ctx: JobContext, out: Path | None, what: str) -> Path:
    if out is not None:
        return Path(out).expanduser()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return ctx.workspace / "levels" / f"{stamp}-{what}"


def _formats(formats: list[str] | None) -> tuple[str, ...]:
    fmts = tuple(f.strip().lower().lstrip(".") for f in (formats or ["tmj", "txt", "png"]))
    bad = [f for f in fmts if f not in files.FORMATS]
    if bad:
        raise UserError(f"--formats: unknown {bad[0]!r} (choose from {', '.join(files.FORMATS)})")
    return fmts


def _check_entry(level: Level, res: agents.Check) -> dict[str, Any]:
    return {"level": level.name, "playable": "yes" if res.playable else "no",
            **{k: v for k, v in res.to_json().items() if k not in ("playable", "edits")},
            "features": metrics.features(level)}


def _save_batch(ctx: JobContext, levels: list[Level], checks: list[agents.Check | None],
                folder: Path, fmts: tuple[str, ...], tileset: str, tile: int,
                manifest: dict[str, Any]) -> list[Path]:
    written: list[Path] = []
    entries = []
    for i, lv in enumerate(levels):
        ctx.check()
        res = checks[i] if i < len(checks) else None
        written += files.save_set(lv, folder, lv.name, fmts, tile=tile,
                                  external_tileset=tileset == "external",
                                  path_cells=res.path if res is not None else None)
        entry = {"name": lv.name, "meta": {k: v for k, v in lv.meta.items()
                                           if isinstance(v, str | int | float | bool)}}
        if res is not None:
            entry["check"] = _check_entry(lv, res)
        entries.append(entry)
        ctx.progress(i + 1, len(levels), f"saved {lv.name}")
    atomic_write_json(folder / "levels.json", {**manifest, "levels": entries})
    written.append(folder / "levels.json")
    return written


def generate(ctx: JobContext, method: Method = "wfc", example: Path | None = None,
             width: int = 0, height: int = 0, seed: int = 0, out: Path | None = None,
             count: int = 1, legend: Path | None = None, pattern: int = 3,
             symmetry: Literal[1, 2, 8] = 1,
             anchor: Literal["auto", "rows", "edges", "none"] = "auto",
             scale: float = 24.0, octaves: int = 4, sea_level: float = 0.35,
             island: bool = True, fill: float = 0.45, steps: int = 5, min_room: int = 4,
             max_room: int = 12, depth: int = 5,
             preset: Literal["trails", "plants"] = "trails", iterations: int = 0,
             base: Path | None = None, region: str | None = None, pins: str | None = None,
             formats: list[str] | None = None,
             tileset: Literal["embedded", "external"] = "embedded", tile: int = 16,
             check: bool = True, save: bool = True) -> LevelBatch:
    """Generate levels with a classic method (deterministic per seed).

    Args:
        method: wfc (learns from --example), dungeon (BSP rooms), caves (cellular automata),
            terrain (noise heightmap with biomes) or lsystem (trails or plants)
        example: the example map WFC learns its patterns from (VGLC .txt or Tiled .tmj)
        width: map width in tiles (0: the example's width, or the method's default)
        height: map height in tiles (0: the example's height, or the method's default)
        seed: random seed; the same seed and settings give the same level
        out: folder for the .tmj, .txt and .png files (default: a new folder in the workspace)
        count: how many levels, with seeds seed, seed+1, ...
        legend: legend JSON for a VGLC example that has none beside it
        pattern: WFC pattern size N (N x N windows)
        symmetry: WFC pattern variants: 1 (as is), 2 (mirrored too), 8 (rotations, top-down)
        anchor: WFC row anchoring; auto keeps ground at the bottom for side-view examples
        scale: terrain feature size in tiles
        octaves: terrain noise octaves
        sea_level: terrain elevation below which is water (0-1)
        island: terrain falls off to water at the map edges
        fill: caves initial rock fraction
        steps: caves smoothing steps
        min_room: dungeon smallest room side
        max_room: dungeon largest room side
        depth: dungeon BSP split depth
        preset: lsystem preset: trails (top-down paths) or plants (side-view vegetation)
        iterations: lsystem rewriting iterations (0: the preset's)
        base: regenerate a region of this level instead of making a new one
        region: the region of --base to regenerate, x0,y0,x1,y1 (x1, y1 exclusive)
        pins: tiles that must appear: x,y,C;x,y,C or a JSON file {"pins": [[x, y, "C"]]}
        formats: files to write, comma separated: tmj, txt, png, csv
        tileset: Tiled tileset embedded in the .tmj or external (.tsj beside it)
        tile: tile size in pixels for the PNG and the Tiled tileset
        check: run the playability agent on each level (the path goes into the .tmj)
        save: write files (the editor previews without saving)
    """
    if count < 1 or count > 10_000:
        raise UserError("--count must be between 1 and 10000")
    if width < 0 or height < 0:
        raise UserError("width and height must be positive (or 0 for the default)")
    warn = ctx.warn
    ex_level = files.load_level(example, legend, warn) if example else None
    base_level = files.load_level(base, legend, warn) if base else None
    rect = gen.parse_region(region)
    if rect is not None and base_level is None:
        raise UserError("--region needs --base: the level whose region to regenerate")
    pin_map = gen.parse_pins(pins)
    params: dict[str, Any] = {
        "pattern": pattern, "symmetry": symmetry, "anchor": anchor, "scale": scale,
        "octaves": octaves, "sea_level": sea_level, "island": island, "fill": fill,
        "steps": steps, "min_room": min_room, "max_room": max_room, "depth": depth,
        "preset": preset, "iterations": iterations or None,
    }
    levels: list[Level] = []
    results: list[agents.Check | None] = []
    for i in range(count):
        ctx.check()
        s = seed + i
        if base_level is not None:
            lv = gen.regenerate(base_level, method, rect or (0, 0, base_level.width,
                                                             base_level.height),
                                s, example=ex_level, params=params, pins=pin_map,
                                check=ctx.check, warn=warn)
            lv.name = f"{base_level.name}-{method}-{s}"
        else:
            lv = gen.make(method, width, height, s, example=ex_level, params=params,
                          pins=pin_map, check=ctx.check,
                          progress=(lambda d, t: ctx.progress(d, t, f"WFC {d}/{t} cells"))
                          if count == 1 else None)
        levels.append(lv)
        results.append(agents.check(lv) if check else None)
        ctx.progress(i + 1, count, f"{lv.name}")
        if i == 0 or count <= 20:
            ctx.preview("level", lv, check=results[-1])
    batch = LevelBatch(levels, checks=[_check_entry(lv, r) for lv, r in zip(levels, results,
                                                                          strict=True) if r],
                       results=results)
    if not save:
        return batch
    folder = _out_folder(ctx, out, method)
    batch.files = _save_batch(ctx, levels, results, folder, _formats(formats), tileset, tile,
                              {"job": "generate", "method": method, "seed": seed,
                               "params": params})
    batch.folder = folder
    if batch.checks:
        ok = sum(c["playable"] == "yes" for c in batch.checks)
        ctx.log(f"{len(levels)} level(s) in {folder}; {ok} playable")
    return batch


def check(ctx: JobContext, level: Path, legend: Path | None = None, mode: Mode = "auto",
          data: Path | None = None, jump: int = 4, repair: bool = False,
          out: Path | None = None) -> str:
    """Check playability and measure a level (or every level in a folder); prints JSON.

    Args:
        level: a level file (VGLC .txt or Tiled .tmj), or a folder of them
        legend: the legend JSON (default: found beside a .txt level, stored in a .tmj)
        mode: which agent: platformer (A* with jumps), ladder (Lode Runner), topdown (flood
            fill), or auto (from the legend)
        data: training levels (file or folder) to measure tile-distribution distance and
            novelty against
        jump: platformer jump height in tiles
        repair: also repair unplayable levels with the fewest tile changes
        out: with --repair, where repaired levels go (a folder; default beside the input)
    """
    level = Path(level).expanduser()
    paths = files.vglc.level_files(level) if level.is_dir() else [level]
    levels = [files.load_level(p, legend, ctx.warn) for p in paths]
    train = files.load_folder(data, legend, ctx.warn) if data else None
    train_hist = None
    if train:
        lg = levels[0].legend
        for t in train:
            lg = lg.merged(t.legend)
        train_hist = metrics.histogram(train, lg)
    entries = []
    for i, lv in enumerate(levels):
        ctx.check()
        if mode == "platformer" or (mode == "auto" and lv.legend.guess_view() == "platformer"):
            res = agents.platformer(lv, jump=jump)
        else:
            res = agents.check(lv, mode)
        entry = _check_entry(lv, res)
        if train:
            entry.update(metrics.level_report(lv, train, train_hist))
        if repair and not res.playable:
            from .engine import repair as repair_mod

            try:
                fixed = repair_mod.repair(lv, mode)
                folder = Path(out).expanduser() if out else paths[i].parent
                if folder.resolve() == paths[i].parent.resolve() and not out:
                    stem = f"{lv.name}-repaired"
                else:
                    stem = lv.name
                fixed.level.name = stem
                written = files.save_set(fixed.level, folder, stem, ("tmj", "txt", "png"),
                                         path_cells=fixed.check.path if fixed.check else None,
                                         path_on_png=True)
                entry["repair"] = {"changes": fixed.count, "playable_after": "yes" if (
                    fixed.check and fixed.check.playable) else "no",
                    "file": str(written[0]),
                    "changed_tiles": [[x, y, a, b] for x, y, a, b in fixed.changes[:200]]}
            except UserError as exc:
                entry["repair"] = {"error": str(exc)}
        entries.append(entry)
        ctx.progress(i + 1, len(levels), lv.name)
        if i == 0:
            ctx.preview("level", lv, check=res)
    if len(entries) == 1:
        return json.dumps(entries[0], indent=2)
    summary: dict[str, Any] = {
        "levels": len(entries),
        "playable_fraction": round(sum(e["playable"] == "yes" for e in entries)
                                   / len(entries), 4),
        "diversity": round(metrics.diversity(levels), 5),
    }
    if train and train_hist is not None:
        lg = levels[0].legend
        for t in train:
            lg = lg.merged(t.legend)
        summary["tile_js"] = round(metrics.js_divergence(metrics.histogram(levels, lg),
                                                         train_hist), 5)
        summary["novelty"] = round(float(sum(e.get("novelty", 0) for e in entries)
                                         / len(entries)), 5)
    return json.dumps({"summary": summary, "levels": entries}, indent=2)


def repair(ctx: JobContext, level: Path, out: Path, legend: Path | None = None,
           mode: Mode = "auto") -> LevelBatch:
    """Make an unplayable level playable with the fewest tile changes.

    Args:
        level: the level file (VGLC .txt or Tiled .tmj)
        out: the repaired level's file (.tmj, .txt, .png or .csv) or a folder
        legend: the legend JSON (default: found beside the level)
        mode: agent to satisfy (auto: from the legend)
    """
    from .engine import repair as repair_mod

    lv = files.load_level(level, legend, ctx.warn)
    fixed = repair_mod.repair(lv, mode)
    ctx.log(f"{fixed.count} tile(s) changed; playable: "
            f"{'yes' if fixed.check and fixed.check.playable else 'no'}")
    ctx.preview("level", fixed.level, check=fixed.check)
    out = Path(out).expanduser()
    cells = fixed.check.path if fixed.check else None
    if out.suffix:
        written = files.save_as(fixed.level, out, path_cells=cells)
    else:
        written = files.save_set(fixed.level, out, lv.name, path_cells=cells)
    entry = _check_entry(fixed.level, fixed.check) if fixed.check else {}
    entry["changes"] = fixed.count
    return LevelBatch([fixed.level], None, written, [entry], results=[fixed.check])


def export(ctx: JobContext, level: Path, to: Path, legend: Path | None = None,
           tileset: Literal["embedded", "external"] = "embedded", tile: int = 16,
           tileset_image: Path | None = None, tile_width: int = 16, tile_height: int = 16,
           margin: int = 0, spacing: int = 0, path: bool = False) -> LevelBatch:
    """Convert a level to another format: .tmj (Tiled), .txt (VGLC), .png or .csv.

    Args:
        level: the level file (VGLC .txt or Tiled .tmj)
        to: the file to write; its extension picks the format
        legend: the legend JSON (default: found beside the level)
        tileset: Tiled tileset embedded in the map or external (.tsj)
        tile: tile size in pixels of the generated colour tileset
        tileset_image: draw with tiles cut from this image (legend order) instead of colours
        tile_width: width of one tile in --tileset-image
        tile_height: height of one tile in --tileset-image
        margin: pixels around the tiles in --tileset-image
        spacing: pixels between tiles in --tileset-image
        path: draw (PNG) or store (Tiled) the playability agent's path
    """
    from .engine.render import TilesetImage

    lv = files.load_level(level, legend, ctx.warn)
    tiles = None
    if tileset_image is not None:
        tiles = TilesetImage(Path(tileset_image).expanduser(), tile_width, tile_height, margin,
                             spacing).tiles_for(lv.legend)
    elif isinstance(lv.meta.get("tileset_image"), TilesetImage):
        tiles = lv.meta["tileset_image"].tiles_for(lv.legend)
    cells = agents.check(lv).path if path else None
    written = files.save_as(lv, to, tile=tile, external_tileset=tileset == "external",
                            tiles=tiles, path_cells=cells)
    return LevelBatch([lv], None, written)


def info(ctx: JobContext, level: Path, legend: Path | None = None) -> LevelBatch:
    """Open a level and describe it (the editor opens files through this job).

    Args:
        level: the level file (VGLC .txt or Tiled .tmj)
        legend: the legend JSON (default: found beside the level, or stored in the .tmj)
    """
    lv = files.load_level(level, legend, ctx.warn)
    res = agents.check(lv)
    ctx.preview("level", lv, check=res)
    entry = _check_entry(lv, res)
    entry.update({"width": lv.width, "height": lv.height, "game": lv.legend.name,
                  "tiles": {c: list(t.props) for c, t in lv.legend.tiles.items()}})
    return LevelBatch([lv], None, [], [entry], summary=entry, results=[res],
                      text=json.dumps(entry, indent=2))


def train(ctx: JobContext, data: Path, model: Literal["gan", "vae"] = "gan", steps: int = 3000,
          legend: Path | None = None, batch: int = 64, width: int = 28, height: int = 0,
          latent: int = 32, base: int = 16, lr: float = 2e-4, beta: float = 1.0, seed: int = 0,
          resume: bool = False) -> str:
    """Train a GAN or a VAE on level segments, with live loss and quality plots.

    Args:
        data: folder of training levels (VGLC .txt with their legend, or Tiled .tmj), or one
            level file
        model: gan (MarioGAN-style DCGAN) or vae
        steps: training steps (one critic and one generator update each)
        legend: legend JSON when the data folder has none
        batch: windows per step
        width: segment width in tiles
        height: segment height in tiles (0: the levels' height)
        latent: latent dimensions
        base: channel width of the networks (bigger learns more, slower)
        lr: learning rate
        beta: VAE weight of the KL term
        seed: random seed (weights, batches)
        resume: continue the run in --out from its last checkpoint
    """
    from .engine import learned

    if steps < 1:
        raise UserError("--steps must be at least 1")
    if batch < 2:
        raise UserError("--batch must be at least 2")
    run_dir = ctx.run_dir
    if run_dir is None:
        raise UserError("train needs a run folder (--out RUN_DIR)")
    levels = files.load_folder(data, legend, ctx.warn)
    segs = learned.make_segments(levels, height or None, width)
    ctx.add_dataset(data, levels=len(segs.levels), windows=int(len(segs.windows)),
                    game=segs.legend.name)
    ctx.log(f"{len(segs.levels)} levels, {len(segs.windows)} windows of "
            f"{segs.shape[1]}x{segs.shape[0]} tiles, {len(segs.legend)} tile types")
    cfg = learned.TrainConfig(model=model, steps=steps, batch=batch, lr=lr, latent=latent,
                              width=width, height=height, base=base, beta=beta, seed=seed)
    learned.train(ctx, segs, cfg, run_dir, resume=resume, device=ctx.device,
                  on_resume=ctx.truncate_metrics)
    return str(run_dir)


def sample(ctx: JobContext, model: Path, n: int = 20, seed: int = 0, out: Path | None = None,
           segments: int = 4, search: bool = False, enemies: float | None = None,
           gaps: float | None = None, budget: int = 240, formats: list[str] | None = None,
           tileset: Literal["embedded", "external"] = "embedded", tile: int = 16,
           save: bool = True) -> LevelBatch:
    """Sample levels from a trained model: segments stitched left to right.

    Args:
        model: the run folder a train job wrote
        n: how many levels
        seed: random seed
        out: folder for the .tmj, .txt and .png files (default: a new workspace folder)
        segments: segments per level (each as wide as the training window)
        search: search the latent space (CMA-ES) for playable segments matching the targets
        enemies: with --search, aim for this many enemies per segment
        gaps: with --search, aim for this many gaps per segment
        budget: with --search, most segments evaluated per segment
        formats: files to write, comma separated: tmj, txt, png, csv
        tileset: Tiled tileset embedded or external
        tile: tile size in pixels
        save: write files
    """
    from .engine import learned

    if n < 1 or segments < 1:
        raise UserError("--n and --segments must be at least 1")
    if (enemies is not None or gaps is not None) and not search:
        ctx.warn("--enemies/--gaps only steer the latent search: add --search")
    m = learned.LevelModel(model)
    targets = learned.Targets(enemies, gaps)
    levels: list[Level] = []
    results: list[agents.Check | None] = []
    for i in range(n):
        ctx.check()
        lv = m.generate(1, seed * 100_003 + i, segments, search, targets, budget, ctx.check)[0]
        lv.name = f"{m.cfg.model}-{seed}-{i:03d}"
        lv.meta.update({"seed": seed, "index": i})
        levels.append(lv)
        results.append(agents.check(lv))
        ctx.progress(i + 1, n, lv.name)
        ctx.preview("level", lv, check=results[-1])
    batch = LevelBatch(levels, checks=[_check_entry(lv, r) for lv, r in zip(levels, results,
                                                                          strict=True) if r],
                       results=results)
    ok = sum(c["playable"] == "yes" for c in batch.checks)
    batch.summary = {"playable_fraction": ok / len(levels),
                     "diversity": metrics.diversity(levels)}
    ctx.log(f"{ok} of {len(levels)} levels playable")
    if not save:
        return batch
    folder = _out_folder(ctx, out, f"{m.cfg.model}-samples")
    batch.files = _save_batch(ctx, levels, results, folder, _formats(formats), tileset, tile,
                              {"job": "sample", "model": str(model), "seed": seed,
                               "search": search, "targets": {"enemies": enemies,
                                                             "gaps": gaps}})
    batch.folder = folder
    return batch
