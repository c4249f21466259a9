"""Headless Chromium from the distribution's packages (`chromium`, `chromium-driver`), driven by Selenium:
what the review page's browser tests and its docs screenshot run on. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

BINARIES = ("chromium", "chromedriver")


def missing() -> str | None:
    """Why no browser can be started here (None: it can)."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[dev]')"
    absent = [b for b in BINARIES if shutil.which(b) is None]
    if absent:
        return f"{' and '.join(absent)} not found (apt-get install chromium chromium-driver)"
    return None


def headless_chromium(width: int = 1400, height: int = 1000):
    """A Selenium driver for the system's Chromium, headless, at this window size."""
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=opts, service=service)


def start_review(corpora: list[Path], *extra: str, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """`python -m knowledge_engine serve CORPUS... --port 0`; returns the process and the URL it printed."""
    cmd = [sys.executable, "-m", "knowledge_engine", "serve", *map(str, corpora), "--port", "0", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "review page: open " in line:
            return proc, line.split("open ", 1)[1].split()[0]
    proc.kill()
    raise RuntimeError("the review server did not start:\n" + "".join(lines))
