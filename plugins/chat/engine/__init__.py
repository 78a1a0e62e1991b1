"""The chat plugin's engine: no Qt, ever; torch, transformers and llama.cpp only inside the
modules that run models, and only when they run.

The core (store, personas, templates, context, intents, retrieval, exchange) needs no model:
where a step needs one (counting tokens, summarising, embedding) it takes a small ``Protocol``
that tests satisfy with fakes and the app layer with a backend, so every rule there is tested
without a model. Around it:

- :mod:`.backends`   one protocol, three ways to run a model (transformers, llama.cpp, GGUF
                     through transformers), and the choice between them
- :mod:`.answer`     the whole path from a message to a stored, streamed reply
- :mod:`.server`     the local OpenAI-compatible API
- :mod:`.gguf_export`  a Llama-family Hugging Face model as a GGUF file
- :mod:`.sequences`  a conversation as training tokens (the replies trained)
- :mod:`.dialogs`    dialogs to train on: the built-in corpus, JSONL, plain text, YAML
- :mod:`.scratch`    a small chatbot trained from scratch
- :mod:`.feedback`   the user's ratings and corrections as training data
- :mod:`.finetune`   LoRA fine-tuning from feedback: SFT + DPO
- :mod:`.outcomes`   what the jobs return (typed records for the panel)

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
