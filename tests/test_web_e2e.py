"""The web page end to end: a real `llmrec serve` process and headless Debian Chromium
(Playwright), as a person would use it: key, user, feedback, items, reports, errors."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from llmrec.data import columns as C
from llmrec.eval import make_split
from llmrec.eval import report as reports
from llmrec.eval.runner import run
from llmrec.service.folder import USERS_FILE
from llmrec.testing import block_dataset
from llmrec.testing.browser import (
    add_item,
    choose_user,
    chromium,
    open_dashboard,
    open_page,
    open_reports,
    shown,
)
from llmrec.testing.server import Server, create_key, serve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, served_model_dir: Path) -> Iterator[dict]:
    """The served test model (plus profiles), real evaluation reports of the block data,
    a write key and a running server."""
    root = tmp_path_factory.mktemp("web")
    model = root / "model"
    shutil.copytree(served_model_dir, model)
    pd.DataFrame({C.USER_ID: ["u3"], "age": [29], "occupation": ["writer"]}).to_parquet(
        model / USERS_FILE, index=False
    )
    ds = block_dataset()
    for protocol, models in (("loo", ["pop", "itemknn"]), ("cold-items", ["pop", "itemknn"])):
        split = make_split(ds, protocol, seed=0)
        by = ("activity",) if protocol == "loo" else ()
        runs = [
            run(ds, m, protocol, search=False, split=split, groups=by, tradeoffs=bool(by))
            for m in models
        ]
        reports.write(runs, root / "reports")
    db = f"sqlite:///{root / 'events.db'}"
    key = create_key(db, "write", home=root / "home")
    extra = ["--reports", str(root / "reports")]
    with serve(model, db, root / "home", extra) as server:
        yield {"server": server, "key": key, "db": db, "home": root / "home"}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def test_explore_a_user_then_dislike_one_and_see_it_replaced(site: dict, browser: object) -> None:
    page, errors = open_page(browser, site["server"].url, site["key"])  # type: ignore[arg-type]
    choose_user(page, "u3")
    card = page.inner_text("#user-card")
    assert "writer" in card and "29" in card  # the profile
    assert page.locator("#user-card .history li").count() >= 5  # the history
    before = shown(page)
    assert len(before) == 10
    sources = page.eval_on_selector_all("#recs .source", "els => els.map(e => e.textContent)")
    assert set(sources) <= {"sasrec", "ease", "content", "pop"}
    assert page.locator("#recs .why").count() == 10  # every item explained
    assert "template" in page.locator("#recs .why .by").first.inner_text()  # served --llm off

    page.click(f"#recs li[data-item='{before[0]}'] button.dislike")
    page.wait_for_selector("#recs li.new")
    after = shown(page)
    assert before[0] not in after and len(after) == 10
    new = page.eval_on_selector_all("#recs li.new", "els => els.map(e => e.dataset.item)")
    assert new and set(new) == set(after) - set(before)
    assert "dislike" in page.inner_text("#user-card .history li:first-child")
    assert "updated" in page.inner_text("#status")

    page.click(f"#recs li[data-item='{after[1]}'] button.like")  # like: also taken at once
    page.wait_for_function(
        f"() => !Array.from(document.querySelectorAll('#recs li')).some("
        f"e => e.dataset.item === '{after[1]}')"
    )
    assert errors == []


def test_new_visitor_and_keyboard_only(site: dict, browser: object) -> None:
    page, errors = open_page(browser, site["server"].url, site["key"])  # type: ignore[arg-type]
    page.click("#new-visitor")
    page.wait_for_selector("#recs li")
    assert "No history yet" in page.inner_text("#user-card")
    assert set(page.eval_on_selector_all("#recs .source", "e => e.map(x => x.textContent)")) <= {
        "popular",
        "text-neighbours",
    }
    page.focus("#user-query")  # search, then Tab to the first hit and Enter
    page.keyboard.type("u5")
    page.keyboard.press("Enter")
    page.wait_for_function(  # the search's hits replaced the first list (no race with Tab)
        "[...document.querySelectorAll('#user-hits button')]"
        ".every(b => b.dataset.user.includes('u5'))"
    )
    page.keyboard.press("Tab")  # the search button
    page.keyboard.press("Tab")  # the first hit
    assert page.evaluate("document.activeElement.dataset.user") == "u5"
    page.keyboard.press("Enter")
    page.wait_for_selector("#user-card .who:has-text('u5')")
    assert errors == []


def test_ask_in_words_then_follow_up_and_remove_a_chip(site: dict, browser: object) -> None:
    page, errors = open_page(browser, site["server"].url, site["key"])  # type: ignore[arg-type]
    choose_user(page, "u3")
    titles = "els => els.map(e => e.textContent)"
    page.fill("#ask-q", "a comedy <b>please</b>")
    page.press("#ask-q", "Enter")
    page.wait_for_selector("#ask-chips .chip[data-kind='genre']")
    first = page.eval_on_selector_all("#recs li .rec-head .title", titles)
    assert first and all(t.startswith("Comedy") for t in first)
    assert "your request" in page.locator("#recs .why .by").first.inner_text()
    assert page.locator("#ask-chips b").count() == 0  # typed markup stays text
    second = shown(page)[1]
    page.fill("#ask-q", "more like the second one")  # a follow-up in the same conversation
    page.press("#ask-q", "Enter")
    page.wait_for_selector("#ask-chips .chip[data-kind='like']")
    assert first[1] in page.inner_text("#ask-chips .chip[data-kind='like']")
    assert second not in shown(page)
    assert all(t.startswith("Comedy") for t in page.eval_on_selector_all(
        "#recs li .rec-head .title", titles))  # fmt: skip
    page.click("#ask-chips .chip[data-kind='genre']")  # the chip's × takes the genre off
    page.wait_for_function("() => !document.querySelector(\"#ask-chips [data-kind='genre']\")")
    page.fill("#ask-q", "no comedy")
    page.press("#ask-q", "Enter")
    page.wait_for_selector("#ask-chips .chip[data-kind='not-genre']")
    drama = page.eval_on_selector_all("#recs li .rec-head .title", titles)
    assert drama and all(t.startswith("Drama") for t in drama)
    page.click("#ask-clear")  # back to the ordinary list
    page.wait_for_selector("#ask-chips", state="hidden")
    page.wait_for_function("() => document.querySelectorAll('#recs li').length === 10")
    assert errors == []


def test_add_an_item_and_find_it_in_similar_and_the_catalogue(site: dict, browser: object) -> None:
    page, errors = open_page(browser, site["server"].url, site["key"])  # type: ignore[arg-type]
    add_item(page, "web-film", "Drama item web", "A drama, like the other drama items.", "Drama")
    similar = page.eval_on_selector_all("#similar li", "els => els.map(e => e.dataset.item)")
    assert len(similar) == 10 and "web-film" not in similar
    page.fill("#item-query", "web-film")
    page.press("#item-query", "Enter")
    page.wait_for_selector("#item-hits tr[data-item='web-film']")
    page.click("#item-hits tr[data-item='web-film'] button")  # its own "similar" button
    page.wait_for_selector("#similar-note:has-text('Drama item web')")
    # similar by text: the Drama (even) items come first
    top = page.eval_on_selector_all("#similar li", "els => els.map(e => e.dataset.item)")[:5]
    assert all(int(i) % 2 == 0 for i in top), top
    # and it is recommended at once, proposed by a retriever that reads text
    choose_user(page, "u2")
    page.select_option("#ctx-k", "20")
    page.wait_for_selector("#recs li[data-item='web-film']")
    source = page.inner_text("#recs li[data-item='web-film'] .source")
    assert source in {"content", "sasrec"}, source
    assert errors == []


def test_reports_show_tables_charts_and_cold_start(site: dict, browser: object) -> None:
    page, errors = open_page(browser, site["server"].url, site["key"])  # type: ignore[arg-type]
    open_reports(page)
    loo = page.locator("section.report[aria-label='report blocks-loo']")
    rows = loo.locator("table").first.locator("tbody th").all_inner_texts()
    assert rows == ["pop", "itemknn"]
    # accuracy … popularity bias, item exposure, miscalibration and unfair exposure, and the
    # trade-off curves of the three rerankers (a line per model)
    assert loo.locator("figure.chart svg").count() == 10
    assert "tail" in loo.locator("figure.chart").nth(5).inner_text()
    assert loo.locator("figure.chart polyline.curve").count() == 6
    assert loo.locator("td.best").count() >= 1
    groups = loo.locator("table.groups tbody tr")  # llmrec eval --groups activity
    assert groups.count() == 2
    assert "activity" in groups.first.inner_text()
    cold = page.locator("section.report[aria-label='cold start']")
    assert "blocks cold-items ndcg@10" in cold.inner_text()
    assert cold.locator("tbody tr").count() == 2
    assert errors == []


# elements reaching past the viewport's right edge (what makes a page scroll sideways)
WIDE = """[...document.querySelectorAll('body *')]
  .filter(e => !e.closest('.scroll') && e.getBoundingClientRect().right > innerWidth + 1)
  .map(e => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""


def too_wide(page: object, width: int) -> list[str]:
    if page.evaluate("document.documentElement.scrollWidth") <= width:  # type: ignore[attr-defined]
        return []
    return page.evaluate(WIDE)  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [320, 375])
def test_narrow_screen_has_no_sideways_scroll_on_any_view(
    site: dict, browser: object, width: int
) -> None:
    url, key = site["server"].url, site["key"]
    page, errors = open_page(browser, url, key, width=width, height=800)  # type: ignore[arg-type]
    choose_user(page, "u3")
    assert too_wide(page, width) == [], "explore"
    page.goto(url + "/#items")
    page.fill("#item-query", "")
    page.press("#item-query", "Enter")
    page.wait_for_selector("#item-hits tr")
    assert too_wide(page, width) == [], "items"
    open_reports(page)  # wide tables scroll inside their own box
    assert too_wide(page, width) == [], "reports"
    open_dashboard(page)
    assert too_wide(page, width) == [], "dashboard"
    assert errors == []


def test_dashboard_shows_activity_and_the_model(site: dict, browser: object) -> None:
    page, errors = open_page(browser, site["server"].url, site["key"])  # type: ignore[arg-type]
    open_dashboard(page)
    summary = page.inner_text("#dash-summary")
    assert "100% of users" in summary and "since the server started" in summary
    assert page.locator("#dash-charts figure.chart svg").count() == 2  # events, active users
    bars = page.locator("#dash-charts figure.chart").first.locator("rect")
    assert bars.count() >= 1
    assert "No impressions logged" in page.inner_text("#dash-charts")
    page.select_option("#dash-days", "7")
    first_chart = "document.querySelectorAll('#dash-charts figure.chart')[0]"
    page.wait_for_function(f"{first_chart}.querySelectorAll('rect').length <= 7")
    assert errors == []


def test_a_key_typed_in_fills_the_user_list_and_hints_quote_the_catalogue(
    site: dict, browser: object
) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(site["server"].url + "/#explore")
    page.wait_for_selector("#status:has-text('Enter an API key')")
    assert page.locator("#user-hits li").count() == 0
    page.fill("#key", site["key"])
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#user-hits li")  # without a search
    assert "e.g. u" in page.get_attribute("#user-query", "placeholder")
    assert "80s space" not in page.get_attribute("#ask-q", "placeholder")
    choose_user(page, "u3")
    assert page.locator("#recs li button.view").first.inner_text() == "Viewed"  # item noun
    page.close()


def test_bad_key_and_server_down_are_clear(site: dict, browser: object) -> None:
    page, _ = open_page(browser, site["server"].url, site["key"])  # type: ignore[arg-type]
    page.fill("#key", "lrk_not-a-real-key")
    page.click("#key-form button[type=submit]")
    page.fill("#user-query", "u1")
    page.press("#user-query", "Enter")
    page.wait_for_selector("#status[data-kind='error']")
    assert "key is missing or not valid" in page.inner_text("#status")

    read = create_key(site["db"], "read", home=site["home"])
    page.fill("#key", read)
    page.click("#key-form button[type=submit]")
    choose_user(page, "u1")
    first = shown(page)[0]
    page.click(f"#recs li[data-item='{first}'] button.like")
    page.wait_for_selector("#status[data-kind='error']")
    assert "not allowed" in page.inner_text("#status")  # a read key cannot send feedback

    server: Server = site["server"]  # the last test of the module: the server stops
    server.process.terminate()
    server.process.wait(timeout=30)
    page.fill("#user-query", "u2")
    page.press("#user-query", "Enter")
    page.wait_for_selector("#status:has-text('not reachable')")
