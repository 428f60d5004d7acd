"""The ledger: match runs, issued statements, adjustments, scopes, verification."""
