"""Image GAN plugin: train DCGAN / WGAN-GP / SNGAN on your own images, evaluate, explore."""
