"""Context policies: the prompt fits the budget, pinned notes are always in it, and whatever
is left out or summarised is said."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

import pytest

from plugins.chat.engine import context as C
from plugins.chat.engine.templates import builtin
from studio.errors import UserError

CHATML = builtin("chatml")


class WordCounter:
    """A stand-in tokenizer: a special token or a run of non-space characters is one token."""

    def __init__(self) -> None:
        self.calls = 0

    def count_tokens(self, text: str) -> int:
        self.calls += 1
        return len(re.findall(r"<\|[^|]+\|>|\S+", text))


class FakeSummariser:
    def __init__(self) -> None:
        self.calls: list[list[dict[str, str]]] = []

    def summarise(self, messages: Sequence[Mapping[str, str]]) -> str:
        self.calls.append([dict(m) for m in messages])
        users = [m["content"].split()[0] for m in messages if m["role"] == "user"]
        return "They talked about " + ", ".join(users) + "."


def render(msgs: list[dict[str, str]]) -> str:
    return CHATML.render(msgs)


def chat(turns: int, words: int = 20) -> list[dict[str, str]]:
    out = []
    for t in range(turns):
        out.append({"role": "user", "content": f"topic{t} " + "question " * words})
        out.append({"role": "assistant", "content": f"answer{t} " + "reply " * words})
    out.append({"role": "user", "content": "latest question please"})
    return out


def build(history, budget: int, policy: str, **kw) -> C.ContextPlan:
    return C.build(history, budget=C.Budget(budget, 50), counter=WordCounter(), render=render,
                   policy=policy, **kw)


def test_a_chat_that_fits_is_sent_whole_with_its_budget() -> None:
    h = chat(3)
    p = build(h, 4096, "drop_middle", system_prompt="Be kind.", pinned=["Name: Ada"])
    assert p.complete and p.notes == []
    assert p.kept == list(range(len(h))) and p.dropped == []
    assert p.used == WordCounter().count_tokens(p.prompt) and p.total == 4046
    assert "Name: Ada" in p.prompt and p.prompt.endswith("<|im_start|>assistant\n")
    used, total = C.measure(h, budget=C.Budget(4096, 50), counter=WordCounter(), render=render,
                            system_prompt="Be kind.", pinned=["Name: Ada"])
    assert (used, total) == (p.used, p.total)
    assert p.describe().startswith(f"{p.used:,} of 4,046 tokens")


def test_stop_refuses_and_says_what_to_do() -> None:
    with pytest.raises(C.ContextOverflow, match=r"grown too long.*new chat.*policy") as e:
        build(chat(30), 400, "stop")
    assert e.value.total == 350 and e.value.used > 350


def test_drop_middle_keeps_start_notes_passages_and_newest_turns() -> None:
    h = chat(30)
    p = build(h, 400, "drop_middle", system_prompt="Be kind.", pinned=["Name: Ada"],
              passages=["[1] notes.md, part 1:\nThe shop opens at 9."])
    assert p.used <= p.total == 350
    assert "Name: Ada" in p.prompt and "The shop opens at 9." in p.prompt
    assert "topic0" in p.prompt and "latest question please" in p.prompt
    assert p.dropped and p.dropped == list(range(min(p.dropped), max(p.dropped) + 1))
    assert min(p.dropped) == 2                  # the first turn (0, 1) stays
    assert p.kept[-1] == len(h) - 1
    assert sorted(p.kept + p.dropped) == list(range(len(h)))
    assert re.search(rf"{p.dropped_turns} turns \({len(p.dropped)} messages\) left out from "
                     "the middle", " ".join(p.notes))
    # the newest turns kept are contiguous up to the end
    tail = p.kept[2:]
    assert tail == list(range(tail[0], len(h)))


def test_rolling_keeps_the_newest_turns_that_fit() -> None:
    h = chat(30)
    p = build(h, 400, "rolling", pinned=["Pinned!"])
    assert p.used <= p.total
    assert "topic0" not in p.prompt and "Pinned!" in p.prompt
    assert p.dropped == list(range(0, p.kept[0]))
    assert "from the start of the chat" in p.notes[0]
    # one more turn of budget would not fit: the choice is the largest
    bigger = [*h[p.kept[0] - 2:p.kept[0]], *[h[i] for i in p.kept]]
    assert WordCounter().count_tokens(render(
        [{"role": "system", "content": C.system_text("", ["Pinned!"])}, *bigger])) > p.total


def test_summarise_replaces_older_turns_and_caches_per_span() -> None:
    h = chat(30)
    s, cache = FakeSummariser(), {}
    p = build(h, 400, "summarise", pinned=["Pinned!"], summariser=s, cache=cache)
    assert p.used <= p.total and p.summary and p.summary in p.prompt and "Pinned!" in p.prompt
    assert p.summarised == list(range(0, p.kept[0])) and p.dropped == []
    assert "replaced by a summary" in p.notes[0]
    assert len(s.calls) >= 1
    # the same chat again: no new summary
    calls = len(s.calls)
    again = build(h, 400, "summarise", pinned=["Pinned!"], summariser=s, cache=cache)
    assert again.prompt == p.prompt and len(s.calls) == calls
    # a longer chat reuses the cached summary and summarises only the new turns
    longer = [*h[:-1], {"role": "assistant", "content": "ok"},
              {"role": "user", "content": "topicX " + "question " * 20},
              {"role": "assistant", "content": "answerX " + "reply " * 20},
              {"role": "user", "content": "newest"}]
    p2 = build(longer, 400, "summarise", pinned=["Pinned!"], summariser=s, cache=cache)
    assert p2.used <= p2.total
    last = s.calls[-1]
    assert last[0]["role"] == "system" and "conversation so far" in last[0]["content"]
    assert all("topic0 " not in m["content"] for m in last[1:])


def test_summarise_needs_a_summariser() -> None:
    with pytest.raises(UserError, match="needs the model"):
        build(chat(30), 400, "summarise")


def test_pinned_notes_that_do_not_fit_are_an_error_that_says_so() -> None:
    with pytest.raises(C.ContextOverflow, match="pinned notes alone take"):
        build(chat(2), 200, "drop_middle", pinned=["word " * 300])


def test_a_last_message_too_long_is_an_error_that_says_so() -> None:
    h = chat(2)
    h[-1] = {"role": "user", "content": "word " * 500}
    with pytest.raises(C.ContextOverflow, match="Your last message does not fit"):
        build(h, 300, "rolling")


def test_passages_and_memory_left_out_are_reported() -> None:
    h = chat(1, words=5)
    passages = [f"[{i}] doc.md, part {i}:\n" + "fact " * 60 for i in range(1, 5)]
    p = build(h, 250, "rolling", memory=["likes tea", "word " * 400], passages=passages)
    assert p.used <= p.total
    assert p.memory_used == 1 and p.memory_dropped == 1
    assert 0 < p.passages_used < 4 and p.passages_dropped == 4 - p.passages_used
    text = " ".join(p.notes)
    assert "1 memory note left out" in text and "document passage" in text
    assert "likes tea" in p.prompt


def test_unknown_policy_and_empty_chat() -> None:
    with pytest.raises(UserError, match="Unknown context policy"):
        build(chat(1), 400, "truncate")
    with pytest.raises(UserError, match="no message"):
        build([], 400, "rolling")
    with pytest.raises(UserError, match="smaller than"):
        C.Budget(100, 100)


def test_system_messages_in_the_history_join_the_system_prompt() -> None:
    h = [{"role": "system", "content": "Imported instructions."}, *chat(1)]
    p = build(h, 4096, "rolling", system_prompt="Persona.")
    assert p.messages[0] == {"role": "system", "content": "Persona.\n\nImported instructions."}


@pytest.mark.parametrize("policy", ["drop_middle", "rolling", "summarise"])
def test_never_silent_on_random_chats(policy: str) -> None:
    """Whatever the chat and budget: the prompt fits, pinned notes are in it, the newest message
    is in it, every message is kept, dropped or summarised, and any omission is noted."""
    rng = random.Random(7)
    for _ in range(25):
        turns = rng.randint(1, 40)
        h = []
        for t in range(turns):
            h.append({"role": "user", "content": f"u{t} " + "w " * rng.randint(1, 60)})
            if rng.random() < 0.9:
                h.append({"role": "assistant", "content": f"a{t} " + "w " * rng.randint(1, 80)})
        h.append({"role": "user", "content": "final " + "w " * rng.randint(1, 30)})
        budget = rng.randint(150, 1500)
        try:
            p = build(h, budget, policy, pinned=["PINNED-NOTE"], summariser=FakeSummariser(),
                      cache={})
        except C.ContextOverflow:
            continue
        assert p.used <= p.total
        assert "PINNED-NOTE" in p.prompt and h[-1]["content"] in p.prompt
        assert sorted(p.kept + p.dropped + p.summarised) == list(range(len(h)))
        assert p.complete == (p.notes == [])


def test_a_200_turn_chat_against_a_2048_token_model() -> None:
    """The scene of bench/chat_context.py: every policy but stop yields a prompt that fits,
    with the pinned note, and says what it did; the number of token counts stays small."""
    h = chat(200, words=15)
    for policy in ("drop_middle", "rolling", "summarise"):
        counter = WordCounter()
        p = C.build(h, budget=C.Budget(2048, 256), counter=counter, render=render,
                    policy=policy, pinned=["The user is called Ada."],
                    summariser=FakeSummariser(), cache={})
        assert p.used <= 1792 and "The user is called Ada." in p.prompt and p.notes
        assert counter.calls < 40, (policy, counter.calls)
    with pytest.raises(C.ContextOverflow):
        C.build(h, budget=C.Budget(2048, 256), counter=WordCounter(), render=render,
                policy="stop")


def test_continuing_an_unfinished_reply_keeps_it_as_the_newest_turn() -> None:
    h = [*chat(30), {"role": "assistant", "content": "Once upon a"}]
    p = C.build(h, budget=C.Budget(400, 50), counter=WordCounter(),
                render=lambda m: CHATML.render(m, add_generation_prompt=False,
                                               continue_final_message=True),
                policy="rolling")
    assert p.prompt.endswith("<|im_start|>assistant\nOnce upon a")
    assert p.kept[-2:] == [len(h) - 2, len(h) - 1] and p.used <= p.total
