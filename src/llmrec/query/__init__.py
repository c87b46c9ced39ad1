"""Requests in words: a deterministic, catalogue-backed parser (``parse``) and the scoring
that blends a request with a user's own scores (``score``)."""
