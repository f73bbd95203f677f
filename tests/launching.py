"""Starting the multi-process test scripts (DDP through accelerate, FSDP through torchrun) on the CPU."""

import socket
import subprocess
from pathlib import Path

import psutil
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_launcher(command: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float, what: str) -> None:
    """Run ``command`` with its output in ``log``; fail the test if it hangs past ``timeout`` or exits non-zero."""
    with log.open("w") as out:
        launch = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            launch.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for process in [*psutil.Process(launch.pid).children(recursive=True), psutil.Process(launch.pid)]:
                process.kill()  # the workers run in sessions of their own: kill each by its id
            launch.wait()
            pytest.fail(f"the {what} hung:\n{log.read_text()[-5000:]}")
    assert launch.returncode == 0, log.read_text()[-5000:]
