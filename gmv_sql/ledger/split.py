"""Splitting cents exactly: the largest-remainder method, with no database.

Every amount the ledger writes comes from here, for drafts, issued statements and verification
alike, so the same credit always gives the same cents. The rule is the one of
report.royalty_statement: floor each exact share, then hand the leftover cents one by one to the
largest fractional parts, ties by key order (owner name, training id); a zero weight gets nothing.
"""

from __future__ import annotations

import decimal
from collections.abc import Hashable, Mapping

CENT = decimal.Decimal("0.01")
_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_FLOOR)


def to_cents(amount: decimal.Decimal) -> int:
    """12.34 -> 1234 (amounts carry at most two decimals)."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} has fractions of a cent")
    return int(cents)


def from_cents(cents: int) -> decimal.Decimal:
    return (decimal.Decimal(cents) / 100).quantize(CENT)


def largest_remainder(
    total_cents: int,
    weights: Mapping[Hashable, decimal.Decimal],
    order: Mapping[Hashable, object] | None = None,
) -> dict[Hashable, int]:
    """Split total_cents (>= 0) pro rata to non-negative weights; the parts add up to total_cents exactly
    unless every weight is 0 (then all parts are 0). order: tie-break key per item (default the key)."""
    if total_cents < 0:
        raise ValueError("total_cents must be >= 0")
    parts = {key: 0 for key in weights}
    positive = {key: decimal.Decimal(w) for key, w in weights.items() if w > 0}
    whole = sum(positive.values(), decimal.Decimal(0))
    if not positive or total_cents == 0:
        return parts
    fractions = {}
    for key, weight in positive.items():
        exact = _CONTEXT.divide(_CONTEXT.multiply(decimal.Decimal(total_cents), weight), whole)
        floor = int(exact.to_integral_value(rounding=decimal.ROUND_FLOOR))
        parts[key] = floor
        fractions[key] = exact - floor
    leftover = total_cents - sum(parts.values())
    tie = order or {}
    ranked = sorted(fractions, key=lambda key: (-fractions[key], tie.get(key, key)))
    for key in ranked[:leftover]:
        parts[key] += 1
    return parts
