"""The VAE music composer: learn phrases from MIDI or audio, sample, interpolate, play, export."""
