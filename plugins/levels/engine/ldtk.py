"""LDtk projects (.ldtk): every level of a batch as one level of an LDtk project.

LDtk (https://ldtk.io) keeps a whole game's levels in one JSON project. Each level here has three
layers, top-most first as LDtk orders them: ``Entities`` (the player start, the exit and every
enemy, from :func:`.tiled.things`, the same objects as the Tiled export), ``Collisions`` (an
IntGrid: 1 solid, 2 one-way, 3 hazard, from the same rules as the Tiled collision layer) and
``Tiles`` (the level drawn with the tile sheet written beside the project). Each tile of the
tileset carries its VGLC character and legend properties as LDtk custom tile data, so the
project says what every tile is.

Every key LDtk's JSON schema (1.5) marks required for the project, its levels, layer instances,
entity instances and definitions is written. Identifiers follow LDtk's rules (a letter or ``_``
then letters, digits, ``_``). ``iid``s are UUIDs derived from the level's name, so exporting the
same levels twice gives the same project.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import UserError
from studio.storage import atomic_path, atomic_write_json

from .level import Level, levels_legend
from .render import colour_tiles, tileset_sheet
from .tiled import COLLISION_KINDS, kind_mask, things

JSON_VERSION = "1.5.3"
_NS = uuid.UUID("6f1d7d0e-4c5b-4a53-9a0e-0c8e2b6f5a11")  # the studio's LDtk iids
_UID_ENTITIES, _UID_COLLISIONS, _UID_TILES, _UID_TILESET = 1, 2, 3, 4
_ENTITIES = (("start", "PlayerStart", "#38BD55", 5), ("exit", "Exit", "#FB41DA", 6),
             ("enemy", "Enemy", "#E03C31", 7))
_INTGRID = (("solid", "#4C4455"), ("oneway", "#98622C"), ("hazard", "#E05A1F"))
_LEVEL_UID0 = 100


def identifier(name: str, fallback: str = "Level") -> str:
    """``name`` as an LDtk identifier: letters, digits and ``_``, not starting with a digit."""
    out = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    if not out:
        out = fallback
    return f"_{out}" if out[0].isdigit() else out


def _iid(*parts: Any) -> str:
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


def _layer_def(uid: int, ident: str, kind: str, grid: int, **extra: Any) -> dict[str, Any]:
    return {"__type": kind, "type": kind, "identifier": ident, "uid": uid, "gridSize": grid,
            "guideGridWid": 0, "guideGridHei": 0, "displayOpacity": 1, "inactiveOpacity": 1,
            "hideInList": False, "hideFieldsWhenInactive": False, "canSelectWhenInactive": True,
            "renderInWorldView": True, "pxOffsetX": 0, "pxOffsetY": 0, "parallaxFactorX": 0,
            "parallaxFactorY": 0, "parallaxScaling": True, "requiredTags": [],
            "excludedTags": [], "intGridValues": [], "intGridValuesGroups": [],
            "autoRuleGroups": [], "autoSourceLayerDefUid": None, "tilesetDefUid": None,
            "tilePivotX": 0, "tilePivotY": 0, **extra}


def _layer(level_uid: int, level_iid: str, ident: str, kind: str, uid: int, w: int, h: int,
           grid: int, **extra: Any) -> dict[str, Any]:
    return {"__identifier": ident, "__type": kind, "__cWid": w, "__cHei": h,
            "__gridSize": grid, "__opacity": 1, "__pxTotalOffsetX": 0, "__pxTotalOffsetY": 0,
            "__tilesetDefUid": None, "__tilesetRelPath": None, "iid": _iid(level_iid, ident),
            "levelId": level_uid, "layerDefUid": uid, "pxOffsetX": 0, "pxOffsetY": 0,
            "visible": True, "optionalRules": [], "intGridCsv": [], "autoLayerTiles": [],
            "seed": 0, "overrideTilesetUid": None, "gridTiles": [], "entityInstances": [],
            **extra}


def project(levels: list[Level], sheet_name: str, sheet_size: tuple[int, int], tile: int,
            columns: int, path_cells: list[list[tuple[int, int]] | None] | None = None,
            gap: int = 4) -> dict[str, Any]:
    """The LDtk project of ``levels`` (placed side by side, ``gap`` tiles apart), drawn with
    the tile sheet ``sheet_name`` (legend order, ``columns`` tiles a row)."""
    legend = levels_legend(levels)
    sheet_w, sheet_h = sheet_size
    tileset = {
        "__cWid": columns, "__cHei": -(-len(legend) // columns),
        "identifier": identifier(legend.name, "Tileset"),
        "uid": _UID_TILESET, "relPath": sheet_name, "embedAtlas": None, "pxWid": sheet_w,
        "pxHei": sheet_h, "tileGridSize": tile, "spacing": 0, "padding": 0, "tags": [],
        "tagsSourceEnumUid": None, "enumTags": [], "cachedPixelData": None,
        "savedSelections": [],
        "customData": [{"tileId": i, "data": json.dumps({"char": c, "props": list(t.props)})}
                       for i, (c, t) in enumerate(legend.tiles.items())]}
    entity_defs = [{
        "identifier": ident, "uid": uid, "tags": [], "exportToToc": False, "allowOutOfBounds":
        False, "doc": None, "width": tile, "height": tile, "resizableX": False,
        "resizableY": False, "minWidth": None, "maxWidth": None, "minHeight": None,
        "maxHeight": None, "keepAspectRatio": False, "tileOpacity": 1, "fillOpacity": 0.5,
        "lineOpacity": 1, "hollow": False, "color": color, "renderMode": "Rectangle",
        "showName": True, "tilesetId": None, "tileRenderMode": "FitInside", "tileRect": None,
        "uiTileRect": None, "nineSliceBorders": [], "maxCount": 0, "limitScope": "PerLevel",
        "limitBehavior": "MoveLastOne", "pivotX": 0, "pivotY": 0, "fieldDefs": []}
        for _kind, ident, color, uid in _ENTITIES]
    layer_defs = [
        _layer_def(_UID_ENTITIES, "Entities", "Entities", tile),
        _layer_def(_UID_COLLISIONS, "Collisions", "IntGrid", tile, intGridValues=[
            {"value": i + 1, "identifier": name, "color": color, "tile": None, "groupUid": 0}
            for i, (name, color) in enumerate(_INTGRID)]),
        _layer_def(_UID_TILES, "Tiles", "Tiles", tile, tilesetDefUid=_UID_TILESET)]
    index = legend.index_lut()
    out_levels, x0, used_iids = [], 0, set()
    for n, lv in enumerate(levels):
        uid = _LEVEL_UID0 + n
        ident = identifier(lv.name or f"Level_{n}", f"Level_{n}")
        while ident in used_iids:
            ident += "_"
        used_iids.add(ident)
        liid = _iid(ident, n)
        w, h = lv.width, lv.height
        idx = index[lv.grid]
        tiles = [{"px": [int(x) * tile, int(y) * tile],
                  "src": [int(i % columns) * tile, int(i // columns) * tile],
                  "f": 0, "t": int(i), "d": [int(y) * w + int(x)], "a": 1}
                 for (y, x), i in np.ndenumerate(idx)]
        grid = np.zeros((h, w), dtype=np.int64)
        for v, (_name, which) in enumerate(COLLISION_KINDS, start=1):
            grid[(grid == 0) & kind_mask(lv, which)] = v
        cells = path_cells[n] if path_cells and n < len(path_cells) else None
        entities = []
        for k, (kind, _name, x, y, _char) in enumerate(things(lv, cells)):
            _, eident, color, euid = next(e for e in _ENTITIES if e[0] == kind)
            entities.append({
                "__identifier": eident, "__grid": [x, y], "__pivot": [0, 0], "__tags": [],
                "__tile": None, "__smartColor": color, "__worldX": x0 + x * tile,
                "__worldY": y * tile, "iid": _iid(liid, "entity", k), "width": tile,
                "height": tile, "defUid": euid, "px": [x * tile, y * tile],
                "fieldInstances": []})
        layers = [
            _layer(uid, liid, "Entities", "Entities", _UID_ENTITIES, w, h, tile,
                   entityInstances=entities),
            _layer(uid, liid, "Collisions", "IntGrid", _UID_COLLISIONS, w, h, tile,
                   intGridCsv=grid.ravel().tolist()),
            _layer(uid, liid, "Tiles", "Tiles", _UID_TILES, w, h, tile,
                   __tilesetDefUid=_UID_TILESET, __tilesetRelPath=sheet_name,
                   gridTiles=tiles)]
        out_levels.append({
            "identifier": ident, "iid": liid, "uid": uid, "worldX": x0, "worldY": 0,
            "worldDepth": 0, "pxWid": w * tile, "pxHei": h * tile, "__bgColor": "#202020",
            "bgColor": None, "useAutoIdentifier": False, "bgRelPath": None, "bgPos": None,
            "bgPivotX": 0.5, "bgPivotY": 0.5, "__smartColor": "#ADADB5", "__bgPos": None,
            "externalRelPath": None, "fieldInstances": [], "layerInstances": layers,
            "__neighbours": []})
        x0 += (w + gap) * tile
    return {
        "__header__": {"fileType": "LDtk Project JSON", "app": "LDtk",
                       "doc": "https://ldtk.io/json",
                       "schema": "https://ldtk.io/files/JSON_SCHEMA.json",
                       "appAuthor": "Sebastien 'deepnight' Benard", "appVersion": JSON_VERSION,
                       "url": "https://ldtk.io"},
        "iid": _iid("project", *(lv["iid"] for lv in out_levels)),
        "jsonVersion": JSON_VERSION, "appBuildId": 0, "nextUid": _LEVEL_UID0 + len(levels),
        "identifierStyle": "Capitalize", "toc": [], "worldLayout": "Free",
        "worldGridWidth": 256, "worldGridHeight": 256, "defaultLevelWidth": 256,
        "defaultLevelHeight": 256, "defaultPivotX": 0, "defaultPivotY": 0,
        "defaultGridSize": tile, "defaultEntityWidth": tile, "defaultEntityHeight": tile,
        "bgColor": "#40465B", "defaultLevelBgColor": "#202020", "minifyJson": False,
        "externalLevels": False, "exportTiled": False, "simplifiedExport": False,
        "imageExportMode": "None", "exportLevelBg": True, "pngFilePattern": None,
        "backupOnSave": False, "backupLimit": 10, "backupRelPath": None,
        "levelNamePattern": "Level_%idx", "tutorialDesc": None, "customCommands": [],
        "flags": [], "dummyWorldIid": _iid("world"), "worlds": [],
        "defs": {"layers": layer_defs, "entities": entity_defs, "tilesets": [tileset],
                 "enums": [], "externalEnums": [], "levelFields": []},
        "levels": out_levels}


def write_ldtk(levels: list[Level], path: str | Path, *, tile: int = 16,
               tiles: np.ndarray | None = None,
               path_cells: list[list[tuple[int, int]] | None] | None = None) -> list[Path]:
    """Write ``levels`` as one LDtk project with its tile sheet (``<name>_tiles.png``) beside
    it; returns the files written."""
    path = Path(path)
    legend = levels_legend(levels)
    if tiles is None:
        tiles = colour_tiles(legend, tile)
    if tiles.shape[1] != tiles.shape[2]:
        raise UserError(f"LDtk grids are square, and these tiles are {tiles.shape[2]}x"
                        f"{tiles.shape[1]} pixels: export to Tiled (.tmx or .tmj) instead")
    columns = min(len(legend), 8)
    sheet = tileset_sheet(tiles, columns)
    sheet_path = path.with_name(f"{path.stem}_tiles.png")
    from PIL import Image

    with atomic_path(sheet_path, suffix=".png") as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    doc = project(levels, sheet_path.name, (sheet.shape[1], sheet.shape[0]),
                  int(tiles.shape[2]), columns, path_cells)
    atomic_write_json(path, doc, indent=1)
    return [path, sheet_path]
