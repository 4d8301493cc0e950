"""The Store contract suite against a real Elasticsearch server named by MEMSCOPE_ES_URL.

    MEMSCOPE_ES_URL=http://127.0.0.1:9200 python -m pytest tests/stores/test_elasticsearch_contract.py

Optional: MEMSCOPE_ES_API_KEY, or MEMSCOPE_ES_USERNAME and MEMSCOPE_ES_PASSWORD; a server not on
this machine must also be listed in MEMSCOPE_TEST_ALLOWED_HOSTS (the test network guard). Each test
gets its own index prefix `memscope-test-{uuid}`, deleted with its templates afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ES_URL = os.environ.get("MEMSCOPE_ES_URL", "")
if not ES_URL:
    pytest.skip("MEMSCOPE_ES_URL is not set: no Elasticsearch server to test against", allow_module_level=True)

from memscope.stores.elasticsearch import ElasticsearchStore  # noqa: E402
from memscope.stores.testing import StoreContractSuite  # noqa: E402

pytestmark = pytest.mark.integration


class TestElasticsearchStore(StoreContractSuite):
    """Every contract test, each on fresh indices of a unique prefix."""

    @pytest.fixture
    def store(self) -> Iterator[ElasticsearchStore]:
        es_store = ElasticsearchStore(
            ES_URL,
            index_prefix=f"memscope-test-{uuid.uuid4().hex[:12]}",
            api_key=os.environ.get("MEMSCOPE_ES_API_KEY") or None,
            username=os.environ.get("MEMSCOPE_ES_USERNAME") or None,
            password=os.environ.get("MEMSCOPE_ES_PASSWORD") or None,
            request_timeout_s=30.0,
            refresh="true",
        )
        try:
            yield es_store
        finally:
            es_store.delete_indices()
            es_store.close()
