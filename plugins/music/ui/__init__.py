"""The music plugin's Qt panel (thin: widgets, job submission, painting; no heavy compute)."""
