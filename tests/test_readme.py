"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.slow
def test_readme_examples_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    # The first two (the quick start) run end to end; the later ones are excerpts that need a
    # trained job around them (explanations), so they are only compiled.
    assert len(blocks) >= 2
    for block in blocks[2:]:
        compile(block, str(README), "exec")
    blocks = blocks[:2]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert "trainable params" in capsys.readouterr().out
    assert namespace["out"].last_hidden_state.shape[:2] == namespace["index"].shape
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
