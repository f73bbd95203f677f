"""`read_task_file`: a JSON-lines task file, read a bounded line at a time, every bad row a short error."""

import pytest

from kgpeft.pipeline import examples as job
from kgpeft.pipeline.config import JobConfigError

ROW = '{"text": "the dog", "answer": "pet", "split": "train"}\n'


def test_a_line_over_the_cap_is_refused_before_it_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(job, "MAX_ROW_BYTES", 1000, raising=False)  # the real cap is 64 MiB
    path = tmp_path / "task.jsonl"
    path.write_text(ROW + '{"text": "' + "the dog " * 200 + '", "answer": "pet", "split": "train"}\n')
    with pytest.raises(JobConfigError, match=rf"^{path}:2: a line over 1,000 bytes; each line is one JSON row\.$"):
        job.read_task_file(str(path))
    path.write_text(ROW + "x" * 5000)  # no line break at all (a binary file given as the task)
    with pytest.raises(JobConfigError, match=rf"^{path}:2: a line over 1,000 bytes"):
        job.read_task_file(str(path))
    path.write_text(ROW * 3)
    assert len(job.read_task_file(str(path))["train"]) == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "the dog", "label": ' + "1" * 5000 + "}", r"not valid JSON \(Exceeds the limit \(4300 digits\)"),
        ("[" * 100_000, r"not valid JSON \(nested too deeply\)"),
        (
            '{"text": "the dog", "answer": "pet", "split": "' + "x" * 10**6 + '"}',
            r"`split` should be one of \['train', 'valid', 'test'\], got 'xxx.*xxx'\.",
        ),
        ('{"text": [' + "1, " * 10**5 + "1]}", r"Row 1: `text` should be a non-empty string, got \[1, 1,"),
    ],
)
def test_unreadable_rows_are_short_job_config_errors(tmp_path, line, message):
    """A 5000-digit number, deep nesting or a long bad value was a ValueError, a RecursionError or an error
    printing the whole value."""
    path = tmp_path / "task.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(JobConfigError, match=rf"^{path}:1: {message}") as info:
        job.read_task_file(str(path))
    assert len(str(info.value)) < len(str(path)) + 200, str(info.value)[:500]
