"""Attribution quality: near-copies (memorisation), consistency of matches, quality weights q_j."""
