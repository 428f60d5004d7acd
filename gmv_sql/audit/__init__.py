"""Audits of a valuation: the membership test of GMValuator (members should be valued higher)."""
