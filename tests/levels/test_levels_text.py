"""Text formats as people save them: UTF-8 with or without a BOM, non-ASCII tiles, other
encodings refused with the file's name; characters named as the user typed them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugins.levels.engine import files, pins, vglc
from plugins.levels.engine.level import Legend
from studio.errors import UserError

BOM = b"\xef\xbb\xbf"
LEGEND = {"tiles": {"X": ["solid", "ground"], "-": ["passable", "empty"],
                    "é": ["passable", "coin"]}}


def _legend(tmp: Path, bom: bool = False, data: dict | None = None) -> Path:
    p = tmp / "game.json"
    p.write_bytes((BOM if bom else b"") + json.dumps(data or LEGEND).encode("utf-8"))
    return p


def test_a_level_saved_with_a_bom_reads_like_one_without(tmp_path: Path) -> None:
    _legend(tmp_path)
    p = tmp_path / "bom.txt"
    p.write_bytes(BOM + b"----\r\n-X--\r\nXXXX\r\n")
    lv = vglc.read_level(p)
    assert lv.lines() == ["----", "-X--", "XXXX"]


def test_a_legend_with_a_bom_beside_a_level_with_a_bom(tmp_path: Path) -> None:
    _legend(tmp_path, bom=True)
    (tmp_path / "a.txt").write_bytes(BOM + "-é-\nXXX\n".encode())
    lv = files.load_folder(tmp_path)[0]
    assert lv.lines() == ["-é-", "XXX"] and lv.legend["é"].has("coin")


def test_a_readme_legend_with_a_bom_keeps_its_first_line(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_bytes(BOM + b"F = FLOOR\nW = WALL\n")
    (tmp_path / "room.txt").write_bytes(b"WWW\nWFW\nWWW\n")
    lv = vglc.read_level(tmp_path / "room.txt")
    assert lv.legend["F"].walkable and lv.legend["W"].solid


def test_non_ascii_tiles_in_utf8_are_tiles_not_mojibake(tmp_path: Path) -> None:
    _legend(tmp_path)
    p = tmp_path / "accents.txt"
    p.write_text("-é--\nXXXX\n", encoding="utf-8")
    lv = vglc.read_level(p)
    assert lv.width == 4 and lv.char_at(1, 0) == "é"


def test_unknown_non_ascii_characters_are_named_as_typed(tmp_path: Path) -> None:
    _legend(tmp_path)
    p = tmp_path / "odd.txt"
    p.write_text("-Ð--\n--–-\nXXXX\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        vglc.read_level(p)
    msg = str(err.value)
    assert "'–'" in msg and "(line 2, column 3)" in msg  # the en dash, where it was typed
    assert "\\x" not in msg and "Ã" not in msg and "â" not in msg
    p.write_text("-Ð--\n----\nXXXX\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        vglc.read_level(p)
    assert "'Ð' (line 1, column 2)" in str(err.value)
    assert "'é'" in str(err.value)  # what the legend knows, also as typed


def test_invisible_characters_are_named_by_code_point(tmp_path: Path) -> None:
    _legend(tmp_path)
    p = tmp_path / "ctl.txt"
    p.write_text("-\x96--\nXXXX\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"U\+0096 \(an invisible character\) \(line 1, column 2\)"):
        vglc.read_level(p)


def test_bytes_that_are_not_utf8_name_the_file_line_and_column(tmp_path: Path) -> None:
    _legend(tmp_path)
    p = tmp_path / "cp1252.txt"
    p.write_bytes(b"----\n-\x96--\nXXXX\n")  # an en dash saved by a Windows code page
    with pytest.raises(UserError) as err:
        vglc.read_level(p)
    msg = str(err.value)
    assert "cp1252.txt" in msg and "not UTF-8" in msg
    assert "0x96 on line 2, column 2" in msg


def test_utf16_files_are_named_as_such(tmp_path: Path) -> None:
    _legend(tmp_path)
    p = tmp_path / "wide.txt"
    p.write_bytes("----\nXXXX\n".encode("utf-16"))
    with pytest.raises(UserError, match=r"wide\.txt is saved as UTF-16"):
        vglc.read_level(p)
    leg = tmp_path / "wide.json"
    leg.write_bytes(json.dumps(LEGEND).encode("utf-16"))
    with pytest.raises(UserError, match=r"wide\.json is saved as UTF-16"):
        vglc.read_legend(leg)


def test_characters_beyond_latin1_are_refused_by_name(tmp_path: Path) -> None:
    _legend(tmp_path)
    p = tmp_path / "cyr.txt"
    p.write_text("-Ж--\nXXXX\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        vglc.read_level(p)
    assert "'Ж' (line 1, column 2) cannot be a tile" in str(err.value)


def test_pins_json_with_a_bom(tmp_path: Path) -> None:
    p = tmp_path / "pins.json"
    p.write_bytes(BOM + b'{"pins": [[1, 2, "X"]]}')
    assert pins.read_pins(p) == {(1, 2): ord("X")}


def test_tiled_map_with_a_bom_and_non_ascii_names(tmp_path: Path) -> None:
    from plugins.levels.engine import tiled
    from plugins.levels.engine.level import Level

    lg = Legend.from_mapping(LEGEND["tiles"], name="Jeu à moi")
    lv = Level.from_lines(["-é-", "XXX"], lg, "niveau")
    out = tiled.write_tmj(lv, tmp_path / "niveau.tmj")[0]
    out.write_bytes(BOM + out.read_bytes())
    back = files.load_level(out)
    assert back.lines() == ["-é-", "XXX"] and back.legend.name == "Jeu à moi"
