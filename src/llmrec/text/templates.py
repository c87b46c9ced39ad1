"""Templates that turn items and users into text. Every default lives in ``TextConfig``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from llmrec.data import columns as C
from llmrec.text.kg import DEFAULT_ROLES, kg_facts


class TextConfig(BaseModel):
    """How items and users read as text (documented defaults; override any field)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    item_template: str = Field(
        "{title}{year}.{genres}{description}{attributes}{facts}",
        description="placeholders: title, year, genres, description, attributes, facts",
    )
    description_columns: tuple[str, ...] = ("description", "text", "overview", "plot")
    # attributes never rendered: ids, internal keys, identifying data
    skip_attributes: tuple[str, ...] = ("zip_code", "local_item_id", "policy", "campaign", "body")
    max_attributes: int = 8
    max_kg_items: int = Field(3, ge=0, description="items named per knowledge-graph role")
    kg_roles: tuple[str, ...] = Field(DEFAULT_ROLES, description="roles in text.kg.ROLES")
    history_items: int = Field(10, ge=0, description="recent items in a user profile")
    rating_scale: float | None = Field(5.0, description="ratings shown as 'r/scale'")


def _present(v: object) -> bool:
    if v is None or isinstance(v, float) and np.isnan(v):
        return False
    if v is pd.NA or v is pd.NaT:
        return False
    return str(v).strip() != ""


def item_texts(
    items: pd.DataFrame,
    config: TextConfig | None = None,
    kg: pd.DataFrame | None = None,
    item_entity: pd.DataFrame | None = None,
) -> list[str]:
    """One text per row of ``items``: title, year, genres, description, attributes, KG facts."""
    cfg = config or TextConfig()
    ids = items[C.ITEM_ID].astype(str).tolist()
    titles = [
        str(t) if _present(t) else i
        for t, i in zip(items.get(C.TITLE, pd.Series(ids)), ids, strict=True)
    ]
    facts = kg_facts(
        kg, item_entity, dict(zip(ids, titles, strict=True)), cfg.max_kg_items, cfg.kg_roles
    )
    desc_cols = [c for c in cfg.description_columns if c in items.columns]
    known = {C.ITEM_ID, C.TITLE, C.YEAR, C.GENRES, *desc_cols, *cfg.skip_attributes}
    attr_cols = [c for c in items.columns if c not in known][: cfg.max_attributes]
    out = []
    # records, not itertuples: column names need not be Python identifiers
    for n, r in enumerate(items.to_dict("records")):
        year = f" ({int(r[C.YEAR])})" if C.YEAR in r and _present(r[C.YEAR]) else ""
        genres = list(r.get(C.GENRES, []) if _present_list(r.get(C.GENRES)) else [])
        description = " ".join(str(r[c]).strip() for c in desc_cols if _present(r[c]))
        attrs = [f"{c.replace('_', ' ')}: {r[c]}" for c in attr_cols if _present(r[c])]
        text = cfg.item_template.format(
            title=titles[n],
            year=year,
            genres=f" Genres: {', '.join(map(str, genres))}." if genres else "",
            description=f" {description}" if description else "",
            attributes=f" {'; '.join(attrs)}." if attrs else "",
            facts=" " + " ".join(facts[ids[n]]) if ids[n] in facts else "",
        )
        out.append(" ".join(text.split()))
    return out


def _present_list(v: object) -> bool:
    return isinstance(v, list | tuple | np.ndarray) and len(v) > 0


_GENDER = {"m": "man", "f": "woman", "male": "man", "female": "woman"}


def user_text(
    attributes: dict[str, object] | None,
    history: Sequence[tuple[str, float | None]],
    config: TextConfig | None = None,
) -> str:
    """A profile: demographics when present, then recent items newest first with ratings.

    ``history``: (item title, rating or None), newest first; only the first
    ``config.history_items`` are used.
    """
    cfg = config or TextConfig()
    attrs = {
        k: v
        for k, v in (attributes or {}).items()
        if k != C.USER_ID and k not in cfg.skip_attributes and _present(v)
    }
    parts = []
    if attrs:
        age = attrs.pop("age", None)
        gender = _GENDER.get(str(attrs.pop("gender", "")).lower(), "")
        occupation = attrs.pop("occupation", None)
        who = " ".join(
            x for x in (f"{age}-year-old" if age else "", gender or "person", occupation) if x
        )
        parts.append(f"A {who}.")
        rest = [f"{k.replace('_', ' ')}: {v}" for k, v in list(attrs.items())[: cfg.max_attributes]]
        if rest:
            parts.append("; ".join(rest) + ".")
    recent = list(history)[: cfg.history_items]
    if recent:
        shown = [
            f"{title} ({_rating(r, cfg.rating_scale)})" if _present(r) else str(title)
            for title, r in recent
        ]
        parts.append("Recently, newest first: " + "; ".join(shown) + ".")
    return " ".join(parts) if parts else "A new user with no history."


def _rating(r: float | None, scale: float | None) -> str:
    value = f"{float(r):g}"  # type: ignore[arg-type]
    return f"rated {value}/{scale:g}" if scale else f"rated {value}"


def user_texts(
    log: pd.DataFrame,
    n_users: int,
    titles: np.ndarray,
    user_table: pd.DataFrame | None,
    config: TextConfig | None = None,
) -> list[str]:
    """Profile text for users 0..n_users-1 from an indexed log sorted by (user, time)."""
    cfg = config or TextConfig()
    recent = log.groupby("user_idx", sort=False).tail(cfg.history_items)
    by_user: dict[int, list[tuple[str, float | None]]] = {}
    values = recent[C.VALUE] if C.VALUE in recent else pd.Series(np.nan, index=recent.index)
    for u, i, v in zip(recent["user_idx"], recent["item_idx"], values, strict=True):
        by_user.setdefault(int(u), []).append((str(titles[i]), None if np.isnan(v) else v))
    rows = user_table.to_dict("records") if user_table is not None else [None] * n_users
    return [user_text(rows[u], by_user.get(u, [])[::-1], cfg) for u in range(n_users)]
