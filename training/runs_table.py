"""`python -m training runs RUN...`: finished run folders side by side, each with the command that made it.

For recipe searches: every row is rebuilt from a run folder's summary.json (and its pre-training's),
so the table can always be regenerated from the runs it names.
"""
from __future__ import annotations

import json
from pathlib import Path

from training.compare import FIGURE_COLUMNS, summary_row
from training.export import training_command
from training.plots import markdown_table

COLUMNS = [("run", "run"), ("validation_auc", "validation AUC"), ("validation_rank1", "validation rank-1"),
           *FIGURE_COLUMNS,
           ("seconds", "training s (with pre-training)")]


def runs_table(run_dirs: list[Path]) -> str:
    """A markdown table of the runs' figures, then the command of each run."""
    rows, commands = [], []
    for run_dir in run_dirs:
        summary = json.loads((run_dir / "summary.json").read_text())
        pretrain = run_dir / "pretrain" / "summary.json"
        row = summary_row(run_dir.name, summary)
        if pretrain.exists():
            row["seconds"] += round(json.loads(pretrain.read_text())["train_seconds"])
        rows.append({**row, "run": f"`{run_dir}`"})
        commands.append(f"- `{run_dir}`: `{training_command(run_dir, summary)}`")
    return markdown_table(rows, COLUMNS) + "\n\n" + "\n".join(commands) + "\n"
