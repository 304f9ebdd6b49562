"""`python -m training runs RUN...`: finished run folders side by side, each with the command that made it.

For recipe searches: every row is rebuilt from a run folder's summary.json (and those of the runs
it needed: its pre-training, its teachers), so the table can always be regenerated from the runs it names.
"""
from __future__ import annotations

from pathlib import Path

from training.chain import chain_seconds, own_seconds
from training.compare import FIGURE_COLUMNS, summary_row
from training.export import training_command
from training.paired import RESAMPLES, door_differences
from training.plots import markdown_table
from training.run_folder import read_summary

COLUMNS = [("run", "run"), ("validation_auc", "validation AUC"), ("validation_rank1", "validation rank-1"),
           ("validation_door_tar", "validation TAR at its threshold"),
           ("validation_tar_far1e4", "validation TAR @ FAR 1e-4 (every pair)"),
           *FIGURE_COLUMNS,
           ("seconds", "training s (whole chain)"), ("own_seconds", "of which this run")]


def runs_table(run_dirs: list[Path]) -> str:
    """A markdown table of the runs' figures, then the command of each run, then each later run's
    paired differences from the first."""
    rows, commands, summaries = [], [], []
    for run_dir in run_dirs:
        summary = read_summary(run_dir)
        summaries.append(summary)
        row = {**summary_row(run_dir.name, summary), "run": f"`{run_dir}`",
               "seconds": round(chain_seconds(run_dir)), "own_seconds": round(own_seconds(run_dir))}
        rows.append(row)
        commands.append(f"- `{run_dir}`: `{training_command(run_dir, summary)}`")
    test = test_pairs_name(summaries)
    columns = [(key, title.replace("DevTest", test)) for key, title in COLUMNS]
    table = markdown_table(rows, columns) + "\n\n" + "\n".join(commands) + "\n"
    if len(run_dirs) > 1:
        table += "\n" + _paired_table(run_dirs, summaries, test)
    return table


def test_pairs_name(summaries: list[dict]) -> str:
    """What the runs were tested on, for the headers: "DevTest" for View 1 runs, the fold for
    runs of one View 2 fold (numbered from 1, as the View 2 report does), "test" for a mix."""
    splits = {summary["split"].split(":")[0] for summary in summaries}
    if splits == {"View 1"}:
        return "DevTest"
    if len(splits) == 1 and (split := splits.pop()).startswith("View 2 fold "):
        return f"fold {int(split.removeprefix('View 2 fold ')) + 1} test"
    return "test"


def _paired_table(run_dirs: list[Path], summaries: list[dict], test: str) -> str:
    lines = [f"Paired differences from `{run_dirs[0]}` (points; the same pairs resampled for both runs, "
             f"{RESAMPLES} times; 95% intervals):", "",
             f"| run | validation TAR at its threshold | {test} accuracy at its threshold |", "|---|---|---|"]
    for run_dir, summary in zip(run_dirs[1:], summaries[1:]):
        try:
            differences = door_differences(summaries[0], summary)
        except ValueError as exc:  # another split, or a summary without per-pair scores
            lines.append(f"| `{run_dir}` | {exc} | |")
            continue
        cells = [f"{mean * 100:+.2f} [{low * 100:+.2f}, {high * 100:+.2f}]"
                 for mean, low, high in (differences["validation_door_tar"], differences["test_accuracy_at_threshold"])]
        lines.append(f"| `{run_dir}` | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"
