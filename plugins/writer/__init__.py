"""Text writer plugin: train or fine-tune a causal language model, then write with it."""
