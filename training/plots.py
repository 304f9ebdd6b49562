"""Figures and tables for evaluation reports: ROC curves, training curves, markdown tables.

matplotlib is imported only inside the plot functions (it is a `train` extra, not a kiosk
dependency), and figures are drawn on an Agg canvas without pyplot: no display is needed,
no global backend is switched and no figure is kept alive after saving.
"""
from __future__ import annotations

import math
import numbers
import os
import re
from typing import TYPE_CHECKING

import numpy as np

from kiosk.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Keys holding rates stored as fractions, shown as percentages (accuracy, val_accuracy, tar_at_far_1e3, rank1, ...).
_PERCENT_KEY = re.compile(r"(?<![a-z])(accuracy|tar|eer|auc|rank1)(?![a-z])")
_MISSING = "—"


def _new_figure(**kwargs) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def _save_png(figure: Figure, path: str | os.PathLike) -> None:
    # A report folder never holds a half-written PNG, even if the run is killed mid-save.
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120, bbox_inches="tight")


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, title: str = "ROC") -> None:
    """Save ROC curves (label -> (far, tar)) with a log FAR axis from 1e-3 to 1.

    The low-FAR end is what matters at a door, hence the log axis; labels are shown as given,
    so callers put the AUC into them. Points at FAR 0 are clipped to the left edge.
    """
    if not curves:
        raise ValueError("no curves to plot")
    figure = _new_figure(figsize=(6, 5))
    axes = figure.add_subplot()
    for label, (far, tar) in curves.items():
        axes.plot(far, tar, label=label, linewidth=1.5)
    chance = np.logspace(-3, 0, 50)
    axes.plot(chance, chance, linestyle=":", color="grey", linewidth=1, label="chance")
    axes.set_xscale("log", nonpositive="clip")
    axes.set_xlim(1e-3, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("false accept rate (FAR)")
    axes.set_ylabel("true accept rate (TAR)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    _save_png(figure, path)


def _metric_families(history: dict[str, list[float]]) -> dict[str, list[str]]:
    """Group 'loss' with 'val_loss', 'accuracy' with 'val_accuracy'; first-seen order."""
    families: dict[str, list[str]] = {}
    for key in history:
        families.setdefault(key.removeprefix("val_"), []).append(key)
    return families


def plot_training_curves(history: dict[str, list[float]], path: str | os.PathLike, title: str = "training") -> None:
    """Save one subplot per metric family (a metric and its val_ twin share one), x = epoch from 1."""
    from matplotlib.ticker import MaxNLocator

    families = _metric_families(history)
    if not families:
        raise ValueError("empty training history")
    figure = _new_figure(figsize=(6, 2.6 * len(families)))
    figure.suptitle(title)
    axes_list = figure.subplots(len(families), 1, sharex=True, squeeze=False)[:, 0]
    for axes, (family, keys) in zip(axes_list, families.items()):
        for key in keys:
            values = history[key]
            axes.plot(range(1, len(values) + 1), values, marker="." if len(values) < 30 else None, label=key)
        axes.set_ylabel(family)
        axes.grid(True, alpha=0.3)
        axes.legend()
    axes_list[-1].set_xlabel("epoch")
    # Epochs are whole numbers; without this a short run gets ticks like 1.5.
    axes_list[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    _save_png(figure, path)


def _cell(key: str, value: object) -> str:
    if value is None or (isinstance(value, numbers.Real) and math.isnan(value)):
        return _MISSING
    if isinstance(value, numbers.Integral):  # bool included: prints True/False
        return str(value)
    if isinstance(value, numbers.Real):
        if _PERCENT_KEY.search(key.lower()):
            return f"{float(value) * 100:.2f}%"
        return f"{float(value):.4g}"
    return str(value).replace("|", r"\|")  # a bare | would split the cell


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A GitHub markdown table of `rows`, one column per (key, header).

    Rates (keys containing accuracy/tar/eer/auc) are fractions shown as percentages with
    two decimals (0.87354 -> 87.35%), other floats with 4 significant digits, and a missing
    key, None or NaN as an em dash.
    """
    lines = [
        "| " + " | ".join(header for _, header in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(key, row.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines)
