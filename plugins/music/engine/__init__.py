"""The music plugin's engine: data, models, training, generation, synthesis and playback.

Pure code: nothing here imports Qt (``tests/core/test_purity.py`` and the import-linter contract
enforce it). torch is imported only by the modules that train or run models, so the synth and the
audio player stay light enough for the audio thread and for the panel.
"""
