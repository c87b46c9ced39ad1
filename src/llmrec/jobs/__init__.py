"""Batch jobs, in this process or on Ray: embed texts, the ranker's features, batch top-k."""

from __future__ import annotations

from llmrec.jobs.engine import Engine, JobResult, Run, read_output, require_ray

__all__ = ["Engine", "JobResult", "Run", "read_output", "require_ray"]
