"""Where training logs go: `accelerate`'s trackers, and kgpeft's own CSV file."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from accelerate.tracking import GeneralTracker
from accelerate.utils import is_tensorboard_available

from kgpeft.training.config import TrainingConfig, TrainingConfigError

METRICS_CSV_NAME = "metrics.csv"


class CSVTracker(GeneralTracker):
    """An `accelerate` tracker appending every logged value to ``logging_dir/metrics.csv``.

    The file has the columns ``step,name,value``, one row per value, so evaluation rows and
    training rows can carry different metrics; ``pandas.read_csv(...).pivot(index="step",
    columns="name", values="value")`` makes it wide. A resumed run appends to the same file.
    """

    name = "csv"
    requires_logging_directory = True

    def __init__(self, logging_dir: str | os.PathLike) -> None:
        super().__init__()
        self.path = Path(logging_dir) / METRICS_CSV_NAME

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            with self.path.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerow(["step", "name", "value"])

    @property
    def tracker(self) -> Path:
        return self.path

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.path.with_name("config.json").write_text(json.dumps(values, indent=2), encoding="utf-8")

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        with self.path.open("a", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([step, name, value] for name, value in values.items())


def trackers(config: TrainingConfig, logging_dir: Path) -> list[str | GeneralTracker] | None:
    """The trackers ``config.log_with`` names, ``"csv"`` as a :class:`CSVTracker` writing under ``logging_dir``."""
    if "tensorboard" in config.log_with and not is_tensorboard_available():
        raise TrainingConfigError(
            "`log_with` includes 'tensorboard', but neither tensorboard nor tensorboardX is installed."
        )
    return [CSVTracker(logging_dir) if name == "csv" else name for name in config.log_with] or None
