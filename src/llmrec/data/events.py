"""What events mean: the canonical types, custom names a dataset declares, and their weights.

A dataset keeps its own event names (``add_to_cart`` stays ``add_to_cart``); its manifest
declares what each custom name means (``events: {add_to_cart: cart}``) and may override the
weights (``event_weights: {cart: 3}``). Undeclared names are refused at import and by the API.
The weight of a (user, item) pair is the weight of its strongest event (repeats do not add up:
fifty views are not a purchase); a pair whose only events are dislikes weighs the dislike's
(negative) weight. ``rate`` weighs its value (a 1-5 rating weighs 1-5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmrec.data import columns as C
from llmrec.errors import DataError

CANONICAL = C.EVENTS
DEFAULT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "cart": 3.0,
    "purchase": 5.0,
    "like": 4.0,
    "rate": 1.0,  # per event: its value when it has one
    "dislike": -1.0,
}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


@dataclass(frozen=True)
class EventRules:
    """A dataset's event vocabulary: ``aliases`` (custom name -> canonical type) and
    ``weights`` (overrides by canonical or custom name)."""

    aliases: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, canon in self.aliases.items():
            if not _NAME.fullmatch(name):
                raise DataError(
                    f"event name {name!r}: use 1-32 lower-case letters, digits and '_', "
                    "starting with a letter"
                )
            if name in CANONICAL:
                raise DataError(f"event {name!r} is a built-in type: it cannot be redeclared")
            if canon not in CANONICAL:
                raise DataError(
                    f"event {name!r} declared as {canon!r}: use one of {', '.join(CANONICAL)}"
                )
        for name, w in self.weights.items():
            if name not in self.names:
                raise DataError(
                    f"weight for unknown event {name!r}: declare it first (--events {name}=TYPE)"
                )
            if not np.isfinite(w):
                raise DataError(f"weight of event {name!r} must be a finite number, got {w}")

    @property
    def names(self) -> tuple[str, ...]:
        return (*CANONICAL, *sorted(self.aliases))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> EventRules:
        meta = meta or {}
        aliases = {str(k): str(v) for k, v in (meta.get("events") or {}).items()}
        weights = {str(k): float(v) for k, v in (meta.get("event_weights") or {}).items()}
        return cls(aliases, weights)

    def to_meta(self) -> dict[str, Any]:
        return {"events": dict(self.aliases), "event_weights": dict(self.weights)}

    def canonical(self, events: np.ndarray | pd.Series) -> np.ndarray:
        """Each event's canonical type (unknown names pass through unchanged)."""
        ev = pd.Series(np.asarray(events, dtype=object)).astype(str)
        return ev.replace(self.aliases).to_numpy(dtype=object)

    def weight_of(self, name: str) -> float:
        if name in self.weights:
            return self.weights[name]
        canon = self.aliases.get(name, name)
        return self.weights.get(canon, DEFAULT_WEIGHTS.get(canon, 1.0))

    def weights_of(self, events: np.ndarray | pd.Series, values: np.ndarray) -> np.ndarray:
        """Per event: its weight; a ``rate`` event (or a custom name declared as one)
        without an explicit weight weighs its value when it has one."""
        # one lookup per distinct name, not per event (logs hold millions of events)
        codes, uniques = pd.factorize(
            pd.Series(events, copy=False), sort=False, use_na_sentinel=False
        )
        names = [str(n) for n in uniques]
        w = np.array([self.weight_of(n) for n in names], dtype=np.float64)[codes]
        by_value = [c for c, n in enumerate(names) if self.aliases.get(n, n) == "rate"
                    and n not in self.weights]  # fmt: skip
        if by_value:
            vals = np.asarray(values, dtype=np.float64)
            use = np.isin(codes, by_value) & np.isfinite(vals)
            w[use] = vals[use]
        return w

    def check(self, events: pd.Series, file: str | None = None, column: str = "event") -> None:
        """DataError naming the first row whose event name is not declared."""
        bad = (~events.isin(self.names)).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"unknown event {events.iloc[i]!r}: use one of {', '.join(self.names)}, "
                f"or declare it (--events {events.iloc[i]}=TYPE)",
                file=file,
                row=i + 1,
                column=column,
            )


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    """``["add_to_cart=cart", ...]`` (CLI options) as a dict; a clear error when malformed."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DataError(f"{what}: expected NAME=VALUE, got {item!r}")
        out[key.strip().lower()] = value.strip()
    return out


def rules_with(
    base: EventRules, events: list[str] | None = None, weights: list[str] | None = None
) -> EventRules:
    """``base`` plus declarations and weights given as ``NAME=VALUE`` strings."""
    aliases = {
        **base.aliases,
        **{k: v.lower() for k, v in parse_pairs(events or [], "--events").items()},
    }
    w = dict(base.weights)
    for name, value in parse_pairs(weights or [], "--event-weight").items():
        try:
            w[name] = float(value)
        except ValueError:
            raise DataError(f"--event-weight {name}: {value!r} is not a number") from None
    return EventRules(aliases, w)
