"""A small help-desk intent set with routed paraphrases and off-topic queries (test data)."""

from __future__ import annotations

from plugins.chat.engine.intents import Intent

INTENTS = [
    Intent("reset_password", (
        "How do I reset my password?",
        "I forgot my password",
        "Can't log in, need a new password",
        "Change my password",
        "password reset link",
    ), "Open Settings > Account > Reset password; a link is sent to your e-mail."),
    Intent("opening_hours", (
        "What are your opening hours?",
        "When are you open?",
        "Are you open on Sunday?",
        "What time does the shop close?",
        "business hours",
    ), "We are open Monday to Saturday, 9:00 to 18:00."),
    Intent("refund", (
        "I want a refund",
        "How do I get my money back?",
        "Can I return my order?",
        "refund policy",
        "return an item I bought",
    ), "You can return any item within 30 days for a full refund."),
    Intent("shipping", (
        "Where is my order?",
        "How long does shipping take?",
        "track my package",
        "When will my parcel arrive?",
        "delivery time",
    ), "Orders ship within 2 days; the tracking link is in your confirmation e-mail."),
    Intent("contact", (
        "How can I contact support?",
        "I want to talk to a human",
        "customer service phone number",
        "speak to an agent",
        "support e-mail address",
    ), "Write to support@example.com or call 555-0100 on weekdays."),
    Intent("cancel_subscription", (
        "How do I cancel my subscription?",
        "stop my membership",
        "unsubscribe from the plan",
        "end my subscription",
        "I don't want to be billed anymore",
    ), "Go to Settings > Billing > Cancel subscription."),
]

# paraphrases that should route to the named intent
ON_TOPIC = [
    ("I forgot my password, how can I reset it?", "reset_password"),
    ("reset password please", "reset_password"),
    ("need to change the password of my account", "reset_password"),
    ("what are the opening hours on saturday", "opening_hours"),
    ("when do you open?", "opening_hours"),
    ("is the shop open on sunday", "opening_hours"),
    ("how do I get a refund", "refund"),
    ("I would like to return my order", "refund"),
    ("where is my parcel", "shipping"),
    ("how long does delivery take", "shipping"),
    ("can I track my order", "shipping"),
    ("how do I contact customer support", "contact"),
    ("I want to speak to a human agent", "contact"),
    ("cancel my subscription", "cancel_subscription"),
    ("how can I end my membership", "cancel_subscription"),
]

# questions a help desk gets that none of the intents answers: must never route
OFF_TOPIC = [
    "How do I bake sourdough bread?",
    "What is the capital of France?",
    "Write me a poem about the sea",
    "Can you explain quantum entanglement?",
    "What's the weather like tomorrow?",
    "Do you sell gift cards?",
    "Is the product waterproof?",
    "My screen is flickering after the update",
    "How do I change the language of the app?",
    "Tell me a joke",
    "Which payment methods do you accept?",
    "What is your name?",
    "Can I use the app offline?",
    "How much does the premium plan cost?",
    "hello",
    "How do I export my data?",
    "The app crashes when I open a file",
    "Do you ship to Canada?",
    "I have a question about my invoice",
    "Where are your offices located?",
]
