"""The music plugin's job parameters: one dataclass per job.

Each field carries its limits, its label in the window, its help (the tooltip and the text under
the flag in ``studio run music JOB --help``) and its widget hint, so the command line, the panel's
forms, validation and the settings a run records all read one declaration. A default lives here,
or, for a field whose empty value means "the preset's", in the preset table
(``plugins.music.engine.config.preset``).

Phrases the window hands to a job (the two ends of an interpolation, the phrase to vary) are
fields of type :class:`~plugins.music.engine.phrase.Phrase`: the panel passes the phrase itself,
the command line a MIDI (or, for audio models, audio) file whose first phrase is read.

Light: no torch, no Qt (the panel and ``--help`` import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from plugins.common.privacy import (
    DEFAULT_EPSILON,
    DEFAULT_MAX_GRAD_NORM,
    Delta,
    Epsilon,
    MaxGradNorm,
    NoiseMultiplier,
    NoiseSeed,
    Private,
    spec_of,
)
from plugins.music.engine import gm
from plugins.music.engine.bach import is_builtin
from plugins.music.engine.metre import COMMON as COMMON_METRES
from plugins.music.engine.metre import Metre, MetreError
from plugins.music.engine.phrase import Phrase
from studio.errors import UserError
from studio.params import Choices, Codec, Group, Help, Label, Range, Special, Unit, Widget

Mode = Literal["melody", "pianoroll", "audio"]
Preset = Literal["tiny", "small", "default", "large"]
Bars = Literal[2, 4]
Voice = Literal["piano", "organ", "pluck"]
SynthKind = Literal["auto", "soundfont", "builtin"]

MODEL_KINDS = ("music-vae",)
SEEDS = Range(0, 2**31 - 1)
TEMPO = Range(10, 1000, 1)
MODES = Choices(melody="Melodies (one line)", pianoroll="Piano rolls (every note)",
                audio="Sounds (audio files)")
PHRASE = Codec("plugins.music.engine.generate:read_phrase",
               what="a MIDI file whose first phrase is used; an audio file for audio models",
               describe="plugins.music.engine.phrase:describe_phrase")
MIDI_OR_AUDIO = "MIDI or audio (*.mid *.midi *.wav *.flac *.ogg);;All files (*)"

_MODEL_HELP = "the trained model (its run folder)"
_OUT_HELP = ("a folder for one file per phrase and the whole strip, or one .mid file (.wav for "
             "audio models) with the phrases one after another (default: a new folder under "
             "the workspace)")
_TEMPO_HELP = "tempo written into the MIDI files (default: the training data's)"

GM_PROGRAMS = Range(0, len(gm.PROGRAMS) - 1)
_SF_HELP = ("a SoundFont (.sf2) to play the notes with (default: a General MIDI SoundFont "
            "installed on this computer, such as FluidR3_GM)")
MelodyProgram = Annotated[int, Label("Melody instrument"), GM_PROGRAMS, Group("Instruments"),
                          Help("General MIDI program of the melody (0-127; 0 is Acoustic Grand "
                               "Piano, 40 Violin, 73 Flute)")]
AccompanimentProgram = Annotated[int, Label("Accompaniment"), GM_PROGRAMS, Group("Instruments"),
                                 Help("General MIDI program of a piano roll's accompaniment "
                                      "(every note below its top line; 0-127)")]
Drums = Annotated[bool, Label("Drums"), Group("Instruments"),
                  Help("add a drum beat that follows the metre, on channel 10 (General MIDI "
                       "percussion)")]
SplitParts = Annotated[bool, Label("Melody and accompaniment as two tracks"),
                       Group("Instruments"),
                       Help("piano rolls: the top line and the other notes as separate tracks "
                            "(off: one track)")]
SoundFontFile = Annotated[Path | None, Label("SoundFont"), Widget("file",
                          filter="SoundFonts (*.sf2 *.sf3)"), Special("the installed one"),
                          Help(_SF_HELP)]
SynthField = Annotated[SynthKind, Label("Synth"),
                       Choices(auto="A SoundFont if there is one, else built-in",
                               soundfont="SoundFont (FluidSynth)", builtin="Built-in synth"),
                       Help("auto: FluidSynth with a SoundFont when one is installed or chosen, "
                            "else the built-in synth (the log says which played); soundfont: "
                            "fail with what to install rather than fall back; builtin: the "
                            "built-in synth")]

# fields the generating jobs share, declared once
ModelRun = Annotated[Path, Label("Model"), Widget("model", kinds=MODEL_KINDS), Help(_MODEL_HELP)]
ModelTempo = Annotated[float | None, Label("Tempo"), TEMPO, Unit(" bpm"), Special("the model's"),
                       Help(_TEMPO_HELP)]
OutFolder = Annotated[Path | None, Label("Save to"), Widget("folder"),
                      Special("a new folder in the workspace"), Help(_OUT_HELP)]
_MELODY_HELP = ("which line of a MIDI file is the melody: auto, highest, a track number or a "
                "track name")
MetreField = Annotated[str, Label("Metre"), Widget(suggestions=("auto", *COMMON_METRES)),
                  Help("the phrases' time signature: auto (the one most of the data is in), or "
                       "4/4, 3/4, 6/8, 9/8, 12/8…; 2/4 and 2/2 bars join into 4/4 phrases, "
                       "12/8 bars split into 6/8 ones; files in other metres are skipped, "
                       "named in the report")]


@dataclass(kw_only=True)
class TrainParams:
    """Train a music VAE on a folder of MIDI or audio files (or the built-in Bach chorales)."""

    data: Annotated[str | None, Label("Learn from"), Widget("folder"),
                    Special("the built-in Bach chorales (Resume: the run's own music)"),
                    Help('a folder of MIDI files (melodies / piano rolls) or WAV, FLAC or OGG '
                         'files (sounds), or "bach" for the 371 built-in Bach chorales; your '
                         'files are only read. Resuming, the run\'s own music unless you '
                         'choose other files')] = None
    mode: Annotated[Mode, Label("What to learn"), MODES,
                    Help("melody: one line (MusicVAE); pianoroll: every note; audio: the sound "
                         "of audio files (log-mel spectrograms)")] = "melody"
    bars: Annotated[Bars, Label("Phrase length"), Choices({2: "2 bars", 4: "4 bars"}),
                    Help("phrase length in bars of the metre (4 bars use the hierarchical "
                         "decoder)")] = 2
    metre: MetreField = "auto"
    preset: Annotated[Preset, Label("Model size"),
                      Choices(tiny="Tiny (tests)", small="Small", default="Standard (a laptop)",
                              large="Large (a graphics card)"),
                      Help("model size: tiny (tests), small, standard (a 2-core CPU), large "
                           "(a GPU)")] = "default"
    steps: Annotated[int, Label("Training steps"), Range(1, 10_000_000, 100),
                     Help("training steps (when resuming: the total to reach)")] = 6000
    minutes: Annotated[float | None, Label("Time limit"), Range(0.05, 100_000, 0.05),
                       Unit(" min"), Special("no limit"),
                       Help("stop after this much training time (the learning rate follows "
                            "it)")] = None
    melody: Annotated[str, Label("Melody line"), Group("Advanced"),
                      Help(_MELODY_HELP)] = "auto"
    batch_size: Annotated[int, Label("Phrases per step"), Range(0, 65_536), Group("Advanced"),
                          Special("the preset's"),
                          Help("phrases per training step")] = 0
    lr: Annotated[float, Label("Learning rate"), Range(0, 1, 0.0001), Group("Advanced"),
                  Special("the preset's"), Help("peak learning rate")] = 0.0
    latent: Annotated[int, Label("Latent size"), Range(0, 4096), Group("Advanced"),
                      Special("the preset's"),
                      Help("size of the latent code a phrase is squeezed into")] = 0
    beta: Annotated[float | None, Label("KL weight (beta)"), Range(0, 100, 0.05),
                    Group("Advanced"), Special("the preset's"),
                    Help("weight of the KL term after warm-up")] = None
    free_bits: Annotated[float | None, Label("Free bits"), Range(0, 100_000, 1), Unit(" nats"),
                         Group("Advanced"), Special("the preset's"),
                         Help("nats of KL per phrase left unpenalised")] = None
    kl_warmup: Annotated[int | None, Label("KL warm-up"), Range(0, 10_000_000, 100),
                         Unit(" steps"), Group("Advanced"), Special("the preset's"),
                         Help("steps over which beta ramps up from 0")] = None
    transpose: Annotated[int | None, Label("Random transposition"), Range(0, 24),
                         Unit(" semitones"), Group("Advanced"), Special("the preset's"),
                         Help("random transposition of +-N semitones while training")] = None
    holdout: Annotated[float, Label("Held out for checking"), Range(0, 0.9, 0.05),
                       Group("Advanced"),
                       Help("fraction of the files held out (never trained on) for the "
                            "validation curves")] = 0.1
    seed: Annotated[int, Label("Seed"), SEEDS, Widget("seed"), Group("Advanced"),
                    Help("random seed (data split, initialisation, batch order)")] = 0
    # differential privacy (plugins.common.privacy): one record is one phrase
    private: Private = False
    epsilon: Epsilon = DEFAULT_EPSILON
    delta: Delta = 0.0
    noise_multiplier: NoiseMultiplier = 0.0
    max_grad_norm: MaxGradNorm = DEFAULT_MAX_GRAD_NORM
    noise_seed: NoiseSeed = None
    resume: Annotated[bool, Label("Resume training"),
                      Help("continue the run in the output folder (--out) from its last "
                           "checkpoint, up to the training steps")] = False

    def rules(self) -> None:
        spec_of(self)
        if not self.resume and self.mode == "audio" and is_builtin(self.data or "bach"):
            raise UserError("the built-in Bach chorales are MIDI: audio mode needs a folder of "
                            "WAV/FLAC/OGG files")
        _check_metre(self.metre)


@dataclass(kw_only=True)
class SampleParams:
    """Generate new phrases from a trained model and write them as .mid (or .wav) files."""

    model: ModelRun
    n: Annotated[int, Label("Phrases"), Range(1, 1000), Help("how many phrases")] = 8
    temperature: Annotated[float, Label("Temperature"), Range(0, 10, 0.1),
                           Help("randomness: 0 gives the most likely notes, higher more "
                                "surprising ones (melodies sample each step at this "
                                "temperature; piano-roll and sound models scale the latent "
                                "spread)")] = 1.0
    seed: Annotated[int, Label("Seed"), SEEDS, Widget("seed"),
                    Help("random seed (the same seed gives the same phrases)")] = 1
    key: Annotated[str, Label("Key"),
                   Help("key of new melodies: random (the training data's mix of major and "
                        "minor keys), or C, F#m, Bb…")] = "random"
    tempo: ModelTempo = None
    out: OutFolder = None
    melody_program: MelodyProgram = gm.PIANO
    accompaniment_program: AccompanimentProgram = gm.PIANO
    drums: Drums = False
    split: SplitParts = True


@dataclass(kw_only=True)
class InterpolateParams:
    """Phrases on the way from A to B (a slerp between their latent codes)."""

    model: ModelRun
    a: Annotated[Phrase, Label("A"), PHRASE, Help("the start phrase")]
    b: Annotated[Phrase, Label("B"), PHRASE, Help("the end phrase")]
    steps: Annotated[int, Label("Steps"), Range(2, 256),
                     Help("phrases from A to B, both ends included (they reconstruct A and "
                          "B)")] = 5
    temperature: Annotated[float, Label("Temperature"), Range(0, 10, 0.1),
                           Help("0 decodes the most likely phrase; above 0 samples")] = 0.0
    melody: Annotated[str, Label("Melody line"), Help(_MELODY_HELP)] = "auto"
    tempo: ModelTempo = None
    out: OutFolder = None
    melody_program: MelodyProgram = gm.PIANO
    accompaniment_program: AccompanimentProgram = gm.PIANO
    drums: Drums = False
    split: SplitParts = True


@dataclass(kw_only=True)
class VariationsParams:
    """Variations of a phrase: phrases from latent codes near its own."""

    model: ModelRun
    source: Annotated[Phrase, Label("Phrase to vary"), PHRASE, Help("the phrase to vary")]
    n: Annotated[int, Label("Variations"), Range(1, 1000), Help("how many variations")] = 6
    amount: Annotated[float, Label("How far"), Range(0, 10, 0.05),
                      Help("how far the variations stray from the original (spread added to its "
                           "latent code)")] = 0.5
    seed: Annotated[int, Label("Seed"), SEEDS, Widget("seed"), Help("random seed")] = 1
    melody: Annotated[str, Label("Melody line"), Help(_MELODY_HELP)] = "auto"
    tempo: ModelTempo = None
    out: OutFolder = None
    melody_program: MelodyProgram = gm.PIANO
    accompaniment_program: AccompanimentProgram = gm.PIANO
    drums: Drums = False
    split: SplitParts = True


@dataclass(kw_only=True)
class ContinueParams:
    """What might come next after a clip (as Magenta Studio's Continue): new bars that follow
    it, written bar by bar by the model with the clip's last bars as their opening."""

    model: ModelRun
    clip: Annotated[Phrase, Label("Clip"), PHRASE,
                    Help("the phrase to continue (on the command line: the first phrase of a "
                         "MIDI file)")]
    bars: Annotated[int, Label("Bars to add"), Range(1, 64), Unit(" bars"),
                    Help("how many bars each continuation adds after the clip")] = 2
    n: Annotated[int, Label("Continuations"), Range(1, 100),
                 Help("how many different continuations")] = 4
    temperature: Annotated[float, Label("Temperature"), Range(0, 10, 0.1),
                           Help("randomness: 0 gives the most likely notes, higher more "
                                "surprising ones")] = 1.0
    seed: Annotated[int, Label("Seed"), SEEDS, Widget("seed"),
                    Help("random seed (the same seed gives the same continuations)")] = 1
    candidates: Annotated[int, Label("Openings tried"), Range(1, 4096), Group("Advanced"),
                          Help("latent codes weighed against the clip for each bar (more: "
                               "continuations that follow the clip more closely, slower)")] = 256
    rounds: Annotated[int, Label("Refining rounds"), Range(0, 50), Group("Advanced"),
                      Help("times each bar's latent code is refined by decoding a phrase that "
                           "opens with the clip and encoding it again (0: prior draws "
                           "only)")] = 3
    melody: Annotated[str, Label("Melody line"), Help(_MELODY_HELP)] = "auto"
    tempo: ModelTempo = None
    out: OutFolder = None
    melody_program: MelodyProgram = gm.PIANO
    accompaniment_program: AccompanimentProgram = gm.PIANO
    drums: Drums = False
    split: SplitParts = True


@dataclass(kw_only=True)
class LoadParams:
    """Read phrases from a MIDI (or, for audio models, audio) file; with a model, also show what
    the model makes of them (its reconstructions, written as .mid files)."""

    midi: Annotated[Path, Label("File"), Widget("file", filter=MIDI_OR_AUDIO),
                    Help("the file to read")]
    model: Annotated[Path | None, Label("Model"), Widget("model", kinds=MODEL_KINDS),
                     Special("just show the file's phrases"),
                     Help("a trained model (its bars and mode win over the phrase length and "
                          "mode below)")] = None
    bars: Annotated[Bars, Label("Phrase length"), Choices({2: "2 bars", 4: "4 bars"}),
                    Help("phrase length when no model is given")] = 2
    mode: Annotated[Literal["melody", "pianoroll"], Label("What to read"),
                    Choices(melody="Melodies (one line)", pianoroll="Piano rolls (every note)"),
                    Help("melody or pianoroll when no model is given")] = "melody"
    metre: Annotated[str, Label("Metre"), Widget(suggestions=("auto", *COMMON_METRES)),
                     Help("the phrases' time signature when no model is given: auto (the "
                          "file's own) or 4/4, 3/4, 6/8…")] = "auto"
    melody: Annotated[str, Label("Melody line"), Help(_MELODY_HELP)] = "auto"
    limit: Annotated[int, Label("At most"), Range(1, 10_000), Unit(" phrases"),
                     Help("at most this many phrases (non-overlapping, from the start)")] = 8
    out: Annotated[Path | None, Label("Save to"), Widget("folder"),
                   Special("a new folder in the workspace"),
                   Help("folder for the reconstructions (default: a new folder under the "
                        "workspace)")] = None

    def rules(self) -> None:
        _check_metre(self.metre)


def _check_metre(metre: str) -> None:
    if metre.strip().lower() in ("auto", ""):
        return
    try:
        Metre.parse(metre)
    except MetreError as exc:
        raise UserError(f"--metre: {exc}") from None


@dataclass(kw_only=True)
class RenderParams:
    """Render a MIDI file to a WAV file with FluidSynth and a General MIDI SoundFont (each
    track with its own instrument), or with the built-in synth (no sound card needed)."""

    midi: Annotated[Path, Label("MIDI file"), Widget("file", filter="MIDI (*.mid *.midi)"),
                    Help("the MIDI file")]
    out: Annotated[Path, Label("WAV file"), Widget("save", filter="WAV (*.wav)"),
                   Help("the WAV file to write (a folder: the MIDI file's name with .wav)")]
    tempo: Annotated[float | None, Label("Tempo"), TEMPO, Unit(" bpm"),
                     Special("the file's own"),
                     Help("play at this tempo (quarter notes per minute; default: the file's "
                          "own timing)")] = None
    synth: SynthField = "auto"
    soundfont: SoundFontFile = None
    voice: Annotated[Voice, Label("Voice"), Choices(piano="Piano", organ="Organ", pluck="Pluck"),
                     Help("the built-in synth's voice")] = "piano"
    sample_rate: Annotated[int, Label("Sample rate"), Range(8000, 192_000, 100), Unit(" Hz"),
                           Help("WAV sample rate")] = 44100
