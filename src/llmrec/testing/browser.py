"""Headless Chromium driving the web page: the end-to-end tests and the README's screenshots.

Debian's ``chromium`` package (installed with apt-get when missing, as the PostgreSQL tests
do), driven by Playwright's Python package: no browser download. The flags keep Chromium off
the network it would otherwise call at start (refused here, and slow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

FLAGS = [
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


def chromium_path() -> str:
    """The Chromium binary; installs Debian's package when there is none."""
    found = os.environ.get("LLMREC_CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, check=True)
    found = shutil.which("chromium")
    if not found:
        raise RuntimeError("chromium is not installed and apt-get could not install it")
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(
    browser: Browser, url: str, key: str, width: int = 1280, height: int = 900
) -> tuple[Page, list[str]]:
    """The page with ``key`` handed over in the URL fragment (as ``serve --demo`` prints it),
    and the list its script errors are collected in."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/#key={key}")
    page.wait_for_selector("#user-hits li")
    return page, errors


def choose_user(page: Page, user_id: str) -> None:
    page.goto(page.url.split("#")[0] + "#explore")
    page.fill("#user-query", user_id)
    page.press("#user-query", "Enter")
    page.click(f"#user-hits button[data-user='{user_id}']")
    page.wait_for_selector(f"#user-card .who:has-text('{user_id}')")
    page.wait_for_selector("#recs li")


def shown(page: Page) -> list[str]:
    """Item ids of the recommendation list, in order."""
    return page.eval_on_selector_all("#recs li", "els => els.map(e => e.dataset.item)")


def add_item(page: Page, item_id: str, title: str, text: str, genres: str) -> None:
    page.goto(page.url.split("#")[0] + "#items")
    page.fill("#new-id", item_id)
    page.fill("#new-title", title)
    page.fill("#new-text", text)
    page.fill("#new-genres", genres)
    page.click("#item-form button[type=submit]")
    page.wait_for_selector(f"#similar-note:has-text('{title}')")


def open_reports(page: Page) -> None:
    page.goto(page.url.split("#")[0] + "#reports")
    page.wait_for_selector("#reports .report")


def open_dashboard(page: Page) -> None:
    page.goto(page.url.split("#")[0] + "#dashboard")
    page.wait_for_selector("#dash-charts figure.chart")
