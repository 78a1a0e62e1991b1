#!/usr/bin/env bash
# A compressed disk image of the app bundle, with a link to /Applications to drag it onto.
# Run on macOS after `make bundle` (which makes "dist/Generative Studio.app"); sign and notarise
# first if you hold the certificate (build/README.md, "macOS signing and notarisation").
#   build/macos/make_dmg.sh            -> dist/GenerativeStudio-<version>-macos-<arch>.dmg
set -euo pipefail
cd "$(dirname "$0")/../.."
APP="dist/Generative Studio.app"
[ -d "$APP" ] || { echo "no $APP: run 'make bundle' first" >&2; exit 1; }
VERSION=$(/usr/libexec/PlistBuddy -c "Print CFBundleShortVersionString" "$APP/Contents/Info.plist")
OUT="dist/GenerativeStudio-${VERSION}-macos-$(uname -m).dmg"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
# ditto keeps the bundle's symlinks, extended attributes and code signature intact
ditto "$APP" "$STAGE/Generative Studio.app"
ln -s /Applications "$STAGE/Applications"
rm -f "$OUT"
# UDZO: zlib-compressed, read-only; UDBZ is smaller but slower to open
hdiutil create -volname "Generative Studio" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$OUT"
echo "$OUT"
