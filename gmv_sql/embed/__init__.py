"""Embed stage: turns images into vectors of one embedding space (torch is imported lazily, only here)."""
