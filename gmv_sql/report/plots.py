"""PNG plots for the evidence page and the demo: value distributions and credit per owner.

matplotlib's object API with the Agg canvas only (no pyplot): no display is needed and no global
backend state of the host program is changed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure, path: Path | None) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def value_distribution_png(
    groups: Mapping[str, Sequence[float]], path: Path | None = None, *, title: str = ""
) -> bytes:
    """Histograms (shared bins) of training images' values per group, e.g. members vs non-members."""
    figure = _figure(7.0, 3.8)
    axes = figure.add_subplot(1, 1, 1)
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in groups.items() if len(values)}
    everything = np.concatenate(list(arrays.values())) if arrays else np.zeros(1)
    high = float(everything.max()) if everything.size and everything.max() > 0 else 1.0
    bins = np.linspace(0.0, high, 31)
    for colour, (name, values) in zip(_COLOURS, arrays.items(), strict=False):
        axes.hist(
            values,
            bins=bins,
            alpha=0.55,
            color=colour,
            label=f"{name} (n={len(values)}, mean {values.mean():.3g})",
        )
        axes.axvline(values.mean(), color=colour, linestyle="--", linewidth=1.2)
    axes.set_xlabel("value (credit from generated images)")
    axes.set_ylabel("training images")
    axes.set_title(title or "Value of training images")
    if arrays:
        axes.legend(frameon=False)
    return _png(figure, path)


def owner_credit_png(
    owners: Sequence[str], credits: Sequence[float], path: Path | None = None, *, limit: int = 20
) -> bytes:
    """Horizontal bars of credit per owner, largest on top (at most `limit` owners, the rest summed)."""
    pairs = sorted(zip(owners, [float(c) for c in credits], strict=True), key=lambda p: (-p[1], p[0]))
    if len(pairs) > limit:
        rest = sum(c for _, c in pairs[limit - 1 :])
        pairs = pairs[: limit - 1] + [(f"{len(pairs) - limit + 1} other owners", rest)]
    figure = _figure(7.0, 0.8 + 0.32 * max(1, len(pairs)))
    axes = figure.add_subplot(1, 1, 1)
    names = [_short(name) for name, _ in pairs][::-1]
    values = [credit for _, credit in pairs][::-1]
    axes.barh(range(len(values)), values, color=_COLOURS[0])
    axes.set_yticks(range(len(values)), names)
    axes.set_xlabel("credit (sum of values of the owner's images)")
    axes.set_title("Credit per owner")
    return _png(figure, path)


def _short(name: str, width: int = 32) -> str:
    # matplotlib treats $...$ as maths; owner names are data, not markup.
    name = name.replace("$", r"\$")
    return name if len(name) <= width else name[: width - 1] + "…"
