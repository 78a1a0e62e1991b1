"""Provenance of exported files: every format's manifest round trips, edits are detected, IPTC
``trainedAlgorithmicMedia`` is in PNG XMP, and every plugin's exports from tiny runs carry their
provenance and no absolute path, home folder or user name; ``studio run audit verify`` says in
words where a file came from."""

from __future__ import annotations

import getpass
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from audit_helpers import run_job

from plugins.common import provenance, provformats
from studio import cli
from studio.errors import UserError


# ----------------------------------------------------------------------------------------------
# Every format on its own
# ----------------------------------------------------------------------------------------------
def _png(path: Path) -> Path:
    from plugins.common.pngmeta import save_png

    img = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    return save_png(img, path, {"gan:seed": "4"})


def _gif(path: Path) -> Path:
    from PIL import Image

    frames = [Image.fromarray(np.full((8, 8), 40 * i, np.uint8)) for i in range(4)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=90, loop=0)
    return path


def _midi(path: Path) -> Path:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    inst = pretty_midi.Instrument(0)
    for i, pitch in enumerate((60, 64, 67)):
        inst.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=i * 0.5,
                                           end=i * 0.5 + 0.4))
    pm.instruments.append(inst)
    pm.write(str(path))
    return path


def _wav(path: Path) -> Path:
    import soundfile as sf

    sf.write(str(path), np.sin(np.arange(4000) / 7).astype(np.float32) * 0.3, 8000,
             subtype="PCM_16", format="WAV")
    return path


def _tmj(path: Path) -> Path:
    doc = {"type": "map", "width": 3, "height": 2, "tilewidth": 8, "tileheight": 8,
           "tilesets": [{"firstgid": 1, "name": "t"}], "properties": [
               {"name": "game", "type": "string", "value": "demo"}],
           "layers": [{"type": "tilelayer", "name": "tiles", "width": 3, "height": 2,
                       "data": [1, 2, 1, 2, 2, 1]}]}
    path.write_text(json.dumps(doc, indent=1))
    return path


def _md(path: Path) -> Path:
    path.write_text("# A story\n\nOnce upon a time.\n", encoding="utf-8")
    return path


def _txt(path: Path) -> Path:
    path.write_text("Once upon a time.\n", encoding="utf-8")
    return path


def _edit(path: Path) -> None:
    """Change the content while keeping the metadata, as an editor that keeps it would."""
    ext = path.suffix
    if ext == ".png":
        from PIL import Image

        chunks = provformats.png_chunks(path.read_bytes())
        texts = dict(t for k, b in chunks if (t := provformats._text_of(k, b)))
        with Image.open(path) as im:
            a = np.asarray(im).copy()
        a[0, 0] = 255 - a[0, 0]
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_itxt(provformats.KEY, texts[provformats.KEY])
        Image.fromarray(a).save(path, pnginfo=info)
    elif ext == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            comment = im.info["comment"]
            frames = [f.convert("L") for f in ImageSequence.Iterator(im)]
        frames[1] = frames[0]
        frames[0].save(path, save_all=True, append_images=frames[1:], comment=comment)
    elif ext == ".mid":
        import mido

        mid = mido.MidiFile(str(path))
        for track in mid.tracks:
            for msg in track:
                if msg.type == "note_on":
                    msg.note += 1
        mid.save(str(path))
    elif ext == ".wav":
        data = bytearray(path.read_bytes())
        at = data.find(b"data") + 8
        data[at + 100:at + 102] = b"\x00\x10"
        path.write_bytes(bytes(data))
    elif ext == ".tmj":
        doc = json.loads(path.read_text())
        doc["layers"][0]["data"][0] = 2
        path.write_text(json.dumps(doc))
    else:
        path.write_text(path.read_text().replace("Once", "Twice"))


MAKERS = {"png": _png, "gif": _gif, "mid": _midi, "wav": _wav, "tmj": _tmj, "md": _md,
          "txt": _txt}


@pytest.mark.parametrize("ext", list(MAKERS))
def test_every_format_round_trips_and_detects_edits(ext: str, tmp_path: Path) -> None:
    path = MAKERS[ext](tmp_path / f"file.{ext}")
    before = provformats.format_of(path).content_hash(path)
    assert provenance.read(path) is None
    assert provenance.verify(path).unchanged is None
    prov = provenance.make("gan", "export", model=tmp_path / "20250101-120000-train",
                           model_id="abc123", seed=7, params={"n": 4, "out": str(path)})
    provenance.stamp(path, prov)
    back = provenance.read(path)
    assert back is not None and back == prov  # everything round trips, the hash included
    assert back.model == "20250101-120000-train" and "out" not in back.params
    assert provformats.format_of(path).content_hash(path) == before  # content untouched
    provenance.stamp(path, prov)  # stamping twice keeps one manifest
    v = provenance.verify(path)
    assert v.unchanged is True and "unchanged since" in v.words
    assert "model “20250101-120000-train”" in v.words and "seed 7" in v.words
    raw = path.read_bytes()
    assert raw.count(provformats.KEY.encode()) <= 1
    _edit(path)
    v = provenance.verify(path)
    assert v.provenance is not None and v.unchanged is False and "edited since" in v.words


def test_png_carries_iptc_digital_source_type_in_xmp(tmp_path: Path) -> None:
    from PIL import Image

    path = _png(tmp_path / "a.png")
    provenance.stamp(path, provenance.make("diffusion", "sample", seed=1))
    with Image.open(path) as im:
        xmp = im.info["XML:com.adobe.xmp"]
        assert im.info["gan:seed"] == "4"  # the plugin's own chunks stay
    assert provformats.xmp_source_type(xmp) == (
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia")
    assert "Generative Studio" in xmp
    # XMP sits before the image data, where readers look first
    kinds = [k for k, _ in provformats.png_chunks(path.read_bytes())]
    assert kinds.index(b"iTXt") < kinds.index(b"IDAT")


def test_wav_info_chunk_is_read_by_libsndfile(tmp_path: Path) -> None:
    import soundfile as sf

    path = _wav(tmp_path / "a.wav")
    provenance.stamp(path, provenance.make("music", "render", seed=2))
    with sf.SoundFile(str(path)) as f:
        assert f.software.startswith("Generative Studio")
        assert json.loads(f.comment[len(provformats.KEY):])["seed"] == 2
        assert f.frames == 4000
    riff = path.read_bytes()
    assert struct.unpack("<I", riff[4:8])[0] == len(riff) - 8


def test_markdown_block_is_an_html_comment_and_text_gets_a_sidecar(tmp_path: Path) -> None:
    md, txt = _md(tmp_path / "a.md"), _txt(tmp_path / "a.txt")
    prov = provenance.make("writer", "export", source_type=provenance.COMPOSITE_TRAINED)
    provenance.stamp(md, prov)
    provenance.stamp(txt, prov)
    assert md.read_text().startswith("# A story\n\nOnce upon a time.\n\n<!-- ")
    assert md.read_text().rstrip().endswith("-->")
    assert txt.read_text() == "Once upon a time.\n"  # the text itself stays the user's
    assert json.loads((tmp_path / "a.txt.provenance.json").read_text())["file"] == "a.txt"
    assert provenance.verify(txt).words.startswith("a.txt was partly made by a trained model")


def test_paths_and_personal_names_are_reduced() -> None:
    home = str(Path.home())
    got = provenance.scrub({"data": f"{home}/art/cats", "win": r"C:\Users\ann\x.png",
                            "prompt": f"a cat / a dog in {home}", "n": 3,
                            "list": [Path(home) / "a.mid"]})
    assert got == {"data": "cats", "win": "x.png", "prompt": "a cat / a dog in ~", "n": 3,
                   "list": ["a.mid"]}


def test_unknown_files_and_bad_input(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"\0\1")
    assert "carries no studio provenance" in provenance.verify(tmp_path / "x.bin").words
    with pytest.raises(UserError, match="does not exist"):
        provenance.verify(tmp_path / "none.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(UserError, match="cannot be read as PNG"):
        provenance.verify(tmp_path / "broken.png")
    with pytest.raises(ValueError, match="digital source type"):
        provenance.make("gan", "x", source_type="madeUp")


def test_verify_job_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    path = _midi(tmp_path / "a.mid")
    provenance.stamp(path, provenance.make("music", "sample", model="run-7", seed=5))
    assert cli.cmd_run("audit", "verify", ["--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "a.mid was made by a trained model" in out and "seed 5" in out
    assert "notes are unchanged since" in out
    _edit(path)
    assert cli.cmd_run("audit", "verify", ["--file", str(path)]) == 0
    assert "edited since" in capsys.readouterr().out
    assert cli.cmd_run("audit", "verify", ["--file", str(tmp_path / "none.mid")]) != 0
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Every plugin's exports, from tiny runs
# ----------------------------------------------------------------------------------------------
def _personal(tmp_root: Path) -> list[bytes]:
    """Strings no exported file may hold: the home folder, the user's name, where the test's
    runs and data live (an absolute path under the user's temporary folder)."""
    out = [str(Path.home()).encode(), str(tmp_root.resolve()).encode(),
           str(Path("/tmp").resolve()).encode() + b"/"]
    user = getpass.getuser()
    if len(user) >= 3:
        out.append(user.encode())
    return out


def _check_exports(files: list[Path], root: Path, plugin: str, expect_model: str | None
                   ) -> list[provenance.Verdict]:
    assert files
    verdicts = []
    for f in files:
        raw = f.read_bytes()
        for bad in _personal(root):
            assert bad not in raw, f"{f.name} holds {bad!r}"
        v = provenance.verify(f)
        assert v.provenance is not None, f"{f.name} has no provenance"
        assert v.unchanged is True and v.provenance.plugin == plugin
        if expect_model is not None:
            assert v.provenance.model == expect_model
        verdicts.append(v)
    return verdicts


def _cpu1():  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    _cpu1()
    root = tmp_path_factory.mktemp("verify_gan")
    rng = np.random.default_rng(0)
    for cls in ("h", "v"):
        (root / "data" / cls).mkdir(parents=True)
        for i in range(8):
            img = np.zeros((16, 16), np.uint8)
            p = int(rng.integers(2, 14))
            if cls == "h":
                img[p - 1:p + 1] = 255
            else:
                img[:, p - 1:p + 1] = 255
            Image.fromarray(img).save(root / "data" / cls / f"{i}.png")
    rec = run_job("gan", "train", {"data": str(root / "data"), "steps": 4, "size": 32,
                                   "batch_size": 8, "preview_every": 4, "checkpoint_every": 4,
                                   "log_every": 2, "train_size": 16, "holdout": 0.0},
                  out=root / "runs" / "gan-run")
    assert rec.state == "done", rec.error
    return root / "runs" / "gan-run"


def test_gan_exports(gan_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    recs = [run_job("gan", "export", {"model": str(gan_run), "seed": 3,
                                      "out": str(out / "one.png")}),
            run_job("gan", "sample", {"model": str(gan_run), "n": 4, "seed": 5,
                                      "out": str(out / "grid.png"), "individual": True}),
            run_job("gan", "interpolate", {"model": str(gan_run), "seed_a": 1, "seed_b": 2,
                                           "frames": 3, "out": str(out / "morph.gif")})]
    for rec in recs:
        assert rec.state == "done", rec.error
    again = run_job("gan", "regenerate", {"png": str(out / "one.png"), "model": str(gan_run),
                                          "out": str(out / "again.png")})
    assert again.state == "done", again.error
    files = [*sorted(out.rglob("*.png")), out / "morph.gif"]
    assert len(files) == 8  # one, grid, four singles, again, the GIF
    verdicts = _check_exports(files, gan_run.parent, "gan", "gan-run")
    by = {v.file: v.provenance for v in verdicts}
    assert by["one.png"].seed == 3 and by["seed-7.png"].seed == 7
    assert by["again.png"].job == "regenerate" and by["again.png"].seed == 3
    assert len(by["one.png"].model_id) == 12 and by["one.png"].run == "gan-run"


@pytest.fixture(scope="module")
def music_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _cpu1()
    root = tmp_path_factory.mktemp("verify_music")
    import pretty_midi

    rng = np.random.default_rng(1)
    (root / "songs").mkdir()
    for k in range(4):
        pm = pretty_midi.PrettyMIDI(initial_tempo=120)
        inst = pretty_midi.Instrument(0)
        for i in range(32):
            inst.notes.append(pretty_midi.Note(velocity=80, pitch=int(60 + rng.integers(0, 12)),
                                               start=i * 0.25, end=i * 0.25 + 0.2))
        pm.instruments.append(inst)
        pm.write(str(root / "songs" / f"song{k}.mid"))
    rec = run_job("music", "train", {"data": str(root / "songs"), "preset": "tiny",
                                     "steps": 3, "holdout": 0.0},
                  out=root / "runs" / "music-run")
    assert rec.state == "done", rec.error
    return root / "runs" / "music-run"


def test_music_exports(music_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rec = run_job("music", "sample", {"model": str(music_run), "n": 2, "seed": 4,
                                      "out": str(out)})
    assert rec.state == "done", rec.error
    mids = sorted(out.glob("*.mid"))
    assert len(mids) == 3  # two phrases and the strip
    rec = run_job("music", "render", {"midi": str(mids[0]), "out": str(out / "a.wav")})
    assert rec.state == "done", rec.error
    verdicts = _check_exports([*mids, out / "a.wav"], music_run.parent, "music", "music-run")
    wav = verdicts[-1].provenance
    assert wav.job == "render" and wav.seed == 4 and wav.run == "music-run"


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    _cpu1()
    root = tmp_path_factory.mktemp("verify_diffusion")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(6):
        img = np.zeros((32, 32, 3), np.uint8)
        img[8:20, 8:20] = rng.integers(80, 255, 3)
        Image.fromarray(img).save(root / "images" / f"{i}.png")
    rec = run_job("diffusion", "train", {"data": str(root / "images"), "steps": 2,
                                         "preset": "tiny", "size": 32, "batch_size": 3,
                                         "sample_every": 1000, "checkpoint_every": 1000},
                  out=root / "runs" / "diffusion-run")
    assert rec.state == "done", rec.error
    return root / "runs" / "diffusion-run"


def test_diffusion_exports(diffusion_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rec = run_job("diffusion", "sample", {"model": str(diffusion_run / "model"), "n": 2,
                                          "steps": 2, "seed": 9, "save_each": True,
                                          "out": str(out / "grid.png")})
    assert rec.state == "done", rec.error
    files = sorted(out.glob("*.png"))
    verdicts = _check_exports(files, diffusion_run.parent, "diffusion", "diffusion-run/model")
    assert sorted(v.provenance.seed for v in verdicts) == [9, 9, 10]
    assert all(v.provenance.run == "diffusion-run" for v in verdicts)


def test_levels_exports(tmp_path: Path) -> None:
    out = tmp_path / "levels"
    rec = run_job("levels", "generate", {"method": "terrain", "count": 2, "seed": 3,
                                         "save": True, "out": str(out),
                                         "formats": ["tmj", "txt", "png", "csv"]})
    assert rec.state == "done", rec.error
    made = [f for f in sorted(out.iterdir()) if f.suffix in (".tmj", ".txt", ".png", ".csv")
            and not f.stem.endswith("_tiles")]
    verdicts = _check_exports(made, tmp_path, "levels", None)
    assert {v.provenance.source_type for v in verdicts} == {provenance.ALGORITHMIC}
    assert sorted({v.provenance.seed for v in verdicts}) == [3, 4]
    # WFC learns from an example file (recorded in the level's metadata): named, never its path
    wfc = tmp_path / "wfc"
    rec = run_job("levels", "generate", {"method": "wfc", "example": str(out / "terrain-3.tmj"),
                                         "count": 1, "seed": 1, "save": True, "out": str(wfc),
                                         "formats": ["tmj", "png"]})
    assert rec.state == "done", rec.error
    wfc_files = [f for f in wfc.iterdir() if f.suffix in (".tmj", ".png")
                 and not f.stem.endswith("_tiles")]
    assert {v.provenance.source_type for v in _check_exports(wfc_files, tmp_path, "levels",
                                                              None)} == {provenance.TRAINED}
    levels_json = (out / "levels.json").read_bytes()
    assert all(bad not in levels_json for bad in _personal(tmp_path))
    # a level read from the user's file, exported: named by its file, never its folder
    tmj = next(out.glob("*.tmj"))
    rec = run_job("levels", "export", {"level": str(tmj), "to": str(tmp_path / "copy.png")})
    assert rec.state == "done", rec.error
    v = _check_exports([tmp_path / "copy.png"], tmp_path, "levels", None)[0]
    assert v.provenance.job == "export" and v.provenance.params["level"]


def test_writer_export_from_the_write_tab(qtbot, make_host, tmp_path: Path) -> None:
    from plugins.writer.plugin import WriterPlugin

    plugin = WriterPlugin()
    panel = plugin.create_panel(make_host(plugin))
    qtbot.addWidget(panel)
    w = panel.write_tab
    w.editor.setPlainText("The lighthouse keeper wrote")
    md, txt = w.export_to(tmp_path / "story.md"), w.export_to(tmp_path / "story.txt")
    _check_exports([md, txt], tmp_path, "writer", "")  # no continuation yet: no model named
    model = tmp_path / "runs" / "writer-run"
    model.mkdir(parents=True)
    w.model_path = lambda: str(model)
    w._show_stats({"seed": 11, "tokens_per_s": 5.0})  # what a continuation reports
    md = w.export_to(tmp_path / "story.md")
    v = _check_exports([md], tmp_path, "writer", "writer-run")[0]
    assert v.provenance.seed == 11 and v.provenance.source_type == provenance.COMPOSITE_TRAINED


# ----------------------------------------------------------------------------------------------
# C2PA Content Credentials with a certificate made here
# ----------------------------------------------------------------------------------------------
def _signing_pair(root: Path) -> tuple[Path, Path]:
    """A test CA and an ES256 end-entity certificate it issued (C2PA refuses self-signed leaf
    certificates), written as a PEM chain and a PEM key."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Studio")])

    def usage(sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False,
                             key_encipherment=False, data_encipherment=False,
                             key_agreement=False, key_cert_sign=not sign, crl_sign=not sign,
                             encipher_only=False, decipher_only=False)

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("Studio Artist")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    cert = root / "chain.pem"
    cert.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_file = root / "key.pem"
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key_file


def test_c2pa_signing_and_verifying(tmp_path: Path) -> None:
    pytest.importorskip("c2pa")
    from PIL import Image

    from plugins.common import c2pasign

    cert, key = _signing_pair(tmp_path)
    png = _png(tmp_path / "made.png")
    with pytest.raises(UserError, match="carries no studio provenance"):
        c2pasign.sign(png, cert, key)
    prov = provenance.make("gan", "export", model="gan-run", seed=3)
    provenance.stamp(png, prov)
    rec = run_job("audit", "sign", {"file": str(png), "cert": str(cert), "key": str(key)})
    assert rec.state == "done", rec.error
    s = c2pasign.summary(png)
    assert s is not None and s["signer"] == "Studio Artist" and not s["failures"]
    assert s["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert s["studio"]["seed"] == 3 and s["studio"]["model"] == "gan-run"
    v = provenance.verify(png)  # the studio's own manifest survives signing
    assert v.unchanged is True and "signed by Studio Artist" in v.words
    assert "signature matches the file" in v.words and "not on the C2PA trust list" in v.words
    for bad in _personal(tmp_path):
        assert bad not in png.read_bytes()
    # changing the file after signing (here a text chunk, the pixels kept) breaks the
    # signature, and verify says so
    chunks = provformats.png_chunks(png.read_bytes())
    png.write_bytes(provformats.PNG_SIG + b"".join(
        provformats._chunk(k, b"gan:seed\x005" if b.startswith(b"gan:seed\x00") else b)
        for k, b in chunks))
    s = c2pasign.summary(png)
    assert s is not None and s["failures"]
    assert "changed after signing" in provenance.verify(png).words
    with pytest.raises(UserError, match="PEM"):
        c2pasign.sign(png, key, key)
    with Image.open(_png(tmp_path / "plain.png")):
        assert c2pasign.summary(tmp_path / "plain.png") is None


def test_the_audit_panel_verifies_a_file(qtbot, make_host, tmp_path: Path) -> None:
    from plugins.audit.plugin import AuditPlugin

    plugin = AuditPlugin()
    panel = plugin.create_panel(make_host(plugin))
    qtbot.addWidget(panel)
    path = _wav(tmp_path / "tune.wav")
    provenance.stamp(path, provenance.make("music", "sample", model="music-run", seed=2))
    h = panel.verify_btn.verify(path)
    qtbot.waitUntil(lambda: h.is_finished, timeout=30_000)
    qtbot.waitUntil(lambda: "tune.wav was made by a trained model" in panel.status.text(),
                    timeout=5_000)
    assert "audio samples are unchanged" in panel.status.text()
    h = panel.verify_btn.verify(tmp_path / "gone.wav")
    qtbot.waitUntil(lambda: "does not exist" in panel.status.text(), timeout=30_000)
