"""memscope: long-term memory for LLM chatbots."""

from __future__ import annotations

__version__ = "0.1.0"
