"""A conversation as training tokens: the chat template's text, only the replies trained.

Both ways a chat model learns here (from scratch on dialogs, fine-tuning from feedback) train
on conversations rendered with the model's own chat template, exactly as a reply is prompted at
chat time (:mod:`.templates`), with a loss mask: the assistant's words and its end-of-turn
marker are trained, the system prompt, the user's turns and the template's headers are context.

The split is done on the rendered text: for each reply the template renders the conversation
up to it twice, with the generation prompt (the prompt a reply starts from) and with the reply
(what follows it), and the reply is the difference. Prompt and reply are tokenised separately
and joined, which is how generation sees them (the prompt's tokens fixed, then the reply's
one by one). A template that rewrites earlier turns once a reply follows cannot be split this
way; that is refused with a message, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from plugins.common.lm.data import TokenSequence
from studio.errors import UserError

from .templates import ChatTemplate


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Ids of template text (it holds its own special tokens: none are added)."""
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]] if text \
        else []


def conversation_sequence(tokenizer: Any, template: ChatTemplate,
                          messages: Sequence[Mapping[str, str]], *,
                          train: str = "all") -> TokenSequence:
    """The conversation's tokens, the replies trained.

    Args:
        train: ``"all"`` trains every assistant turn (a dialog from the corpus), ``"last"``
            only the final one (a rated reply: the earlier ones were not judged).

    Assistant turns before any user turn (a greeting) are context only: a template has no
    prompt for them.
    """
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=-1)
    if last < 0:
        raise UserError("this conversation has no reply to learn from")
    msgs = msgs[:last + 1]
    ids: list[int] = []
    mask: list[int] = []
    done = ""
    first_user = next((i for i, m in enumerate(msgs) if m["role"] == "user"), None)
    for i, m in enumerate(msgs):
        if m["role"] != "assistant" or first_user is None or i < first_user:
            continue
        trained = train == "all" or i == last
        prompt = template.render(msgs[:i], add_generation_prompt=True)
        full = template.render(msgs[:i + 1], add_generation_prompt=False)
        if not prompt.startswith(done) or not full.startswith(prompt) or len(full) == len(prompt):
            raise UserError(f"the chat template ({template.label}) formats a conversation "
                            "differently once a reply follows, so replies cannot be told apart "
                            "from prompts for training: choose a plainer template (ChatML)")
        head = encode_text(tokenizer, prompt[len(done):])
        reply = encode_text(tokenizer, full[len(prompt):])
        ids += head + reply
        mask += [0] * len(head) + [1 if trained else 0] * len(reply)
        done = full
    if not ids:
        raise UserError("this conversation has no reply that follows a user turn")
    return TokenSequence(ids, mask)
