"""Tiled XML (.tmx) export: opened by real Tiled parsers (pytmx, pytiled-parser), read back by
the plugin's own reader, with collision and object layers, tile flags and provenance."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from plugins.common import provenance
from plugins.levels.engine import files, tiled
from plugins.levels.engine.level import Legend, Level
from studio.cli import cmd_run
from studio.errors import UserError

pytmx = pytest.importorskip("pytmx")
pytiled_parser = pytest.importorskip("pytiled_parser")

MARIO = Legend.from_mapping({"X": ["solid", "ground"], "-": ["passable", "empty"],
                             "E": ["enemy", "damaging", "hazard"], "L": ["lava"],
                             "o": ["coin", "passable"]}, name="Mini Mario")
ROWS = ["------o--", "--E------", "XXXXLXXXX", "XXXXXXXXX"]


def _level() -> Level:
    return Level.from_lines(ROWS, MARIO, "mini", {"method": "test", "seed": 7})


def _rasterise(objects: list, kind: str, shape: tuple[int, int], tile: int) -> np.ndarray:
    """The cells covered by a collision layer's rectangles of ``kind``."""
    out = np.zeros(shape, dtype=int)
    for o in objects:
        if o.type == kind:
            x0, y0 = int(o.x) // tile, int(o.y) // tile
            out[y0:y0 + int(o.height) // tile, x0:x0 + int(o.width) // tile] += 1
    return out


@pytest.mark.parametrize("external", [False, True])
def test_tmx_opens_in_pytmx_with_tiles_collisions_objects_and_tile_flags(
        tmp_path: Path, external: bool) -> None:
    lv = _level()
    written = tiled.write_tmx(lv, tmp_path / "mini.tmx", tile=8, external_tileset=external,
                              path_cells=[(0, 1), (1, 1), (2, 1)])
    assert (tmp_path / "mini.tsx" in written) == external
    m = pytmx.TiledMap(str(tmp_path / "mini.tmx"))
    assert [layer.name for layer in m.layers] == ["tiles", "agent path", "collision", "objects"]
    assert (m.width, m.height, m.tilewidth, m.tileheight) == (9, 4, 8, 8)
    # every cell's tile, through pytmx's gid mapping and the tileset's properties
    chars = [[m.get_tile_properties(x, y, 0)["char"] for x in range(9)] for y in range(4)]
    assert ["".join(r) for r in chars] == ROWS
    ground = m.get_tile_properties(0, 2, 0)
    assert ground["solid"] is True and ground["hazard"] is False and ground["ground"] is True
    lava = m.get_tile_properties(4, 2, 0)
    assert lava["hazard"] is True and lava["solid"] is False
    enemy = m.get_tile_properties(2, 1, 0)
    assert enemy["enemy"] is True and enemy["solid"] is False
    # the collision layer covers exactly the solid cells (once each) and the lava
    coll = list(m.get_layer_by_name("collision"))
    solid = lv.mask("solid").astype(int)
    assert np.array_equal(_rasterise(coll, "solid", solid.shape, 8), solid)
    assert np.array_equal(_rasterise(coll, "hazard", solid.shape, 8),
                          (lv.grid == ord("L")).astype(int))
    assert len([o for o in coll if o.type == "solid"]) < int(solid.sum())  # merged, not per tile
    # player start, exit and the enemy as objects
    objs = {o.type: o for o in m.get_layer_by_name("objects")}
    assert set(objs) == {"start", "exit", "enemy"}
    assert (objs["enemy"].x, objs["enemy"].y) == (16, 8)
    assert objs["enemy"].properties["char"] == "E"
    assert objs["start"].x == 0 and objs["exit"].x == 8 * 8  # walked to the last column
    path = m.get_layer_by_name("agent path")[0]
    assert len(path.points) == 3
    # and the plugin's own reader gives the same level back
    back = tiled.read_tmj(tmp_path / "mini.tmx")
    assert back.lines() == ROWS and back.legend == lv.legend and back.meta["seed"] == 7


def test_tmj_and_tmx_hold_the_same_map_in_pytiled_parser(tmp_path: Path) -> None:
    lv = _level()
    tiled.write_tmj(lv, tmp_path / "a.tmj", external_tileset=True)
    tiled.write_tmx(lv, tmp_path / "b.tmx", external_tileset=True)
    maps = [pytiled_parser.parse_map(tmp_path / n) for n in ("a.tmj", "b.tmx")]
    seen = []
    for mp in maps:
        names = [layer.name for layer in mp.layers]
        assert names == ["tiles", "collision", "objects"]
        tiles = mp.layers[0]
        ts = mp.tilesets[1]
        chars = ["".join(ts.tiles[gid - 1].properties["char"] for gid in row)
                 for row in tiles.data]
        assert chars == ROWS
        assert ts.tiles[0].properties["solid"] is True  # "X", a bool, not the text "true"
        objs = sorted((o.class_, o.name, o.coordinates.x, o.coordinates.y)
                      for o in mp.layers[2].tiled_objects)
        colls = sorted((o.class_, o.coordinates.x, o.coordinates.y, o.size.width, o.size.height)
                       for o in mp.layers[1].tiled_objects)
        seen.append((chars, objs, colls, sorted(mp.properties)))
    assert seen[0] == seen[1]  # one model of the map, two serialisers
    assert [o[0] for o in seen[0][1]] == ["enemy", "exit", "start"]


def test_export_job_writes_tmx_with_provenance_and_no_paths(tmp_path: Path) -> None:
    out = tmp_path / "export" / "lvl.tmx"
    rc = cmd_run("levels", "export", ["--level", str(_write_txt(tmp_path)), "--to", str(out),
                                      "--path"])
    assert rc == 0
    m = pytmx.TiledMap(str(out))
    prov = provenance.Provenance.loads(m.properties["provenance"])
    assert prov.plugin == "levels" and prov.job == "export"
    verdict = provenance.verify(out)
    assert verdict.unchanged is True and "tiles are unchanged" in verdict.words
    for f in out.parent.iterdir():
        text = f.read_bytes().decode("latin-1")
        assert str(tmp_path) not in text and str(Path.home()) not in text, f.name
    # editing a tile is noticed; a broken file is a clear error, not a traceback
    doc = out.read_text()
    out.write_text(doc.replace("\n2,", "\n3,", 1))
    assert provenance.verify(out).unchanged is False
    out.write_text(doc[:200])
    with pytest.raises(UserError, match="cannot be read"):
        provenance.verify(out)
    with pytest.raises(UserError, match="not valid XML"):
        files.load_level(out)


def _write_txt(tmp_path: Path) -> Path:
    (tmp_path / "mini.json").write_text(json.dumps(MARIO.to_json()), encoding="utf-8")
    p = tmp_path / "mini.txt"
    p.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    return p


def test_generate_batch_writes_tmx_that_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    assert cmd_run("levels", "generate", ["--method", "dungeon", "--width", "24", "--height",
                                          "20", "--count", "2", "--formats", "tmx,txt",
                                          "--tileset", "external", "--out", str(out)]) == 0
    for name in ("dungeon-0", "dungeon-1"):
        back = files.load_level(out / f"{name}.tmx")
        ref = files.load_level(out / f"{name}.txt")
        assert np.array_equal(back.grid, ref.grid)
        m = pytmx.TiledMap(str(out / f"{name}.tmx"))
        objs = {o.type for o in m.get_layer_by_name("objects")}
        assert {"start", "exit"} <= objs
        assert provenance.read(out / f"{name}.tmx") is not None
    # a folder of .tmx maps is a folder of levels
    assert len(files.load_folder(out)) == 4


def test_reads_tmx_written_by_other_tools(tmp_path: Path) -> None:
    """base64+zlib data, XML <tile> data, a tile class, flip flags, an empty cell."""
    raw = [1, 2, 0, 1 | 0x80000000, 3, 3]
    data = base64.b64encode(zlib.compress(struct.pack("<6I", *raw))).decode()
    tileset = ('<tileset firstgid="1" name="t" tilewidth="16" tileheight="16" tilecount="3" '
               'columns="3"><image source="t.png" width="48" height="16"/>'
               '<tile id="0" type="wall"><properties><property name="solid" type="bool" '
               'value="true"/></properties></tile><tile id="2"><properties>'
               '<property name="enemy" type="bool" value="true"/></properties></tile>'
               '</tileset>')

    def tmx(body: str) -> Path:
        p = tmp_path / "other.tmx"
        p.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<map version="1.10" '
                     'orientation="orthogonal" renderorder="right-down" width="3" height="2" '
                     f'tilewidth="16" tileheight="16" infinite="0">{tileset}'
                     f'<layer id="1" name="g" width="3" height="2">{body}</layer></map>')
        return p

    warnings: list[str] = []
    lv = tiled.read_tmj(tmx(f'<data encoding="base64" compression="zlib">{data}</data>'),
                        warn=warnings.append)
    a, _b, empty = lv.lines()[0]
    assert lv.lines()[1][0] == a and lv.legend[a].solid and lv.legend[a].has("wall")
    assert lv.legend[lv.lines()[1][1]].has("enemy") and lv.legend[empty].walkable
    assert any("flipped" in w for w in warnings)
    xml_tiles = "".join(f'<tile gid="{g}"/>' for g in [1, 2, 0, 1, 3, 3])
    again = tiled.read_tmj(tmx(f"<data>{xml_tiles}</data>"))
    assert again.lines() == lv.lines()
    with pytest.raises(UserError, match="tile data has 2 tiles"):
        tiled.read_tmj(tmx('<data encoding="csv">1,2</data>'))
    with pytest.raises(UserError, match=r"<map> width='x' is not a whole number"):
        p = tmx('<data encoding="csv">1,2,3,1,2,3</data>')
        p.write_text(p.read_text().replace('width="3" height="2" t', 'width="x" height="2" t'))
        tiled.read_tmj(p)


def test_check_json_prints_booleans_and_the_plain_report_keeps_yes_no(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lvl.tmx"
    assert cmd_run("levels", "export", ["--level", str(_write_txt(tmp_path)), "--to",
                                        str(out)]) == 0
    sealed = tmp_path / "sealed.txt"
    sealed.write_text("\n".join(["-X-------", "-X-------", "XXXXXXXXX"]) + "\n")
    capsys.readouterr()
    assert cmd_run("levels", "check", ["--level", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["playable"] is True and report["level"] == "lvl"
    assert cmd_run("levels", "check", ["--level", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["playable"] == "yes"
    # several levels, one unplayable, with a repair: every verdict a boolean
    folder = tmp_path / "two"
    folder.mkdir()
    for f in (out, sealed):
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "mini.json").write_text(json.dumps(MARIO.to_json()))
    assert cmd_run("levels", "check", ["--level", str(folder), "--legend",
                                       str(folder / "mini.json"), "--json", "--repair",
                                       "--out", str(tmp_path / "fixed")]) == 0
    doc = json.loads(capsys.readouterr().out)
    verdicts = {r["level"]: r for r in doc["levels"]}
    assert verdicts["lvl"]["playable"] is True and verdicts["sealed"]["playable"] is False
    assert verdicts["sealed"]["repair"]["playable_after"] is True


def test_panel_file_menu_offers_tmx_and_ldtk_and_exports_them(qtbot, make_host, tmp_path: Path,
                                                              monkeypatch) -> None:
    from plugins.levels.plugin import LevelsPlugin
    from plugins.levels.ui import panel as panel_mod

    host = make_host(LevelsPlugin())
    panel = LevelsPlugin().create_panel(host)
    qtbot.addWidget(panel)
    panel.generate_tab.live.setChecked(False)
    panel.show()  # showing it generates a first dungeon
    qtbot.waitUntil(lambda: panel.level is not None, timeout=20000)
    assert host.manager.wait_idle(30)
    filters: list[str] = []

    def save_dialog(_parent, _title, start, filt):  # the user accepts the proposed name
        filters.append(filt)
        name = "ext" if len(filters) == 2 else Path(start).stem
        return str(tmp_path / f"{name}{Path(start).suffix}"), filt

    monkeypatch.setattr(panel_mod.QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    for act in panel.toolbar.file_menu.actions():
        if act.text().startswith("Export") and (".tmx" in act.text() or ".ldtk" in act.text()):
            act.trigger()
            assert host.manager.wait_idle(30)
    assert filters == ["*.tmx", "*.tmx", "*.ldtk"]
    name = panel.level.name or "level"
    back = files.load_level(tmp_path / f"{name}.tmx")
    assert np.array_equal(back.grid, panel.level.grid)
    assert (tmp_path / "ext.tsx").exists()  # the external-tileset entry
    doc = json.loads((tmp_path / f"{name}.ldtk").read_text())
    assert len(doc["levels"]) == 1 and doc["levels"][0]["pxWid"] == panel.level.width * 16
