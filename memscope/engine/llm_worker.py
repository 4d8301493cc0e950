"""LLMWorker: a worker that asks the LLM for a structured answer, with en/zh prompts beside its module."""

from __future__ import annotations

import functools
import importlib.resources
import sys
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel

from memscope.engine.worker import Worker

__all__ = ["LLMWorker", "load_prompts"]

T = TypeVar("T", bound=BaseModel)


@functools.cache
def load_prompts(package: str, worker_name: str) -> dict[str, dict[str, str]]:
    """The prompts of one worker: {language: {part: text}} from `<package>/prompts/<worker>.yaml`."""
    path = importlib.resources.files(package).joinpath("prompts", f"{worker_name}.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "en" not in data:
        raise ValueError(f"prompt file for worker {worker_name!r} must map languages (en, zh) to prompt parts")
    return data


class LLMWorker(Worker):
    """A worker that asks the LLM for a structured answer using its en/zh prompts.

    Prompts live in `prompts/<worker name>.yaml` in the package of the worker's module.
    """

    uses_llm = True
    prompt_languages: ClassVar[tuple[str, ...]] = ("en", "zh")

    def prompt(self, part: str, **values: Any) -> str:
        """A prompt part in the configured language, with `{placeholders}` filled."""
        prompts = load_prompts(prompt_package(type(self)), self.name)
        language = self.resources.language if self.resources.language in prompts else "en"
        return prompts[language][part].format(**values)

    def ask(self, schema: type[T], **values: Any) -> T:
        """Render `system` and `user` prompts and get a validated `schema` answer."""
        assert self.resources.llm is not None, "the runner skips LLM workers when no LLM is configured"
        messages = [
            {"role": "system", "content": self.prompt("system", **values)},
            {"role": "user", "content": self.prompt("user", **values)},
        ]
        return self.resources.llm.structured(messages, schema, tag=self.name)


def prompt_package(cls: type) -> str:
    """The package whose `prompts/` folder holds a worker class's prompts: its module's package."""
    module = sys.modules[cls.__module__]
    return module.__package__ or cls.__module__.rpartition(".")[0]
