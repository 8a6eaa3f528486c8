"""The package builds into a wheel that installs in a fresh virtualenv.

The virtualenv sees the system's packages (``--system-site-packages``: the
package index is not reachable here, httpx comes from the system), the
wheel is built without isolation, and the installed copy — not this
checkout — must import and report to a real server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_in_a_fresh_virtualenv(tmp_path: Path, server) -> None:
    for mod in ("build", "hatchling"):
        try:
            __import__(mod)
        except ImportError:
            if os.environ.get("PROGRESSD_REQUIRE_SERVICES") == "1":
                pytest.fail(f"{mod} is missing (apt-get install python3-build python3-hatchling python3-venv)")
            pytest.skip(f"{mod} is missing (apt-get install python3-build python3-hatchling python3-venv)")
    dist = tmp_path / "dist"
    # --skip-dependency-check: Debian's hatchling 1.12 asks for editables, needed only for editable installs.
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheels = list(dist.glob("progressd-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "progressd/py.typed" in names and "progressd/tqdm.py" in names
    meta = zipfile.ZipFile(wheels[0]).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    assert "Requires-Dist: httpx" in meta and "Provides-Extra: tqdm" in meta

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", str(wheels[0])],
                   check=True, timeout=120)
    script = (
        "import progressd, sys\n"
        f"assert progressd.__file__.startswith({str(venv)!r}), progressd.__file__\n"
        f"c = progressd.Client({server.url!r})\n"
        "with c.job('py-wheel') as job:\n"
        "    for _ in job.tqdm(range(1000), disable=False, file=sys.stderr): pass\n"
        "print(job.id)\n"
    )
    out = subprocess.run([str(py), "-c", script], check=True, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    import progressd

    assert progressd.Client(server.url).get(out.stdout.strip()).state == "succeeded"
