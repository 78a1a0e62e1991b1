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


def continuation_logprobs(model: Any, contexts: Sequence[Sequence[int]],
                          continuations: Sequence[Sequence[int]], batch: int = 32) -> Any:
    """``log P(continuation | context)`` in nats for each pair of token-id lists: the summed
    log-probability of every continuation token given the context and the continuation tokens
    before it (the audit's bias probes compare these across prompts). Pairs are right-padded
    into batches of similar length (a causal model's earlier positions never see the padding);
    a pair longer than the model's context keeps the end of its context. Returns a float64
    numpy array."""
    import numpy as np
    import torch

    if len(contexts) != len(continuations):
        raise ValueError("one continuation per context")
    limit = context_length(model.config)
    seqs, starts = [], []
    for ctx, cont in zip(contexts, continuations, strict=True):
        ctx, cont = [int(i) for i in ctx], [int(i) for i in cont]
        if not ctx or not cont:
            raise ValueError("a context and a continuation need a token each")
        keep = max(1, limit - len(cont))
        ctx = ctx[-keep:]
        seqs.append((ctx + cont)[-limit:])
        starts.append(len(seqs[-1]) - len(cont))  # first continuation position
    out = np.zeros(len(seqs), dtype=np.float64)
    dev = next(model.parameters()).device
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            group = order[s:s + batch]
            width = max(len(seqs[i]) for i in group)
            ids = torch.zeros((len(group), width), dtype=torch.long)
            mask = torch.zeros((len(group), width - 1), dtype=torch.bool)
            for k, i in enumerate(group):
                ids[k, :len(seqs[i])] = torch.tensor(seqs[i])
                mask[k, max(0, starts[i] - 1):len(seqs[i]) - 1] = True
            ids = ids.to(dev)
            logp = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), -1)
            got = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            out[group] = (got * mask.to(dev)).sum(1).double().cpu().numpy()
    return out
