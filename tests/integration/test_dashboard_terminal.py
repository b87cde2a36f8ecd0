"""The dashboard in a real terminal: ``scripts/dashboard-check`` (tmux), run by the suite.

The script is the check (it prints both screen captures); this test makes it
part of every CI run. In CI a missing tmux is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_dashboard_moves_in_a_real_terminal() -> None:
    if shutil.which("tmux") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tmux is missing: .ci/run installs it from Debian's packages")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    realorders = Path(sys.executable).with_name("realorders")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "dashboard-check")],
        env={**os.environ, "REALORDERS_BIN": str(realorders)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout.splitlines()[-1]
