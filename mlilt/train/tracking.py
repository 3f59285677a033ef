"""Metrics of a run as JSON lines (``RUN_DIR/metrics.jsonl``), an Accelerate tracker that is always on.

    accelerator = Accelerator(log_with=[JsonlTracker(run_dir)])
    accelerator.init_trackers("align_english")
    accelerator.log({"loss": 2.1, "lr": 1e-4}, step=10)     # -> {"step": 10, "loss": 2.1, "lr": 0.0001, "time": ...}
    read_metrics(run_dir)                                   # [{"step": 10, ...}, ...]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from accelerate.tracking import GeneralTracker

METRICS_NAME = "metrics.jsonl"


class JsonlTracker(GeneralTracker):
    """Appends one JSON object per ``log`` call to ``RUN_DIR/metrics.jsonl`` (main process only)."""

    name = "jsonl"
    requires_logging_directory = True
    main_process_only = True

    def __init__(self, run_dir: str | Path):
        super().__init__()
        self.path = Path(run_dir) / METRICS_NAME
        self._file = None

    @property
    def tracker(self):
        return self._file

    def _open(self):
        if self._file is None:  # lazily: only the main process ever logs
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        return self._file

    def store_init_configuration(self, values: dict) -> None:
        """Nothing: the run's configuration is RUN_DIR/config.yaml."""

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in values.items()}, "time": round(time.time(), 3)}
        f = self._open()
        f.write(json.dumps(record) + "\n")
        f.flush()  # a killed run keeps what it logged

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The logged records of a run, in order (a torn last line from a killed run is ignored)."""
    path = Path(run_dir) / METRICS_NAME
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def truncate_metrics(run_dir: str | Path, after_step: int) -> None:
    """Drop records logged after ``after_step``: a resumed run logs those steps again."""
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        return
    kept = [r for r in read_metrics(run_dir) if r.get("step") is None or r["step"] <= after_step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
