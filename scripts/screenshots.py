"""The README's screenshots of the web page on the real ml-100k model (``make screenshots``).

Serves the model ``llmrec train`` wrote (with a throw-away events store, so nothing the
script does reaches your own), drives the page in headless Chromium, writes
``docs/web-{explore,ask,items,reports,dashboard}.png`` at 1280 px and
``docs/web-{explore,items,reports,dashboard}-375.png`` at 375 px (``--only`` picks some).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from playwright.sync_api import Page

from llmrec.config import get_settings
from llmrec.testing.browser import (
    add_item,
    choose_user,
    chromium,
    open_dashboard,
    open_page,
    open_reports,
    shown,
)
from llmrec.testing.server import create_key, serve

WIDE = ("explore", "ask", "items", "reports", "dashboard")
NARROW = ("explore-375", "items-375", "reports-375", "dashboard-375")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default_model = get_settings().home / "models" / "ml-100k-ranker"
    parser.add_argument("--model", type=Path, default=default_model)
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--user", default="42")
    parser.add_argument("--only", default=",".join(WIDE + NARROW), help="comma-separated shots")
    args = parser.parse_args()
    only = set(args.only.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home, db = Path(tmp), f"sqlite:///{tmp}/events.db"
        key = create_key(db, "write", home=home)
        extra = ["--reports", str(args.reports.resolve())]
        with serve(args.model, db, home, extra) as server, chromium() as browser:
            page, errors = open_page(browser, server.url, key, width=1280, height=900)
            wide(page, args, only)
            narrow = open_page(browser, server.url, key, width=375, height=800)[0]
            small(narrow, args, only)
            if errors:
                raise SystemExit(f"page errors: {errors}")
    print(f"wrote {', '.join(f'web-{n}.png' for n in sorted(only))} in {args.out}")  # noqa: T201


def wide(page: Page, args: argparse.Namespace, only: set[str]) -> None:
    """The 1280 px shots; the explore steps run whenever a later shot builds on them."""

    def shot(name: str, full: bool = True) -> None:
        if name in only:
            page.screenshot(path=args.out / f"web-{name}.png", full_page=full)

    choose_user(page, args.user)
    first = shown(page)[0]
    page.click(f"#recs li[data-item='{first}'] button.dislike")  # shows a "new" entry
    page.wait_for_selector("#recs li.new")
    shot("explore")
    if "ask" in only:
        page.fill("#ask-q", "a light 80s space adventure, no horror")
        page.press("#ask-q", "Enter")
        page.wait_for_selector("#ask-chips .chip[data-kind='genre']")
        page.fill("#ask-q", "more like the second one")  # a follow-up
        page.press("#ask-q", "Enter")
        page.wait_for_selector("#ask-chips .chip[data-kind='like']")
        shot("ask")
        page.click("#ask-clear")
    if "items" in only:
        add_item(
            page,
            "heist-2026",
            "The Vault Job",
            "A crew of thieves plans one last bank heist; a crime thriller.",
            "Crime, Thriller",
        )
        page.fill("#item-query", "godfather")
        page.press("#item-query", "Enter")
        page.wait_for_selector("#item-hits tr")
        shot("items", full=False)
    if "reports" in only:
        open_reports(page)
        shot("reports")
    if "dashboard" in only:
        open_dashboard(page)
        shot("dashboard")


def small(page: Page, args: argparse.Namespace, only: set[str]) -> None:
    """The 375 px shots of each view (no sideways scroll: tests/test_web_e2e.py)."""

    def shot(name: str) -> None:
        if name in only:
            page.screenshot(path=args.out / f"web-{name}.png", full_page=False)

    choose_user(page, args.user)
    shot("explore-375")
    page.goto(page.url.split("#")[0] + "#items")
    page.fill("#item-query", "godfather")
    page.press("#item-query", "Enter")
    page.wait_for_selector("#item-hits tr")
    shot("items-375")
    if "reports-375" in only:
        open_reports(page)
        shot("reports-375")
    open_dashboard(page)
    shot("dashboard-375")


if __name__ == "__main__":
    main()
