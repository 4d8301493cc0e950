"""Configuration: one YAML file with ${VAR} interpolation, validated by pydantic; errors name file:line.

`load_settings()` with no argument reads the file named by `MEMSCOPE_CONFIG`, else returns the built-in
defaults, which equal `configs/default.yaml` (a test keeps the two in step). Relative paths in a config
are relative to the working directory; `~` is expanded. A dict source is interpolated like a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from memscope.config_errors import model_problems, plain_number, show
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
    "ServerKey",
    "ServerSettings",
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
_SHA256 = re.compile(r"[0-9a-f]{64}")
TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


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
            raise ValueError(f"expected a file path such as ~/.memscope/memscope.db, got {show(value)}")
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
            shown = f"({plain_number(soft)}), got {plain_number(value)}"
            raise ValueError(f"must be greater than soft_time_limit_s {shown}")
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
    batch_size: int | None = Field(default=None, ge=1)  # null: the backend's own (local 64, openai 256, dashscope 10)
    timeout_s: Seconds = 30
    cache_size: int = Field(default=10_000, ge=0)  # in-process LRU of recent texts; 0 turns it off
    # The built-in all-MiniLM-L6-v2 (backend local): auto runs it on onnxruntime when onnxruntime and onnx
    # import, else numpy; local_threads is onnxruntime's intra-op threads; queries run an int8 graph.
    local_backend: Literal["auto", "onnx", "numpy"] = "auto"
    local_threads: int = Field(default=1, ge=1)
    local_query_precision: Literal["int8", "fp32"] = "int8"


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


class ServerKey(_Section):
    """One API key of `memscope serve`, stored as the sha256 hex of the key (never the key itself);
    bound to one tenant namespace, or an admin key that reaches every user."""

    sha256: str
    tenant: OptionalText = None
    admin: bool = False

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        value = value.strip().lower().removeprefix("sha256:")
        if not _SHA256.fullmatch(value):
            raise ValueError("expected the 64 hex digits of the key's sha256 (`memscope keygen` prints them)")
        return value

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        if value is not None and not TENANT_NAME.fullmatch(value):
            raise ValueError(
                f"expected a tenant name of lowercase letters, digits, '_' or '-' (at most 63), got {show(value)}"
            )
        return value

    @model_validator(mode="after")
    def _one_scope(self) -> ServerKey:
        if self.admin == (self.tenant is not None):
            raise ValueError("give a key either `tenant: NAME` or `admin: true`, not both or neither")
        return self


class ServerSettings(_Section):
    """`memscope serve`: where it listens, its API keys (hashed), and the request size limit."""

    host: str = "127.0.0.1"
    port: int = Field(default=8420, ge=1, le=65535)
    keys: list[ServerKey] = Field(default_factory=list)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    ready_timeout_s: Seconds = 2


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
    server: ServerSettings = Field(default_factory=ServerSettings)

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
    return plain_number(value)


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
        message = f"the top level must be a mapping of keys (allowed: {allowed}), got {show(data)}"
        doc.problems.append(Problem((), message, doc.line_of(())))
        return None
    try:
        return Settings.model_validate(data)
    except pydantic.ValidationError as exc:
        doc.problems.extend(model_problems(exc, Settings, doc, secret_keys=SECRET_KEYS))
        return None
