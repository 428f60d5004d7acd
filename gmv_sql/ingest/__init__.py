"""Ingest stage: image files and manifests into training/generated image rows."""
