"""The writer's tokenizers: trained on the user's corpus for new models; a corpus as token ids.

New models get one of two tokenizers, both built with Hugging Face ``tokenizers`` and saved as a
``tokenizer.json`` folder that plain ``AutoTokenizer.from_pretrained`` loads:

- ``"bpe"``: byte-level BPE (GPT-2's scheme). Any text round-trips exactly, and each token covers
  several characters, so a model sees more text per step: on a CPU budget that is the biggest
  single win over character models.
- ``"char"``: one token per character seen in the corpus. Tiny vocabulary; the classic char-RNN
  set-up. A character the corpus never had is spelled as its UTF-8 bytes (``<0x..>`` tokens,
  ``byte_fallback``, the default) so any text round-trips; without that fallback it becomes
  ``<unk>``, and the text that comes back differs. Either way :func:`unseen_characters` counts
  them, so evaluation and generation can say so instead of scoring or continuing a different
  text without a word.

``<|endoftext|>`` is the document separator (eos, bos and padding), as in GPT-2. Loading and
saving tokenizer folders is the shared engine's (:mod:`plugins.common.lm.tokens`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

from studio.errors import UserError

EOT = "<|endoftext|>"
UNK = "<unk>"
TokenizerKind = Literal["bpe", "char"]


def auto_vocab_size(train_chars: int) -> int:
    """A BPE vocabulary that suits the corpus size.

    Small corpora cannot support many merges (rare tokens are never learnt well), large ones
    profit from longer tokens. About one token type per 500 characters, rounded to a power of
    two (friendly matrix shapes), between 512 and 16,384. Tinyshakespeare's training part (1 MB)
    gets 2,048: with the tiny preset's dropout, 2k reached 1.49 nats per character in 5 CPU
    minutes where 4k reached 1.52, since a 2k vocabulary overfits one author's text less
    (bench/writer_shakespeare.py).
    """
    import math

    size = max(1.0, train_chars / 500)
    return int(max(512, min(16384, 2 ** round(math.log2(size)))))


def train_tokenizer(texts: Sequence[str], kind: TokenizerKind = "bpe", vocab_size: int = 0,
                    check: Callable[[], None] | None = None, byte_fallback: bool = True) -> Any:
    """Train a tokenizer on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    Args:
        texts: the training documents (never the validation text: it must stay unseen).
        kind: ``"bpe"`` (byte-level BPE) or ``"char"`` (characters).
        vocab_size: BPE vocabulary size including the 256 byte tokens; 0 picks
            :func:`auto_vocab_size`. Ignored for ``"char"``.
        check: called between stages (cancel).
        byte_fallback: ``"char"`` only: spell unseen characters as UTF-8 bytes (256 more
            tokens) rather than ``<unk>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    total = sum(len(t) for t in texts)
    if total == 0:
        raise UserError("the corpus is empty: there is no text to train a tokenizer on")
    if kind == "char":
        chars = sorted(set().union(*(set(t) for t in texts)))
        vocab = {UNK: 0, EOT: 1}
        if byte_fallback:
            vocab.update({f"<0x{b:02X}>": 2 + b for b in range(256)})
        for ch in chars:
            vocab.setdefault(ch, len(vocab))
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK,
                                   byte_fallback=byte_fallback))
        tok.decoder = (decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
                       if byte_fallback else decoders.Fuse())
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT,
                                       pad_token=EOT, unk_token=UNK)
    elif kind == "bpe":
        vocab_size = vocab_size or auto_vocab_size(total)
        if vocab_size < 258:
            raise UserError(f"a byte-level BPE vocabulary needs at least 258 entries (256 bytes "
                            f"and the separator), not {vocab_size}")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        if check is not None:
            check()
        tok.train_from_iterator(_pieces(texts), trainer, length=len(texts))
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT,
                                       pad_token=EOT)
    else:
        raise UserError(f"unknown tokenizer kind {kind!r}: choose bpe or char")
    if check is not None:
        check()
    return fast


def unseen_characters(tokenizer: Any, text: str) -> Counter[str]:
    """The characters of ``text`` that ``tokenizer`` has no token of its own for, with counts.

    Those are the characters it reads as ``<unk>`` (the text is lost) and, for the studio's
    character tokenizers, the ones it spells as byte tokens (``<0x..>``: kept, but never seen
    in training). A model has learnt nothing about them, so a score or a continuation of such
    text says less than it seems to. Byte-level BPE tokenizers have none, and a pre-trained
    model's byte tokens (Llama's, for emoji) are not counted: it learnt them in pre-training.
    Tokens are mapped back to the text through their offsets.
    """
    unk = tokenizer.unk_token_id
    byte_ids: set[int] = set()
    if is_char_tokenizer(tokenizer):
        vocab_size = len(tokenizer)
        byte_ids = {i for i in (tokenizer.convert_tokens_to_ids(f"<0x{b:02X}>")
                                for b in range(256))
                    if i is not None and i != unk and 0 <= i < vocab_size}
    if unk is None and not byte_ids:
        return Counter()
    found: Counter[str] = Counter()
    step = 1 << 20
    for start in range(0, len(text), step):  # bounded memory for long texts
        piece = text[start:start + step]
        enc = tokenizer(piece, add_special_tokens=False, return_offsets_mapping=True)
        spans = {(a, b) for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
                 if i == unk or i in byte_ids}
        for a, b in spans:
            found.update(piece[a:b])
    return found


def is_char_tokenizer(tokenizer: Any) -> bool:
    """Whether every ordinary token is one character or one byte: a ``"char"`` tokenizer."""
    if len(tokenizer) > 4096:
        return False
    special = set(tokenizer.all_special_tokens)
    return all(len(t) == 1 or (len(t) == 6 and t.startswith("<0x") and t.endswith(">"))
               for t in tokenizer.get_vocab() if t not in special)


def describe_unseen(tokenizer: Any, found: Counter[str], limit: int = 5) -> str:
    """``1,403 characters the model never saw in training ('ä' 612, 'ö' 301, ...): spelled as
    bytes it never learnt`` for messages: how many, which, and what became of them."""
    total = sum(found.values())
    top = ", ".join(f"{_shown(ch)} {n:,}" for ch, n in found.most_common(limit))
    more = ", ..." if len(found) > limit else ""
    first = next(iter(found))
    lost = tokenizer.unk_token_id in tokenizer(first, add_special_tokens=False)["input_ids"]
    fate = ("read as unknown, so the text the model sees differs from yours" if lost
            else "spelled as bytes it never learnt")
    return (f"{total:,} character{'s' if total != 1 else ''} the model never saw in training "
            f"({top}{more}): {fate}")


def _shown(ch: str) -> str:
    return repr(ch) if ch.isprintable() and not ch.isspace() else f"U+{ord(ch):04X}"


def _pieces(texts: Sequence[str], size: int = 1 << 20) -> Any:
    """Feed long documents in ~1 MB pieces (cut after a newline) so the trainer's memory stays
    flat; BPE counts words, so a cut between lines changes nothing."""
    for text in texts:
        start = 0
        while start < len(text):
            end = min(len(text), start + size)
            if end < len(text):
                nl = text.rfind("\n", start, end)
                end = nl + 1 if nl > start else end
            yield text[start:end]
            start = end


def encode_documents(tokenizer: Any, texts: Sequence[str],
                     check: Callable[[], None] | None = None) -> list[int]:
    """Token ids of ``texts`` in order, each document closed by the eos token (when the tokenizer
    has one) so the model learns where documents end and never blends two across the seam.

    Models whose bos differs from eos (Llama-style) also get a bos at each document start, as
    their pre-training did.
    """
    eos = tokenizer.eos_token_id
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id != eos else None
    ids: list[int] = []
    batch = 64
    for i in range(0, len(texts), batch):
        if check is not None:
            check()
        chunk = list(texts[i:i + batch])
        encoded = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        for doc in encoded:
            if bos is not None:
                ids.append(bos)
            ids.extend(doc)
            if eos is not None:
                ids.append(eos)
    return ids
