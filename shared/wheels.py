"""Data files shipped inside Python wheels on the package registry: download a pinned wheel with pip (no install,
no dependencies) and copy chosen members out of it.

Several real datasets reach this offline machine only as files inside wheels (MOSES in `molsets`, 20 S&P 500
stocks in `skfolio`); installing those packages is unwanted (broken or heavy dependencies), so the wheel is read as
the zip file it is. Every member is written atomically, so an interrupted preparation leaves nothing half-written.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from shared.atomic import atomic_path
from shared.errors import DataError


def extract_from_wheel(
    requirement: str, members: Mapping[str, str | Path], hint: str, timeout: float = 300.0
) -> dict[str, Path]:
    """pip-download the wheel of `requirement` (e.g. "molsets==0.3.1") and copy each `members` key (a path inside
    the wheel) to its value (a file path); return {member: written path}.

    Failures raise a one-line DataError ending in `hint` (what the user can do instead).
    """
    name = requirement.split("=")[0].split("<")[0].split(">")[0].strip()
    with tempfile.TemporaryDirectory(prefix=f"{name}-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement, "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise DataError(f"downloading the {name} wheel timed out after {timeout:.0f} s: {hint}") from e
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no wheel"]
            raise DataError(f"could not download the {name} wheel ({last[0][:160]}): {hint}")
        written = {}
        try:
            with zipfile.ZipFile(wheels[-1]) as wheel:
                for member, dest in members.items():
                    payload = wheel.read(member)
                    dest = Path(dest)
                    with atomic_path(dest) as tmp_file:
                        tmp_file.write_bytes(payload)
                    written[member] = dest
        except zipfile.BadZipFile as e:
            raise DataError(f"the {name} wheel {wheels[-1].name} is not a readable zip: {hint}") from e
        except KeyError as e:
            raise DataError(f"the {name} wheel {wheels[-1].name} has no {e.args[0]}: {hint}") from e
    return written
