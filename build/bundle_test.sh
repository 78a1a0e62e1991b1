#!/usr/bin/env bash
# `make bundle-test`: the bundle's own `studio selftest` as a user on a fresh machine meets it:
# run from a folder outside the checkout, with a clean environment (nothing from the venv), a
# fresh HOME and STUDIO_HOME, and on Linux with the network off (`unshare -n`: a network
# namespace with no interfaces, so any download attempt fails at once instead of passing here).
# HOME holds an ALSA null device, so the audio check really plays (to nowhere).
#   build/bundle_test.sh [BUNDLE_FOLDER]     (default dist/GenerativeStudio)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=$(cd "${1:-$ROOT/dist/GenerativeStudio}" 2>/dev/null && pwd) \
  || { echo "no bundle folder: run 'make bundle' first" >&2; exit 1; }
EXE="$BUNDLE/studio"
[ -f "$EXE.exe" ] && EXE="$EXE.exe"  # Windows (Git Bash)
[ -x "$EXE" ] || { echo "no $EXE: run 'make bundle' first" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/studio-bundle-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/home" "$WORK/cwd"
printf 'pcm.!default { type null }\n' > "$WORK/home/.asoundrc"

NETOFF=()
# a clean environment on Linux; Windows programs need SYSTEMROOT and friends, so elsewhere the
# user's environment stays and only HOME and STUDIO_HOME change
CLEAN=(env)
if [ "$(uname -s)" = Linux ]; then
  CLEAN=(env -i PATH=/usr/bin:/bin LANG=C.UTF-8)
  if [ "$(id -u)" = 0 ]; then NETOFF=(unshare -n --); else NETOFF=(unshare -rn --); fi
  "${NETOFF[@]}" true 2>/dev/null \
    || { echo "unshare cannot make a network namespace here: the test needs it" >&2; exit 1; }
  echo "network: off (unshare -n)"
fi
cd "$WORK/cwd"
echo "bundle: $BUNDLE ($(du -sh "$BUNDLE" | cut -f1))"
"${CLEAN[@]}" HOME="$WORK/home" STUDIO_HOME="$WORK/home/studio" QT_QPA_PLATFORM=offscreen \
  TMPDIR="$WORK" ${NETOFF[@]+"${NETOFF[@]}"} "$EXE" selftest
