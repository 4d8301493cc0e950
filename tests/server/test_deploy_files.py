"""The image runs the server by default with a health check, and docker-compose has the server service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_the_image_serves_by_default_with_a_health_check():
    text = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["memscope", "serve", "--host", "0.0.0.0", "--port", "8420"]' in text
    assert "HEALTHCHECK" in text and "/healthz" in text and "EXPOSE 8420" in text


def test_compose_has_the_server_service_with_readiness_and_the_workers_keep_their_commands():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    server = services["server"]
    assert server["command"][:2] == ["memscope", "serve"] and "/readyz" in " ".join(server["healthcheck"]["test"])
    assert server["ports"] == ["127.0.0.1:8420:8420"]
    assert "MEMSCOPE_API_KEYS" in server["environment"]
    assert services["worker"]["command"][:2] == ["memscope", "worker"]
    assert services["beat"]["command"][:2] == ["memscope", "beat"]
