"""Chat plugin: a local assistant with personas, branching chats, memory and your documents."""
