#!/usr/bin/env bash
# System libraries the studio needs beyond pip. Today: PortAudio for audio playback on Linux
# (macOS and Windows wheels of sounddevice bundle it). Installs it when running as root with apt,
# otherwise prints the one command to run. Never fails the build: export still works without it.
set -u
[ "$(uname -s)" = "Linux" ] || exit 0
if ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2'; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing libportaudio2 (audio playback)..."
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libportaudio2 >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libportaudio2 >/dev/null 2>&1 \
      || echo "Could not install libportaudio2; audio playback will be unavailable." >&2
  fi
else
  echo "Note: audio playback needs PortAudio. Install it with: sudo apt-get install libportaudio2" >&2
  echo "      (Fedora: sudo dnf install portaudio; Arch: sudo pacman -S portaudio)" >&2
fi
exit 0
