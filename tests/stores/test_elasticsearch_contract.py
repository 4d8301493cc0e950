"""The Store contract suite against a real Elasticsearch server named by MEMSCOPE_ES_URL.

    bash scripts/elasticsearch.sh start
    MEMSCOPE_ES_URL=http://127.0.0.1:9200 python -m pytest tests/stores/test_elasticsearch_contract.py

Without a server these tests skip locally and fail in CI (tests/support/services.py).

Optional: MEMSCOPE_ES_API_KEY, or MEMSCOPE_ES_USERNAME and MEMSCOPE_ES_PASSWORD; a server not on
this machine must also be listed in MEMSCOPE_TEST_ALLOWED_HOSTS (the test network guard). Each test
gets its own index prefix `memscope-test-{uuid}`, deleted with its templates afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from memscope.stores.elasticsearch import ElasticsearchStore
from memscope.stores.testing import StoreContractSuite
from tests.support.es import es_url, fresh_prefix

pytestmark = pytest.mark.integration


class TestElasticsearchStore(StoreContractSuite):
    """Every contract test, each on fresh indices of a unique prefix."""

    @pytest.fixture
    def store(self) -> Iterator[ElasticsearchStore]:
        es_store = ElasticsearchStore(
            es_url(),
            index_prefix=fresh_prefix(),
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
