"""The diffusion plugin's engine: models, training, loading, sampling and editing.

Pure Python + torch + diffusers; never imports Qt (a purity test enforces it). Modules:

- ``presets``: the UNet sizes offered for training (small enough for a CPU).
- ``train``: the DDPM training task the studio's training loop runs (resume is the loop's).
- ``schedulers``: the six samplers by their command-line names.
- ``loading``: diffusers folders and single-file checkpoints, safetensors only, cached.
- ``generate``: txt2img / img2img / inpaint / outpaint for pixel and text-conditioned models.
- ``preview``: cheap predicted-x0 previews at every step, and their throttle.
- ``infotext``: the A1111 ``parameters`` text that PNGs carry.
- ``imageio``: reading the user's images and masks with clear errors (also as the codecs of the
  jobs' image and mask fields); growing a canvas.
"""
