"""Readable facts from a knowledge graph whose entities have no names: relate items to items.

Freebase-style triples (``film.film.directed_by``: film -> person) link a film to people and
things; two films sharing a tail entity share a director, writer, cast member... Since entity
ids carry no names, a fact names the *other items*: "Same director as: Return of the Jedi".
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from llmrec.data import columns as C

# role -> (relations whose head is the film, relations whose tail is the film, phrase).
# Freebase-derived KGs hold either direction for a pair, so both are read.
ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "director": (("film.film.directed_by",), ("film.director.film",), "Same director as"),
    "writer": (("film.film.written_by",), ("film.writer.film",), "Same writer as"),
    "producer": (("film.film.produced_by",), ("film.producer.film",), "Same producer as"),
    "cast": (("film.film.actor",), ("film.actor.film",), "Shares cast with"),
    "subject": (("film.film.subjects",), ("film.film_subject.films",), "Same subject as"),
}
# Off by default: the ml-100k KG shipped in recbole 1.2.1 links unrelated films (Vertigo "same
# director as" E.T., Star Wars "shares cast with" Ponette, Return of the Jedi's sequel "Flirt"),
# so its facts would put noise into item texts. Turn roles on for a KG you trust.
DEFAULT_ROLES: tuple[str, ...] = ()


def kg_facts(
    kg: pd.DataFrame | None,
    item_entity: pd.DataFrame | None,
    titles: dict[str, str],
    max_items: int = 3,
    roles: tuple[str, ...] = DEFAULT_ROLES,
) -> dict[str, list[str]]:
    """item_id -> fact sentences. For each role the most related items come first (most
    shared entities, then lower id), at most ``max_items`` each."""
    if kg is None or item_entity is None or kg.empty or max_items == 0:
        return {}
    ent2item = dict(zip(item_entity[C.ENTITY], item_entity[C.ITEM_ID].astype(str), strict=False))
    out: dict[str, list[str]] = defaultdict(list)
    for role in roles:
        film_head, film_tail, phrase = ROLES[role]
        a = kg[kg[C.RELATION].isin(film_head)]
        b = kg[kg[C.RELATION].isin(film_tail)]
        pairs = (
            pd.concat(
                [
                    pd.DataFrame({"item": a[C.HEAD].map(ent2item), "tail": a[C.TAIL]}),
                    pd.DataFrame({"item": b[C.TAIL].map(ent2item), "tail": b[C.HEAD]}),
                ]
            )
            .dropna()
            .drop_duplicates()
        )
        joined = pairs.merge(pairs, on="tail", suffixes=("", "_other"))
        joined = joined[joined["item"] != joined["item_other"]]
        if joined.empty:
            continue
        counts = joined.groupby(["item", "item_other"]).size().rename("n").reset_index()
        counts["key"] = counts["item_other"].map(_id_key)
        counts = counts.sort_values(["item", "n", "key"], ascending=[True, False, True])
        for item, group in counts.groupby("item", sort=False):
            names = [titles.get(o, o) for o in group["item_other"].head(max_items)]
            out[str(item)].append(f"{phrase}: {'; '.join(names)}.")
    return dict(out)


def _id_key(item_id: str) -> tuple[int, int | str]:
    return (0, int(item_id)) if item_id.lstrip("-").isdigit() else (1, item_id)
