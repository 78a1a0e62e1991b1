"""Plugins that exist only for the host's tests, registered through a real entry point."""
