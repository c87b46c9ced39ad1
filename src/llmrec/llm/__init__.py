"""Generative language models: one interface over two runtimes, prompts, output checks,
explanations and pitches."""

from __future__ import annotations

from llmrec.llm.runtime import (
    LanguageModel,
    LLMConfig,
    LLMUnavailable,
    chat_prompt,
    load_llm,
)

__all__ = ["LLMConfig", "LLMUnavailable", "LanguageModel", "chat_prompt", "load_llm"]
