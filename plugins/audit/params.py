"""The audit jobs' parameters: one dataclass per job (the CLI, the forms and the run manifest
read these declarations).

Light on purpose: no torch, no Qt, no engine import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from studio.errors import UserError
from studio.params import Group, Help, Label, Range, Special, Widget

KINDS = ("email", "phone", "card", "iban", "address", "name")

_RUN = (Widget("folder"), Label("Run"),
        Help("the training run to audit: its folder (see `studio runs`) or its folder name"))
_SEED = (Range(0, 2**31 - 1), Widget("seed"), Label("Seed"))


@dataclass(kw_only=True)
class MiaParams:
    """Membership inference: can the model tell its training examples from held-out ones?"""

    run: Annotated[Path, *_RUN]
    reference_models: Annotated[int, Range(0, 256), Label("Reference models"),
                                Help("models trained by the plugin's own training job on "
                                     "random halves of the data, for LiRA and RMIA (each costs "
                                     "a training run; 0: the loss attack only)")] = 4
    seed: Annotated[int, *_SEED, Help("seed of the first reference model (the next ones count "
                                      "up from it, skipping the audited run's own seed)")] = 1
    reuse: Annotated[bool, Label("Reuse reference models"),
                     Help("reuse reference models this audit folder already trained (after a "
                          "Stop or a crash)")] = True


@dataclass(kw_only=True)
class MemorizationParams:
    """Memorisation: generate samples and find their nearest training examples."""

    run: Annotated[Path, *_RUN]
    n: Annotated[int, Range(1, 100_000), Label("Samples"),
                 Help("how many samples to generate and compare")] = 500
    seed: Annotated[int, *_SEED, Help("seed of the generated samples")] = 0
    threshold: Annotated[float | None, Range(0.0, 1_000.0, 0.01), Special("the default"),
                         Label("Copy threshold"),
                         Help("images: tiled L2 distance (default 0.1); text: words in a "
                              "shared run (default 32); music: notes (default 16); levels: "
                              "share of windows found (default 0.8)")] = None
    feature_threshold: Annotated[float, Range(0.0, 2.0, 0.005), Label("Feature threshold"),
                                 Help("cosine distance in the plugin's feature space under "
                                      "which a sample counts as a near copy")] = 0.02


@dataclass(kw_only=True)
class DatasetParams:
    """Dataset audit: class balance, duplicates, leakage and text statistics of a folder."""

    data: Annotated[Path, Widget("folder"), Label("Data"),
                    Help("a folder of images (sub-folders are classes), text files or label "
                         "CSVs, or one file")]
    run: Annotated[Path | None, Widget("folder"), Label("Run"),
                   Help("also check this run's train/held-out split for leakage")] = None
    columns: Annotated[list[str], Label("Label columns"),
                       Help("CSV columns to measure (default: every categorical column)")] = \
        field(default_factory=list)
    near_bits: Annotated[int, Range(0, 32), Group("Near duplicates"), Label("Image bits"),
                         Help("images whose 64-bit perceptual hashes differ in this many bits "
                              "or fewer are near duplicates")] = 6
    near_pixel: Annotated[float, Range(0.0, 2.0, 0.01), Group("Near duplicates"),
                          Label("Image pixels"),
                          Help("and whose standardised 32 x 32 thumbnails differ by at most "
                               "this root mean square")] = 0.1
    near_jaccard: Annotated[float, Range(0.1, 1.0, 0.05), Group("Near duplicates"),
                            Label("Text similarity"),
                            Help("texts whose word 5-shingles overlap this much (Jaccard) "
                                 "are near duplicates; 0.7 is about one word in 30 "
                                 "changed)")] = 0.7


@dataclass(kw_only=True)
class PiiParams:
    """Personal data: scan text files and write a redacted copy into the audit's run folder."""

    data: Annotated[Path, Widget("folder"), Label("Text"),
                    Help("a folder of text files or one text file (only read)")]
    kinds: Annotated[list[str], Label("Look for"),
                     Help("comma separated: email, phone, card, iban, address, name")] = \
        field(default_factory=lambda: list(KINDS))
    region: Annotated[str, Label("Phone region"),
                      Help("two-letter country whose national phone formats to accept "
                           "(international +.. numbers are always found)")] = "US"
    redact: Annotated[bool, Label("Write a redacted copy"),
                      Help("write each file with its findings replaced by [EMAIL], [PHONE]... "
                           "into the run folder")] = True

    def rules(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise UserError(f"--kinds: unknown {bad[0]!r} (choose from {', '.join(KINDS)})")
        if not self.kinds:
            raise UserError(f"--kinds: name at least one of {', '.join(KINDS)}")
        if len(self.region) != 2 or not self.region.isalpha():
            raise UserError("--region must be a two-letter country code such as US, GB or DE")


@dataclass(kw_only=True)
class FairnessParams:
    """Fairness of a classifier's predictions across groups (Fairlearn)."""

    predictions: Annotated[Path, Widget("file", "CSV (*.csv);;All files (*)"),
                           Label("Predictions"),
                           Help("a CSV with one row per person or item")]
    label: Annotated[str, Label("Label column"), Help("the true outcome's column")]
    prediction: Annotated[str, Label("Prediction column"), Help("the predicted outcome's column")]
    group: Annotated[str, Label("Group column"),
                     Help("the sensitive attribute's column (the groups to compare)")]
    positive: Annotated[str | None, Label("Positive value"),
                        Help("the value meaning the positive outcome (default: 1/true/yes)")
                        ] = None


@dataclass(kw_only=True)
class CanariesParams:
    """Canary exposure: insert random secrets into a copy of a corpus, train, measure."""

    data: Annotated[Path, Widget("folder"), Label("Corpus"),
                    Help("a text file or folder (only read: the canaries go into a copy)")]
    plugin: Annotated[str, Label("Text plugin"),
                      Help("which plugin's model to train (its probe must measure text)")
                      ] = "writer"
    preset: Annotated[str, Label("Preset"), Help("the text model's size preset")] = "tiny"
    steps: Annotated[int, Range(1, 10_000_000), Label("Training steps")] = 2000
    repeats: Annotated[list[int], Label("Repeats"),
                       Help("one canary per entry, inserted that many times (comma "
                            "separated)")] = field(default_factory=lambda: [1, 1, 10, 10])
    secret: Annotated[str, Label("Secret format"),
                      Help("the canary's shape: # a digit, A a letter, X either")
                      ] = "my secret code is ####"
    seed: Annotated[int, *_SEED] = 0

    def rules(self) -> None:
        if not self.repeats or any(r < 1 for r in self.repeats):
            raise UserError("--repeats: give one whole number of 1 or more per canary")


@dataclass(kw_only=True)
class ReportParams:
    """One HTML report of every audit run on a model, and its model card."""

    run: Annotated[Path, *_RUN]
    out: Annotated[Path | None, Widget("save", "HTML (*.html)"), Label("Report file"),
                   Special("in the workspace"),
                   Help("where to write the HTML report (default: the workspace's audit "
                        "folder)")] = None
    card: Annotated[bool, Label("Write the model card"),
                    Help("write a README.md model card into the model's folder")] = True


@dataclass(kw_only=True)
class TargetsParams:
    """List every run and whether it can be audited."""


@dataclass(kw_only=True)
class RepresentationParams:
    """Representation: is each class generated as often as it appears in the training data?"""

    run: Annotated[Path, *_RUN]
    n: Annotated[int, Range(10, 100_000), Label("Samples"),
                 Help("how many samples to generate and classify (more samples, narrower "
                      "intervals)")] = 500
    seed: Annotated[int, *_SEED, Help("seed of the generated samples")] = 0
    references: Annotated[int, Range(10, 100_000), Label("Reference examples"),
                          Help("at most this many training examples are compared with each "
                               "sample to tell its class")] = 5000


@dataclass(kw_only=True)
class BiasParams:
    """Bias probes of a language model: prompts that vary a group term."""

    run: Annotated[Path, *_RUN]
    templates: Annotated[Path | None, Widget("file", "JSON (*.json);;All files (*)"),
                         Label("Templates"), Special("the studio's"),
                         Help("a JSON file of group terms and prompts (start from a copy of "
                              "the studio's bias_en.json)")] = None
    categories: Annotated[list[str], Label("Categories"),
                          Help("comma separated categories of the templates to probe (default: "
                               "all of them)")] = field(default_factory=list)
    samples: Annotated[int, Range(0, 1000), Label("Continuations"),
                       Help("free continuations per prompt and group whose sentiment is "
                            "compared (0: log-probabilities only)")] = 10
    seed: Annotated[int, *_SEED, Help("seed of the continuations")] = 0


@dataclass(kw_only=True)
class VerifyParams:
    """Where a file came from: the provenance the studio wrote into it, and whether it was
    edited since."""

    file: Annotated[Path, Widget("file", "Exported files (*.png *.gif *.mid *.midi *.wav *.tmj "
                                         "*.json *.md *.txt *.csv);;All files (*)"),
                    Label("File"),
                    Help("a file exported by the studio (PNG, GIF, MIDI, WAV, Tiled map, "
                         "Markdown or text)")]


@dataclass(kw_only=True)
class SignParams:
    """Sign an exported PNG with C2PA Content Credentials, with your certificate and key."""

    file: Annotated[Path, Widget("file", "PNG image (*.png)"), Label("Image"),
                    Help("a PNG exported by the studio (it is signed in place)")]
    cert: Annotated[Path, Widget("file", "PEM certificate (*.pem *.crt);;All files (*)"),
                    Label("Certificate"),
                    Help("PEM file: your signing certificate, then the certificates that "
                         "issued it")]
    key: Annotated[Path, Widget("file", "PEM key (*.pem *.key);;All files (*)"),
                   Label("Private key"), Help("the certificate's unencrypted PEM private key")]
