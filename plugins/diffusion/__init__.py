"""Diffusion editor plugin: train DDPMs, load diffusers pipelines, generate and edit images."""
