#!/usr/bin/env bash
# System libraries the studio needs beyond pip, on Linux (macOS and Windows wheels of
# sounddevice bundle PortAudio):
#   - PortAudio, for audio playback;
#   - FluidSynth and a free General MIDI SoundFont (FluidR3_GM), so the music plugin plays
#     real instruments (without them it falls back to its built-in synth and says so).
# Installs what is missing when running as root with apt, otherwise prints the one command to
# run. Never fails the build: export works without any of them.
set -u
[ "$(uname -s)" = "Linux" ] || exit 0

# ldconfig lives in /sbin, which a user's PATH may not hold
have_lib() { { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q "$1"; }
missing=()
have_lib 'libportaudio\.so\.2' || missing+=(libportaudio2)
have_lib 'libfluidsynth\.so\.[0-9]' || missing+=(libfluidsynth3)
[ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || [ -e /usr/share/soundfonts/FluidR3_GM.sf2 ] \
  || [ -e /usr/share/sounds/sf2/default-GM.sf2 ] || missing+=(fluid-soundfont-gm)
[ ${#missing[@]} -eq 0 ] && exit 0

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${missing[*]} (audio playback, SoundFont instruments)..."
  if ! apt_install "${missing[@]}"; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1
    # one at a time, so one missing package does not keep the others out
    for pkg in "${missing[@]}"; do
      apt_install "$pkg" || case "$pkg" in
        libportaudio2) echo "Could not install libportaudio2; audio playback will be unavailable." >&2 ;;
        *) echo "Could not install $pkg; the music plugin will use its built-in synth." >&2 ;;
      esac
    done
  fi
else
  echo "Note: some audio libraries are missing. Install them with:" >&2
  echo "      sudo apt-get install ${missing[*]}" >&2
  echo "      (Fedora: sudo dnf install portaudio fluidsynth-libs fluid-soundfont-gm;" >&2
  echo "       Arch: sudo pacman -S portaudio fluidsynth soundfont-fluid)" >&2
  echo "      libportaudio2 plays sound; libfluidsynth3 and fluid-soundfont-gm give the music" >&2
  echo "      plugin real instruments (it uses its built-in synth without them)." >&2
fi
exit 0
