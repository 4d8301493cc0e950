"""Configuration: one YAML file with ${VAR} interpolation, validated by pydantic; errors name file:line.

`load_settings()` with no argument reads the file named by `MEMSCOPE_CONFIG`, else returns the built-in
defaults, which equal `configs/default.yaml` (a test keeps the two in step). Relative paths in a config
are relative to the working directory; `~` is expanded. A dict source is interpolated like a file.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import annotated_types
import pydantic
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from memscope._yaml_lines import Document, KeyPath, Problem, interpolate, interpolate_tree, load_document
from memscope.errors import ConfigError
from memscope.redact import MASK, mask_url

__all__ = [
    "CONFIG_ENV",
    "CelerySettings",
    "ConfigError",
    "ElasticsearchSettings",
    "EmbeddingSettings",
    "HeatSettings",
    "JobsSettings",
    "LLMSettings",
    "LocalJobsSettings",
    "OperationsSettings",
    "RerankSettings",
    "RetrievalSettings",
    "Settings",
    "StoreSettings",
    "TiersSettings",
    "WorkersSettings",
    "check_config",
    "config_line",
    "env_config_path",
    "load_settings",
    "settings_to_dict",
]

CONFIG_ENV = "MEMSCOPE_CONFIG"
DEFAULT_STORE_PATH = "${MEMSCOPE_HOME:-~/.memscope}/memscope.db"
DEFAULT_ES_URL = "${MEMSCOPE_ES_URL:-http://127.0.0.1:9200}"
DEFAULT_REDIS_URL = "${MEMSCOPE_REDIS_URL:-redis://127.0.0.1:6379/0}"
SECRET_KEYS = frozenset({"api_key", "password"})
_INDEX_PREFIX = re.compile(r"[a-z0-9][a-z0-9._-]*")
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _env_default(template: str) -> str:
    return interpolate(template)[0]


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


OptionalText = Annotated[str | None, BeforeValidator(_blank_to_none)]
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_blank_to_none)]  # repr and dumps show '**********'
Seconds = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():  # a URL's password never reaches a repr
            yield name, mask_url(value) if isinstance(value, str) else value


def _check_url(value: str, example: str) -> str:
    if "://" not in value:
        shown = f"***@{value.rpartition('@')[2]}" if "@" in value else value  # credentials stay hidden
        raise ValueError(f"expected a URL like {example}, got {shown!r}")
    return value


class ElasticsearchSettings(_Section):
    """How to reach Elasticsearch: URL, index name prefix, credentials, TLS, timeout."""

    url: str = Field(default_factory=lambda: _env_default(DEFAULT_ES_URL))
    index_prefix: str = "memscope"
    api_key: OptionalSecret = None
    username: OptionalText = None
    password: OptionalSecret = None
    verify_certs: bool = True
    request_timeout_s: Seconds = 10
    refresh: Literal["wait_for", "true"] = "wait_for"  # how writes become searchable (see the store)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, "http://127.0.0.1:9200")

    @field_validator("refresh", mode="before")
    @classmethod
    def _refresh(cls, value: object) -> object:
        return "true" if value is True else value  # YAML reads an unquoted `true` as a boolean

    @field_validator("index_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _INDEX_PREFIX.fullmatch(value):
            raise ValueError(
                f"expected an index name prefix of lowercase letters, digits, '.', '_' or '-' "
                f"(starting with a letter or digit), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _pair(self) -> ElasticsearchSettings:
        if bool(self.username) != bool(self.password):
            raise ValueError("username and password go together; give both or neither (or use api_key)")
        return self


class StoreSettings(_Section):
    """Where memories live: `sqlite` (one file at `path`) or `elasticsearch`."""

    backend: Literal["sqlite", "elasticsearch"] = "sqlite"
    path: Path = Field(default_factory=lambda: Path(_env_default(DEFAULT_STORE_PATH)).expanduser())
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)

    @field_validator("path", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError(f"expected a file path such as ~/.memscope/memscope.db, got {_show(value)}")
        return value

    @field_validator("path")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class CelerySettings(_Section):
    """Celery over Redis: broker, result backend, queue, time limits, retries, per-user lock TTL."""

    broker_url: str = Field(default_factory=lambda: _env_default(DEFAULT_REDIS_URL))
    result_backend: str = Field(default_factory=lambda: _env_default(DEFAULT_REDIS_URL))
    queue: str = Field(default="memscope", min_length=1)
    soft_time_limit_s: Seconds = 300
    time_limit_s: Seconds = 360
    max_retries: int = Field(default=5, ge=0)
    max_attempts: int = Field(default=3, ge=1)  # starts that never finished (killed, hard limit): then failed
    lock_ttl_s: Seconds = 10  # kept alive every third of it; a dead worker's users resume after it

    @field_validator("broker_url", "result_backend")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, "redis://127.0.0.1:6379/0")

    @field_validator("time_limit_s")
    @classmethod
    def _after_soft(cls, value: float, info: ValidationInfo) -> float:
        soft = info.data.get("soft_time_limit_s")
        if soft is not None and value <= soft:
            raise ValueError(f"must be greater than soft_time_limit_s ({_num(soft)}), got {_num(value)}")
        return value


class LocalJobsSettings(_Section):
    """The in-process executor of the embedded mode."""

    threads: int = Field(default=2, ge=1)
    lease_ttl_s: Seconds = 10  # the per-user lease in the store, kept alive while a job runs
    lease_wait_s: Seconds = 600  # how long a job waits for another process's lease on its user


class JobsSettings(_Section):
    """Background jobs: `local` threads or `celery`, plus the sweep and reflection schedule."""

    backend: Literal["local", "celery"] = "local"
    celery: CelerySettings = Field(default_factory=CelerySettings)
    local: LocalJobsSettings = Field(default_factory=LocalJobsSettings)
    sweep_interval_s: Seconds = 10
    reflect_interval_s: Seconds = 900
    reflect_min_observations: int = Field(default=10, ge=1)
    consolidate_batch: int = Field(default=50, ge=1)


class EmbeddingSettings(_Section):
    """The embedding model; null fields mean the backend's default (or its environment variables)."""

    backend: Literal["local", "sentence-transformers", "openai", "dashscope"] = "local"
    model: OptionalText = None
    api_key: OptionalSecret = None
    base_url: OptionalText = None
    dim: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=64, ge=1)
    timeout_s: Seconds = 30
    cache_size: int = Field(default=10_000, ge=0)  # in-process LRU of recent texts; 0 turns it off


class LLMSettings(_Section):
    """The chat model; `auto` picks one from OPENAI_API_KEY / DASHSCOPE_API_KEY, `none` runs without."""

    backend: Literal["auto", "openai", "dashscope", "none"] = "auto"
    model: OptionalText = None
    api_key: OptionalSecret = None
    base_url: OptionalText = None
    timeout_s: Seconds = 60
    max_retries: int = Field(default=3, ge=0)
    json_schema: bool = True  # ask for JSON-schema output; false: JSON mode plus the schema in the prompt


class RerankSettings(_Section):
    """Optional reranking of retrieved memories."""

    backend: Literal["none", "dashscope"] = "none"
    model: str = Field(default="gte-rerank", min_length=1)
    api_key: OptionalSecret = None
    base_url: OptionalText = None
    timeout_s: Seconds = 30
    max_retries: int = Field(default=3, ge=0)


class RetrievalSettings(_Section):
    """Inline retrieval: results returned, candidates fetched per ranking, pending messages included."""

    top_k: int = Field(default=10, ge=1)
    candidates: int = Field(default=50, ge=1)
    include_pending: bool = True
    pending_limit: int = Field(default=20, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)  # the context block's budget (estimated tokens)
    include_beliefs: bool = False  # add the user's beliefs (see business_description) to the context
    hot_segments: int = Field(default=3, ge=0)  # segments in the general context (no query)

    @field_validator("candidates")
    @classmethod
    def _at_least_top_k(cls, value: int, info: ValidationInfo) -> int:
        top_k = info.data.get("top_k")
        if top_k is not None and value < top_k:
            raise ValueError(f"must be at least top_k ({top_k}), got {value}")
        return value


class HeatSettings(_Section):
    """A mid-term segment's heat, H = a*visits + b*turns + c*recency, fading with a half-life."""

    visit_weight: float = Field(default=1.0, ge=0)  # a: times retrieval returned the segment
    interaction_weight: float = Field(default=1.0, ge=0)  # b: turns in the segment
    recency_weight: float = Field(default=1.0, ge=0)  # c: exp(-hours since last activity / recency_tau_h)
    recency_tau_h: Seconds = 24
    half_life_days: Seconds = 7  # visits and turns count half as much this long after the last activity
    threshold: float = Field(default=10.0, gt=0)  # a segment this hot triggers the profile and beliefs update


class TiersSettings(_Section):
    """Memory tiers: the short-term window of turns, mid-term segments with heat."""

    short_term_turns: int = Field(default=20, ge=0)  # the last N turns chat() sends the model
    heat: HeatSettings = Field(default_factory=HeatSettings)


class OperationsSettings(_Section):
    """Extra folders of operation YAML files, and how long one step of an inline operation may run."""

    paths: list[Path] = Field(default_factory=list)
    inline_step_timeout_s: Seconds = 30  # a hung step fails the call instead of blocking it

    @field_validator("paths")
    @classmethod
    def _expand(cls, value: list[Path]) -> list[Path]:
        return [path.expanduser() for path in value]


class WorkersSettings(_Section):
    """Extra modules whose @worker classes are registered on start."""

    modules: list[str] = Field(default_factory=list)

    @field_validator("modules")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _MODULE.fullmatch(name)]
        if bad:
            raise ValueError(f"expected dotted module names such as my_app.workers, got {bad!r}")
        return value


class Settings(_Section):
    """All of memscope's configuration; `Settings()` is the embedded default (configs/default.yaml)."""

    language: Literal["en", "zh"] = "en"
    timezone: str = "UTC"
    store: StoreSettings = Field(default_factory=StoreSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    tiers: TiersSettings = Field(default_factory=TiersSettings)
    business_description: OptionalText = None  # what the assistant is for; derive_beliefs needs it
    operations: OperationsSettings = Field(default_factory=OperationsSettings)
    workers: WorkersSettings = Field(default_factory=WorkersSettings)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"{value!r} is not a known IANA time zone; use a name such as UTC, Europe/Berlin "
                "or Asia/Shanghai"
            ) from exc
        return value


def env_config_path() -> Path | None:
    """The config file named by the MEMSCOPE_CONFIG environment variable, if it is set."""
    value = os.environ.get(CONFIG_ENV, "").strip()
    return Path(value) if value else None


def load_settings(source: str | Path | Mapping[str, Any] | Settings | None = None) -> Settings:
    """Load and validate settings from a file, a dict, MEMSCOPE_CONFIG, or the defaults (None).

    Raises ConfigError listing every problem as 'file:line: key.path: message'.
    """
    if isinstance(source, Settings):
        return source
    settings, problems = _load(source)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def check_config(path: str | Path | Mapping[str, Any] | None = None) -> list[str]:
    """Every problem in a config (empty when it is valid); None checks what load_settings(None) loads."""
    return _load(path)[1]


def config_line(path: str | Path, key: KeyPath) -> int | None:
    """The line of `key` (or its nearest ancestor) in the config file at `path`; None if unreadable."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return load_document(text).line_of(key)


def settings_to_dict(settings: Settings, mask_secrets: bool = True) -> dict[str, Any]:
    """Settings as plain data (60.0 shown as 60); API keys and passwords, also inside URLs, become '***'."""
    data = settings.model_dump(mode="json")
    if not mask_secrets:
        _reveal(settings, data)
    return _plain(data, mask_secrets)


def _reveal(model: BaseModel, data: dict[str, Any]) -> None:
    """Put the plain text of `model`'s SecretStr fields into its JSON dump `data`."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            data[name] = value.get_secret_value()
        elif isinstance(value, BaseModel):
            _reveal(value, data[name])


def _plain(value: Any, mask: bool, key: str = "") -> Any:
    if isinstance(value, dict):
        return {name: _plain(item, mask, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, mask) for item in value]
    if mask and key in SECRET_KEYS and value is not None:
        return MASK
    if mask and isinstance(value, str):
        return mask_url(value)
    return _num(value)


def _load(source: str | Path | Mapping[str, Any] | None) -> tuple[Settings | None, list[str]]:
    from_env = ""
    if source is None:
        source = env_config_path()
        if source is None:
            return Settings(), []
        from_env = f" (named by {CONFIG_ENV})"
    if isinstance(source, Mapping):
        name = "<dict>"
        data, found = interpolate_tree(dict(source))
        doc = Document(data, problems=found)
    else:
        name = str(source)
        try:
            text = Path(source).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return None, [f"{name}: cannot read the config file{from_env}: {reason}"]
        doc = load_document(text)
        if doc.data is None and doc.problems:  # the YAML itself is malformed
            return None, [problem.format(name) for problem in doc.problems]
    settings = _validate(doc)
    if doc.problems:
        ordered = sorted(doc.problems, key=lambda problem: problem.line or 0)
        return None, list(dict.fromkeys(problem.format(name) for problem in ordered))
    return settings, []


def _validate(doc: Document) -> Settings | None:
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        allowed = ", ".join(Settings.model_fields)
        message = f"the top level must be a mapping of keys (allowed: {allowed}), got {_show(data)}"
        doc.problems.append(Problem((), message, doc.line_of(())))
        return None
    try:
        return Settings.model_validate(data)
    except pydantic.ValidationError as exc:
        reported = [problem.path for problem in doc.problems if problem.covers_value]
        for error in exc.errors(include_url=False):
            loc: KeyPath = tuple(error["loc"])
            if any(loc[: len(path)] == path for path in reported):
                continue  # already explained (e.g. an unset environment variable)
            doc.problems.append(Problem(loc, _message(error, loc), doc.line_of(loc)))
        return None


def _message(error: Any, loc: KeyPath) -> str:
    kind, value = error["type"], error.get("input")
    if any(part in SECRET_KEYS for part in loc):  # never echo a key, even a malformed one
        value = _Hidden(value)
    model, info, is_item = _field_at(loc)
    if kind == "extra_forbidden":
        allowed = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key{hint} (allowed: {', '.join(allowed)})"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", error.get("ctx", {}).get("expected", ""))
        return f"{_show(value)} is not allowed; choose one of: {', '.join(choices)}"
    if kind == "missing":
        return "required key is missing; add it"
    if kind in ("value_error", "assertion_error"):
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        section = _submodel(info.annotation) if info else None
        keys = f" with keys: {', '.join(section.model_fields)}" if section else ""
        return f"expected a mapping{keys}; got {_show(value)}"
    if info is None:
        return f"{error['msg']}, got {_show(value)}"
    expected = _expected(info, str(loc[-1] if not is_item else loc[-2]), is_item)
    scalar = isinstance(value, int | float) and expected.startswith("a string")  # bool is an int too
    hint = " (quote it to make it text)" if scalar else ""
    return f"expected {expected}, got {_show(value)}{hint}"


def _field_at(loc: KeyPath) -> tuple[type[BaseModel] | None, Any, bool]:
    """The model holding the last key of `loc`, that key's FieldInfo, and whether loc ends in a list item."""
    model: type[BaseModel] | None = Settings
    parent, info, is_item = model, None, False
    for part in loc:
        if isinstance(part, int):
            is_item = True
            continue
        parent, is_item = model, False
        if model is None or part not in model.model_fields:
            return parent, None, False
        info = model.model_fields[part]
        model = _submodel(info.annotation)
    return parent, info, is_item


def _submodel(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _expected(info: Any, name: str, is_item: bool) -> str:
    args = get_args(info.annotation)
    union = get_origin(info.annotation) in (Union, types.UnionType)
    optional = union and type(None) in args
    base = next((arg for arg in args if arg is not type(None)), info.annotation) if union else info.annotation
    if get_origin(base) is list:
        element = get_args(base)[0]
        if not is_item:
            return f"a list of {_NOUNS.get(element, 'value')}s"
        base = element
    noun = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", Path: "a path",
            SecretStr: "a string"}  # fmt: skip
    text = noun.get(base, "a value")
    if name.endswith("_s") and base in (int, float):
        text = "a number of seconds"
    for bound in info.metadata:
        if isinstance(bound, annotated_types.Gt):
            text += f" > {_num(bound.gt)}"
        elif isinstance(bound, annotated_types.Ge):
            text += f" >= {_num(bound.ge)}"
        elif isinstance(bound, annotated_types.MinLen) and bound.min_length == 1:
            text = "a non-empty string"
    return text + (" or null" if optional else "")


_NOUNS = {str: "string", Path: "path", int: "whole number"}


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


class _Hidden:
    """A secret's value in a problem message: its type, never its text."""

    def __init__(self, value: Any) -> None:
        self.kind = type(value).__name__

    def __repr__(self) -> str:
        return f"a {self.kind} (value hidden)"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
