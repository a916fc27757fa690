"""A real browser for the tests of the HTML report: headless Chromium from the system, driven by selenium.

Debian's `chromium` and `chromium-driver` packages (`.ci/run` installs them); selenium uses the system
chromedriver, so nothing is downloaded. The background-networking flags keep Chromium from trying network
connections this machine does not have; every browser gets a fresh profile folder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    default = Path("/usr/bin") / name
    return str(default) if default.is_file() else None


def missing() -> str | None:
    """Why no browser can be started here (None when one can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the `test` extra)"
    absent = [name for name in ("chromium", "chromedriver") if _which(name) is None]
    if absent:
        return (
            f"{' and '.join(absent)} not found: install Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver; .ci/run does)"
        )
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium (a selenium WebDriver) that records the console; quit and its profile removed after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="quantscope-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = _which("chromium") or "chromium"
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(_which("chromedriver") or "chromedriver"), options=options)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
