"""Match stage: SQL k-NN of generated against training vectors into gmv.match (matcher.py), CLI in commands.py."""
