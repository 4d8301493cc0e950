"""memscope.config: YAML + ${ENV} interpolation -> Settings, every problem as file:line: key: message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from memscope.config import (
    Settings,
    check_config,
    load_settings,
    settings_to_dict,
)
from memscope.errors import ConfigError

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path("tests/fixtures/configs")  # relative, as a user types it: problems echo it back
DEFAULT_YAML = REPO / "configs" / "default.yaml"
DISTRIBUTED_YAML = REPO / "configs" / "distributed.yaml"
ENV_VARS = ("MEMSCOPE_ES_URL", "MEMSCOPE_REDIS_URL", "MEMSCOPE_TEST_UNSET_DIR", "MEMSCOPE_TEST_DIR",
            "MEMSCOPE_ES_API_KEY", "MEMSCOPE_ES_USERNAME", "MEMSCOPE_ES_PASSWORD", "MS_VAR")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- problems name file:line: key: message ------------------------------------------------------


def test_three_problems_each_with_its_line() -> None:
    source = FIXTURES / "three_problems.yaml"
    assert check_config(source) == [
        f"{source}:5: store.path: environment variable MEMSCOPE_TEST_UNSET_DIR is not set and has no "
        "default; set it or write ${MEMSCOPE_TEST_UNSET_DIR:-/some/default}",
        f"{source}:8: jobs.sweep_interval_s: expected a number of seconds > 0, got 'soon'",
        f"{source}:11: llm.modle: unknown key; did you mean 'model'? "
        "(allowed: backend, model, api_key, base_url, timeout_s, max_retries, json_schema)",
    ]


def test_load_settings_raises_config_error_with_all_problems() -> None:
    source = FIXTURES / "three_problems.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(source)
    assert info.value.problems == check_config(source)
    assert str(info.value).count("\n") == 2


def test_setting_the_variable_fixes_that_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSCOPE_TEST_UNSET_DIR", "/data")
    problems = check_config(FIXTURES / "three_problems.yaml")
    assert [p.split(": ")[1] for p in problems] == ["jobs.sweep_interval_s", "llm.modle"]


def test_choice_error_lists_the_allowed_values() -> None:
    source = FIXTURES / "bad_choice.yaml"
    assert check_config(source) == [
        f"{source}:4: store.backend: 'sqlte' is not allowed; choose one of: sqlite, elasticsearch"
    ]


def test_malformed_yaml_gives_line_and_column() -> None:
    source = FIXTURES / "malformed.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(source)
    assert info.value.problems == [
        f"{source}:4:5: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that starts at line 3, column 9)"
    ]


def test_many_kinds_of_problem_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "timezone: Mars/Base\n"                                  # 1
        "embedding: {dim: 0, model: 123}\n"                      # 2
        "retrieval:\n"                                           # 3
        "  top_k: 20\n"                                          # 4
        "  candidates: 5\n"                                      # 5
        "jobs: {celery: {time_limit_s: 100}}\n"                  # 6
        "operations: {paths: /not/a/list}\n"                     # 7
        "rerank: none\n"                                         # 8
        "stroe: {}\n"                                            # 9
        "llm: {backend: none}\n"                                 # 10
        "llm: {backend: auto}\n"                                 # 11
        "workers: {modules: ['not a module']}\n"                 # 12
    ))
    assert check_config(path) == [
        f"{path}:1: timezone: 'Mars/Base' is not a known IANA time zone; use a name such as UTC, "
        "Europe/Berlin or Asia/Shanghai",
        f"{path}:2: embedding.model: expected a string or null, got 123 (quote it to make it text)",
        f"{path}:2: embedding.dim: expected a whole number > 0 or null, got 0",
        f"{path}:5: retrieval.candidates: must be at least top_k (20), got 5",
        f"{path}:6: jobs.celery.time_limit_s: must be greater than soft_time_limit_s (300), got 100",
        f"{path}:7: operations.paths: expected a list of paths, got '/not/a/list'",
        f"{path}:8: rerank: expected a mapping with keys: backend, model, api_key, base_url, timeout_s, "
        "max_retries; got 'none'",
        f"{path}:9: stroe: unknown key; did you mean 'store'? (allowed: language, timezone, store, jobs, "
        "embedding, llm, rerank, retrieval, tiers, business_description, operations, workers, server)",
        f"{path}:11: llm: duplicate key (first given on line 10); give each key once",
        f"{path}:12: workers.modules: expected dotted module names such as my_app.workers, "
        "got ['not a module']",
    ]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- sqlite\n- local\n")
    [problem] = check_config(path)
    assert problem.startswith(f"{path}:1: the top level must be a mapping of keys (allowed: language,")


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert check_config(missing) == [f"{missing}: cannot read the config file: No such file or directory"]


def test_elasticsearch_credentials_go_together(tmp_path: Path) -> None:
    path = write(tmp_path, "store:\n  elasticsearch:\n    username: elastic\n")
    assert check_config(path) == [
        f"{path}:2: store.elasticsearch: username and password go together; give both or "
        "neither (or use api_key)"
    ]


# --- interpolation --------------------------------------------------------------------------------


def test_interpolation_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MS_VAR", "from-env")
    monkeypatch.setenv("MS_EMPTY", "")
    monkeypatch.delenv("MS_UNSET", raising=False)
    path = write(tmp_path, (
        "llm:\n"
        "  model: ${MS_VAR}\n"                                  # plain ${VAR}
        "  base_url: http://${MS_UNSET:-localhost}:${MS_PORT:-8000}/v1\n"  # inside a longer string
        "  api_key: ${MS_UNSET:-}\n"                            # empty default, unquoted -> null
        "embedding:\n"
        "  model: ${MS_EMPTY:-fallback}\n"                      # set but empty -> default
        "  api_key: \"$${MS_VAR}\"\n"                           # escaped: stays literal
        "  base_url: \"a-${MS_VAR}-b-${MS_UNSET:-c}\"\n"        # two in one string
        "rerank:\n"
        "  api_key: \"${MS_UNSET:-}\"\n"                        # quoted empty -> '' -> null for keys
        "  model: price $5 ${MS_VAR}\n"                         # a lone $ is left alone
    ))
    settings = load_settings(path)
    assert settings.llm.model == "from-env"
    assert settings.llm.base_url == "http://localhost:8000/v1"
    assert settings.llm.api_key is None
    assert settings.embedding.model == "fallback"
    assert settings.embedding.api_key.get_secret_value() == "${MS_VAR}"
    assert settings.embedding.base_url == "a-from-env-b-c"
    assert settings.rerank.api_key is None
    assert settings.rerank.model == "price $5 from-env"


def test_empty_default_inside_a_path(tmp_path: Path) -> None:
    path = write(tmp_path, "store:\n  path: ${MS_UNSET:-}/srv/memscope.db\n")
    assert load_settings(path).store.path == Path("/srv/memscope.db")


def test_interpolated_numbers_and_booleans_are_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MS_VAR", "false")
    path = write(tmp_path, (
        "jobs:\n  sweep_interval_s: ${MS_SWEEP:-30}\n  local: {threads: \"${MS_THREADS:-4}\"}\n"
        "store:\n  elasticsearch: {verify_certs: \"${MS_VAR}\"}\n"
    ))
    settings = load_settings(path)
    assert settings.jobs.sweep_interval_s == 30
    assert settings.jobs.local.threads == 4
    assert settings.store.elasticsearch.verify_certs is False


def test_an_interpolated_wrong_type_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MS_VAR", "often")
    path = write(tmp_path, "language: en\njobs:\n  reflect_interval_s: ${MS_VAR}\n")
    assert check_config(path) == [
        f"{path}:3: jobs.reflect_interval_s: expected a number of seconds > 0, got 'often'"
    ]


def test_malformed_interpolation_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "llm:\n  model: ${1BAD}\n  base_url: ${A:-${B}}\n")
    problems = check_config(path)
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}:2: llm.model: malformed '${{' in '${{1BAD}}'; write ${{NAME}}")
    assert problems[1].startswith(f"{path}:3: llm.base_url: nested '${{' inside the default")


def test_merge_keys_work_and_explicit_keys_win(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "llm: &client {timeout_s: 30, max_retries: 1}\n"
        "embedding:\n  batch_size: 8\n"
        "rerank: {backend: none}\n"
        "store:\n  elasticsearch:\n"
        "    <<: {index_prefix: merged, verify_certs: false}\n    index_prefix: own\n"
    ))
    settings = load_settings(path)
    assert settings.store.elasticsearch.index_prefix == "own"
    assert settings.store.elasticsearch.verify_certs is False
    assert settings.llm.timeout_s == 30


# --- paths ------------------------------------------------------------------------------------------


def test_tilde_is_expanded(tmp_path: Path) -> None:
    path = write(tmp_path, "store:\n  path: ~/mem/x.db\noperations:\n  paths: [~/ops, /abs/ops]\n")
    settings = load_settings(path)
    assert settings.store.path == Path.home() / "mem" / "x.db"
    assert settings.operations.paths == [Path.home() / "ops", Path("/abs/ops")]


def test_store_path_default_follows_memscope_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMSCOPE_HOME", str(tmp_path))
    assert load_settings(None).store.path == tmp_path / "memscope.db"
    monkeypatch.delenv("MEMSCOPE_HOME")
    assert load_settings(None).store.path == Path.home() / ".memscope" / "memscope.db"


def test_empty_store_path_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "store:\n  path: ${MS_UNSET:-}\n")
    assert check_config(path) == [
        f"{path}:2: store.path: expected a file path such as ~/.memscope/memscope.db, got null"
    ]


# --- sources: dict, MEMSCOPE_CONFIG, defaults ---------------------------------------------------------


def test_dict_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MS_VAR", "qwen-plus")
    settings = load_settings({"llm": {"backend": "dashscope", "model": "${MS_VAR}"}, "language": "zh"})
    assert (settings.llm.backend, settings.llm.model, settings.language) == ("dashscope", "qwen-plus", "zh")
    assert check_config({"store": {"backend": "x"}, "llm": {"api_key": "${MS_UNSET}"}}) == [
        "<dict>: llm.api_key: environment variable MS_UNSET is not set and has no default; "
        "set it or write ${MS_UNSET:-/some/default}",
        "<dict>: store.backend: 'x' is not allowed; choose one of: sqlite, elasticsearch",
    ]


def test_settings_instance_passes_through() -> None:
    settings = Settings()
    assert load_settings(settings) is settings


def test_memscope_config_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path, "language: zh\nllm: {backend: none}\n")
    monkeypatch.setenv("MEMSCOPE_CONFIG", str(path))
    settings = load_settings()
    assert (settings.language, settings.llm.backend) == ("zh", "none")
    monkeypatch.setenv("MEMSCOPE_CONFIG", str(FIXTURES / "bad_choice.yaml"))
    assert len(check_config()) == 1
    monkeypatch.setenv("MEMSCOPE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="named by MEMSCOPE_CONFIG"):
        load_settings()


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "# nothing here\n")) == Settings()


@pytest.mark.parametrize("with_env", [False, True])
def test_defaults_equal_configs_default_yaml(with_env: bool, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    if with_env:
        monkeypatch.setenv("MEMSCOPE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("MEMSCOPE_ES_URL", "https://es.internal:9200")
        monkeypatch.setenv("MEMSCOPE_REDIS_URL", "redis://redis.internal:6379/3")
    else:
        monkeypatch.delenv("MEMSCOPE_HOME", raising=False)
    from_file = load_settings("configs/default.yaml")
    assert from_file == load_settings(None) == Settings()
    if with_env:
        assert from_file.store.path == tmp_path / "home" / "memscope.db"
        assert from_file.store.elasticsearch.url == "https://es.internal:9200"
        assert from_file.jobs.celery.result_backend == "redis://redis.internal:6379/3"


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, info in model.model_fields.items():
        keys.add(prefix + name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys |= _keys(info.annotation, f"{prefix}{name}.")
    return keys


def _yaml_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        keys.add(prefix + name)
        if isinstance(value, dict):
            keys |= _yaml_keys(value, f"{prefix}{name}.")
    return keys


def test_default_yaml_documents_every_key() -> None:
    raw = yaml.safe_load(DEFAULT_YAML.read_text(encoding="utf-8"))
    assert _yaml_keys(raw) == _keys(Settings)


def test_distributed_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(DISTRIBUTED_YAML)
    assert (settings.store.backend, settings.jobs.backend) == ("elasticsearch", "celery")
    assert (settings.embedding.backend, settings.llm.backend) == ("local", "auto")
    assert settings.store.elasticsearch.api_key is None
    monkeypatch.setenv("MEMSCOPE_ES_API_KEY", "es-key")
    assert load_settings(DISTRIBUTED_YAML).store.elasticsearch.api_key.get_secret_value() == "es-key"


def test_settings_to_dict_masks_secrets() -> None:
    settings = load_settings({
        "llm": {"api_key": "sk-secret"},
        "store": {"elasticsearch": {"username": "elastic", "password": "pw", "url": "https://u:pw@es:9200"}},
        "jobs": {"celery": {"broker_url": "redis://:hunter2@127.0.0.1:6379/0"}},
    })
    data = settings_to_dict(settings)
    assert data["llm"]["api_key"] == "***"
    assert data["store"]["elasticsearch"]["password"] == "***"
    assert data["store"]["elasticsearch"]["username"] == "elastic"
    assert data["store"]["elasticsearch"]["url"] == "https://u:***@es:9200"
    assert data["jobs"]["celery"]["broker_url"] == "redis://:***@127.0.0.1:6379/0"
    assert data["embedding"]["api_key"] is None
    assert data["jobs"]["sweep_interval_s"] == 10 and isinstance(data["jobs"]["sweep_interval_s"], int)
    assert settings_to_dict(settings, mask_secrets=False)["llm"]["api_key"] == "sk-secret"


def test_valid_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSCOPE_TEST_LLM_KEY", "sk-llm")
    settings = load_settings(FIXTURES / "valid_custom.yaml")
    assert settings.timezone == "Asia/Shanghai"
    assert settings.store.path == Path.home() / "memscope-test" / "memory.db"
    keys = (settings.llm.api_key, settings.embedding.api_key)
    assert [k.get_secret_value() for k in keys if k is not None] == ["sk-llm", "sk-embed-default"]
    assert settings.jobs.celery.broker_url == "redis://:hunter2@127.0.0.1:6379/1"
