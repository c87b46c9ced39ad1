"""Two-stage recommendation: candidates from several retrievers, then a learned ranker."""

from __future__ import annotations
