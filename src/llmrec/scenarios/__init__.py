"""Multi-scenario learning: several surfaces or domains share user and item representations."""

from __future__ import annotations

from llmrec.scenarios.data import (
    GENRE_DOMAINS,
    ScenarioData,
    ScenarioTask,
    genre_domains,
    obd_campaigns,
)
from llmrec.scenarios.model import MODES, MultiScenarioMF

__all__ = [
    "GENRE_DOMAINS",
    "MODES",
    "MultiScenarioMF",
    "ScenarioData",
    "ScenarioTask",
    "genre_domains",
    "obd_campaigns",
]
