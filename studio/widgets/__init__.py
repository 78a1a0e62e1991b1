"""Qt widgets of the host window (docks, dialogs, the generic job form)."""
