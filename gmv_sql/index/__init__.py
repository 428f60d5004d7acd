"""The training index of an embedding space: its kind (HNSW, IVFFlat), precision and health."""
