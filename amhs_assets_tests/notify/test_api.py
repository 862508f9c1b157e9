"""The API with webhooks that are down: the real app over the session's tiny champion (no
training of its own when the integration tests ran first), configured by a settings file."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from amhs_assets.serve.app import create_app
from amhs_assets.serve.config import ServeSettings
from amhs_assets_tests.notify.receiver import silent_receiver
from amhs_assets_tests.support import free_port, rows, tiny_champion

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def predict_while_stuck(app, requests: int) -> tuple[float, str]:
    """With the app's lifespan running: the model loaded, the delivery thread stuck on a
    message, `requests` predictions; the slowest one's seconds and /metrics afterwards."""
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://api") as client:
        deadline = time.monotonic() + 60
        while (await client.get("/health")).status_code != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        notifier = app.state.notifier
        notifier.sender.send("critical", {"kind": "critical", "event": "entered"})
        slowest = 0.0
        for _ in range(requests):
            started = time.perf_counter()
            answer = await client.post("/v1/predict", json={"rows": list(rows())})
            slowest = max(slowest, time.perf_counter() - started)
            assert answer.status_code == 200, answer.text
        assert notifier.wait_idle()
        assert set(notifier.episodes.lines) == {"A", "B"}  # every answer was tracked, on disk
        deadline = time.monotonic() + 10
        while notifier.sender.count("critical", "failed") < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return slowest, (await client.get("/metrics")).text


def test_predictions_stay_fast_while_every_webhook_is_down_or_hangs(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/hook"
    with silent_receiver() as hanging:
        settings_file = tmp_path / "settings.yaml"
        settings_file.write_text(f"notify:\n  critical_webhooks: [{hanging}, {closed}]\n"
                                 "  timeout_s: 2\n  attempts: 1\n  clear_after: 1\n")
        settings = ServeSettings.from_env({
            "AMHS_DATA_DIR": str(tmp_path / "data"), "AMHS_SETTINGS": str(settings_file),
            "MLFLOW_TRACKING_URI": tiny_champion().uri, "AMHS_RELOAD_INTERVAL_S": "0",
            "AMHS_LOG_PREDICTIONS": "0"})
        assert settings.notify.critical_webhooks == (hanging, closed)
        slowest, metrics = asyncio.run(predict_while_stuck(create_app(settings), 10))
    assert slowest < 1.0, slowest  # far from the 2 s the hanging receiver holds the sender
    assert (tmp_path / "data" / "notify" / "critical_episodes.sqlite").is_file()
    assert 'amhs_notifications_total{kind="critical",result="failed"}' in metrics
