from __future__ import annotations

import pandas as pd

from llmrec.data import columns as C
from llmrec.text import TextConfig, item_texts, kg_facts, user_text


def test_item_text_template() -> None:
    items = pd.DataFrame(
        {
            C.ITEM_ID: ["1", "2", "3"],
            C.TITLE: ["Toy Story", "", "Amélie"],
            C.YEAR: pd.array([1995, None, 2001], dtype="Int64"),
            C.GENRES: [["Animation", "Comedy"], [], ["Romance"]],
            "description": ["Toys come alive.", "", "Une fille à Paris — naïve."],
            "studio": ["Pixar", None, "UGC"],
            "zip_code": ["12345", "1", "2"],
        }
    )
    texts = item_texts(items)
    assert (
        texts[0] == "Toy Story (1995). Genres: Animation, Comedy. Toys come alive. studio: Pixar."
    )
    assert texts[1] == "2."  # no title: the id stands in; empty fields vanish
    assert texts[2] == "Amélie (2001). Genres: Romance. Une fille à Paris — naïve. studio: UGC."
    custom = item_texts(items, TextConfig(item_template="{title}{year}"))
    assert custom[0] == "Toy Story (1995)"


def test_kg_facts_name_related_items_both_directions() -> None:
    kg = pd.DataFrame(
        {
            C.HEAD: ["f1", "f2", "p9", "f3"],
            C.RELATION: [
                "film.film.directed_by",
                "film.film.directed_by",
                "film.director.film",
                "film.film.actor",
            ],
            C.TAIL: ["p1", "p1", "f3", "a1"],
        }
    )
    link = pd.DataFrame({C.ITEM_ID: ["1", "2", "3"], C.ENTITY: ["f1", "f2", "f3"]})
    titles = {"1": "Alien", "2": "Aliens", "3": "Heat"}
    facts = kg_facts(kg, link, titles, roles=("director",))
    assert facts == {"1": ["Same director as: Aliens."], "2": ["Same director as: Alien."]}
    assert kg_facts(kg, link, titles, roles=()) == {}
    items = pd.DataFrame({C.ITEM_ID: ["1", "2", "3"], C.TITLE: ["Alien", "Aliens", "Heat"]})
    text = item_texts(items, TextConfig(kg_roles=("director",)), kg, link)
    assert text[0] == "Alien. Same director as: Aliens."


def test_user_text_profile_newest_first_with_ratings() -> None:
    history = [("Star Wars (1977)", 5.0), ("Fargo (1996)", None), ("Heat", 2.0)]
    text = user_text(
        {"user_id": "7", "age": 24, "gender": "F", "occupation": "writer", "zip_code": "85711"},
        history,
        TextConfig(history_items=2),
    )
    assert text == (
        "A 24-year-old woman writer. Recently, newest first: "
        "Star Wars (1977) (rated 5/5); Fargo (1996)."
    )
    assert "85711" not in text  # identifying attributes stay out
    assert user_text(None, []) == "A new user with no history."
    assert user_text({"region": "Île-de-France"}, []) == "A person. region: Île-de-France."
