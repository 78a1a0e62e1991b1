"""Where a provenance manifest lives in each exported format, and what its hash covers.

Each format keeps the manifest in its own standard metadata, so other tools keep it (and
show it) and the content itself is not touched:

- PNG: an iTXt chunk ``generative-studio:provenance`` (the JSON) and an XMP packet
  (iTXt ``XML:com.adobe.xmp``) with IPTC ``Iptc4xmpExt:DigitalSourceType``, ``xmp:CreatorTool``,
  ``xmp:CreateDate`` and a ``dc:description``: exiftool, Adobe tools and image hosts read it.
  Hash: the decoded pixels (as RGBA for 8-bit images), so re-compressing keeps it valid.
- GIF: a comment extension (Pillow's ``info["comment"]``, exiftool's ``Comment``). Hash: every
  frame's pixels.
- MIDI: a text meta event (type 0x01) at tick 0 of the first track, starting with
  ``generative-studio:provenance``. Hash: every other event of every track.
- WAV: the RIFF ``LIST``/``INFO`` chunk: ``ICMT`` (comment) holds the JSON, ``ISFT`` (software)
  the studio (libsndfile, exiftool and most audio tools show both). Hash: ``fmt `` and ``data``.
- Tiled maps (``.tmj``/``.json``, and XML ``.tmx``): a ``provenance`` custom property of the map.
  Hash: the tile layers (their names, sizes and tiles).
- Markdown: an HTML comment at the end (invisible when rendered). Hash: the text before it.
- Plain text (``.txt``, ``.csv``) and LDtk projects (``.ldtk``, whose schema has no free-form
  field): a sidecar ``NAME.txt.provenance.json``. Text has no place
  for metadata, and a block inside would change what the user pastes elsewhere (and a VGLC
  level's rows or a CSV's cells would no longer parse). Hash: the text.

Every writer here rewrites the file atomically; every reader takes files other tools changed.
No Qt, no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from plugins.common.provenance import SOFTWARE, Provenance
from studio.storage import atomic_write_bytes, atomic_write_text

KEY = "generative-studio:provenance"
XMP_KEY = "XML:com.adobe.xmp"
SIDECAR = ".provenance.json"


class Format(Protocol):
    name: str
    content: str

    def content_hash(self, path: Path) -> str: ...

    def embed(self, path: Path, prov: Provenance) -> None: ...

    def extract(self, path: Path) -> Provenance | None: ...


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(struct.pack("<Q", len(p)))
        h.update(p)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# PNG
# ----------------------------------------------------------------------------------------------
PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, data)`` of every chunk; ValueError for a file that is not a PNG."""
    if not data.startswith(PNG_SIG):
        raise ValueError("not a PNG file")
    out, pos = [], len(PNG_SIG)
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if pos + 12 + n > len(data):
            raise ValueError("the PNG is cut short")
        out.append((kind, data[pos + 8:pos + 8 + n]))
        pos += 12 + n
        if kind == b"IEND":
            break
    return out


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(
        ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def itxt(keyword: str, text: str) -> bytes:
    """An uncompressed iTXt chunk's body (keyword, flags, no language, UTF-8 text)."""
    return keyword.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")


def _itxt_of(body: bytes) -> tuple[str, str] | None:
    """(keyword, text) of an iTXt chunk body (compressed or not); None when malformed."""
    try:
        key, rest = body.split(b"\0", 1)
        flag, _method = rest[0], rest[1]
        _lang, rest = rest[2:].split(b"\0", 1)
        _tkey, text = rest.split(b"\0", 1)
        if flag:
            text = zlib.decompress(text)
        return key.decode("latin-1"), text.decode("utf-8")
    except (ValueError, IndexError, zlib.error, UnicodeDecodeError):
        return None


def _text_of(kind: bytes, body: bytes) -> tuple[str, str] | None:
    if kind == b"iTXt":
        return _itxt_of(body)
    try:
        key, rest = body.split(b"\0", 1)
        if kind == b"zTXt":
            rest = zlib.decompress(rest[1:])
        return key.decode("latin-1"), rest.decode("latin-1")
    except (ValueError, zlib.error):
        return None


def xmp_packet(prov: Provenance) -> str:
    """XMP with IPTC's digital source type, the creator tool, the date and a description."""
    from xml.sax.saxutils import escape, quoteattr

    desc = f"{prov.plugin} {prov.job}" + (f", model {prov.model}" if prov.model else "") + \
        (f", seed {prov.seed}" if prov.seed is not None else "")
    source = (f"\n    Iptc4xmpExt:DigitalSourceType={quoteattr(prov.iptc_uri)}"
              if prov.iptc_uri else "")
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"'
        f"{source}\n"
        f"    xmp:CreatorTool={quoteattr(f'{SOFTWARE} {prov.studio}')}\n"
        f"    xmp:CreateDate={quoteattr(prov.created)}>\n"
        "   <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">"
        f"{escape(f'Made with {SOFTWARE}: {desc}')}</rdf:li></rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>')


def xmp_source_type(xmp: str) -> str:
    """The IPTC digital source type URI in an XMP packet ("" when absent)."""
    import xml.etree.ElementTree as ET

    ns = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}DigitalSourceType"
    try:
        root = ET.fromstring(xmp[xmp.find("<x:xmpmeta"):xmp.rfind("</x:xmpmeta>") + 12])
    except ET.ParseError:
        return ""
    for el in root.iter():
        if ns in el.attrib:
            return el.attrib[ns]
        if el.tag == ns and el.text:
            return el.text.strip()
    return ""


def _image_hash(frames: list[Any]) -> str:
    parts = []
    for im in frames:
        if im.mode in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"):
            im = im.convert("RGBA")
        parts += [f"{im.mode}:{im.width}x{im.height}".encode(), im.tobytes()]
    return _sha(*parts)


@dataclass
class Png:
    name: str = "PNG"
    content: str = "pixels"

    def content_hash(self, path: Path) -> str:
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            return _image_hash([im])

    def embed(self, path: Path, prov: Provenance) -> None:
        chunks = png_chunks(path.read_bytes())
        kept = [(k, b) for k, b in chunks
                if not (k in (b"tEXt", b"zTXt", b"iTXt") and
                        (_text_of(k, b) or ("", ""))[0] in (KEY, XMP_KEY))]
        out, inserted = [PNG_SIG], False
        for kind, body in kept:
            if kind == b"IDAT" and not inserted:  # XMP readers look before the image data
                out += [_chunk(b"iTXt", itxt(XMP_KEY, xmp_packet(prov))),
                        _chunk(b"iTXt", itxt(KEY, prov.dumps()))]
                inserted = True
            out.append(_chunk(kind, body))
        if not inserted:
            raise ValueError("the PNG has no image data")
        atomic_write_bytes(path, b"".join(out))

    def texts(self, path: Path) -> dict[str, str]:
        out = {}
        for kind, body in png_chunks(path.read_bytes()):
            if kind in (b"tEXt", b"zTXt", b"iTXt"):
                kv = _text_of(kind, body)
                if kv is not None:
                    out[kv[0]] = kv[1]
        return out

    def extract(self, path: Path) -> Provenance | None:
        text = self.texts(path).get(KEY)
        return Provenance.loads(text) if text else None


# ----------------------------------------------------------------------------------------------
# GIF
# ----------------------------------------------------------------------------------------------
@dataclass
class Gif:
    name: str = "GIF"
    content: str = "frames"

    def content_hash(self, path: Path) -> str:
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            return _image_hash([f.copy() for f in ImageSequence.Iterator(im)])

    def embed(self, path: Path, prov: Provenance) -> None:
        data = path.read_bytes()
        if data[:6] not in (b"GIF87a", b"GIF89a"):
            raise ValueError("not a GIF file")
        flags = data[10]
        start = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
        body = self._strip(data[start:])
        text = (KEY + " " + prov.dumps()).encode("ascii")
        blocks = b"".join(bytes([len(text[i:i + 255])]) + text[i:i + 255]
                          for i in range(0, len(text), 255))
        atomic_write_bytes(path, b"GIF89a" + data[6:start] + b"\x21\xfe" + blocks + b"\0" + body)

    @staticmethod
    def _strip(body: bytes) -> bytes:
        """Drop comment extensions holding a manifest before the first image."""
        pos = 0
        while pos + 2 <= len(body) and body[pos] == 0x21:
            end = pos + 2
            while end < len(body) and body[end]:
                end += body[end] + 1
            end += 1
            if body[pos + 1] == 0xFE and KEY.encode() in body[pos:end]:
                return body[:pos] + Gif._strip(body[end:])
            pos = end
        return body

    def extract(self, path: Path) -> Provenance | None:
        from PIL import Image

        with Image.open(path) as im:
            comment = im.info.get("comment", b"")
        text = comment.decode("latin-1") if isinstance(comment, bytes) else str(comment)
        if not text.startswith(KEY):
            return None
        return Provenance.loads(text[len(KEY):].strip())


# ----------------------------------------------------------------------------------------------
# MIDI
# ----------------------------------------------------------------------------------------------
@dataclass
class Midi:
    name: str = "MIDI"
    content: str = "notes"

    @staticmethod
    def _ours(msg: Any) -> bool:
        return msg.is_meta and msg.type == "text" and str(msg.text).startswith(KEY)

    def content_hash(self, path: Path) -> str:
        import mido

        mid = mido.MidiFile(str(path))
        parts = [f"{mid.type}:{mid.ticks_per_beat}".encode()]
        for track in mid.tracks:
            carry, events = 0, []
            for msg in track:
                if self._ours(msg):
                    carry += msg.time  # an edited delta moves to the next event
                    continue
                if msg.type == "end_of_track":
                    events.append(f"{msg.time + carry}:eot")
                else:
                    events.append(f"{msg.time + carry}:{bytes(msg.bytes()).hex()}")
                carry = 0
            parts.append("\n".join(events).encode())
        return _sha(*parts)

    def embed(self, path: Path, prov: Provenance) -> None:
        import mido

        mid = mido.MidiFile(str(path))
        if not mid.tracks:
            mid.tracks.append(mido.MidiTrack())
        for track in mid.tracks:
            for i in [i for i, m in enumerate(track) if self._ours(m)][::-1]:
                if i + 1 < len(track):
                    track[i + 1].time += track[i].time
                del track[i]
        mid.tracks[0].insert(0, mido.MetaMessage("text", text=f"{KEY} {prov.dumps()}", time=0))
        from studio.storage import atomic_path

        with atomic_path(path, suffix=path.suffix) as tmp:
            mid.save(str(tmp))

    def extract(self, path: Path) -> Provenance | None:
        import mido

        mid = mido.MidiFile(str(path))
        for track in mid.tracks:
            for msg in track:
                if self._ours(msg):
                    return Provenance.loads(str(msg.text)[len(KEY):].strip())
        return None


# ----------------------------------------------------------------------------------------------
# WAV (RIFF)
# ----------------------------------------------------------------------------------------------
def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    out, pos = [], 12
    while pos + 8 <= len(data):
        cid, n = struct.unpack("<4sI", data[pos:pos + 8])
        out.append((cid, data[pos + 8:pos + 8 + n]))
        pos += 8 + n + (n & 1)
    return out


def _riff(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def info_fields(body: bytes) -> list[tuple[bytes, bytes]]:
    """The sub-chunks of a ``LIST`` chunk's body of type ``INFO``."""
    out, pos = [], 4
    while pos + 8 <= len(body):
        cid, n = struct.unpack("<4sI", body[pos:pos + 8])
        out.append((cid, body[pos + 8:pos + 8 + n]))
        pos += 8 + n + (n & 1)
    return out


@dataclass
class Wav:
    name: str = "WAV"
    content: str = "audio samples"

    def content_hash(self, path: Path) -> str:
        chunks = dict(riff_chunks(path.read_bytes()))
        if b"data" not in chunks:
            raise ValueError("the WAV file has no audio data")
        return _sha(chunks.get(b"fmt ", b""), chunks[b"data"])

    def embed(self, path: Path, prov: Provenance) -> None:
        chunks = riff_chunks(path.read_bytes())
        fields_: list[tuple[bytes, bytes]] = []
        kept = []
        for cid, body in chunks:
            if cid == b"LIST" and body[:4] == b"INFO":
                fields_ += [(k, v) for k, v in info_fields(body) if k not in (b"ICMT", b"ISFT")]
            else:
                kept.append((cid, body))
        fields_ += [(b"ISFT", f"{SOFTWARE} {prov.studio}".encode("ascii") + b"\0"),
                    (b"ICMT", f"{KEY} {prov.dumps()}".encode("ascii") + b"\0")]
        info = _riff(b"LIST", b"INFO" + b"".join(_riff(k, v) for k, v in fields_))
        body = b"WAVE" + b"".join(_riff(c, b) for c, b in kept) + info
        atomic_write_bytes(path, b"RIFF" + struct.pack("<I", len(body)) + body)

    def extract(self, path: Path) -> Provenance | None:
        for cid, body in riff_chunks(path.read_bytes()):
            if cid == b"LIST" and body[:4] == b"INFO":
                for k, v in info_fields(body):
                    text = v.rstrip(b"\0").decode("latin-1")
                    if k == b"ICMT" and text.startswith(KEY):
                        return Provenance.loads(text[len(KEY):].strip())
        return None


# ----------------------------------------------------------------------------------------------
# Tiled JSON
# ----------------------------------------------------------------------------------------------
PROPERTY = "provenance"


@dataclass
class Tiled:
    name: str = "Tiled map"
    content: str = "tiles"

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
        if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
            raise ValueError("not a Tiled map (no layers)")
        return doc

    def content_hash(self, path: Path) -> str:
        doc = self._read(path)
        layers = [{"name": ly.get("name"), "width": ly.get("width"),
                   "height": ly.get("height"), "data": ly.get("data")}
                  for ly in doc["layers"] if isinstance(ly, dict) and ly.get("type") == "tilelayer"]
        return _sha(json.dumps({"width": doc.get("width"), "height": doc.get("height"),
                                "layers": layers}, sort_keys=True).encode())

    def embed(self, path: Path, prov: Provenance) -> None:
        raw = path.read_text(encoding="utf-8-sig")
        doc = self._read(path)
        props = doc.get("properties")
        props = [p for p in props if not (isinstance(p, dict) and p.get("name") == PROPERTY)] \
            if isinstance(props, list) else []
        props.append({"name": PROPERTY, "type": "string", "value": prov.dumps()})
        doc["properties"] = props
        indent = 1 if raw.lstrip().startswith("{\n") else None
        atomic_write_text(path, json.dumps(doc, indent=indent, ensure_ascii=False) + "\n")

    def extract(self, path: Path) -> Provenance | None:
        props = self._read(path).get("properties")
        if isinstance(props, dict):  # Tiled < 1.2 wrote properties as an object
            value = props.get(PROPERTY)
        else:
            value = next((p.get("value") for p in props or []
                          if isinstance(p, dict) and p.get("name") == PROPERTY), None)
        return Provenance.loads(value) if isinstance(value, str) else None


@dataclass
class TiledXml:
    """A Tiled XML map (.tmx): the manifest is the map's ``provenance`` property, as in JSON."""

    name: str = "Tiled map"
    content: str = "tiles"

    @staticmethod
    def _root(path: Path) -> Any:
        import xml.etree.ElementTree as ET

        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:  # a SyntaxError: callers catch ValueError
            raise ValueError(f"not valid XML ({exc})") from None
        if root.tag != "map":
            raise ValueError("not a Tiled map (no <map>)")
        return root

    def content_hash(self, path: Path) -> str:
        layers = []
        for ly in self._root(path).iter("layer"):
            data = ly.find("data")
            text = "".join((data.text or "").split()) if data is not None else ""
            if data is not None and (data.get("encoding") or "") in ("", "csv") and text:
                tiles: Any = [int(v) for v in text.split(",") if v]
            elif data is not None and not text:
                tiles = [int(t.get("gid", 0)) for t in data.iter("tile")]
            else:
                tiles = text
            layers.append({"name": ly.get("name"), "width": int(ly.get("width", 0)),
                           "height": int(ly.get("height", 0)), "data": tiles})
        root = self._root(path)
        return _sha(json.dumps({"width": int(root.get("width", 0)),
                                "height": int(root.get("height", 0)),
                                "layers": layers}, sort_keys=True).encode())

    def embed(self, path: Path, prov: Provenance) -> None:
        import xml.etree.ElementTree as ET

        root = self._root(path)
        props = root.find("properties")
        if props is None:  # Tiled writes a map's properties before its tilesets and layers
            props = ET.Element("properties")
            root.insert(0, props)
        for p in [p for p in props.findall("property") if p.get("name") == PROPERTY]:
            props.remove(p)
        ET.SubElement(props, "property", {"name": PROPERTY, "value": prov.dumps()})
        ET.indent(root, space=" ")
        atomic_write_text(path, '<?xml version="1.0" encoding="UTF-8"?>\n'
                          + ET.tostring(root, "unicode") + "\n")

    def extract(self, path: Path) -> Provenance | None:
        for p in self._root(path).findall("properties/property"):
            if p.get("name") == PROPERTY:
                value = p.get("value", p.text)
                return Provenance.loads(value) if value else None
        return None


# ----------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------
def _norm(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip()


MD_OPEN = f"<!-- {KEY}"


@dataclass
class Markdown:
    name: str = "Markdown"
    content: str = "text"

    @staticmethod
    def _split(raw: str) -> tuple[str, str | None]:
        at = raw.rfind(MD_OPEN)
        if at < 0 or "-->" not in raw[at:]:
            return raw, None
        block = raw[at + len(MD_OPEN):raw.index("-->", at)].strip()
        return raw[:at], block

    def content_hash(self, path: Path) -> str:
        body, _ = self._split(path.read_text(encoding="utf-8"))
        return _sha(_norm(body).encode("utf-8"))

    def embed(self, path: Path, prov: Provenance) -> None:
        body, _ = self._split(path.read_text(encoding="utf-8"))
        body = body.rstrip("\n")
        atomic_write_text(path, f"{body}\n\n{MD_OPEN} {prov.dumps()} -->\n")

    def extract(self, path: Path) -> Provenance | None:
        _, block = self._split(path.read_text(encoding="utf-8"))
        return Provenance.loads(block) if block else None


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


@dataclass
class PlainText:
    name: str = "text"
    content: str = "text"

    def content_hash(self, path: Path) -> str:
        return _sha(_norm(path.read_text(encoding="utf-8")).encode("utf-8"))

    def embed(self, path: Path, prov: Provenance) -> None:
        atomic_write_text(sidecar(path), json.dumps(
            {"file": path.name, **prov.to_json()}, indent=1, sort_keys=True) + "\n")

    def extract(self, path: Path) -> Provenance | None:
        side = sidecar(path)
        if not side.exists():
            return None
        data = json.loads(side.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            return None
        return Provenance.from_json(data)


_BY_SUFFIX: dict[str, Format] = {
    ".png": Png(), ".gif": Gif(), ".mid": Midi(), ".midi": Midi(), ".wav": Wav(),
    ".tmj": Tiled(), ".tmx": TiledXml(), ".md": Markdown(), ".markdown": Markdown(),
    ".txt": PlainText(), ".csv": PlainText(), ".ldtk": PlainText(),
}


def supports(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    if p.name.endswith(SIDECAR):
        return False
    if p.suffix.lower() == ".json":
        return _is_tiled_json(p)
    return p.suffix.lower() in _BY_SUFFIX


def _is_tiled_json(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8-sig")[:4096]
    except (OSError, UnicodeDecodeError):
        return False
    return '"layers"' in head and '"tilesets"' in head


def format_of(path: str | os.PathLike[str]) -> Format:
    p = Path(path)
    if p.suffix.lower() == ".json" and _is_tiled_json(p):
        return Tiled()
    try:
        return _BY_SUFFIX[p.suffix.lower()]
    except KeyError:
        raise ValueError(f"{p.name}: no provenance for {p.suffix or 'files without an extension'}"
                         ) from None
