"""Real web servers and a real browser for the UI tests (tests/test_browser.py).

The servers are the ones users start (`rung ui`, `rung mlflow`), on free loopback
ports, pointed at the test state by the environment tests/conftest.py sets. The
browser is Debian's Chromium driven by Playwright from PyPI (Playwright's own
browser download needs the internet).

Screenshots go to RUNG_TEST_ARTIFACTS (default tests/artifacts/, git-ignored);
with RUNG_README_SCREENSHOTS=1 (`make screenshots`) the ones the README shows are
also written, optimised, to docs/img/.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from http_client import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = Path(os.environ.get("RUNG_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
README_IMAGES_DIR = REPO_ROOT / "docs" / "img"
VIEWPORT = {"width": 1280, "height": 800}
WIDE_VIEWPORT = {"width": 1600, "height": 1000}
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
RUNG = Path(sys.executable).with_name("rung")


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10) -> None:
        """End the server's whole process group (dagster dev and mlflow have children):
        Ctrl-C first, then SIGKILL for what is left (dagster dev can take minutes)."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(self.process.pid):
                self.process.poll()  # reap the leader once it exits
                time.sleep(0.2)
            if not _group_alive(self.process.pid):
                break
        self.process.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start_server(name: str, command: str, health_path: str, timeout: float = 180) -> Server:
    """Start `rung <command> --host 127.0.0.1 --port <free>` in its own process group and
    wait until GET health_path answers 200."""
    port = free_port()
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS_DIR / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(RUNG), command, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + health_path, timeout=5) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(1)
    server.stop()
    raise RuntimeError(
        f"{name} did not answer {health_path} in {timeout:.0f} s:\n{server.log_tail()}"
    )


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    return path


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def readme_screenshots() -> bool:
    return os.environ.get("RUNG_README_SCREENSHOTS") == "1"


def save_screenshot(page, name: str, readme: bool = False, **options) -> Path:
    """Screenshot to the artifacts folder; a README one also to docs/img/ when asked."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    options.setdefault("animations", "disabled")  # finish fade-ins (dialogs) first
    page.screenshot(path=str(path), **options)
    if readme and readme_screenshots():
        README_IMAGES_DIR.mkdir(parents=True, exist_ok=True)
        optimise_png(path, README_IMAGES_DIR / f"{name}.png")
    return path


def optimise_png(source: Path, target: Path) -> None:
    """A UI screenshot as a 256-colour PNG: a fraction of the size, no visible change."""
    from PIL import Image

    with Image.open(source) as image:
        small = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
        small.save(target, optimize=True)
