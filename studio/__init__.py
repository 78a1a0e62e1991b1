"""Generative Studio: train and run generative models on your own machine and data."""

__version__ = "0.1.0"
