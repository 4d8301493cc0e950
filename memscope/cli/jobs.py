"""`memscope worker`, `memscope beat` and `memscope jobs status` (the commands live in memscope.jobs.commands)."""

from __future__ import annotations

from memscope.cli._app import app
from memscope.jobs.commands import register

__all__: list[str] = []

register(app)
