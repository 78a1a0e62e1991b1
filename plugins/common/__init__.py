"""Engine code shared by several plugins (pure: no Qt, ever)."""
