"""dockguard as a user installs it: `pip install .` into a fresh virtualenv outside the
checkout (dependencies at the lock's versions and hashes), then `dockguard --help` and
`dockguard apply` against a lab host from a directory that holds only an inventory.
The packaged deploy, templates and CIS suite are the ones that run; the second apply
changes nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs("container")  # the container hosts' lane (lab/e2e_lanes.py)

ROOT = Path(__file__).resolve().parents[2]


def test_pip_install_then_apply_from_outside_the_checkout(lab, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q"]
    subprocess.run([*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock")], check=True, timeout=900)
    # From a copy of the tracked files (pip builds in the source tree: build/, *.egg-info).
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    source = tmp_path / "source"
    for name in filter(None, files.decode().split("\0")):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([*pip, "--no-deps", str(source)], check=True, timeout=900, cwd=tmp_path)
    dockguard = str(venv / "bin" / "dockguard")

    site = tmp_path / "site"
    (site / "group_data").mkdir(parents=True)
    shutil.copy(ROOT / "inventory" / "lab.py", site / "lab.py")
    for f in ("all.py", "lab.py"):
        shutil.copy(ROOT / "inventory" / "group_data" / f, site / "group_data" / f)

    helped = subprocess.run([dockguard, "--help"], cwd=site, capture_output=True, text=True)
    assert helped.returncode == 0 and "apply" in helped.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import dockguard; print(dockguard.DEPLOY_FILE)"],
                           cwd=site, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert where.startswith(str(venv)) and where.endswith("dockguard/deploy_file.py")

    host = lab.of_kind("container")[0]
    runs = []
    for _ in range(2):
        r = subprocess.run([dockguard, "apply", "lab.py", "--limit", host, "--", "--json"], cwd=site,
                           capture_output=True, text=True, timeout=900)  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        runs.append(json.loads(r.stdout))
    assert runs[0]["results"]["totals"]["hosts"] > 0
    assert runs[1]["results"]["totals"]["success"] == 0, [
        op["name"] for op in runs[1]["results"]["operations"] if op["success"]
    ]
