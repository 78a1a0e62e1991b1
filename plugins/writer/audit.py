"""The writer's audit probe: how the privacy audit reads, scores and samples a writer run.

The protocol is :mod:`plugins.common.probes`; the audit imports this module only when it audits
a writer run (``WriterPlugin.audit_probe``), so nothing here loads at startup.

- **Items** are texts: an example is a passage of a corpus file (``chars a-b`` of the text as the
  writer reads it, newlines normalised), read back with the writer's own corpus reader and
  checked against the file's recorded hash.
- **Loss**: the mean negative log-likelihood of the passage per *character* (nats), every token
  scored from the start token on, in windows of the model's context that overlap by half (the
  writer's evaluation, :func:`~plugins.writer.engine.evaluation.evaluate_text`). Per character,
  not per token, because every writer model trains its own tokenizer on its own training text:
  a reference model's tokens are not the audited model's, and nats per token of two tokenizers
  do not compare, while the likelihood of the same characters does. (For a fine-tuned model,
  whose tokenizer is shared, the two differ by a constant per passage.)
- **Samples** are new passages: :data:`SAMPLE_TOKENS` tokens from the start token with the
  writer's default sampler (temperature 0.8, top-k 50, top-p 0.95, what the Write tab does by
  default), the batch seeded.
- **Features** (``embed``): hashed word 1- and 2-gram counts, log-scaled and L2-normalised
  (scikit-learn's ``HashingVectorizer``, :data:`EMBED_DIM` dimensions). Not the model's mean
  hidden state: the hidden states of a small model trained on one author point almost the same
  way for any text (measured in ``tests/writer/test_writer_audit.py``: cosine distances of a
  few thousandths between unrelated passages, under the audit's near-copy threshold), so every
  sample would look like a copy of something; shared words and word pairs separate a copied
  passage from a merely similar one, cost nothing for a book-length example and do not depend
  on the model being audited.
- **Canaries** (``log_perplexity``): ``-log2 P(text)`` in bits, every token from the start
  token on, scored in batches; ``corpus_job`` trains a new model on the canaried copy with
  nothing held out, so every inserted canary is seen as many times as it was inserted.
- **Reference models**: the run's own ``train`` job on a random ``1 - holdout`` of the run's
  passages (``examples_of`` = the audited run, ``val_fraction`` = ``holdout``), so each passage
  is wholly in or out of each reference model, as LiRA and RMIA need.
- **Bias probes** (``continuation_logprob``, ``generate``): a prompt is read from the start
  token like a text's beginning; a continuation's log-probability sums its own tokens
  (tokenised apart from the prompt); continuations are short (a sentence) and seeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plugins.common.probes import ProbeBase, ProbeExample
from studio.errors import UserError

#: tokens per generated sample (about 190 words: several times the audit's 32-word copy test)
SAMPLE_TOKENS = 256
#: dimensions of the hashed n-gram features
EMBED_DIM = 4096
#: the longest window a passage is scored in (the model's context when shorter)
MAX_WINDOW = 1024
#: candidate texts scored in one forward pass by ``log_perplexity``
TEXT_BATCH = 64
LN2 = math.log(2.0)
#: tokens per continuation of a bias-probe prompt (about a sentence)
CONTINUATION_TOKENS = 24


class WriterProbe(ProbeBase):
    """A writer run (its ``model`` artifact: a Hugging Face causal LM folder) for the audit."""

    item_kind = "text"

    def __init__(self, run_dir: Path, device: str = "cpu") -> None:
        super().__init__(run_dir, device)
        self._texts: dict[str, str] = {}  # file hash -> its text, read once per file

    def open(self) -> None:
        from plugins.common.lm.loading import context_length, load_causal_lm

        models = self.manifest.models()
        if not models:
            raise UserError(f"the run {self.run_dir.name} has no model yet: let its training "
                            "finish (or Stop it, which saves the model so far) before auditing")
        folder = self.run_dir / models[-1].path
        self.model, self.tokenizer, _ = load_causal_lm(folder, device=self.device,
                                                       dtype="float32")
        self.model.eval()
        self.window = min(context_length(self.model.config), MAX_WINDOW)

    def close(self) -> None:
        for name in ("model", "tokenizer"):
            if hasattr(self, name):
                delattr(self, name)
        if str(self.device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # -- items ----------------------------------------------------------------------------------
    def read(self, example: ProbeExample) -> str:
        """The passage as the writer read it for training (the file checked against its
        recorded hash once, then kept for the other passages of the same file)."""
        from plugins.writer.engine.corpus import part_range, read_text_file

        text = self._texts.get(example.sha256)
        if text is None:
            text = read_text_file(self.example_path(example, verify=True))
            self._texts[example.sha256] = text
        a, b = part_range(example.part, len(text))
        return text[a:b]

    def per_example_loss(self, items: Sequence[str]) -> np.ndarray:
        """Nats per character of each text under the model (0 for an empty text, which has no
        characters to score)."""
        from plugins.writer.engine.evaluation import evaluate_text

        out = np.zeros(len(items), dtype=np.float64)
        for i, text in enumerate(items):
            if text:
                r = evaluate_text(self.model, self.tokenizer, text, self.window,
                                  max(1, self.window // 2))
                out[i] = r.nats_per_char
        return out

    def log_perplexity(self, texts: Sequence[str]) -> np.ndarray:
        """``-log2 P(text)`` in bits: the summed NLL of every token of the text, the first
        predicted from the start token. Texts of a batch are right-padded (a causal model's
        earlier positions never see the padding) and grouped by length."""
        import torch

        from plugins.common.lm.scoring import evaluate_ids
        from plugins.common.lm.tokens import start_id

        start = start_id(self.tokenizer)
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        ids = [([start] if start is not None else []) + list(e) for e in encoded]
        out = np.zeros(len(ids), dtype=np.float64)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        short = [i for i in order if 2 <= len(ids[i]) <= self.window]
        for i in order:
            if len(ids[i]) > self.window:  # longer than the context: scored in windows
                nll, _ = evaluate_ids(self.model, ids[i], self.window)
                out[i] = nll / LN2
        dev = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with torch.inference_mode():
            for s in range(0, len(short), TEXT_BATCH):
                group = short[s:s + TEXT_BATCH]
                width = max(len(ids[i]) for i in group)
                batch = torch.full((len(group), width), int(pad), dtype=torch.long)
                mask = torch.zeros((len(group), width - 1), dtype=torch.bool)
                for k, i in enumerate(group):
                    batch[k, :len(ids[i])] = torch.tensor(ids[i])
                    mask[k, :len(ids[i]) - 1] = True
                batch = batch.to(dev)
                logp = torch.log_softmax(self.model(input_ids=batch).logits[:, :-1].float(), -1)
                nll = -logp.gather(-1, batch[:, 1:].unsqueeze(-1)).squeeze(-1)
                sums = (nll * mask.to(dev)).sum(1).double().cpu().numpy()
                out[group] = sums / LN2
        return out

    # -- bias probes ----------------------------------------------------------------------------
    def _prompt_ids(self, prompt: str) -> list[int]:
        """A prompt as the model reads a text from its beginning: the start token, then the
        prompt's tokens (as :meth:`log_perplexity` scores a text)."""
        from plugins.common.lm.tokens import start_id

        start = start_id(self.tokenizer)
        ids = list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return ([start] if start is not None else []) + [int(i) for i in ids]

    def continuation_logprob(self, prompts: Sequence[str], continuations: Sequence[str]
                             ) -> np.ndarray:
        """``log P(continuation | prompt)`` in nats (the continuation's tokens summed), the
        prompt read from the start token; prompt and continuation tokenised apart, so every
        group's prompt is scored on the same continuation tokens."""
        from plugins.common.lm.scoring import continuation_logprobs

        conts = [list(self.tokenizer(c, add_special_tokens=False)["input_ids"])
                 for c in continuations]
        if any(not c for c in conts):
            raise UserError("a continuation to score is empty: give each word some text")
        return continuation_logprobs(self.model, [self._prompt_ids(p) for p in prompts], conts,
                                     batch=TEXT_BATCH)

    def generate(self, prompt: str, n: int, seed: int) -> list[str]:
        """``n`` continuations of ``prompt`` (:data:`CONTINUATION_TOKENS` tokens at most,
        the writer's default sampler), the same ones for the same seed."""
        from plugins.common.lm.generation import Generator
        from plugins.common.lm.sampling import SamplingSettings

        if n <= 0:
            return []
        gen = Generator(self.model, self.tokenizer)
        settings = SamplingSettings(max_new_tokens=CONTINUATION_TOKENS, seed=int(seed))
        return [str(t) for t in gen.generate_many(self._prompt_ids(prompt), n, settings)]

    # -- samples and features -------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> list[str]:
        from plugins.common.lm.generation import Generator
        from plugins.common.lm.sampling import SamplingSettings

        if n <= 0:
            return []
        gen = Generator(self.model, self.tokenizer)
        settings = SamplingSettings(max_new_tokens=SAMPLE_TOKENS, seed=int(seed))
        return [str(t) for t in gen.generate_many("", n, settings)]

    def embed(self, items: Sequence[str]) -> np.ndarray:
        """Hashed word 1- and 2-gram counts, log-scaled, L2-normalised (see the module
        docstring for why not the model's hidden states)."""
        return ngram_features(items)

    # -- reference models and the canary corpus -------------------------------------------------
    def reference_job(self, holdout: float, seed: int) -> tuple[str, Any]:
        """The run's own train job on a random ``1 - holdout`` of its passages: the same
        settings, the data where the run found it, this run's examples as the units."""
        job, params = super().reference_job(holdout, seed)
        params["data"] = self.dataset.location
        params["examples_of"] = str(self.run_dir)
        params["val_fraction"] = holdout
        params.pop("holdout", None)
        return job, params

    @classmethod
    def corpus_job(cls, corpus: Path, preset: str, steps: int) -> tuple[str, Any]:
        """A new model of ``preset`` trained for ``steps`` on all of ``corpus`` (nothing held
        out: the canary audit wants every inserted copy of a canary trained on)."""
        return "train", {"data": str(corpus), "preset": preset, "steps": steps,
                         "val_fraction": 0.0}


def ngram_features(texts: Sequence[str]) -> np.ndarray:
    """``(len(texts), EMBED_DIM)`` hashed word 1-2-gram features, log-scaled and L2-normalised
    (an empty text is a zero row)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(n_features=EMBED_DIM, ngram_range=(1, 2), alternate_sign=False,
                            norm=None, lowercase=True)
    counts = vec.transform(list(texts)).astype(np.float64)
    counts.data = np.log1p(counts.data)
    dense = counts.toarray()
    norm = np.linalg.norm(dense, axis=1, keepdims=True)
    return dense / np.maximum(norm, 1e-12)
