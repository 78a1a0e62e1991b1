"""Video Game Level Corpus text levels and their legends, for any game.

A VGLC level is a text file, one line per row, one character per tile. Its legend comes in one of
two shapes, both read here:

* JSON, ``{"tiles": {"X": ["solid", "ground"], "-": ["passable", "empty"], ...}}`` (Super Mario
  Bros, Lode Runner, ...);
* text lines ``C = NAME`` (The Legend of Zelda's README.txt), whose names are turned into
  properties by keyword: wall/block → solid, floor → passable, door, stair, monster → enemy,
  lava/water/element → hazard, void.

Bad input gets a message that names the file, the line and what to do: ragged rows, characters
the legend does not know, empty files, a JSON legend that describes something else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from studio.errors import UserError
from studio.storage import atomic_write_text

from .level import DIRECTIONS, Legend, Level, Tile
from .text import decode, read_text, show_char, show_chars

LEVEL_EXTS = (".txt", ".lvl")
_LEGEND_LINE = re.compile(r"^\s*(\S)\s*=\s*(.+?)\s*$")

# keyword -> properties for legends written as "C = NAME" (matched on whole words, before "(")
_KEYWORDS: list[tuple[str, tuple[str, ...]]] = [
    ("WALL", ("solid", "wall")),
    ("BLOCK", ("solid", "block")),
    ("GROUND", ("solid", "ground")),
    ("SOLID", ("solid",)),
    ("BRICK", ("solid", "breakable")),
    ("FLOOR", ("passable", "floor")),
    ("EMPTY", ("passable", "empty")),
    ("SKY", ("passable", "empty")),
    ("DOOR", ("passable", "door")),
    ("STAIR", ("passable", "stair")),
    ("LADDER", ("passable", "climbable", "ladder")),
    ("ROPE", ("passable", "climbable", "rope")),
    ("MONSTER", ("enemy", "passable")),
    ("ENEMY", ("enemy", "passable")),
    ("ELEMENT", ("hazard", "element")),
    ("LAVA", ("hazard", "lava")),
    ("WATER", ("hazard", "water")),
    ("SPIKE", ("hazard", "spike")),
    ("COIN", ("passable", "collectable", "coin")),
    ("GOLD", ("passable", "collectable", "gold")),
    ("START", ("passable", "start")),
    ("EXIT", ("passable", "exit")),
    ("VOID", ("void",)),
]


def props_from_name(name: str) -> tuple[str, ...]:
    """Properties for a legend name such as ``"ELEMENT + FLOOR (LAVA/BLOCK, WATER/BLOCK)"``.

    Keywords of the main name decide what the tile does; the words in parentheses are kept as
    one descriptive property (``"(lava/block, water/block)"``), so they turn a floor neither into
    a wall nor into lava. A tile that is both an element and a block is solid; an element on a
    floor is floor (walked on: in The Legend of Zelda whole rooms of it have doors).
    """
    main, _, extra = name.partition("(")
    words = set(re.findall(r"[A-Z]+", main.upper()))
    props: list[str] = []
    for key, ps in _KEYWORDS:
        if key in words:
            props += [p for p in ps if p not in props]
    if "solid" in props and "passable" in props:
        props.remove("passable")
    if "floor" in props and "element" in props and "solid" not in props:
        props = [p for p in props if p not in ("hazard", "element")]
    label = main.strip().lower()
    if label not in props:
        props.append(label)
    described = " ".join(extra.rstrip().rstrip(")").split()).lower()
    if described:
        props.append(f"({described})")
    if not any(p in props for p in ("solid", "passable", "hazard", "void", "enemy")):
        props.insert(0, "passable")
    return tuple(props)


def read_legend(path: str | Path, name: str = "") -> Legend:
    """A legend from a VGLC JSON file or a ``C = NAME`` text file."""
    path = Path(path).expanduser()
    text = read_text(path, "legend file")
    game = name or path.parent.name.replace("_", " ")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"legend {path.name} is not valid JSON ({exc.msg}, line {exc.lineno})"
                            ) from None
        return legend_from_json(data, path.name, game)
    tiles: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        m = _LEGEND_LINE.match(line)
        if m:
            tiles[m.group(1)] = props_from_name(m.group(2))
    if not tiles:
        raise UserError(f"{path.name} holds no legend lines: expected JSON {{\"tiles\": ...}} "
                        "or lines such as 'W = WALL'")
    return Legend([Tile(c, p) for c, p in tiles.items()], game)


def legend_from_json(data: Any, source: str = "legend", game: str = "") -> Legend:
    if not isinstance(data, dict):
        raise UserError(f"{source}: a legend is a JSON object with a \"tiles\" key")
    tiles = data.get("tiles")
    if tiles is None:
        keys = ", ".join(sorted(map(str, data))[:6])
        hint = (" It looks like a room-graph legend (nodes/edges), not a tile legend; for The "
                "Legend of Zelda the tile legend is README.txt." if "nodes" in data else "")
        raise UserError(f"{source} has no \"tiles\" key (it has: {keys}).{hint}")
    if not isinstance(tiles, dict) or not tiles:
        raise UserError(f"{source}: \"tiles\" must map each tile character to a list of "
                        "properties")
    for char, props in tiles.items():
        if len(char) != 1:
            raise UserError(f"{source}: tile key {char!r} must be exactly one character")
        if ord(char) > 255:
            raise UserError(f"{source}: {show_char(char)} cannot be a tile: tiles are single "
                            "characters up to U+00FF (letters, digits, punctuation and Latin "
                            "accents such as 'é')")
        if not isinstance(props, list | str):
            raise UserError(f"{source}: tile {show_char(char)} needs a list of properties")
    direction = str(data.get("direction", "") or "")
    if direction and direction not in DIRECTIONS:
        raise UserError(f"{source}: \"direction\" is {direction!r}; write \"right\" (played left "
                        "to right) or \"up\" (climbed from the bottom to the top)")
    physics = data.get("physics")
    if physics is not None and not isinstance(physics, dict):
        raise UserError(f"{source}: \"physics\" must be an object such as {{\"jump\": 5, "
                        "\"run\": 2}")
    try:
        return Legend.from_mapping(tiles, str(data.get("name") or game), str(data.get("view", "")),
                                   data.get("colors") if isinstance(data.get("colors"), dict)
                                   else None, direction, physics)
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    except (TypeError, ValueError):  # a colour that is not #RRGGBB nor [r, g, b]
        raise UserError(f"{source}: \"colors\" must map tile characters to \"#RRGGBB\" "
                        "colours") from None


def find_legend(level_path: Path) -> Path | None:
    """The legend beside a level: a JSON with a ``"tiles"`` key, else a README/legend text file."""
    folder = level_path.parent
    for p in sorted(folder.glob("*.json")):
        try:
            data = json.loads(read_text(p))
        except (UserError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("tiles"), dict):
            return p
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.suffix.lower() == ".txt" and p.stem.lower() in ("readme", "legend"):
            try:
                if any(_LEGEND_LINE.match(ln) for ln in read_text(p).splitlines()):
                    return p
            except UserError:
                continue
    return None


def parse_level_text(text: str, legend: Legend, source: str = "level",
                     strict: bool = True) -> Level:
    """Rows of characters into a :class:`Level`, checking shape and tiles.

    Raises:
        UserError: empty text, rows of different lengths, or characters the legend lacks (with
            ``strict``; otherwise unknown characters are added as plain passable tiles).
    """
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise UserError(f"{source} is empty: a VGLC level is one line of tile characters per row")
    width = len(lines[0])
    for i, line in enumerate(lines, 1):
        if len(line) != width:
            raise UserError(f"{source}: line {i} has {len(line)} tiles but line 1 has {width}; "
                            "every row of a level must be the same length (ragged rows)")
    for y, line in enumerate(lines, 1):
        wide = next((x for x, ch in enumerate(line) if ord(ch) > 255), None)
        if wide is not None:
            raise UserError(f"{source}: {show_char(line[wide])} (line {y}, column {wide + 1}) "
                            "cannot be a tile: tiles are single characters up to U+00FF "
                            "(letters, digits, punctuation and Latin accents such as 'é'); use "
                            "one of those in the level and its legend")
    level = Level.from_lines(lines, legend, name=Path(source).stem)
    unknown = level.unknown_chars()
    if unknown:
        if strict:
            where = []
            for ch in unknown[:5]:
                y, x = next((y, ln.index(ch)) for y, ln in enumerate(lines) if ch in ln)
                where.append(f"{show_char(ch)} (line {y + 1}, column {x + 1})")
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise UserError(f"{source} uses tile characters its legend does not define: "
                            f"{', '.join(where)}{more}. The legend knows "
                            f"{show_chars(legend.chars)}; add them to the legend JSON or pick "
                            "the right legend.")
        extra = legend
        for ch in unknown:
            extra = extra.with_tile(Tile(ch, ("passable", "unknown")))
        level.legend = extra
    return level


def read_level(path: str | Path, legend: Legend | str | Path | None = None,
               strict: bool = True) -> Level:
    """Read a VGLC text level; the legend is given, or found beside the file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"level file {path} does not exist")
    if path.is_dir():
        raise UserError(f"{path} is a folder: pass one level file (or use --data for a folder)")
    if not isinstance(legend, Legend):
        legend_path = Path(legend).expanduser() if legend else find_legend(path)
        if legend_path is None:
            raise UserError(f"no legend found for {path.name}: put the game's legend JSON (e.g. "
                            "smb.json) beside it or pass --legend FILE")
        legend = read_legend(legend_path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"level file {path.name} cannot be read ({exc.strerror or exc})"
                        ) from None
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00")):
        raise UserError(f"{path.name} is a binary file, not a VGLC text level")
    text = decode(raw, path.name, "level file")  # a UTF-16 file is named as such
    level = parse_level_text(text, legend, path.name, strict)
    level.name = path.stem
    level.meta["source"] = str(path)
    return level


def level_files(folder: str | Path) -> list[Path]:
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise UserError(f"the folder {folder} does not exist")
    if folder.is_file():
        return [folder]
    files = [p for p in sorted(folder.iterdir())
             if p.suffix.lower() in (*LEVEL_EXTS, ".tmj", ".tmx") and p.stem.lower() not in
             ("readme", "legend", "license") and not p.name.startswith(".")]
    if not files:
        raise UserError(f"{folder} holds no level files (.txt VGLC levels or .tmj/.tmx Tiled "
                        "maps)")
    return files


def write_level(level: Level, path: str | Path, legend_path: str | Path | None = None) -> Path:
    """Write VGLC text (and, if asked, the legend JSON beside it), atomically."""
    path = Path(path)
    atomic_write_text(path, level.text())
    if legend_path is not None:
        atomic_write_text(Path(legend_path), level.legend.dumps() + "\n")
    return path
