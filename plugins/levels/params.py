"""The levels jobs' parameters: one dataclass per job, the one place each setting is declared.

From these declarations come the command line (flags, ``--help``, range checks), the editor's
widgets (``studio.widgets.form.Form``), the values the editor remembers and what a run records.
A value typed into the editor is this object's field; the job hands it to the engine by name
(:meth:`GenerateParams.settings`, :meth:`TrainParams.config`), never through a dict.

In-memory values are fields of their real type: the level being edited (``base``), the example
WFC learns from, the levels a check measures (:class:`Level`), the pinned tiles (:class:`Pins`)
and the region (four whole numbers). The editor passes the objects; the command line gives files
that the codecs read (``--base level.txt``, ``--pins pins.json`` or ``--pins x,y,C;x,y,C``) and
``--region x0,y0,x1,y1``.

Light on purpose: no torch, no Qt (the editor and the command line import it at start-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from studio.errors import UserError
from studio.params import Choices, Codec, Group, Help, Label, Range, Special, Unit, Widget

from .engine import generate as gen
from .engine.config import TrainConfig
from .engine.files import FORMATS
from .engine.level import Level
from .engine.pins import Pins

SEED_MAX = 2**31 - 1
LEVEL_FILES = "Levels (*.txt *.tmj *.tmx *.json);;All files (*)"

LEVEL = Codec("plugins.levels.engine.files:read_level_file",
              what="a level file: VGLC .txt or Tiled .tmj/.tmx",
              describe="plugins.levels.engine.files:describe_level")
LEVELS = Codec("plugins.levels.engine.files:read_level_files",
               what="a level file (VGLC .txt or Tiled .tmj/.tmx) or a folder of them",
               describe="plugins.levels.engine.files:describe_levels")
PINS = Codec("plugins.levels.engine.pins:read_pins",
             what='a JSON file {"pins": [[x, y, "C"], ...]}, or the pins written out: x,y,C;x,y,C',
             describe="plugins.levels.engine.pins:describe_pins", inline=True)

Method = Literal["wfc", "dungeon", "caves", "terrain", "lsystem"]
Mode = Literal["auto", "platformer", "ladder", "topdown"]
Tileset = Literal["embedded", "external"]
Direction = Literal["auto", "right", "up"]

METHOD_CHOICES = Choices(wfc="WFC (learn from an example)", dungeon="BSP dungeon",
                         caves="Cellular-automata caves", terrain="Noise terrain with biomes",
                         lsystem="L-system trails or plants")
MODE_CHOICES = Choices(auto="automatic (from the tiles)", platformer="platformer (jumps)",
                       ladder="ladders (Lode Runner)", topdown="top-down (walking)")
DIRECTION_CHOICES = Choices(auto="automatic", right="left to right",
                            up="bottom to top (climbing)")
TILESET_CHOICES = Choices(embedded="inside the map", external="beside it (.tsj)")
#: the heading each method's own settings are grouped under
METHOD_GROUPS: dict[str, str] = {"wfc": "Wave function collapse", "dungeon": "Dungeon",
                                 "caves": "Caves", "terrain": "Terrain", "lsystem": "L-system"}
_SEED = (Range(0, SEED_MAX), Widget("seed"))


def _formats(formats: list[str], flag: str = "--formats") -> list[str]:
    out = [f.strip().lower().lstrip(".") for f in formats if f.strip()]
    bad = [f for f in out if f not in FORMATS]
    if bad:
        raise UserError(f"{flag}: unknown {bad[0]!r} (choose from {', '.join(FORMATS)})")
    if not out:
        raise UserError(f"{flag}: name at least one of {', '.join(FORMATS)}")
    return out


# ----------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class GenerateParams:
    """Generate levels with a classic method (deterministic per seed)."""

    method: Annotated[Method, METHOD_CHOICES, Label("Method"),
                      Help("wfc learns from an example map; dungeon (BSP rooms), caves (cellular "
                           "automata), terrain (noise heightmap with biomes) and lsystem "
                           "(trails or plants) need none")] = "wfc"
    example: Annotated[Level | None, LEVEL, Label("Example"),
                       Help("the example map WFC learns its patterns from")] = None
    width: Annotated[int, Range(0, 2048), Special("auto"), Unit(" tiles"), Label("Width"),
                     Help("map width in tiles (auto: the example's width, or the method's "
                          "default)")] = 0
    height: Annotated[int, Range(0, 2048), Special("auto"), Unit(" tiles"), Label("Height"),
                      Help("map height in tiles (auto: the example's height, or the method's "
                           "default)")] = 0
    seed: Annotated[int, *_SEED, Label("Seed"),
                    Help("the same seed and settings give the same level")] = 0
    count: Annotated[int, Range(1, 10_000), Label("Levels"),
                     Help("how many levels, with seeds seed, seed+1, ...")] = 1
    legend: Annotated[Path | None, Widget("file", "Legend (*.json);;All files (*)"),
                      Label("Legend"),
                      Help("legend JSON for a VGLC level that has none beside it")] = None

    # -- each method's settings ------------------------------------------------------------------
    pattern: Annotated[int, Range(2, 5), Group(METHOD_GROUPS["wfc"]), Label("Pattern size N"),
                       Help("WFC learns every N x N window of the example")] = 3
    symmetry: Annotated[Literal[1, 2, 8], Group(METHOD_GROUPS["wfc"]), Label("Symmetry"),
                        Choices({1: "as is", 2: "and mirrored", 8: "and rotated"}),
                        Help("pattern variants: 1 (as is), 2 (mirrored too), 8 (rotations, "
                             "top-down)")] = 1
    anchor: Annotated[Literal["auto", "rows", "edges", "none"], Group(METHOD_GROUPS["wfc"]),
                      Label("Row anchoring"),
                      Choices(auto="automatic", rows="every row", edges="top and bottom",
                              none="none"),
                      Help("auto keeps ground at the bottom for side-view examples")] = "auto"
    min_room: Annotated[int, Range(2, 30), Group(METHOD_GROUPS["dungeon"]),
                        Label("Smallest room"), Unit(" tiles"),
                        Help("dungeon: smallest room side")] = 4
    max_room: Annotated[int, Range(2, 60), Group(METHOD_GROUPS["dungeon"]),
                        Label("Largest room"), Unit(" tiles"),
                        Help("dungeon: largest room side")] = 12
    depth: Annotated[int, Range(1, 10), Group(METHOD_GROUPS["dungeon"]), Label("Split depth"),
                     Help("dungeon: how many times the map is split (more: more rooms)")] = 5
    fill: Annotated[float, Range(0.01, 0.99, 0.01), Group(METHOD_GROUPS["caves"]),
                    Label("Rock fill"), Help("caves: initial rock fraction")] = 0.45
    steps: Annotated[int, Range(0, 50), Group(METHOD_GROUPS["caves"]), Label("Smoothing steps"),
                     Help("caves: rounds of the cellular automaton")] = 5
    scale: Annotated[float, Range(2, 256, 1), Group(METHOD_GROUPS["terrain"]),
                     Label("Feature size"), Unit(" tiles"),
                     Help("terrain: size of hills and lakes in tiles")] = 24.0
    octaves: Annotated[int, Range(1, 8), Group(METHOD_GROUPS["terrain"]), Label("Octaves"),
                       Help("terrain: layers of noise (more: rougher detail)")] = 4
    sea_level: Annotated[float, Range(0.0, 0.9, 0.01), Group(METHOD_GROUPS["terrain"]),
                         Label("Sea level"),
                         Help("terrain: elevation below which is water (0-1)")] = 0.35
    island: Annotated[bool, Group(METHOD_GROUPS["terrain"]),
                      Label("Island (water at the edges)"),
                      Help("terrain falls off to water at the map edges")] = True
    preset: Annotated[Literal["trails", "plants"], Group(METHOD_GROUPS["lsystem"]),
                      Label("Preset"),
                      Choices(trails="trails (top-down)", plants="plants (side view)"),
                      Help("trails (top-down paths) or plants (side-view vegetation)")] = "trails"
    iterations: Annotated[int, Range(0, 7), Special("the preset's"),
                          Group(METHOD_GROUPS["lsystem"]), Label("Iterations"),
                          Help("L-system rewriting iterations (0: the preset's)")] = 0

    # -- editing an existing level ---------------------------------------------------------------
    base: Annotated[Level | None, LEVEL, Group("Edit a level"), Label("Level to edit"),
                    Help("regenerate a region of this level instead of making a new one")] = None
    region: Annotated[tuple[int, int, int, int] | None, Widget("hidden"), Group("Edit a level"),
                      Label("Region"),
                      Help("the region of --base to regenerate, x0,y0,x1,y1 (x1, y1 "
                           "exclusive)")] = None
    pins: Annotated[Pins | None, PINS, Group("Edit a level"), Label("Pinned tiles"),
                    Help("tiles that must appear")] = None

    # -- output ----------------------------------------------------------------------------------
    out: Annotated[Path | None, Widget("folder"), Group("Output"), Label("Output folder"),
                   Special("a new folder in the workspace"),
                   Help("folder for the .tmj, .txt and .png files (default: a new folder in "
                        "the workspace)")] = None
    formats: Annotated[list[str], Group("Output"), Label("Formats"),
                       Help("files to write, comma separated: tmj, tmx, txt, png, csv, ldtk "
                            "(one LDtk project holds every level)")] = \
        field(default_factory=lambda: ["tmj", "txt", "png"])
    tileset: Annotated[Tileset, TILESET_CHOICES, Group("Output"), Label("Tiled tileset"),
                       Help("Tiled tileset embedded in the map or external (.tsj or .tsx "
                            "beside it)")
                       ] = "embedded"
    tile: Annotated[int, Range(1, 256), Unit(" px"), Group("Output"), Label("Tile size"),
                    Help("tile size in pixels for the PNG and the Tiled tileset")] = 16
    check: Annotated[bool, Group("Output"), Label("Check playability"),
                     Help("run the playability agent on each level (the path goes into the "
                          ".tmj)")] = True
    save: Annotated[bool, Widget("hidden"), Group("Output"), Label("Save files"),
                    Help("write files (the editor previews without saving)")] = True

    def settings(self) -> gen.MethodSettings:
        """This method's settings, as the engine takes them."""
        if self.method == "wfc":
            return gen.WfcSettings(pattern=self.pattern, symmetry=self.symmetry,
                                   anchor=self.anchor)
        if self.method == "dungeon":
            return gen.DungeonSettings(min_room=self.min_room, max_room=self.max_room,
                                       depth=self.depth)
        if self.method == "caves":
            return gen.CaveSettings(fill=self.fill, steps=self.steps)
        if self.method == "terrain":
            return gen.TerrainSettings(scale=self.scale, octaves=self.octaves,
                                       sea_level=self.sea_level, island=self.island)
        return gen.LsystemSettings(preset=self.preset, iterations=self.iterations or None)

    def rules(self) -> None:
        """A region must be four numbers of a level being edited, and the formats must be
        known ones."""
        if self.region is not None and len(self.region) != 4:
            raise UserError("--region must be four whole numbers x0,y0,x1,y1, not "
                            f"{','.join(map(str, self.region))!r}")
        if self.region is not None and self.base is None:
            raise UserError("--region needs --base: the level whose region to regenerate")
        self.formats = _formats(list(self.formats))


# ----------------------------------------------------------------------------------------------
# check, repair, export, info
# ----------------------------------------------------------------------------------------------
_LEGEND = (Widget("file", "Legend (*.json);;All files (*)"), Label("Legend"),
           Help("the legend JSON (default: found beside a .txt level, stored in a .tmj)"))
_MODE_HELP = Help("which agent: platformer (A* with jumps), ladder (Lode Runner), topdown "
                  "(flood fill), or auto (from the legend)")


@dataclass(kw_only=True)
class CheckParams:
    """Check playability and measure a level (or every level in a folder); prints JSON."""

    level: Annotated[list[Level], LEVELS, Label("Level"), Help("the levels to check")]
    legend: Annotated[Path | None, *_LEGEND] = None
    mode: Annotated[Mode, MODE_CHOICES, Label("Agent"), _MODE_HELP] = "auto"
    data: Annotated[Path | None, Widget("folder"), Label("Compare with"),
                    Special("no comparison"),
                    Help("training levels (file or folder) to measure tile-distribution "
                         "distance and novelty against")] = None
    direction: Annotated[Direction, DIRECTION_CHOICES, Label("Direction"),
                         Help("platformers: played left to right, or climbed from the bottom "
                              "to the top (auto: the legend's, the game's profile, or the "
                              "level's shape)")] = "auto"
    jump: Annotated[int | None, Range(1, 16), Unit(" tiles"), Special("the game's"),
                    Label("Jump height"),
                    Help("platformer jump height in tiles (default: the legend's, the game's "
                         "profile, or the calibration)")] = None
    run: Annotated[int | None, Range(1, 6), Unit(" tiles"), Special("the game's"),
                   Label("Run in the air"),
                   Help("platformer: tiles moved sideways per tile of flight (default: the "
                        "legend's, the game's profile, or the calibration)")] = None
    calibrate: Annotated[Path | None, Widget("folder"), Label("Calibrate on"),
                         Special("no calibration"),
                         Help("the game's real levels (file or folder): judge with the "
                              "smallest limits under which all of them pass")] = None
    repair: Annotated[bool, Label("Repair unplayable levels"),
                      Help("also repair unplayable levels with the fewest tile changes")] = False
    out: Annotated[Path | None, Widget("folder"), Label("Repaired levels folder"),
                   Special("beside each level"),
                   Help("with --repair, where repaired levels go (a folder; default beside the "
                        "input)")] = None
    json: Annotated[bool, Widget("hidden"), Label("JSON for scripts"),
                    Help("print the report as JSON with true/false values (scripts, CI); "
                         "without it \"playable\" reads yes or no")] = False


@dataclass(kw_only=True)
class RepairParams:
    """Make an unplayable level playable with the fewest tile changes."""

    level: Annotated[Level, LEVEL, Label("Level"), Help("the level to repair")]
    out: Annotated[Path | None, Widget("save", LEVEL_FILES), Label("Save as"),
                   Help("the repaired level's file (.tmj, .tmx, .ldtk, .txt, .png or .csv) or a "
                        "folder")
                   ] = None
    legend: Annotated[Path | None, *_LEGEND] = None
    mode: Annotated[Mode, MODE_CHOICES, Label("Agent"),
                    Help("agent to satisfy (auto: from the legend)")] = "auto"
    save: Annotated[bool, Widget("hidden"), Label("Save the file"),
                    Help("write --out (the editor takes the repaired level without a file)")
                    ] = True

    def rules(self) -> None:
        if self.save and self.out is None:
            raise UserError("--out is required: the repaired level's file or folder")


@dataclass(kw_only=True)
class ExportParams:
    """Convert a level to another format: .tmj or .tmx (Tiled), .ldtk (LDtk), .txt (VGLC),
    .png or .csv."""

    level: Annotated[Level, LEVEL, Label("Level"), Help("the level to export")]
    to: Annotated[Path, Widget("save", "Tiled map (*.tmj);;Tiled XML map (*.tmx);;LDtk project "
                               "(*.ldtk);;VGLC text (*.txt);;PNG picture (*.png);;"
                               "CSV tile indices (*.csv)"), Label("Export to"),
                  Help("the file to write; its extension picks the format")]
    legend: Annotated[Path | None, *_LEGEND] = None
    tileset: Annotated[Tileset, TILESET_CHOICES, Label("Tiled tileset"),
                       Help("Tiled tileset embedded in the map or external (.tsj or .tsx)")
                       ] = "embedded"
    tile: Annotated[int, Range(1, 256), Unit(" px"), Label("Tile size"),
                    Help("tile size in pixels of the generated colour tileset")] = 16
    tileset_image: Annotated[Path | None, Widget("file", "Images (*.png *.bmp *.gif *.jpg)"),
                             Label("Tileset image"), Special("colour tiles"),
                             Help("draw with tiles cut from this image (legend order) instead "
                                  "of colours")] = None
    tile_width: Annotated[int, Range(1, 1024), Unit(" px"), Label("Tile width"),
                          Help("width of one tile in --tileset-image")] = 16
    tile_height: Annotated[int, Range(1, 1024), Unit(" px"), Label("Tile height"),
                           Help("height of one tile in --tileset-image")] = 16
    margin: Annotated[int, Range(0, 1024), Unit(" px"), Label("Margin"),
                      Help("pixels around the tiles in --tileset-image")] = 0
    spacing: Annotated[int, Range(0, 1024), Unit(" px"), Label("Spacing"),
                       Help("pixels between tiles in --tileset-image")] = 0
    path: Annotated[bool, Label("Include the agent's path"),
                    Help("draw (PNG) or store (Tiled) the playability agent's path")] = False


@dataclass(kw_only=True)
class InfoParams:
    """Open a level and describe it (the editor opens files through this job)."""

    level: Annotated[Level, LEVEL, Label("Level"), Help("the level file")]
    legend: Annotated[Path | None, *_LEGEND] = None


# ----------------------------------------------------------------------------------------------
# train, sample
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class TrainParams:
    """Train a GAN or a VAE on level segments, with live loss and quality plots."""

    data: Annotated[Path | None, Widget("folder"), Label("Training levels"),
                    Special("Resume: the run's own levels"),
                    Help("folder of training levels (VGLC .txt with their legend, or Tiled "
                         ".tmj), or one level file; a resumed run finds its own")] = None
    model: Annotated[Literal["gan", "vae"], Label("Model"),
                     Choices(gan="GAN (as MarioGAN)", vae="VAE"),
                     Help("gan (MarioGAN-style DCGAN) or vae")] = "gan"
    steps: Annotated[int, Range(1, 1_000_000), Label("Training steps"),
                     Help("training steps (one critic and one generator update each)")] = 3000
    legend: Annotated[Path | None, Widget("file", "Legend (*.json);;All files (*)"),
                      Label("Legend"), Help("legend JSON when the data folder has none")] = None
    batch: Annotated[int, Range(2, 4096), Label("Batch size"), Group("Model"),
                     Help("windows per step")] = 64
    width: Annotated[int, Range(8, 256), Unit(" tiles"), Label("Segment width"),
                     Help("segment width in tiles")] = 28
    height: Annotated[int, Range(0, 256), Unit(" tiles"), Special("the levels' height"),
                      Label("Segment height"), Group("Model"),
                      Help("segment height in tiles (0: the levels' height, at most 32)")] = 0
    latent: Annotated[int, Range(1, 1024), Label("Latent size"), Group("Model"),
                      Help("latent dimensions")] = 32
    base: Annotated[int, Range(1, 512), Label("Network width"), Group("Model"),
                    Help("channel width of the networks (bigger learns more, slower)")] = 16
    lr: Annotated[float, Range(1e-5, 1.0, 1e-5), Label("Learning rate"), Group("Model"),
                  Help("learning rate")] = 2e-4
    beta: Annotated[float, Range(0.0, 100.0, 0.1), Label("KL weight (VAE)"), Group("Model"),
                    Help("VAE weight of the KL term")] = 1.0
    seed: Annotated[int, *_SEED, Label("Seed"), Help("random seed (weights, batches)")] = 0
    holdout: Annotated[float, Range(0.0, 0.9, 0.05), Special("none"), Label("Held-out levels"),
                       Group("Evaluation"),
                       Help("fraction of the levels kept out of training (their tile mix is "
                            "compared with the samples'); 0 trains on every level")] = 0.0
    eval_every: Annotated[int, Range(1, 1_000_000), Unit(" steps"), Label("Evaluate every"),
                          Group("Evaluation"),
                          Help("steps between quality measurements; the best-scoring snapshot "
                               "is the model")] = 250
    checkpoint_every: Annotated[int, Range(0, 1_000_000), Unit(" steps"),
                                Special("only when stopped and at the end"),
                                Label("Checkpoint every"), Group("Evaluation"),
                                Help("steps between resumable checkpoints (0: only on Stop "
                                     "and at the end)")] = 500
    resume: Annotated[bool, Label("Resume from its checkpoint"),
                      Help("continue the run in the run folder (--out) from its last "
                           "checkpoint")] = False

    def rules(self) -> None:
        if 0 < self.height < 4:
            raise UserError("--height must be 0 (the levels' height) or at least 4 tiles")
        if self.data is None and not self.resume:
            raise UserError("--data is required: the folder of training levels")

    def config(self) -> TrainConfig:
        """The engine's training configuration, field by field."""
        return TrainConfig(model=self.model, steps=self.steps, batch=self.batch, lr=self.lr,
                           latent=self.latent, width=self.width, height=self.height,
                           base=self.base, beta=self.beta, seed=self.seed,
                           eval_every=self.eval_every, checkpoint_every=self.checkpoint_every)


@dataclass(kw_only=True)
class SampleParams:
    """Sample levels from a trained model: segments stitched along the game's direction."""

    model: Annotated[Path, Widget("model", kinds=("level-model",)), Label("Model"),
                     Help("the run folder a train job wrote")]
    n: Annotated[int, Range(1, 10_000), Label("Levels"), Help("how many levels")] = 20
    seed: Annotated[int, *_SEED, Label("Seed"), Help("random seed")] = 0
    out: Annotated[Path | None, Widget("folder"), Label("Output folder"),
                   Special("a new folder in the workspace"),
                   Help("folder for the .tmj, .txt and .png files (default: a new workspace "
                        "folder)")] = None
    segments: Annotated[int, Range(1, 64), Label("Segments each"),
                        Help("segments per level (each as wide as the training window)")] = 4
    search: Annotated[bool, Label("Search for playable segments"),
                      Help("search the latent space (CMA-ES) for playable segments matching "
                           "the targets (slower)")] = False
    enemies: Annotated[float | None, Range(0, 100, 1), Special("any"),
                       Label("Target enemies"),
                       Help("with the search on (--search), aim for this many enemies per "
                            "segment")] = None
    gaps: Annotated[float | None, Range(0, 100, 1), Special("any"),
                    Label("Target gaps"),
                    Help("with the search on (--search), aim for this many gaps per "
                         "segment")] = None
    budget: Annotated[int, Range(1, 100_000), Label("Search budget"),
                      Help("with the search on (--search), most segments tried per segment")] = 240
    formats: Annotated[list[str], Label("Formats"),
                       Help("files to write, comma separated: tmj, tmx, txt, png, csv, ldtk "
                            "(one LDtk project holds every level)")] = \
        field(default_factory=lambda: ["tmj", "txt", "png"])
    tileset: Annotated[Tileset, TILESET_CHOICES, Label("Tiled tileset"),
                       Help("Tiled tileset embedded or external")] = "embedded"
    tile: Annotated[int, Range(1, 256), Unit(" px"), Label("Tile size"),
                    Help("tile size in pixels")] = 16
    save: Annotated[bool, Widget("hidden"), Label("Save files"), Help("write files")] = True

    def rules(self) -> None:
        self.formats = _formats(list(self.formats))
