"""The GAN engine: models, data, training and generation (no Qt)."""
