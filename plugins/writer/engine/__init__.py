"""The writer's engine: pure Python + torch + transformers, never Qt.

What any text plugin needs (loading model folders, tokenizers for generation, sampling,
streaming generation, the training task, scoring, Hub downloads) is the shared language-model
engine, :mod:`plugins.common.lm`. What is the writer's own lives here:

- :mod:`.corpus`      read .txt/.md files or folders (UTF-8 only, clear errors), split train/val
- :mod:`.tokenizer`   train a byte-level BPE or character tokenizer on a corpus (HF ``tokenizers``),
                      and a corpus as one stream of token ids
- :mod:`.presets`     tiny / small / base from-scratch architectures and their parameter counts
                      (pure arithmetic, so a panel can show counts without importing torch)
- :mod:`.training`    :class:`~.training.WriterTask`: the shared ``LMTask``, which also resumes
                      the writer's oldest checkpoints
- :mod:`.evaluation`  perplexity, nats and bits per character on held-out text
- :mod:`.pipeline`    the whole recipe: corpus -> tokenizer -> model -> TrainLoop -> saved folder

Progress is reported through ``plugins.common.training.Reporter``, which a studio ``JobContext``
satisfies; scripts and tests pass ``plugins.common.training.QuietReporter``. Nothing here knows
about the writer's panel or its job parameters.

Submodules import torch; this package itself imports nothing heavy, so ``presets`` and
``corpus`` are safe to use from a panel.
"""
