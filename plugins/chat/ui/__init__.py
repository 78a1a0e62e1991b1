"""The Chat plugin's window: chat list, conversation, and side sections (Qt only here)."""
