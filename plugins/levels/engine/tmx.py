"""Tiled XML (.tmx maps, .tsx tilesets): the same map as the JSON format, in Tiled's XML form.

Tiled keeps one data model and saves it as JSON or XML; so does the studio. :mod:`.tiled` builds a
map once, as the document Tiled's JSON format holds, and this module writes that document as TMX
(:func:`map_xml`, :func:`tileset_xml`) and reads a TMX file back into it (:func:`read_map`), so
the map reader and everything that checks a map work on one shape. TMX is what Unity's
SuperTiled2Unity, Godot's and most engines' Tiled importers read.

The element order follows Tiled's own writer (properties first, then the image or the tilesets,
then the layers in drawing order); attributes Tiled omits at their defaults are omitted.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from studio.errors import UserError


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
def _num(v: Any) -> str:
    """A number as Tiled writes it: 16, not 16.0; 8.5 stays 8.5."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _properties(parent: ET.Element, props: list[dict[str, Any]] | None) -> None:
    if not props:
        return
    el = ET.SubElement(parent, "properties")
    for p in props:
        attrs = {"name": str(p["name"])}
        kind = p.get("type", "string")
        if kind != "string":
            attrs["type"] = kind
        value = p["value"]
        attrs["value"] = ("true" if value else "false") if isinstance(value, bool) else \
            _num(value) if isinstance(value, int | float) else str(value)
        ET.SubElement(el, "property", attrs)


def _objectgroup(parent: ET.Element, layer: dict[str, Any], top: bool) -> None:
    attrs = {"id": _num(layer["id"])} if top and "id" in layer else {}
    if layer.get("name"):
        attrs["name"] = str(layer["name"])
    if layer.get("class"):
        attrs["class"] = str(layer["class"])
    if not layer.get("visible", True):
        attrs["visible"] = "0"
    attrs["draworder"] = str(layer.get("draworder", "topdown"))
    el = ET.SubElement(parent, "objectgroup", attrs)
    _properties(el, layer.get("properties"))
    for obj in layer.get("objects", []):
        oa = {"id": _num(obj["id"])}
        for key in ("name", "type"):
            if obj.get(key):
                oa[key] = str(obj[key])
        oa["x"], oa["y"] = _num(obj["x"]), _num(obj["y"])
        for key in ("width", "height"):
            if obj.get(key):
                oa[key] = _num(obj[key])
        o = ET.SubElement(el, "object", oa)
        _properties(o, obj.get("properties"))
        if obj.get("point"):
            ET.SubElement(o, "point")
        for key in ("polyline", "polygon"):
            if obj.get(key):
                ET.SubElement(o, key, {"points": " ".join(
                    f"{_num(p['x'])},{_num(p['y'])}" for p in obj[key])})


def _tileset_body(el: ET.Element, ts: dict[str, Any]) -> None:
    _properties(el, ts.get("properties"))
    if ts.get("image"):
        ET.SubElement(el, "image", {"source": str(ts["image"]),
                                    "width": _num(ts["imagewidth"]),
                                    "height": _num(ts["imageheight"])})
    for tile in ts.get("tiles", []):
        t = ET.SubElement(el, "tile", {"id": _num(tile["id"]),
                                       **({"type": str(tile["type"])} if tile.get("type")
                                          else {})})
        _properties(t, tile.get("properties"))
        if tile.get("objectgroup"):
            _objectgroup(t, {**tile["objectgroup"], "draworder": "index"}, top=False)


_TILESET_ATTRS = ("name", "tilewidth", "tileheight", "spacing", "margin", "tilecount",
                  "columns")


def _tileset_attrs(ts: dict[str, Any]) -> dict[str, str]:
    return {k: str(ts[k]) if k == "name" else _num(ts[k]) for k in _TILESET_ATTRS if k in ts}


def tileset_xml(ts: dict[str, Any], version: str, tiled_version: str) -> str:
    """An external tileset (.tsx) from a tileset in Tiled's JSON shape."""
    root = ET.Element("tileset", {"version": version, "tiledversion": tiled_version,
                                  **_tileset_attrs(ts)})
    _tileset_body(root, ts)
    return _dumps(root)


def _csv(data: list[int], width: int) -> str:
    rows = [",".join(str(v) for v in data[i:i + width]) for i in range(0, len(data), width)]
    return "\n" + ",\n".join(rows) + "\n"


def map_xml(doc: dict[str, Any]) -> str:
    """A TMX map from a map document in Tiled's JSON shape (CSV tile data)."""
    attrs = {"version": str(doc["version"]), "tiledversion": str(doc["tiledversion"]),
             "orientation": str(doc["orientation"]), "renderorder": str(doc["renderorder"]),
             "width": _num(doc["width"]), "height": _num(doc["height"]),
             "tilewidth": _num(doc["tilewidth"]), "tileheight": _num(doc["tileheight"]),
             "infinite": _num(bool(doc.get("infinite"))),
             "nextlayerid": _num(doc["nextlayerid"]), "nextobjectid": _num(doc["nextobjectid"])}
    root = ET.Element("map", attrs)
    _properties(root, doc.get("properties"))
    for ts in doc["tilesets"]:
        if "source" in ts:
            ET.SubElement(root, "tileset", {"firstgid": _num(ts["firstgid"]),
                                            "source": str(ts["source"])})
        else:
            el = ET.SubElement(root, "tileset", {"firstgid": _num(ts["firstgid"]),
                                                 **_tileset_attrs(ts)})
            _tileset_body(el, ts)
    for layer in doc["layers"]:
        if layer["type"] == "tilelayer":
            la = {"id": _num(layer["id"]), "name": str(layer["name"]),
                  "width": _num(layer["width"]), "height": _num(layer["height"])}
            if not layer.get("visible", True):
                la["visible"] = "0"
            if layer.get("opacity", 1) != 1:
                la["opacity"] = _num(layer["opacity"])
            el = ET.SubElement(root, "layer", la)
            _properties(el, layer.get("properties"))
            data = ET.SubElement(el, "data", {"encoding": "csv"})
            data.text = _csv(list(layer["data"]), int(layer["width"]))
        elif layer["type"] == "objectgroup":
            _objectgroup(root, layer, top=True)
        else:
            raise ValueError(f"no TMX form for a {layer['type']!r} layer")
    return _dumps(root)


def _dumps(root: ET.Element) -> str:
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------
def parse(path: Path, what: str) -> ET.Element:
    """The root element of an XML file, or a :class:`UserError` saying what is wrong."""
    try:
        return ET.parse(path).getroot()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except ET.ParseError as exc:
        raise UserError(f"{what} {path.name} is not valid XML ({exc})") from None
    except OSError as exc:
        raise UserError(f"{what} {path.name} cannot be read ({exc.strerror or exc})") from None


def _value(p: ET.Element) -> Any:
    kind = p.get("type", "string")
    raw = p.get("value", p.text or "")
    if kind == "bool":
        return raw == "true"
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return raw


def properties(el: ET.Element) -> list[dict[str, Any]]:
    """An element's custom properties in Tiled's JSON shape (typed values)."""
    return [{"name": p.get("name"), "type": p.get("type", "string"), "value": _value(p)}
            for p in el.findall("properties/property")]


def _int(el: ET.Element, key: str, default: int = 0) -> int:
    raw = el.get(key)
    if raw is None:
        return default
    try:
        return int(float(raw))
    except (ValueError, OverflowError):
        raise ValueError(f"<{el.tag}> {key}={raw!r} is not a whole number") from None


def tileset(el: ET.Element) -> dict[str, Any]:
    """A ``<tileset>`` element (in a map or a .tsx file) in Tiled's JSON shape."""
    ts: dict[str, Any] = {"name": el.get("name")}
    for k in ("tilewidth", "tileheight", "tilecount", "columns", "margin", "spacing"):
        ts[k] = _int(el, k)
    img = el.find("image")
    if img is not None:
        ts["image"] = img.get("source")
        ts["imagewidth"], ts["imageheight"] = _int(img, "width"), _int(img, "height")
    ts["tiles"] = [{"id": _int(t, "id"), "type": t.get("type") or t.get("class"),
                    "properties": properties(t)} for t in el.findall("tile")]
    ts["properties"] = properties(el)
    return ts


def _data(el: ET.Element) -> dict[str, Any]:
    """A ``<data>`` or ``<chunk>`` element's tiles: CSV or base64 text, or ``<tile>`` elements."""
    tiles = el.findall("tile")
    if tiles and not (el.text or "").strip():
        return {"data": [_int(t, "gid") for t in tiles]}
    return {"data": (el.text or "").strip()}


def _layers(parent: ET.Element) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for el in parent:
        common = {"id": _int(el, "id"), "name": el.get("name", ""),
                  "visible": el.get("visible", "1") != "0",
                  "properties": properties(el)}
        if el.tag == "layer":
            layer = {**common, "type": "tilelayer", "width": _int(el, "width"),
                     "height": _int(el, "height")}
            data = el.find("data")
            if data is not None:
                layer["encoding"] = data.get("encoding") or None
                layer["compression"] = data.get("compression") or None
                chunks = data.findall("chunk")
                if chunks:
                    layer["chunks"] = [{"x": _int(c, "x"), "y": _int(c, "y"),
                                        "width": _int(c, "width"), "height": _int(c, "height"),
                                        **_data(c)} for c in chunks]
                else:
                    layer.update(_data(data))
            out.append(layer)
        elif el.tag == "group":
            out.append({**common, "type": "group", "layers": _layers(el)})
        elif el.tag == "objectgroup":
            out.append({**common, "type": "objectgroup", "objects": [
                {"id": _int(o, "id"), "name": o.get("name", ""), "type": o.get("type") or
                 o.get("class") or "", "x": float(o.get("x", 0)), "y": float(o.get("y", 0)),
                 "width": float(o.get("width", 0)), "height": float(o.get("height", 0)),
                 "properties": properties(o)} for o in el.findall("object")]})
    return out


def read_map(path: Path) -> dict[str, Any]:
    """A TMX map as the document Tiled's JSON format holds (what ``read_tmj`` reads)."""
    root = parse(path, "Tiled map")
    if root.tag != "map":
        raise UserError(f"{path.name} is a Tiled <{root.tag}> file, not a map")
    doc: dict[str, Any] = {"type": "map", "orientation": root.get("orientation", "orthogonal"),
                           "infinite": root.get("infinite", "0") == "1",
                           "properties": properties(root)}
    for k in ("width", "height", "tilewidth", "tileheight"):
        if root.get(k) is not None:
            doc[k] = _int(root, k)
    tilesets = []
    for el in root.findall("tileset"):
        first = _int(el, "firstgid", 1)
        if el.get("source"):
            tilesets.append({"firstgid": first, "source": el.get("source")})
        else:
            tilesets.append({"firstgid": first, **tileset(el)})
    doc["tilesets"] = tilesets
    doc["layers"] = _layers(root)
    return doc
