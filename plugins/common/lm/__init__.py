"""The language-model engine the text plugins share (the writer, the chatbot): pure Python +
torch + transformers + peft, never Qt, and no plugin's code.

- :mod:`.loading`     check and load a local Hugging Face causal-LM folder (safetensors only,
                      never remote code; a training run's ``model/``; LoRA adapter folders via
                      peft), save model folders atomically
- :mod:`.tokens`      tokenizers for generation: load/save, prompt and chat-template ids, end
                      ids, incremental decoding that never splits a character
- :mod:`.sampling`    :class:`~.sampling.SamplingSettings`, the named sampler presets
                      (Precise, Balanced, Creative) and the sampler (repetition penalty,
                      temperature, top-k, top-p, min-p); light, for params modules
- :mod:`.generation`  :class:`~.generation.Generator`: streaming generation, Stop between two
                      tokens, stop sequences, batches of alternatives; time to first token and
                      tokens/s with every result; a cache of loaded models
- :mod:`.data`        what training reads: a flat token stream, or masked (prompt, reply)
                      sequences where only the reply is trained
- :mod:`.training`    :class:`~.training.LMTask`, full or LoRA training as a task of
                      :class:`plugins.common.training.TrainLoop`
- :mod:`.scoring`     negative log-likelihood of token ids (validation loss, perplexity)
- :mod:`.hub`         Hugging Face Hub download, only when the user explicitly asks

This package imports nothing heavy; ``sampling`` and ``tokens`` import torch only inside their
functions, so a params module or a panel may import them.
"""
