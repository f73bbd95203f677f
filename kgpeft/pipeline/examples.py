"""A job's examples: a registered task built over the KG, or a JSON-lines task file read row by row."""

from __future__ import annotations

import json
import random
from pathlib import Path

from kgpeft.data import DataError, as_example
from kgpeft.graph import KnowledgeGraph
from kgpeft.pipeline.config import JobConfig, JobConfigError
from kgpeft.tasks.registry import TASKS, get_task
from kgpeft.utils import short_repr


def load_examples(config: JobConfig, kg: KnowledgeGraph | None = None) -> dict[str, list]:
    """The task's examples per split; a split over its limit keeps a seeded sample (shuffled, then cut).

    ``kg`` builds a registered task; a task file is read without it.
    """
    if config.task in TASKS:
        if kg is None:
            raise ValueError(f"the task {config.task!r} is built from the KG: pass `kg`.")
        splits = get_task(config.task).build(kg, seed=config.seed)
    else:
        splits = read_task_file(config.task)
    limits = {"train": config.max_train_examples, "valid": config.max_eval_examples, "test": config.max_eval_examples}
    for name, limit in limits.items():
        if limit is not None and len(splits[name]) > limit:
            examples = list(splits[name])
            random.Random(config.seed).shuffle(examples)
            splits[name] = examples[:limit]
    return splits


#: The longest line of a task file, in bytes: each row is read whole, and a file without line
#: breaks (a binary file given as `task`) must not be.
MAX_ROW_BYTES = 1 << 26


def read_task_file(task: str) -> dict[str, list]:
    """The examples of a JSON-lines task file per split, every row checked.

    Raises:
        JobConfigError: not a file, or a line that is longer than :data:`MAX_ROW_BYTES`, not UTF-8, not
            JSON or not a valid row, named by ``file:line``.
    """
    path = Path(task)
    if not path.is_file():
        raise JobConfigError(f"task: {task!r} is neither a known task ({', '.join(TASKS)}) nor a file.")
    splits = {"train": [], "valid": [], "test": []}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(iter(lambda: f.readline(MAX_ROW_BYTES + 1), b""), start=1):
            if len(raw) > MAX_ROW_BYTES:
                raise JobConfigError(
                    f"{path}:{lineno}: a line over {MAX_ROW_BYTES:,} bytes; each line is one JSON row."
                )
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise JobConfigError(
                    f"{path}:{lineno}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1}); save it as UTF-8."
                ) from None
            if not line.strip():
                continue
            try:
                example = as_example(json.loads(line), lineno)
            except DataError as e:
                raise JobConfigError(f"{path}:{lineno}: {e}") from None
            except json.JSONDecodeError as e:
                raise JobConfigError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            except ValueError as e:  # an int of more than 4300 digits
                raise JobConfigError(f"{path}:{lineno}: not valid JSON ({str(e).split(':')[0]})") from None
            except RecursionError:
                raise JobConfigError(f"{path}:{lineno}: not valid JSON (nested too deeply)") from None
            if example.split not in splits:
                raise JobConfigError(
                    f"{path}:{lineno}: `split` should be one of {list(splits)}, got {short_repr(example.split)}."
                )
            splits[example.split].append(example)
    return splits
