"""Reading and writing levels: VGLC for all three shared games, Tiled JSON both ways, bad input."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from plugins.levels.engine import files, render, tiled, vglc
from plugins.levels.engine.level import Legend, Level
from studio.errors import UserError

MARIO = Legend.from_mapping({"X": ["solid", "ground"], "-": ["passable", "empty"],
                             "E": ["enemy", "damaging", "hazard"], "o": ["coin", "passable"]},
                            name="Mini Mario")


@pytest.fixture
def vglc_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "vglc"


def test_reads_every_super_mario_level_with_its_json_legend(vglc_dir: Path) -> None:
    levels = files.load_folder(vglc_dir / "Super_Mario_Bros")
    assert len(levels) == 15
    lv = next(lv for lv in levels if lv.name == "mario-1-1")
    assert (lv.height, lv.width) == (14, 202)
    assert lv.legend["X"].solid and not lv.legend["-"].solid
    assert lv.legend["E"].has("enemy") and lv.legend["E"].walkable  # stompable
    assert lv.legend["<"].solid and lv.legend.guess_view() == "platformer"
    assert lv.mask("solid")[-1].mean() > 0.9  # the ground row


def test_reads_lode_runner_with_its_json_legend(vglc_dir: Path) -> None:
    levels = files.load_folder(vglc_dir / "Lode_Runner")
    assert len(levels) == 150
    lv = levels[0]
    assert (lv.height, lv.width) == (22, 32)
    assert lv.legend["#"].has("ladder") and lv.legend["#"].walkable
    assert lv.legend["b"].solid and lv.legend["b"].has("diggable")
    assert lv.legend.guess_view() == "ladder"


def test_reads_zelda_with_the_readme_legend_not_the_graph_json(vglc_dir: Path) -> None:
    levels = files.load_folder(vglc_dir / "The_Legend_of_Zelda")
    assert len(levels) == 18
    lg = levels[0].legend
    assert lg["W"].solid and lg["B"].solid
    assert lg["F"].walkable and lg["D"].has("door") and lg["D"].walkable
    assert lg["M"].has("enemy") and lg["P"].has("hazard") and not lg["P"].walkable
    assert lg["-"].has("void") and not lg["-"].walkable
    assert lg["O"].has("floor") and not lg["O"].solid  # "(LAVA/BLOCK)" stays descriptive
    assert lg["I"].solid
    assert lg.guess_view() == "topdown"


def test_graph_legend_is_refused_with_a_pointer_to_the_readme(vglc_dir: Path) -> None:
    with pytest.raises(UserError, match="README"):
        vglc.read_legend(vglc_dir / "The_Legend_of_Zelda" / "zelda.json")


def _write(tmp: Path, text: str, legend: Legend = MARIO) -> Path:
    (tmp / "legend.json").write_text(legend.dumps(), encoding="utf-8")
    p = tmp / "level.txt"
    p.write_text(text, encoding="utf-8")
    return p


def test_ragged_rows_say_which_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "----\n---\n XXXX\n")
    with pytest.raises(UserError, match=r"line 2 has 3 tiles but line 1 has 4"):
        vglc.read_level(p)


def test_unknown_tile_characters_are_named_with_their_position(tmp_path: Path) -> None:
    p = _write(tmp_path, "----\n-Z--\nXXXX\n")
    with pytest.raises(UserError) as err:
        vglc.read_level(p)
    assert "'Z' (line 2, column 2)" in str(err.value)
    lenient = vglc.read_level(p, strict=False)
    assert "Z" in lenient.legend and lenient.legend["Z"].has("unknown")


def test_empty_and_binary_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="empty"):
        vglc.read_level(_write(tmp_path, "\n\n  \n"))
    b = tmp_path / "bin.txt"
    b.write_bytes(b"\x00\x01\x02XX")
    with pytest.raises(UserError, match="binary"):
        vglc.read_level(b, MARIO)


def test_missing_legend_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "lonely.txt"
    p.write_text("--\nXX\n", encoding="utf-8")
    with pytest.raises(UserError, match="no legend found"):
        vglc.read_level(p)
    with pytest.raises(UserError, match="does not exist"):
        files.load_level(tmp_path / "nope.txt", MARIO)
    with pytest.raises(UserError, match="not valid JSON"):
        (tmp_path / "bad.json").write_text("{nope", encoding="utf-8")
        vglc.read_legend(tmp_path / "bad.json")


def test_crlf_and_trailing_blank_lines_are_fine(tmp_path: Path) -> None:
    lv = vglc.read_level(_write(tmp_path, "--o-\r\nXXXX\r\n\r\n"))
    assert lv.lines() == ["--o-", "XXXX"]


def _level() -> Level:
    return Level.from_lines(["------o-", "--E-----", "XXXX-XXX"], MARIO, "mini",
                            {"method": "test", "seed": 7})


def _check_tiled_keys(doc: dict) -> None:
    for key in ("type", "version", "tiledversion", "orientation", "renderorder", "infinite",
                "width", "height", "tilewidth", "tileheight", "layers", "tilesets",
                "nextlayerid", "nextobjectid", "compressionlevel"):
        assert key in doc, key
    assert doc["type"] == "map" and doc["orientation"] == "orthogonal"
    assert doc["renderorder"] == "right-down" and doc["infinite"] is False
    assert isinstance(doc["version"], str) and isinstance(doc["tiledversion"], str)
    layer = doc["layers"][0]
    for key in ("type", "data", "width", "height", "id", "name", "opacity", "visible", "x", "y"):
        assert key in layer, key
    assert layer["type"] == "tilelayer"
    assert len(layer["data"]) == doc["width"] * doc["height"]
    assert doc["tilesets"][0]["firstgid"] == 1
    assert min(layer["data"]) >= 1  # gid 0 would be "no tile"


@pytest.mark.parametrize("external", [False, True])
def test_tiled_round_trip(tmp_path: Path, external: bool) -> None:
    lv = _level()
    written = tiled.write_tmj(lv, tmp_path / "mini.tmj", tile=8, external_tileset=external,
                              path_cells=[(0, 1), (1, 1), (2, 0)])
    doc = json.loads((tmp_path / "mini.tmj").read_text())
    _check_tiled_keys(doc)
    ts = doc["tilesets"][0]
    if external:
        assert set(ts) == {"firstgid", "source"} and ts["source"] == "mini.tsj"
        tsj = json.loads((tmp_path / "mini.tsj").read_text())
        assert tsj["type"] == "tileset" and "firstgid" not in tsj
        ts = tsj
    for key in ("name", "tilewidth", "tileheight", "tilecount", "columns", "image",
                "imagewidth", "imageheight", "margin", "spacing"):
        assert key in ts, key
    assert ts["tilecount"] == len(MARIO)
    sheet = tmp_path / ts["image"]
    assert sheet.exists() and sheet in written
    from PIL import Image

    with Image.open(sheet) as im:
        assert im.size == (ts["imagewidth"], ts["imageheight"])
    # gid = legend index + firstgid, row-major
    assert doc["layers"][0]["data"][:8] == [2, 2, 2, 2, 2, 2, 4, 2]
    # the agent path is an object layer Tiled shows as a polyline
    objs = doc["layers"][1]
    assert objs["type"] == "objectgroup" and len(objs["objects"][0]["polyline"]) == 3
    back = tiled.read_tmj(tmp_path / "mini.tmj")
    assert back.lines() == lv.lines()
    assert back.legend == lv.legend
    assert back.meta["seed"] == 7


def _gids(lv: Level) -> list[int]:
    return (lv.indices() + 1).ravel().tolist()


def test_reads_tiled_maps_written_by_other_tools(tmp_path: Path) -> None:
    """base64+zlib data, flip flags, a tile class, no char properties, an empty cell."""
    raw = [1, 2, 0, 1 | 0x80000000, 3, 3]
    data = base64.b64encode(zlib.compress(struct.pack("<6I", *raw))).decode()
    doc = {"type": "map", "version": "1.10", "tiledversion": "1.10.2",
           "orientation": "orthogonal", "renderorder": "right-down", "infinite": False,
           "width": 3, "height": 2, "tilewidth": 16, "tileheight": 16,
           "nextlayerid": 2, "nextobjectid": 1,
           "layers": [{"type": "tilelayer", "id": 1, "name": "g", "width": 3, "height": 2,
                       "x": 0, "y": 0, "opacity": 1, "visible": True, "encoding": "base64",
                       "compression": "zlib", "data": data}],
           "tilesets": [{"firstgid": 1, "name": "t", "tilewidth": 16, "tileheight": 16,
                         "tilecount": 3, "columns": 3, "image": "t.png", "imagewidth": 48,
                         "imageheight": 16, "margin": 0, "spacing": 0,
                         "tiles": [{"id": 0, "type": "wall",
                                    "properties": [{"name": "solid", "type": "bool",
                                                    "value": True}]},
                                   {"id": 2, "properties": [{"name": "enemy", "type": "bool",
                                                             "value": True}]}]}]}
    p = tmp_path / "other.tmj"
    p.write_text(json.dumps(doc))
    warnings: list[str] = []
    lv = tiled.read_tmj(p, warn=warnings.append)
    assert lv.grid.shape == (2, 3)
    a, _b, empty = lv.lines()[0]
    assert lv.lines()[1][0] == a  # the flipped tile is the same tile
    assert lv.legend[a].solid and lv.legend[a].has("wall")
    assert lv.legend[lv.lines()[1][1]].has("enemy")
    assert lv.legend[empty].walkable  # Tiled's "no tile" reads as empty space
    assert any("flipped" in w for w in warnings)


def test_reads_infinite_tiled_maps(tmp_path: Path) -> None:
    lv = _level()
    tiled.write_tmj(lv, tmp_path / "m.tmj")
    doc = json.loads((tmp_path / "m.tmj").read_text())
    gids = doc["layers"][0]["data"]
    layer = doc["layers"][0]
    layer.pop("data")
    layer["chunks"] = [{"x": -4, "y": 0, "width": 4, "height": 3,
                        "data": [gids[r * 8 + c] for r in range(3) for c in range(4)]},
                       {"x": 0, "y": 0, "width": 4, "height": 3,
                        "data": [gids[r * 8 + 4 + c] for r in range(3) for c in range(4)]}]
    doc["infinite"] = True
    (tmp_path / "inf.tmj").write_text(json.dumps(doc))
    back = tiled.read_tmj(tmp_path / "inf.tmj")
    assert back.lines() == lv.lines()


def test_corrupt_tiled_input_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "x.tmj"
    p.write_text("{\"type\": \"tileset\"}")
    with pytest.raises(UserError, match="not a map"):
        tiled.read_tmj(p)
    p.write_text(json.dumps({"type": "map", "width": 2, "height": 1, "tilesets": [],
                             "layers": [{"type": "tilelayer", "data": [1, 2, 3]}]}))
    with pytest.raises(UserError, match="tile data has 3 tiles"):
        tiled.read_tmj(p)
    p.write_text(json.dumps({"type": "map", "width": 1, "height": 1, "tilesets": [],
                             "layers": [{"type": "tilelayer", "data": "AAAA",
                                         "encoding": "base64", "compression": "zstd"}]}))
    with pytest.raises(UserError, match="zstd"):
        tiled.read_tmj(p)


def test_export_set_writes_tmj_txt_png_csv_and_png_metadata(tmp_path: Path) -> None:
    lv = _level()
    written = files.save_set(lv, tmp_path / "out", "mini", ("tmj", "txt", "png", "csv"), tile=4)
    names = {p.name for p in written}
    assert {"mini.tmj", "mini.txt", "mini.png", "mini.csv", "mini_tiles.png",
            "mini_mario.json"} <= names
    again = files.load_level(tmp_path / "out" / "mini.txt")
    assert again.lines() == lv.lines() and again.legend == lv.legend
    rows = (tmp_path / "out" / "mini.csv").read_text().splitlines()
    assert rows[2].split(",")[:5] == ["0", "0", "0", "0", "1"]
    from plugins.common.pngmeta import read_png_text

    meta = read_png_text(tmp_path / "out" / "mini.png")
    assert json.loads(meta["levels:meta"])["seed"] == 7


def test_tileset_image_tiles_follow_legend_order(tmp_path: Path) -> None:
    from PIL import Image

    sheet = np.zeros((4, 16, 3), dtype=np.uint8)
    for i in range(4):
        sheet[:, i * 4:(i + 1) * 4] = (i * 60, 0, 0)
    Image.fromarray(sheet).save(tmp_path / "ts.png")
    tiles = render.TilesetImage(tmp_path / "ts.png", 4, 4).tiles_for(MARIO)
    img = render.render(_level(), tiles=tiles)
    assert img.shape == (12, 32, 3)
    assert img[9, 0, 0] == 0 and img[0, 0, 0] == 60  # X is tile 0, '-' is tile 1
    with pytest.raises(UserError, match="does not exist"):
        render.TilesetImage(tmp_path / "missing.png", 4, 4).load()
