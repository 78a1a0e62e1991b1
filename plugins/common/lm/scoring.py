"""Scoring token ids with a causal LM: the summed negative log-likelihood of every token given
what precedes it, read in windows of the model's context.

The training task's validation loss and the writer's perplexity / bits-per-character report
both come from here. With ``stride`` smaller than the window, each window re-reads
``window - stride`` tokens of context and scores only its new tokens (the Hugging Face
"perplexity of fixed-length models" method); windows of the same shape are batched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from plugins.common.lm.loading import context_length


def token_nll(model: Any, ids: Any, score_from: int = 0) -> tuple[float, int]:
    """Sum of next-token NLL over a batch of windows ``ids`` (B, T), scoring predictions for
    positions ``score_from+1 .. T-1``; returns ``(nll, count)``."""
    import torch

    logits = model(input_ids=ids).logits[:, :-1].float()
    targets = ids[:, 1:]
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    nll = nll[:, score_from:]
    return float(nll.sum()), int(nll.numel())


def evaluate_ids(model: Any, ids: Sequence[int], window: int, stride: int | None = None,
                 max_batch_elems: int = 1 << 25,
                 check: Callable[[], None] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[float, int]:
    """Total NLL of ``ids[1:]`` given what precedes each (``ids[0]`` is context only).

    Windows of ``window`` tokens advance by ``stride`` (default: ``window``, no overlap); each
    scores only tokens not scored before. Returns ``(nll, tokens_scored)``.
    """
    import torch

    if len(ids) < 2:
        return 0.0, 0
    window = max(2, min(int(window), context_length(model.config)))
    stride = window if not stride else max(1, min(int(stride), window))
    device = next(model.parameters()).device
    data = torch.tensor(list(ids), dtype=torch.long)
    n = len(ids)
    # Window ids[s:e] predicts positions s+1 .. e-1; only positions after ``prev`` (the last one
    # already scored) count. Consecutive windows overlap by at least one token of context.
    jobs: list[tuple[int, int, int]] = []  # start, length, score_from
    prev, s = 0, 0
    while prev < n - 1:
        e = min(n, s + window)
        jobs.append((s, e - s, max(0, prev - s)))
        prev = e - 1
        if e == n:
            break
        s = min(s + stride, e - 1)
    vocab = int(getattr(model.config, "vocab_size", 50000) or 50000)
    per_batch = max(1, max_batch_elems // (window * vocab))
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            i = 0
            while i < len(jobs):
                if check is not None:
                    check()
                length, score_from = jobs[i][1], jobs[i][2]
                group = [jobs[i]]
                while (len(group) < per_batch and i + len(group) < len(jobs)
                       and jobs[i + len(group)][1:] == (length, score_from)):
                    group.append(jobs[i + len(group)])
                batch = torch.stack([data[s:s + length] for s, _, _ in group]).to(device)
                nll, c = token_nll(model, batch, score_from)
                total += nll
                count += c
                i += len(group)
                if progress is not None:
                    progress(i, len(jobs))
    finally:
        model.train(was_training)
    return total, count


def labelled_nll(model: Any, inputs: Any, labels: Any, ignore: int = -100) -> tuple[float, int]:
    """Sum of the negative log-likelihood of ``labels`` (B, T) given ``inputs`` (B, T), over the
    positions whose label is not ``ignore``; returns ``(nll, count)``. The masked counterpart
    of :func:`token_nll` (labels are already shifted: ``labels[:, t]`` follows ``inputs[:, t]``).
    """
    import torch

    logits = model(input_ids=inputs).logits.float()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                            labels.reshape(-1), ignore_index=ignore,
                                            reduction="sum")
    return float(nll), int((labels != ignore).sum())
