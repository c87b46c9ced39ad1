"""Text encoders behind one function: ``encode(encoder, texts, cache)``."""

from __future__ import annotations

from llmrec.encoders.base import TextEncoder, encode, prepare, text_key
from llmrec.encoders.cache import VectorCache
from llmrec.encoders.models import ENCODERS, get_encoder

__all__ = ["ENCODERS", "TextEncoder", "VectorCache", "encode", "get_encoder", "prepare", "text_key"]
