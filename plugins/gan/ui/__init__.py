"""The GAN plugin's Qt panel (thin: every computation is a job)."""
