"""The chat plugin's pure core: no Qt, no torch, no model loading.

Where a step needs a language model (counting tokens, summarising, embedding) it takes a small
``Protocol`` that tests satisfy with fakes and the app layer with the shared LM backend
(``plugins.common.lm``), so every rule here is tested without a model.

- :mod:`.store`      one SQLite database (WAL) per workspace: chats, message trees, streamed
                     replies, stats, personas, feedback, notes, intents, folders, full-text search
- :mod:`.records`    the frozen records the store hands out (Chat, Message, ReplyStats...)
- :mod:`.replies`    :class:`~.replies.ReplyWriter`: a streamed reply written in place, commits
                     throttled, so a crash loses at most the tail of that reply
- :mod:`.sqlitedb`   the one careful way the plugin opens SQLite files (WAL, integrity check,
                     schema upgrades, a damaged file moved aside)
- :mod:`.personas`   personas: system prompt, greeting, tone, sampler settings; JSON import/export
- :mod:`.templates`  chat templates rendered exactly as Hugging Face's ``apply_chat_template``;
                     built-in named templates; a model folder's or GGUF file's template
- :mod:`.context`    the prompt for the next reply within a token budget, by policy, never
                     silently truncated
- :mod:`.intents`    user-defined intents (FAQ) matched before the model
- :mod:`.retrieval`  a folder of .txt/.md/.pdf files indexed for BM25 (+ optional dense) search
- :mod:`.exchange`   a chat as Markdown or JSON; import of its own JSON and OpenAI messages
"""
