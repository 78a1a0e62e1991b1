"""LDtk project export: one level per generated map, checked against the keys LDtk's JSON schema
(1.5) requires and read back tile by tile through the tileset's custom data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from plugins.common import provenance
from plugins.levels.engine import files, ldtk
from plugins.levels.engine.level import Legend, Level
from studio.cli import cmd_run
from studio.errors import UserError

# the "required" lists of LDtk's MINIMAL_JSON_SCHEMA.json (1.5), by type
REQUIRED = {
    "root": ["bgColor", "defs", "externalLevels", "iid", "jsonVersion", "levels", "toc",
             "worlds"],
    "defs": ["entities", "enums", "externalEnums", "layers", "levelFields", "tilesets"],
    "level": ["__bgColor", "__neighbours", "fieldInstances", "identifier", "iid", "pxHei",
              "pxWid", "uid", "worldDepth", "worldX", "worldY"],
    "layer": ["__cHei", "__cWid", "__gridSize", "__identifier", "__opacity", "__pxTotalOffsetX",
              "__pxTotalOffsetY", "__type", "autoLayerTiles", "entityInstances", "gridTiles",
              "iid", "intGridCsv", "layerDefUid", "levelId", "pxOffsetX", "pxOffsetY",
              "visible"],
    "entity": ["__grid", "__identifier", "__pivot", "__smartColor", "__tags", "defUid",
               "fieldInstances", "height", "iid", "px", "width"],
    "entity_def": ["color", "height", "identifier", "nineSliceBorders", "pivotX", "pivotY",
                   "tileRenderMode", "uid", "width"],
    "layer_def": ["__type", "displayOpacity", "gridSize", "identifier", "intGridValues",
                  "intGridValuesGroups", "parallaxFactorX", "parallaxFactorY",
                  "parallaxScaling", "pxOffsetX", "pxOffsetY", "uid"],
    "tileset": ["__cHei", "__cWid", "customData", "enumTags", "identifier", "padding", "pxHei",
                "pxWid", "spacing", "tags", "tileGridSize", "uid"],
    "tile": ["a", "f", "px", "src", "t"],
    "intgrid_value": ["color", "groupUid", "value"],
}
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MARIO = Legend.from_mapping({"X": ["solid", "ground"], "-": ["passable", "empty"],
                             "E": ["enemy", "damaging", "hazard"], "L": ["lava"]},
                            name="Mini Mario")
ROWS = ["---------", "--E------", "XXXXLXXXX", "XXXXXXXXX"]


def _has(obj: dict, kind: str) -> None:
    missing = [k for k in REQUIRED[kind] if k not in obj]
    assert not missing, f"{kind} lacks {missing}"


def _validate(doc: dict) -> None:
    """Every required key, the types LDtk reads, and every uid reference resolving."""
    _has(doc, "root")
    _has(doc["defs"], "defs")
    assert isinstance(doc["jsonVersion"], str) and doc["externalLevels"] is False
    layer_defs = {d["uid"]: d for d in doc["defs"]["layers"]}
    entity_defs = {d["uid"]: d for d in doc["defs"]["entities"]}
    tilesets = {d["uid"]: d for d in doc["defs"]["tilesets"]}
    for d in layer_defs.values():
        _has(d, "layer_def")
        assert d["__type"] in ("IntGrid", "Entities", "Tiles", "AutoLayer")
        for v in d["intGridValues"]:
            _has(v, "intgrid_value")
    for d in entity_defs.values():
        _has(d, "entity_def")
    for d in tilesets.values():
        _has(d, "tileset")
    for kind in (layer_defs.values(), entity_defs.values(), tilesets.values(), doc["levels"]):
        idents = [d["identifier"] for d in kind]  # unique within each kind
        assert all(IDENT.match(i) for i in idents) and len(set(idents)) == len(idents)
    iids = [doc["iid"]]
    for lv in doc["levels"]:
        _has(lv, "level")
        iids.append(lv["iid"])
        for layer in lv["layerInstances"]:
            _has(layer, "layer")
            iids.append(layer["iid"])
            d = layer_defs[layer["layerDefUid"]]
            assert layer["__type"] == d["__type"] and layer["levelId"] == lv["uid"]
            assert layer["__cWid"] * layer["__gridSize"] == lv["pxWid"]
            n = layer["__cWid"] * layer["__cHei"]
            if layer["__type"] == "IntGrid":
                assert len(layer["intGridCsv"]) == n
                allowed = {0} | {v["value"] for v in d["intGridValues"]}
                assert set(layer["intGridCsv"]) <= allowed
            if layer["__type"] == "Tiles":
                assert layer["__tilesetDefUid"] in tilesets and len(layer["gridTiles"]) == n
                for t in layer["gridTiles"]:
                    _has(t, "tile")
            for e in layer["entityInstances"]:
                _has(e, "entity")
                iids.append(e["iid"])
                assert entity_defs[e["defUid"]]["identifier"] == e["__identifier"]
    assert len(set(iids)) == len(iids)
    uids = [*layer_defs, *entity_defs, *tilesets, *(lv["uid"] for lv in doc["levels"])]
    assert len(set(uids)) == len(uids) and doc["nextUid"] > max(uids)


def _grid_back(doc: dict, level: dict) -> list[str]:
    """The level's characters, from its Tiles layer and the tileset's custom data."""
    ts = doc["defs"]["tilesets"][0]
    char = {c["tileId"]: json.loads(c["data"])["char"] for c in ts["customData"]}
    layer = next(x for x in level["layerInstances"] if x["__type"] == "Tiles")
    grid = np.full((layer["__cHei"], layer["__cWid"]), "?")
    g = layer["__gridSize"]
    for t in layer["gridTiles"]:
        grid[t["px"][1] // g, t["px"][0] // g] = char[t["t"]]
        sx, sy = t["src"]
        assert sy // g * ts["__cWid"] + sx // g == t["t"]  # src is where tile t sits
    return ["".join(r) for r in grid]


def test_ldtk_project_has_schema_keys_layers_and_entities(tmp_path: Path) -> None:
    lv = Level.from_lines(ROWS, MARIO, "1-1 mini", {"seed": 1})
    written = files.save_as(lv, tmp_path / "mini.ldtk", tile=8)
    assert [p.name for p in written] == ["mini.ldtk", "mini_tiles.png"]
    doc = json.loads((tmp_path / "mini.ldtk").read_text())
    _validate(doc)
    (level,) = doc["levels"]
    assert level["identifier"] == "_1_1_mini" and (level["pxWid"], level["pxHei"]) == (72, 32)
    assert [x["__identifier"] for x in level["layerInstances"]] == ["Entities", "Collisions",
                                                                   "Tiles"]
    assert _grid_back(doc, level) == ROWS
    coll = np.array(level["layerInstances"][1]["intGridCsv"]).reshape(4, 9)
    assert np.array_equal(coll == 1, lv.mask("solid")) and coll[2, 4] == 3  # lava: hazard
    ents = {e["__identifier"]: e for e in level["layerInstances"][0]["entityInstances"]}
    assert set(ents) == {"PlayerStart", "Exit", "Enemy"}
    assert ents["Enemy"]["__grid"] == [2, 1] and ents["Enemy"]["px"] == [16, 8]
    # the sheet's size is what the tileset says
    from PIL import Image

    ts = doc["defs"]["tilesets"][0]
    with Image.open(tmp_path / ts["relPath"]) as im:
        assert im.size == (ts["pxWid"], ts["pxHei"])
    with pytest.raises(UserError, match="square"):
        ldtk.write_ldtk([lv], tmp_path / "x.ldtk", tiles=np.zeros((4, 8, 16, 3), np.uint8))


def test_generate_writes_one_project_with_every_level(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    assert cmd_run("levels", "generate", ["--method", "dungeon", "--width", "24", "--height",
                                          "20", "--count", "3", "--formats", "txt,ldtk",
                                          "--out", str(out)]) == 0
    doc = json.loads((out / "levels.ldtk").read_text())
    _validate(doc)
    assert [lv["identifier"] for lv in doc["levels"]] == ["dungeon_0", "dungeon_1", "dungeon_2"]
    assert len({lv["worldX"] for lv in doc["levels"]}) == 3  # side by side, not stacked
    for level in doc["levels"]:
        ref = files.load_level(out / f"{level['identifier'].replace('_', '-')}.txt")
        assert _grid_back(doc, level) == ref.lines()
        ents = {e["__identifier"] for e in level["layerInstances"][0]["entityInstances"]}
        assert ents == {"PlayerStart", "Exit"}
    verdict = provenance.verify(out / "levels.ldtk")
    assert verdict.unchanged is True and verdict.provenance.job == "generate"
    text = (out / "levels.ldtk").read_text()
    assert str(tmp_path) not in text and str(Path.home()) not in text
    # the same levels give the same project (iids are derived, not random)
    assert cmd_run("levels", "generate", ["--method", "dungeon", "--width", "24", "--height",
                                          "20", "--count", "3", "--formats", "ldtk",
                                          "--out", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "levels.ldtk").read_text()) == doc
