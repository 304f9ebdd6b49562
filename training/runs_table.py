"""`python -m training runs RUN...`: finished run folders side by side, each with the command that made it.

For recipe searches: every row is rebuilt from a run folder's summary.json (and those of the runs
it needed: its pre-training, its teachers), so the table can always be regenerated from the runs it names.
"""
from __future__ import annotations

from pathlib import Path

from training.chain import chain_seconds, own_seconds
from training.compare import FIGURE_COLUMNS, summary_row
from training.export import training_command
from training.plots import markdown_table
from training.run_folder import read_summary

COLUMNS = [("run", "run"), ("validation_auc", "validation AUC"), ("validation_rank1", "validation rank-1"),
           ("validation_door_tar", "validation TAR at its threshold"),
           ("validation_tar_far1e4", "validation TAR @ FAR 1e-4 (every pair)"),
           *FIGURE_COLUMNS,
           ("seconds", "training s (whole chain)"), ("own_seconds", "of which this run")]


def runs_table(run_dirs: list[Path]) -> str:
    """A markdown table of the runs' figures, then the command of each run."""
    rows, commands = [], []
    for run_dir in run_dirs:
        summary = read_summary(run_dir)
        row = {**summary_row(run_dir.name, summary), "run": f"`{run_dir}`",
               "seconds": round(chain_seconds(run_dir)), "own_seconds": round(own_seconds(run_dir))}
        rows.append(row)
        commands.append(f"- `{run_dir}`: `{training_command(run_dir, summary)}`")
    return markdown_table(rows, COLUMNS) + "\n\n" + "\n".join(commands) + "\n"
