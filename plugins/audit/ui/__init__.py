"""The audit plugin's window panel: choose a model, run a check, read what it found."""
