"""Items and users as text: the input of text encoders and LLM prompts."""

from __future__ import annotations

from llmrec.text.kg import kg_facts
from llmrec.text.templates import TextConfig, item_texts, user_text, user_texts

__all__ = ["TextConfig", "item_texts", "kg_facts", "user_text", "user_texts"]
