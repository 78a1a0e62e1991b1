"""The packaging recipes (build/, studio.spec, resources/icons) hold together without building a
bundle (that is `make bundle && make bundle-test`, too slow for the suite): the spec parses and
makes two executables in one folder, the Linux menu entry and AppStream file carry the keys
software centres read, the icons exist at the sizes each system asks for, the version every
recipe uses is pyproject's, and the shipped resources are found inside a frozen bundle."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import plistlib
import shutil
import subprocess
import sys
import tarfile
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
ICONS = ROOT / "resources" / "icons"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def meta() -> ModuleType:
    return _load(BUILD / "meta.py", "studio_build_meta_test")


def _pyproject_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["version"]


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name) and n.func.id == name]


def _kw(call: ast.Call, key: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


def test_spec_makes_a_windowed_app_and_a_console_command_in_one_folder(meta: ModuleType) -> None:
    tree = ast.parse((ROOT / "studio.spec").read_text(encoding="utf-8"))
    exes = _calls(tree, "EXE")
    assert len(exes) == 2
    consoles = {ast.unparse(_kw(e, "name")): ast.literal_eval(_kw(e, "console")) for e in exes}
    assert consoles == {"meta.GUI_EXE": False, "meta.CLI_EXE": True}
    (collect,) = _calls(tree, "COLLECT")
    names = [ast.unparse(a) for a in collect.args]
    # both executables in the one COLLECT, the windowed one first (the macOS .app runs it)
    assert names[:2] == ["gui", "cli"]
    (analysis,) = _calls(tree, "Analysis")
    assert ast.literal_eval(_kw(analysis, "noarchive")) is True
    excludes = ast.unparse(_kw(analysis, "excludes"))
    assert "triton" in excludes and "UNUSED_QT" in excludes
    (unused_qt,) = [n.value for n in tree.body if isinstance(n, ast.Assign)
                    and ast.unparse(n.targets[0]) == "UNUSED_QT"]
    cut = set(ast.literal_eval(unused_qt.generators[0].iter))
    # what the studio draws with; pyqtgraph's PlotCurveItem imports QtOpenGL and (through
    # OpenGLHelpers) QtOpenGLWidgets unconditionally
    assert not cut & {"QtCore", "QtGui", "QtWidgets", "QtSvg", "QtOpenGL", "QtOpenGLWidgets"}
    assert {"QtQml", "QtQuick", "QtWebEngineCore", "QtMultimedia", "Qt3DCore"} <= cut
    assert meta.CLI_EXE == "studio" and meta.GUI_EXE != meta.CLI_EXE


def test_spec_cuts_tests_triton_and_unused_qt_but_keeps_what_runs() -> None:
    """The spec's filter, run on the names PyInstaller hands it."""
    source = (ROOT / "studio.spec").read_text(encoding="utf-8")
    tree = ast.parse(source)
    keep = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name == "_unused")
            or (isinstance(n, ast.Assign) and ast.unparse(n.targets[0]).startswith("_QT_"))]
    ns: dict = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), "studio.spec", "exec"), ns)
    unused = ns["_unused"]
    for cut in ("pandas.tests.frame.test_api", "scipy/io/tests/data/x.mat",
                "triton/backends/nvidia/bin/ptxas", "PySide6/Qt/lib/libQt6Quick.so.6",
                "PySide6/Qt/lib/libQt6Pdf.so.6", "PySide6/Qt/plugins/imageformats/libqpdf.so",
                "PySide6/Qt/plugins/sqldrivers/libqsqlite.so",
                "PySide6/Qt/plugins/platforms/libqeglfs.so", "torch/bin/protoc-3.21.12.0",
                "PySide6/Qt/plugins/generic/libqevdevmouseplugin.so"):
        assert unused(cut), cut
    for kept in ("torch.testing._internal.common_utils", "numpy.testing", "studio.selftest",
                 "torch/lib/libtorch_cpu.so", "PySide6/Qt/lib/libQt6Widgets.so.6",
                 "PySide6/Qt/lib/libQt6Svg.so.6", "PySide6/Qt/plugins/platforms/libqoffscreen.so",
                 "PySide6/Qt/plugins/imageformats/libqsvg.so", "resources/icons/x.png",
                 "plugins/music/engine/bach.pyc", "nvidia/cublas/lib/libcublas.so.13",
                 "pypdf/generic/_base.pyc", "pandas/core/generic.pyc",
                 "PySide6/Qt/plugins/platforms/libqxcb.so",
                 "PySide6/Qt/plugins/platforms/libqwayland.so", "torch/bin/torch_shm_manager"):
        assert not unused(kept), kept


def test_desktop_entry_has_the_keys_menus_read(meta: ModuleType) -> None:
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # keys are case-sensitive
    cp.read(BUILD / "linux" / "generative-studio.desktop", encoding="utf-8")
    entry = cp["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == meta.APP_NAME
    assert entry["Exec"].split()[0] == meta.GUI_EXE == entry["TryExec"]
    assert entry["Icon"] == "generative-studio"
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";") and "Graphics" in entry["Categories"]


def test_desktop_entry_passes_desktop_file_validate() -> None:
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    proc = subprocess.run([tool, str(BUILD / "linux" / "generative-studio.desktop")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "error" not in proc.stdout, proc.stdout


def test_appstream_metainfo_names_the_app_its_launcher_and_this_version(meta: ModuleType) -> None:
    root = ET.parse(BUILD / "linux" / f"{meta.APP_ID}.metainfo.xml").getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == meta.APP_ID
    assert root.findtext("name") == meta.APP_NAME
    assert root.findtext("metadata_license") and root.findtext("project_license") == "MIT"
    assert root.findtext("launchable") == "generative-studio.desktop"
    binaries = {b.text for b in root.iter("binary")}
    assert binaries == {meta.GUI_EXE, meta.CLI_EXE}
    releases = [r.get("version") for r in root.iter("release")]
    assert releases[0] == _pyproject_version()  # newest first, and this release is there
    assert len(root.find("description")) >= 1


def test_macos_info_plist_runs_the_windowed_app(meta: ModuleType) -> None:
    with open(BUILD / "macos" / "Info.plist", "rb") as fh:
        info = plistlib.load(fh)
    assert info["CFBundleExecutable"] == meta.GUI_EXE
    assert info["LSBackgroundOnly"] is False  # a Dock icon and a menu bar
    assert info["NSHighResolutionCapable"] is True
    assert info["CFBundleName"] == meta.APP_NAME


def test_windows_version_resource_and_installer_use_the_project_metadata(
        meta: ModuleType) -> None:
    assert meta.version() == _pyproject_version()
    text = meta.windows_version_file()
    tree = ast.parse(text, mode="eval")  # PyInstaller evaluates it as one expression
    strings = {ast.literal_eval(c.args[0]): ast.literal_eval(c.args[1])
               for c in _calls(tree, "StringStruct")}
    assert strings["ProductVersion"] == strings["FileVersion"] == _pyproject_version()
    assert strings["OriginalFilename"] == f"{meta.GUI_EXE}.exe"
    fixed = _calls(tree, "FixedFileInfo")[0]
    assert ast.literal_eval(_kw(fixed, "filevers")) == meta.version_tuple()
    assert len(meta.version_tuple()) == 4
    iss = (BUILD / "windows" / "generative-studio.iss").read_text(encoding="utf-8")
    assert f'#define AppExe "{meta.GUI_EXE}.exe"' in iss
    icon = iss.split("SetupIconFile=")[1].splitlines()[0]
    icon_path = (BUILD / "windows" / icon.replace("\\", "/")).resolve()
    assert icon_path == ICONS / "generative-studio.ico"


def test_icons_exist_at_the_sizes_each_system_asks_for() -> None:
    # the app icon is the studio's window icon (one source)
    assert (ICONS / "generative-studio.svg").read_bytes() == \
        (ROOT / "studio" / "resources" / "studio.svg").read_bytes()
    for size in (16, 24, 32, 48, 64, 128, 256, 512, 1024):
        with Image.open(ICONS / "png" / f"generative-studio-{size}.png") as im:
            assert im.size == (size, size) and im.mode == "RGBA"
            assert im.getpixel((0, 0))[3] == 0  # transparent corner (rounded square)
            assert im.getpixel((size // 2, size // 2))[3] == 255
    with Image.open(ICONS / "generative-studio.ico") as ico:
        assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])
    with Image.open(ICONS / "generative-studio.icns") as icns:
        # (width, height, scale): 512x512 at scale 2 is the 1024 px Retina image
        pixels = {s[0] * (s[2] if len(s) > 2 else 1) for s in icns.info["sizes"]}
        assert {128, 256, 512, 1024} <= pixels


def test_resources_are_found_under_a_frozen_bundle(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from studio import shipped

    (tmp_path / "resources" / "icons").mkdir(parents=True)
    (tmp_path / "resources" / "icons" / "generative-studio.svg").write_text("<svg/>")
    monkeypatch.delenv("STUDIO_RESOURCES", raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert shipped.resources_dir() == tmp_path / "resources"
    assert shipped.resource("icons", "generative-studio.svg") == \
        tmp_path / "resources" / "icons" / "generative-studio.svg"
    assert shipped.resource("music", "bach-chorales") is None  # not in this fake bundle


def test_linux_tarball_unpacks_into_a_prefix(tmp_path: Path, meta: ModuleType) -> None:
    tarball = _load(BUILD / "linux" / "make_tarball.py", "studio_make_tarball_test")
    dist = tmp_path / "GenerativeStudio"
    (dist / "_internal" / "torch").mkdir(parents=True)
    (dist / "_internal" / "torch" / "x.so").write_bytes(b"\0" * 10)
    for exe in (meta.GUI_EXE, meta.CLI_EXE):
        (dist / exe).write_bytes(b"\x7fELF")
        (dist / exe).chmod(0o755)
    out = tarball.build(dist, tmp_path / "out")
    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers()}
    assert out.name.startswith(f"{meta.BUNDLE_NAME}-{_pyproject_version()}-linux-")
    assert members["bin/studio"].issym()
    assert members["bin/studio"].linkname == "../lib/generative-studio/studio"
    assert members["lib/generative-studio/studio"].mode & 0o111
    assert "lib/generative-studio/_internal/torch/x.so" in members
    assert "share/applications/generative-studio.desktop" in members
    assert f"share/metainfo/{meta.APP_ID}.metainfo.xml" in members
    assert "share/icons/hicolor/256x256/apps/generative-studio.png" in members
    assert "share/icons/hicolor/scalable/apps/generative-studio.svg" in members


def test_bundle_size_sums_by_package_and_counts_links_once(tmp_path: Path) -> None:
    sizes = _load(BUILD / "bundle_size.py", "studio_bundle_size_test").sizes
    internal = tmp_path / "_internal"
    (internal / "torch" / "lib").mkdir(parents=True)
    (internal / "torch" / "lib" / "libtorch.so").write_bytes(b"\0" * 1000)
    (internal / "numpy.libs").mkdir()
    (internal / "numpy.libs" / "libopenblas.so").write_bytes(b"\0" * 300)
    (internal / "numpy").mkdir()
    (internal / "numpy" / "core.so").write_bytes(b"\0" * 200)
    (internal / "libpython3.11.so.1.0").write_bytes(b"\0" * 50)
    (internal / "libtorch.so").symlink_to(internal / "torch" / "lib" / "libtorch.so")
    (tmp_path / "studio").write_bytes(b"\0" * 7)
    assert sizes(tmp_path) == {"torch": 1000, "numpy": 500, "[lib] libpython3.11": 50,
                               "[exe] studio": 7}


def test_recipes_are_tracked_and_pyinstallers_work_is_not() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert not ignored("build/meta.py") and not ignored("build/linux/make_tarball.py")
    assert ignored("build/pyinstaller/studio/x.toc") and ignored("dist/GenerativeStudio/studio")
