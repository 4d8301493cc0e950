"""Nothing printed carries a credential: URLs are masked, echoed keys scrubbed, settings keep SecretStr."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from memscope.api import MemoryScope
from memscope.config import check_config, load_settings
from memscope.errors import JobError, ModelError, StoreError
from memscope.llm.dashscope_backend import DashScopeChat
from memscope.llm.openai_backend import OpenAIChat
from memscope.redact import mask_url, scrub
from memscope.runtime import open_store
from tests.support.scripted_server import Fault, ScriptedServer

pytestmark = pytest.mark.integration

KEY = "sk-live-7f3a9c1d2e"
URL_PASSWORD = "urlpass-91b2"


def with_password(url: str) -> str:
    return url.replace("http://", f"http://bob:{URL_PASSWORD}@")


def assert_clean(text: str) -> None:
    assert KEY not in text and URL_PASSWORD not in text, text


def test_mask_url_hides_passwords_and_bare_tokens() -> None:
    assert mask_url("see http://u:pw@h:1/v1 and redis://:p@r/0") == "see http://u:***@h:1/v1 and redis://:***@r/0"
    assert mask_url("https://token123@github.com/x") == "https://***@github.com/x"
    assert mask_url("http://127.0.0.1:9200/") == "http://127.0.0.1:9200/"


@pytest.mark.parametrize("backend", ["openai", "dashscope"])
def test_model_errors_mask_the_base_url_and_scrub_an_echoed_key(model_server: ScriptedServer, backend: str) -> None:
    cls: Any = OpenAIChat if backend == "openai" else DashScopeChat
    base = model_server.openai_base_url if backend == "openai" else model_server.dashscope_base_url
    llm = cls("m", KEY, base_url=with_password(base), max_retries=0)
    model_server.script("t", Fault.status(401, message=f"Incorrect API key provided: {KEY}"))
    with pytest.raises(ModelError) as info:
        llm.chat([{"role": "user", "content": "hi"}], tag="t")
    assert_clean(str(info.value))
    assert "***" in str(info.value)


def test_failed_job_record_stats_and_log_carry_no_secret(
    model_server: ScriptedServer, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    model_server.default(None, Fault.status(400, message=f"bad request for key {KEY}"))
    settings = {
        "store": {"path": str(tmp_path / "m.db")},
        "llm": {"backend": "openai", "model": "m", "api_key": KEY,
                "base_url": with_password(model_server.openai_base_url)},
        "embedding": {"backend": "openai", "model": "e", "dim": 64, "api_key": KEY,
                      "base_url": model_server.openai_base_url},
    }  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="memscope.jobs"), MemoryScope(settings, background=False) as memory:
        memory.add_messages("u1", "I moved to Lyon last year.")
        with pytest.raises(JobError) as info:
            memory.consolidate("u1", wait=True, timeout=30)
        assert_clean(str(info.value))
        assert_clean(repr(memory.stats("u1")["failed_jobs"]))
        assert_clean(repr(memory.jobs.status("u1")))
        assert "bad request for key ***" in str(info.value)
    assert caplog.records, "the failure is logged"
    for handler_text in (caplog.text, *(r.exc_text or "" for r in caplog.records)):
        assert_clean(handler_text)


def test_elasticsearch_errors_mask_the_url(tmp_path: Any) -> None:
    pytest.importorskip("elasticsearch")
    settings = load_settings(
        {"store": {"backend": "elasticsearch", "elasticsearch": {"url": "http://elastic:urlpass-91b2@127.0.0.1:9/",
                                                                  "request_timeout_s": 1}}}
    )  # fmt: skip
    store = open_store(settings)
    with pytest.raises(StoreError) as info:
        store.users_with_pending()
    assert_clean(str(info.value))
    assert "elastic:***@127.0.0.1:9" in str(info.value)


def test_settings_keep_keys_secret_in_repr_and_config_errors() -> None:
    settings = load_settings(
        {"llm": {"backend": "openai", "api_key": KEY, "base_url": with_password("http://h/v1")},
         "store": {"elasticsearch": {"username": "bob", "password": KEY}}}
    )  # fmt: skip
    assert_clean(repr(settings))
    assert settings.llm.api_key is not None and settings.llm.api_key.get_secret_value() == KEY
    problems = check_config({"llm": {"api_key": [KEY]}, "store": {"elasticsearch": {"url": f"bob:{KEY}@h"}}})
    assert len(problems) == 2
    assert_clean("\n".join(problems))
    assert "llm.api_key" in problems[0] or "llm.api_key" in problems[1]


def test_scrub_hides_remembered_secrets() -> None:
    OpenAIChat("m", KEY, base_url="http://127.0.0.1:9/v1")
    assert scrub(f"server said: key {KEY} is wrong") == "server said: key *** is wrong"


def test_celery_task_failure_logs_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    import memscope.jobs.celery_app  # noqa: F401  (installs the filters)

    OpenAIChat("m", KEY, base_url="http://127.0.0.1:9/v1")
    try:
        raise RuntimeError(f"server echoed {KEY}")
    except RuntimeError:
        with caplog.at_level(logging.ERROR, logger="celery.app.trace"):
            logging.getLogger("celery.app.trace").exception("Task %s raised: %s", "t1", f"key {KEY}")
    (record,) = caplog.records
    assert_clean(record.getMessage())
    assert_clean(record.exc_text or "")
    assert "server echoed ***" in (record.exc_text or "")


def test_elasticsearch_store_repr_masks_the_url() -> None:
    pytest.importorskip("elasticsearch")
    settings = load_settings({"store": {"backend": "elasticsearch",
                                        "elasticsearch": {"url": f"http://elastic:{URL_PASSWORD}@127.0.0.1:9/"}}})
    store = open_store(settings)
    assert_clean(repr(store))
    assert "elastic:***@" in repr(store)
