"""The writer's Qt panel (imported only when the panel opens; never imports torch)."""
