"""The README's screenshots of the web page on the real ml-100k model (``make screenshots``).

Serves the model ``llmrec train`` wrote (with a throw-away events store, so nothing the
script does reaches your own), drives the page in headless Chromium, writes
``docs/web-{explore,ask,items,reports}.png``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from llmrec.config import get_settings
from llmrec.testing.browser import add_item, choose_user, chromium, open_page, open_reports, shown
from llmrec.testing.server import create_key, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default_model = get_settings().home / "models" / "ml-100k-ranker"
    parser.add_argument("--model", type=Path, default=default_model)
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--user", default="42")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home, db = Path(tmp), f"sqlite:///{tmp}/events.db"
        key = create_key(db, "write", home=home)
        extra = ["--reports", str(args.reports.resolve())]
        with serve(args.model, db, home, extra) as server, chromium() as browser:
            page, errors = open_page(browser, server.url, key, width=1280, height=900)
            choose_user(page, args.user)
            first = shown(page)[0]
            page.click(f"#recs li[data-item='{first}'] button.dislike")  # shows a "new" entry
            page.wait_for_selector("#recs li.new")
            page.screenshot(path=args.out / "web-explore.png", full_page=True)
            page.fill("#ask-q", "a light 80s space adventure, no horror")
            page.press("#ask-q", "Enter")
            page.wait_for_selector("#ask-chips .chip[data-kind='genre']")
            page.fill("#ask-q", "more like the second one")  # a follow-up
            page.press("#ask-q", "Enter")
            page.wait_for_selector("#ask-chips .chip[data-kind='like']")
            page.screenshot(path=args.out / "web-ask.png", full_page=True)
            page.click("#ask-clear")
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
            page.screenshot(path=args.out / "web-items.png", full_page=False)
            open_reports(page)
            page.screenshot(path=args.out / "web-reports.png", full_page=True)
            if errors:
                raise SystemExit(f"page errors: {errors}")
    print(f"wrote {args.out}/web-explore.png, web-ask.png, web-items.png, web-reports.png")  # noqa: T201


if __name__ == "__main__":
    main()
