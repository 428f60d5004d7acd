"""The ledger: drafts, issued (frozen) statements, adjustments and reversals, and their verification."""
