"""Pictures of levels: a generated colour tileset, or tiles cut from the user's tileset image.

Both go through one numpy gather (``tiles[index_grid]``), so a 200x14 level renders in well under
a millisecond and the PNG export, the Tiled tileset image and the editor share the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.errors import UserError

from .level import Legend, Level

_GLYPH_CACHE: dict[tuple[str, int], np.ndarray] = {}


def _glyph(char: str, size: int) -> np.ndarray:
    """A ``(size, size)`` float alpha mask of ``char`` (Pillow's built-in font, no files)."""
    key = (char, size)
    if key not in _GLYPH_CACHE:
        from PIL import Image, ImageDraw, ImageFont

        img = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(img)
        try:
            font = ImageFont.load_default(size=max(8, int(size * 0.7)))
        except TypeError:  # very old Pillow: fixed-size bitmap font
            font = ImageFont.load_default()
        box = draw.textbbox((0, 0), char, font=font)
        w, h = box[2] - box[0], box[3] - box[1]
        draw.text(((size - w) / 2 - box[0], (size - h) / 2 - box[1]), char, fill=255, font=font)
        _GLYPH_CACHE[key] = np.asarray(img, dtype=np.float32) / 255.0
    return _GLYPH_CACHE[key]


def colour_tiles(legend: Legend, size: int = 16, glyphs: bool = True) -> np.ndarray:
    """``(N, size, size, 3)`` uint8: one flat tile per legend entry, bevelled, with its character
    drawn on top so two tiles of similar colour stay tellable apart."""
    n = len(legend)
    tiles = np.zeros((n, size, size, 3), dtype=np.uint8)
    for i, c in enumerate(legend.chars):
        rgb = np.array(legend.color(c), dtype=np.float32)
        tile = np.empty((size, size, 3), dtype=np.float32)
        tile[:] = rgb
        if size >= 6:
            tile[0, :] = np.minimum(rgb * 1.18 + 10, 255)
            tile[:, 0] = np.minimum(rgb * 1.18 + 10, 255)
            tile[-1, :] = rgb * 0.7
            tile[:, -1] = rgb * 0.7
        if glyphs and size >= 10 and not legend[c].has("empty", "floor", "void", "wall",
                                                                     "sky"):
            lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
            ink = np.array((20, 20, 20) if lum > 140 else (245, 245, 245), dtype=np.float32)
            a = _glyph(c, size)[..., None] * 0.85
            tile = tile * (1 - a) + ink * a
        tiles[i] = np.clip(tile, 0, 255).astype(np.uint8)
    return tiles


@dataclass
class TilesetImage:
    """Tiles cut from an image, Tiled-style: the n-th legend tile is the n-th tile of the image
    (left to right, top to bottom), unless ``order`` maps legend characters to tile ids."""

    path: Path
    tile_w: int
    tile_h: int
    margin: int = 0
    spacing: int = 0
    order: dict[str, int] | None = None

    def load(self) -> np.ndarray:
        """``(count, tile_h, tile_w, 3)`` uint8 (transparent pixels over white)."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.path) as im:
                rgba = im.convert("RGBA")
        except FileNotFoundError:
            raise UserError(f"tileset image {self.path} does not exist") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"tileset image {self.path.name} cannot be read ({exc})") from None
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        arr = np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
        if self.tile_w < 1 or self.tile_h < 1:
            raise UserError("tile width and height must be at least 1 pixel")
        cols = (arr.shape[1] - 2 * self.margin + self.spacing) // (self.tile_w + self.spacing)
        rows = (arr.shape[0] - 2 * self.margin + self.spacing) // (self.tile_h + self.spacing)
        if cols < 1 or rows < 1:
            raise UserError(f"tileset image {self.path.name} ({arr.shape[1]}x{arr.shape[0]} px) "
                            f"is smaller than one {self.tile_w}x{self.tile_h} tile")
        out = np.empty((rows * cols, self.tile_h, self.tile_w, 3), dtype=np.uint8)
        for r in range(rows):
            for c in range(cols):
                y = self.margin + r * (self.tile_h + self.spacing)
                x = self.margin + c * (self.tile_w + self.spacing)
                out[r * cols + c] = arr[y:y + self.tile_h, x:x + self.tile_w]
        return out

    def tiles_for(self, legend: Legend) -> np.ndarray:
        """Legend-ordered tiles; legend tiles the image lacks fall back to colour tiles."""
        sheet = self.load()
        fallback = colour_tiles(legend, max(self.tile_w, self.tile_h))
        out = np.empty((len(legend), self.tile_h, self.tile_w, 3), dtype=np.uint8)
        for i, c in enumerate(legend.chars):
            k = self.order.get(c, -1) if self.order is not None else i
            if 0 <= k < len(sheet):
                out[i] = sheet[k]
            else:
                out[i] = fallback[i][:self.tile_h, :self.tile_w]
        return out


def render(level: Level, tile: int = 8, tiles: np.ndarray | None = None) -> np.ndarray:
    """The level as an ``(H*th, W*tw, 3)`` uint8 picture."""
    if tiles is None:
        tiles = colour_tiles(level.legend, tile, glyphs=tile >= 10)
    idx = level.legend.index_lut()[level.grid]
    unknown = idx < 0
    idx = np.where(unknown, 0, idx)
    th, tw = tiles.shape[1], tiles.shape[2]
    img = tiles[idx]  # (H, W, th, tw, 3)
    if unknown.any():
        img[unknown] = (255, 0, 255)
    return img.transpose(0, 2, 1, 3, 4).reshape(level.height * th, level.width * tw, 3)


def draw_path(img: np.ndarray, path: list[tuple[int, int]], tw: int, th: int,
              colour: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Mark the agent's cells with a small centred square (in place; returns ``img``)."""
    r = max(1, min(tw, th) // 4)
    for x, y in path:
        cx, cy = x * tw + tw // 2, y * th + th // 2
        img[max(0, cy - r):cy + r, max(0, cx - r):cx + r] = colour
    return img


def tileset_sheet(tiles: np.ndarray, columns: int) -> np.ndarray:
    """Tiles laid out as a sheet image (``columns`` wide), for Tiled's tileset image."""
    n, th, tw, _ = tiles.shape
    rows = (n + columns - 1) // columns
    sheet = np.zeros((rows * th, columns * tw, 3), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        sheet[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = tiles[i]
    return sheet
