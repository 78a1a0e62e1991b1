"""Training language models in the shared loop: masked (prompt, reply) fine-tuning that trains
only the replies, sequence batches, exact resume, LoRA adapters saved and loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lm_helpers import llama

from plugins.common.lm.data import (
    IGNORE,
    SequenceData,
    StreamData,
    TokenSequence,
    chat_pair,
    pair_sequence,
)
from plugins.common.lm.training import LMTask, TrainConfig, apply_lora, save_trained_model
from plugins.common.training import QuietReporter, Schedule, TrainLoop
from studio.errors import Cancelled, UserError

PROMPT_IDS = range(100, 120)  # prompts are random tokens from these twenty
REPLY = [50, 51, 52]


def _pairs(n: int, eos: int, seed: int = 0) -> list[TokenSequence]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        prompt = torch.randint(PROMPT_IDS.start, PROMPT_IDS.stop, (12,), generator=g).tolist()
        out.append(pair_sequence(prompt, REPLY, end_id=eos))
    return out


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=40, batch_size=8, block_size=32, lr=1e-2, warmup=0, eval_every=1000,
                log_every=10, amp="off", optimizer="adamw", weight_decay=0.0)
    return TrainConfig(**{**base, **kw})


def _nll_by_part(model, seqs: list[TokenSequence]) -> tuple[float, float]:
    """Mean NLL of the prompt tokens (after the first) and of the reply tokens (the sequences
    are of one length: one forward pass)."""
    ids = torch.tensor([s.ids for s in seqs])
    mask = torch.tensor([s.mask[1:] for s in seqs], dtype=torch.bool)
    model.eval()
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), -1)
    model.train()
    nll = -logp.gather(-1, ids[:, 1:, None])[..., 0]
    return float(nll[~mask].mean()), float(nll[mask].mean())


def test_batches_pad_on_the_right_and_label_only_the_reply(tokenizer) -> None:
    eos = tokenizer.eos_token_id
    seqs = [pair_sequence([5, 6, 7], [8, 9], end_id=eos), pair_sequence([5], [8], end_id=eos)]
    data = SequenceData(seqs, pad_id=0)
    assert data.fit(16, QuietReporter()) == 16
    b = data.batch(2, 16, torch.Generator().manual_seed(0), "cpu")
    rows = {tuple(r.tolist()) for r in b.inputs}
    assert rows == {(5, 6, 7, 8, 9), (5, 8, 0, 0, 0)}  # ids[:-1], padded on the right
    for x, y in zip(b.inputs.tolist(), b.labels.tolist(), strict=True):
        if x[:3] == [5, 6, 7]:
            assert y == [IGNORE, IGNORE, 8, 9, eos]  # 6 and 7 are prompt: not trained
        else:
            assert y == [8, eos, IGNORE, IGNORE, IGNORE]
    assert b.tokens == 5 + 2


def test_an_epoch_takes_every_example_once(tokenizer) -> None:
    seqs = [pair_sequence([i], [i + 1]) for i in range(10, 17)]
    data = SequenceData(seqs)
    data.fit(8, QuietReporter())
    g = torch.Generator().manual_seed(3)
    firsts = [r[0] for _ in range(7) for r in data.batch(1, 8, g, "cpu").inputs.tolist()]
    assert sorted(firsts) == list(range(10, 17)) and data.epoch == 0
    data.batch(3, 8, g, "cpu")
    assert data.epoch == 1


def test_long_and_empty_examples_are_reported(tokenizer) -> None:
    rep = QuietReporter()
    long = pair_sequence(list(range(100, 140)), [7, 8, 9])
    silent = TokenSequence([1, 2, 3], [0, 0, 0])
    data = SequenceData([long, silent, pair_sequence([1], [2])])
    data.fit(16, rep)
    assert [len(s.ids) for s in data.train] == [17, 2]
    assert data.train[0].ids[-3:] == [7, 8, 9]  # the end (the reply) is kept
    warnings = [t for level, t in rep.logs if level == "warning"]
    assert any("1 example(s) are longer" in w for w in warnings)
    assert any("1 example(s) have no reply" in w for w in warnings)
    with pytest.raises(UserError, match="no training example"):
        SequenceData([silent]).fit(16, QuietReporter())


def test_the_loss_ignores_prompt_positions(tokenizer) -> None:
    """The task's loss is the cross-entropy of the reply tokens alone: equal to it computed by
    hand, whatever the prompt positions' targets would score."""
    eos = tokenizer.eos_token_id
    model = llama(tokenizer)
    seqs = _pairs(4, eos)
    task = LMTask(model, SequenceData(seqs), _cfg(), QuietReporter())
    batch = task.batch()  # all four (a batch is eight: the epoch goes round again)
    loss = task.loss(batch).detach()
    with torch.no_grad():
        logits = model(input_ids=batch.inputs).logits.float()
    following = {tuple(s.ids[:-1]): s.ids[1:] for s in seqs}
    targets = torch.tensor([following[tuple(r)] for r in batch.inputs.tolist()])
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)),
                                            targets.reshape(-1), reduction="none")
    nll = nll.view(targets.shape)
    trained = batch.labels != IGNORE
    assert int(trained.sum()) == 8 * len([*REPLY, eos])
    assert torch.equal(batch.labels[trained], targets[trained])
    assert float(loss) == pytest.approx(float(nll[trained].mean()), rel=1e-5)
    assert float(loss) != pytest.approx(float(nll.mean()), rel=1e-3)  # prompts would count
    # the same sequences with every position trained: the loss over everything
    full = [TokenSequence(s.ids, [1] * len(s.ids)) for s in seqs]
    task_full = LMTask(model, SequenceData(full), _cfg(), QuietReporter())
    everything = float(task_full.loss(task_full.batch()).detach())
    assert everything == pytest.approx(float(nll.mean()), rel=1e-5)


def test_masked_fine_tune_learns_the_replies_not_the_prompts(tokenizer) -> None:
    """Prompts are random tokens from twenty ids: trained on everything, a model learns that
    (their loss falls towards ln 20 = 3.0 nats); trained on replies only, it does not."""
    eos = tokenizer.eos_token_id
    seqs = _pairs(64, eos)
    results = {}
    for name, data in (("masked", seqs),
                       ("full", [TokenSequence(s.ids, [1] * len(s.ids)) for s in seqs])):
        model = llama(tokenizer, seed=1)
        before = _nll_by_part(model, seqs)
        task = LMTask(model, SequenceData(data), _cfg(steps=25), QuietReporter())
        TrainLoop(task, Schedule(steps=25, log_every=5), QuietReporter()).run()
        results[name] = (before, _nll_by_part(model, seqs))
    (p0, r0), (p_masked, r_masked) = results["masked"]
    _, (p_full, _) = results["full"]
    assert r_masked < 0.25 * r0  # the replies are learnt
    assert p_full < p0 - 1.5  # a model trained on the prompts learns them...
    assert p_masked > p_full + 2.0  # ...one trained on replies only does not


def test_validation_loss_is_the_replies_mean_nll(tokenizer) -> None:
    eos = tokenizer.eos_token_id
    train, val = _pairs(8, eos, seed=0), _pairs(5, eos, seed=1)
    model = llama(tokenizer)
    task = LMTask(model, SequenceData(train, val), _cfg(batch_size=2), QuietReporter())
    assert task.has_validation
    out = task.evaluate(None)  # type: ignore[arg-type]
    _, reply = _nll_by_part(model, val)
    assert out["loss/val"] == pytest.approx(reply, rel=1e-4)
    assert model.training  # evaluation leaves training mode as it was


def test_resume_with_sequence_data_is_exact(tmp_path: Path, tokenizer) -> None:
    eos = tokenizer.eos_token_id
    seqs = _pairs(20, eos)

    def run(folder: Path, rep: QuietReporter, resume: bool = False) -> dict:
        model = llama(tokenizer, seed=2)
        task = LMTask(model, SequenceData(seqs), _cfg(steps=12, batch_size=3, dropout=0.1),
                      rep)
        loop = TrainLoop(task, Schedule(steps=12, log_every=2, checkpoint_every=4), rep,
                         folder / "last.safetensors")
        if resume:
            loop.resume()
        else:
            torch.manual_seed(0)
        loop.run()
        return {k: v.detach().clone() for k, v in model.named_parameters()}

    straight = run(tmp_path / "a", QuietReporter())
    with pytest.raises(Cancelled):
        run(tmp_path / "b", QuietReporter(cancel_after=7))  # stops inside the third epoch
    resumed = run(tmp_path / "b", QuietReporter(), resume=True)
    for k, v in straight.items():
        assert torch.equal(v, resumed[k]), k


def test_lora_on_reply_pairs_saved_as_adapter_and_merged(tmp_path: Path, tiny_llama: Path,
                                                         tokenizer) -> None:
    from plugins.common.lm.loading import inspect_model_dir, load_causal_lm

    def tuned() -> tuple:
        model, tok, _ = load_causal_lm(tiny_llama, dtype="float32")
        cfg = _cfg(steps=6, method="lora", lora_r=4)
        model = apply_lora(model, cfg)
        trainable = {k for k, p in model.named_parameters() if p.requires_grad}
        assert trainable and all("lora_" in k for k in trainable)
        task = LMTask(model, SequenceData(_pairs(16, tok.eos_token_id)), cfg, QuietReporter())
        TrainLoop(task, Schedule(steps=6), QuietReporter()).run()
        return model, tok

    model, tok = tuned()
    save_trained_model(model, tok, tmp_path / "adapter", merge_lora=False,
                       extra={"studio": "test"})
    info = inspect_model_dir(tmp_path / "adapter")
    assert info.kind == "adapter" and info.base == tiny_llama
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    via_adapter, _, _ = load_causal_lm(tmp_path / "adapter")
    save_trained_model(model, tok, tmp_path / "merged", merge_lora=True)
    assert inspect_model_dir(tmp_path / "merged").kind == "full"
    merged, _, _ = load_causal_lm(tmp_path / "merged")
    base, _, _ = load_causal_lm(tiny_llama)
    x = torch.tensor([[100, 101, 102, 50]])
    with torch.no_grad():
        a, m, b = (net(input_ids=x).logits for net in (via_adapter, merged, base))
    assert torch.allclose(a, m, atol=1e-5)  # the adapter folder is the merged model
    assert not torch.allclose(a, b, atol=1e-4)  # and it learnt something


def test_chat_pairs_train_the_assistant_turn_only(tokenizer) -> None:
    from plugins.common.lm.tokens import chat_ids

    messages = [{"role": "user", "content": "Speak."}]
    s = chat_pair(tokenizer, messages, "Resolved.")
    prompt = chat_ids(tokenizer, messages)
    assert s.ids[:len(prompt)] == prompt and set(s.mask[:len(prompt)]) == {0}
    reply = [i for i, m in zip(s.ids, s.mask, strict=True) if m]
    assert tokenizer.decode(reply) == "Resolved.<|endoftext|>"  # the turn's end is learnt too
    assert s.trained == len(reply)


def test_a_conversation_rendered_elsewhere_splits_at_the_reply(tokenizer) -> None:
    """A chat plugin renders templates itself: the two renderings, encoded without extra
    special tokens, give the same sequence as the tokenizer's own template."""
    from plugins.common.lm.data import split_pair
    from plugins.common.lm.tokens import encode_chat_text

    messages = [{"role": "user", "content": "Speak."}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                           tokenize=False)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant",
                                                      "content": "Resolved."}], tokenize=False)
    s = split_pair(encode_chat_text(tokenizer, prompt), encode_chat_text(tokenizer, full))
    assert s == chat_pair(tokenizer, messages, "Resolved.")
    assert encode_chat_text(tokenizer, prompt) == tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False)  # none added
    with pytest.raises(UserError, match="reply cannot be told apart"):
        split_pair([1, 2, 3], [1, 9, 3, 4])


def test_chat_needs_a_chat_template(tokenizer) -> None:
    import copy

    from plugins.common.lm.tokens import chat_ids

    base = copy.deepcopy(tokenizer)
    base.chat_template = None
    with pytest.raises(UserError, match="no chat template"):
        chat_ids(base, [{"role": "user", "content": "hi"}])
    with pytest.raises(UserError, match="no chat template"):
        chat_pair(base, [{"role": "user", "content": "hi"}], "yes")


def test_a_stream_shorter_than_the_block_shortens_it() -> None:
    rep = QuietReporter()
    assert StreamData(list(range(20))).fit(64, rep) == 18
    assert "context length is reduced from 64 to 18" in rep.logs[-1][1]
    with pytest.raises(UserError, match="too short"):
        StreamData([1])
