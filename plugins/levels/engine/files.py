"""Opening and saving levels in every format the plugin speaks.

Read: VGLC text (``.txt``, legend beside it or given) and Tiled maps (JSON ``.tmj``/``.json``,
XML ``.tmx``).
Write: a level "set" -- ``NAME.tmj`` (+ ``NAME_tiles.png`` sheet, + ``NAME.tsj`` when the
tileset is external), ``NAME.tmx`` (the same map as Tiled XML, + ``NAME.tsx``), ``NAME.txt``
(VGLC) with the legend JSON beside it, ``NAME.png`` (with the generation parameters in PNG text
chunks), and on request ``NAME.csv`` (legend indices) and ``NAME.ldtk`` (an LDtk project).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from plugins.common.provenance import Provenance
from studio.errors import UserError
from studio.storage import atomic_write_text

from . import render, tiled, vglc
from .level import Legend, Level

FORMATS = ("tmj", "tmx", "txt", "png", "csv", "ldtk")


def is_tiled(path: Path) -> bool:
    if path.suffix.lower() in (".tmj", ".tmx"):
        return True
    if path.suffix.lower() == ".json":
        try:
            head = path.read_text(encoding="utf-8-sig")[:4096]
        except (OSError, UnicodeDecodeError):
            return False
        return '"layers"' in head or '"tilesets"' in head
    return False


def load_level(path: str | Path, legend: Legend | str | Path | None = None,
               warn: Callable[[str], None] | None = None, strict: bool = True) -> Level:
    """A level from a VGLC text file or a Tiled map (JSON or XML)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"level file {path} does not exist")
    if is_tiled(path):
        lg = legend if isinstance(legend, Legend) else (vglc.read_legend(legend) if legend
                                                        else None)
        return tiled.read_tmj(path, lg, warn)
    return vglc.read_level(path, legend, strict)


def load_folder(folder: str | Path, legend: Legend | str | Path | None = None,
                warn: Callable[[str], None] | None = None) -> list[Level]:
    """Every level in a folder (or the one file given). Files that fail are reported through
    ``warn`` and skipped; no readable level at all is an error."""
    files = vglc.level_files(folder)
    if isinstance(legend, str | Path) and legend:
        legend = vglc.read_legend(legend)
    levels: list[Level] = []
    problems: list[str] = []
    for f in files:
        try:
            levels.append(load_level(f, legend, warn))
        except UserError as exc:
            problems.append(f"{f.name}: {exc}")
    for p in problems[:20]:
        if warn:
            warn(f"skipped {p}")
    if not levels:
        detail = "; ".join(problems[:3])
        raise UserError(f"no readable level in {folder}" + (f" ({detail})" if detail else ""))
    return levels


def png_text(level: Level) -> dict[str, str]:
    from plugins.common.provenance import scrub

    # the files a level was read from or learnt from are named, never their folders
    meta = scrub({k: v for k, v in level.meta.items() if isinstance(v, str | int | float | bool)})
    return {"levels:meta": json.dumps(meta), "levels:legend": json.dumps(level.legend.to_json())}


def save_png(level: Level, path: Path, tile: int = 16, tiles: np.ndarray | None = None,
             path_cells: list[tuple[int, int]] | None = None) -> Path:
    from plugins.common.pngmeta import save_png as _save

    img = render.render(level, tile, tiles)
    if path_cells:
        th, tw = img.shape[0] // level.height, img.shape[1] // level.width
        render.draw_path(img, path_cells, tw, th)
    return _save(img, path, png_text(level))


def save_csv(level: Level, path: Path) -> Path:
    idx = level.indices()
    text = "\n".join(",".join(str(int(v)) for v in row) for row in idx) + "\n"
    return atomic_write_text(path, text)


def save_set(level: Level, folder: str | Path, stem: str | None = None,
             formats: tuple[str, ...] = ("tmj", "txt", "png"), *, tile: int = 16,
             external_tileset: bool = False, tiles: np.ndarray | None = None,
             path_cells: list[tuple[int, int]] | None = None, path_on_png: bool = False,
             prov: Provenance | None = None) -> list[Path]:
    """Write ``level`` in ``formats`` into ``folder``; returns the files written.

    ``path_cells`` (the agent's path) is stored in the Tiled map as a polyline object layer, and
    drawn on the PNG only with ``path_on_png`` (a level picture stays clean by default). With
    ``prov`` the level's own files (not tile sheets or legends) carry that provenance."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file: --out names a folder for the generated levels")
    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or level.name or "level"
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UserError(f"unknown format {bad[0]!r} (choose from {', '.join(FORMATS)})")
    out: list[Path] = []
    if "tmj" in formats:
        out += tiled.write_tmj(level, folder / f"{stem}.tmj", tile=tile,
                               external_tileset=external_tileset, tiles=tiles,
                               path_cells=path_cells)
    if "tmx" in formats:
        out += tiled.write_tmx(level, folder / f"{stem}.tmx", tile=tile,
                               external_tileset=external_tileset, tiles=tiles,
                               path_cells=path_cells)
    if "ldtk" in formats:
        from .ldtk import write_ldtk

        out += write_ldtk([level], folder / f"{stem}.ldtk", tile=tile, tiles=tiles,
                          path_cells=[path_cells])
    if "txt" in formats:
        legend_file = folder / legend_name(level.legend)
        out.append(vglc.write_level(level, folder / f"{stem}.txt", legend_file))
        out.append(legend_file)
    if "png" in formats:
        out.append(save_png(level, folder / f"{stem}.png", tile, tiles,
                            path_cells if path_on_png else None))
    if "csv" in formats:
        out.append(save_csv(level, folder / f"{stem}.csv"))
    if prov is not None:
        from plugins.common.provenance import stamp_all

        stamp_all([p for p in out if p.stem == stem and p.parent == folder], prov)
    return out


def legend_name(legend: Legend) -> str:
    slug = "".join(ch if ch.isalnum() else "_" for ch in (legend.name or "legend").lower())
    return f"{slug.strip('_') or 'legend'}.json"


def save_as(level: Level, path: str | Path, **kw: Any) -> list[Path]:
    """Export to one file, the format chosen by its extension (.tmj, .tmx, .ldtk, .txt, .png,
    .csv)."""
    path = Path(path).expanduser()
    ext = path.suffix.lower().lstrip(".")
    if ext == "json":
        ext = "tmj"
    if ext not in FORMATS:
        raise UserError(f"cannot export to .{ext}: choose .tmj, .tmx, .ldtk, .txt, .png or "
                        ".csv")
    if ext == "png" and kw.get("path_cells"):
        kw["path_on_png"] = True
    return save_set(level, path.parent, path.stem, (ext,), **kw)


# ----------------------------------------------------------------------------------------------
# Codecs: how a level travels on the command line (the window passes the Level itself)
# ----------------------------------------------------------------------------------------------
def _legend_of(params: Any) -> Path | None:
    legend = getattr(params, "legend", None)
    return Path(legend) if isinstance(legend, str | Path) and str(legend) else None


def read_level_file(path: Path, params: Any = None,
                    warn: Callable[[str], None] | None = None) -> Level:
    """A job's level field given as a file (VGLC .txt or Tiled .tmj/.tmx); the job's ``--legend``,
    when it has one, names the legend of a VGLC file."""
    return load_level(path, _legend_of(params), warn)


def read_level_files(path: Path, params: Any = None,
                     warn: Callable[[str], None] | None = None) -> list[Level]:
    """A job's levels field given as one file or a folder of them (every file must read)."""
    legend = _legend_of(params)
    return [load_level(p, legend, warn) for p in vglc.level_files(path)]


def describe_level(level: Level) -> dict[str, Any]:
    """What a run manifest or the ``levels.json`` beside exported levels says about a level
    (not its tiles). The file it came from is named, never its folder: these files are shared
    with a game's team, and a path carries the user's name."""
    out: dict[str, Any] = {"level": level.name, "size": f"{level.width}x{level.height}",
                           "game": level.legend.name}
    if level.meta.get("source"):
        out["source"] = Path(str(level.meta["source"])).name
    return out


def describe_levels(levels: list[Level]) -> dict[str, Any]:
    return {"levels": [describe_level(lv) for lv in levels[:20]], "count": len(levels)}
