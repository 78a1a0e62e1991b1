"""The diffusion plugin's engine: models, training, loading, sampling and editing.

Pure Python + torch + diffusers; never imports Qt (a purity test enforces it). Modules:

- ``presets``: the UNet sizes offered for training (small enough for a CPU).
- ``train``: the DDPM training task the studio's training loop runs (resume is the loop's).
- ``schedulers``: samplers and sigma schedules by their A1111 names ("DPM++ 2M Karras").
- ``loading``: diffusers folders and single-file checkpoints (configurations shipped for SD 1.x,
  2.x and SDXL), safetensors only, cached.
- ``prompts``: A1111 prompt syntax (weights, long prompts in chunks, LoRA tags) as conditioning.
- ``adapters``: LoRAs with weights, textual-inversion embeddings and VAE files on a loaded model.
- ``hashes``: A1111's model, LoRA, embedding and VAE hashes.
- ``pnginfo``: generation settings from A1111, ComfyUI and InvokeAI PNGs.
- ``generate``: txt2img / img2img / inpaint / outpaint for pixel and text-conditioned models.
- ``preview``: cheap predicted-x0 previews at every step, and their throttle.
- ``infotext``: the A1111 ``parameters`` text that PNGs carry (read and written).
- ``imageio``: reading the user's images and masks with clear errors (also as the codecs of the
  jobs' image and mask fields); growing a canvas.
"""
