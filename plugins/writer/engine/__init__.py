"""The writer's language-model engine: pure Python + torch + transformers, never Qt.

Everything a text plugin needs, with no assumption about the writing panel, so the chatbot
plugin reuses it unchanged:

- :mod:`.corpus`      read .txt/.md files or folders (UTF-8 only, clear errors), split train/val
- :mod:`.tokenizer`   train a byte-level BPE or character tokenizer on a corpus (HF ``tokenizers``),
                      saved as a folder ``AutoTokenizer`` loads
- :mod:`.presets`     tiny / small / base from-scratch architectures and their parameter counts
                      (pure arithmetic, so a panel can show counts without importing torch)
- :mod:`.loading`     load a local Hugging Face causal-LM folder (safetensors only, never remote
                      code), LoRA adapter folders, atomic ``save_pretrained``, explicit Hub download
- :mod:`.training`    :class:`~.training.LMTask`, the training of from-scratch, full fine-tune
                      and LoRA (peft) models as a task of the studio's one training loop
                      (``plugins.common.training``): warmup + cosine LR, validation loss,
                      keep-best weights
- :mod:`.generation`  :class:`~.generation.Generator` with ``stream()`` yielding text chunks
                      (sampling controls, seed, stop sequences, cancel, tokens/s); a chat loop
                      calls it with ``tokenizer.apply_chat_template`` ids
- :mod:`.evaluation`  perplexity, nats and bits per character on held-out text
- :mod:`.pipeline`    the whole recipe: corpus -> tokenizer -> model -> TrainLoop -> saved folder
- :mod:`.hub`         Hugging Face Hub download, only when the user explicitly asks

Progress is reported through ``plugins.common.training.Reporter``, which a studio ``JobContext``
satisfies; scripts and tests pass ``plugins.common.training.QuietReporter``. Nothing here knows
about the writer's panel or its job parameters.

Submodules import torch; this package itself imports nothing heavy, so ``presets`` and
``corpus`` are safe to use from a panel.
"""
