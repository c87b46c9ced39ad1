"""Scenario tasks over one set of users and items: each scenario has its own events, its own
items (candidates) and its own validation and test stages; models may train on all of them.

- ``genre_domains``: MovieLens split into genre domains. Rule: an item belongs to the first
  domain of ``GENRE_DOMAINS`` (in order) that lists any of its genres, else to the last one;
  each domain is evaluated with the canonical ``loo`` protocol on its own events (users with
  3+ events in the domain), ranking all the domain's items.
- ``obd_campaigns``: the Open Bandit Dataset's campaigns (all / men / women). Users are
  context segments, a click is the event; per campaign the clicks are split by time: the last
  30% are test, the 15% before validation; each test click ranks all of its campaign's items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.data.dataset import Dataset
from llmrec.data.ids import IdMap
from llmrec.data.matrix import TrainData
from llmrec.data.splits import Stage, catalogue
from llmrec.errors import DataError
from llmrec.eval.protocols import loo

# ml-100k: the sparse family domain first, then thrillers and action, then the rest
GENRE_DOMAINS: dict[str, tuple[str, ...]] = {
    "family": ("Children's", "Animation", "Musical", "Fantasy"),
    "thrill": (
        "Action",
        "Adventure",
        "Sci-Fi",
        "Thriller",
        "Crime",
        "Horror",
        "Mystery",
        "War",
        "Western",
        "Film-Noir",
    ),
    "drama-comedy": ("Drama", "Comedy", "Romance", "Documentary", "unknown"),
}


@dataclass(frozen=True)
class ScenarioTask:
    """One scenario's ranking tasks; stage users and candidates are local to ``train``."""

    name: str
    train: TrainData  # the scenario's own training events (popularity, exclusions)
    valid: Stage
    test: Stage
    users: np.ndarray  # local user index -> global
    items: np.ndarray  # local item index -> global (the scenario's candidates)


@dataclass(frozen=True)
class ScenarioData:
    users: IdMap
    items: IdMap
    tasks: list[ScenarioTask]
    item_text: pd.DataFrame | None  # global items' side table (title, genres...) for encoders

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def train_log(self, only: str | None = None) -> pd.DataFrame:
        """Training events with global ``user``, ``item`` and ``scenario`` (task position)."""
        log = self._global_log(only)
        return pd.DataFrame(
            {"user": log["user_idx"], "item": log["item_idx"], "scenario": log["scenario"]}
        )

    def pooled_train(self) -> TrainData:
        """Every scenario's training events over the global indices, for any ``Recommender``
        (a pooled baseline: score a task's users ``task.users[...]`` on ``task.items``)."""
        return TrainData.build(self._global_log(None), self.users, self.items)

    def _global_log(self, only: str | None) -> pd.DataFrame:
        parts = []
        for s, t in enumerate(self.tasks):
            if only is None or t.name == only:
                log = t.train.log.assign(scenario=s)
                log["user_idx"] = t.users[log["user_idx"].to_numpy()]
                log["item_idx"] = t.items[log["item_idx"].to_numpy()]
                parts.append(log)
        return pd.concat(parts, ignore_index=True)


def domain_of(genres: object, domains: dict[str, tuple[str, ...]]) -> str:
    names = list(domains)
    have = {str(g) for g in genres} if isinstance(genres, list | np.ndarray) else set()
    return next((d for d in names if have & set(domains[d])), names[-1])


def genre_domains(ds: Dataset, domains: dict[str, tuple[str, ...]] = GENRE_DOMAINS) -> ScenarioData:
    if ds.items is None or C.GENRES not in ds.items:
        raise DataError(f"dataset {ds.name!r} has no item genres to split into domains")
    users = IdMap.from_values(ds.interactions[C.USER_ID].astype(str))
    items = catalogue(ds)
    domain = ds.items.set_index(ds.items[C.ITEM_ID].astype(str))[C.GENRES].map(
        lambda g: domain_of(g, domains)
    )
    of_event = ds.interactions[C.ITEM_ID].astype(str).map(domain).fillna(list(domains)[-1])
    tasks = []
    for name in domains:
        inter = ds.interactions[of_event.to_numpy() == name]
        sub_items = ds.items[domain.reindex(ds.items[C.ITEM_ID].astype(str)).to_numpy() == name]
        sub = Dataset(
            f"{ds.name}:{name}", inter.reset_index(drop=True), sub_items.reset_index(drop=True)
        )
        split = loo(sub)
        t = split.train
        tasks.append(
            ScenarioTask(
                name, t, split.valid, split.test, users.index(t.users.ids), items.index(t.items.ids)
            )
        )
    return ScenarioData(users, items, tasks, _aligned(ds.items, items))


def obd_campaigns(ds: Dataset, valid: float = 0.15, test: float = 0.3) -> ScenarioData:
    inter = ds.interactions
    clicks = inter[inter[C.EVENT] == "click"]
    if C.SCENARIO not in clicks or clicks.empty or ds.items is None:
        raise DataError(f"dataset {ds.name!r} has no clicks with a scenario (campaign)")
    # item ids are policy/campaign/id: both logging policies show the same items
    key = clicks[C.ITEM_ID].astype(str).str.split("/", n=1).str[1]
    clicks = clicks.assign(**{C.ITEM_ID: key})
    catalogue_keys = ds.items[C.ITEM_ID].astype(str).str.split("/", n=1).str[1]
    users = IdMap.from_values(clicks[C.USER_ID].astype(str))
    items = IdMap.from_values(catalogue_keys)
    tasks = []
    for name in sorted(clicks[C.SCENARIO].unique()):
        ev = clicks[clicks[C.SCENARIO] == name].sort_values([C.TIMESTAMP, C.ITEM_ID], kind="stable")
        local_items = IdMap.from_values(catalogue_keys[catalogue_keys.str.startswith(f"{name}/")])
        local_users = IdMap.from_values(ev[C.USER_ID].astype(str))
        log = pd.DataFrame(
            {
                "user_idx": local_users.index(ev[C.USER_ID].astype(str)),
                "item_idx": local_items.index(ev[C.ITEM_ID]),
                C.TIMESTAMP: ev[C.TIMESTAMP].to_numpy(),
                C.EVENT: "click",
                C.VALUE: 1.0,
            }
        )
        a, b = int(len(log) * (1 - test - valid)), int(len(log) * (1 - test))
        train = TrainData.build(log.iloc[:a], local_users, local_items)
        tasks.append(
            ScenarioTask(
                name,
                train,
                _click_stage(log.iloc[a:b]),
                _click_stage(log.iloc[b:]),
                users.index(local_users.ids),
                items.index(local_items.ids),
            )
        )
    return ScenarioData(users, items, tasks, None)


def _click_stage(log: pd.DataFrame) -> Stage:
    """One row per click: it ranks all the campaign's items (nothing excluded: OBD shows
    the same items again)."""
    return Stage(log["user_idx"].to_numpy(), log["item_idx"].to_numpy()[:, None], None)


def _aligned(table: pd.DataFrame | None, items: IdMap) -> pd.DataFrame | None:
    if table is None:
        return None
    t = table.assign(**{C.ITEM_ID: table[C.ITEM_ID].astype(str)}).set_index(C.ITEM_ID)
    return t.reindex(pd.Index(items.ids, name=C.ITEM_ID)).reset_index()
