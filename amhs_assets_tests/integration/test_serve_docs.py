"""/docs of a real `amhs serve` process in a headless browser (Playwright driving the system
chromium): Swagger UI renders FastAPI's OpenAPI 3.1 from files the API serves itself."""

from __future__ import annotations

import httpx
import pytest

from amhs_assets_tests.support import serving, tiny_champion

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ESSENTIAL = {("POST", "/v1/predict"), ("GET", "/v1/model"), ("GET", "/health"),
             ("GET", "/ready"), ("POST", "/v1/reload"), ("GET", "/metrics")}


def test_docs_render_every_operation_offline_without_errors(browser, tmp_path):
    with serving(tmp_path, tiny_champion().uri) as server:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        errors: list[str] = []
        elsewhere: list[str] = []  # requests to anything but the API: none may be needed
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        page.on("request", lambda r: None if r.url.startswith(server.url)
                or r.url.startswith("data:") else elsewhere.append(r.url))
        page.goto(f"{server.url}/docs", wait_until="load", timeout=60_000)
        page.wait_for_selector(".opblock, .errors-wrapper", timeout=30_000)  # drawn, or not
        seen = page.evaluate("""() => ({
            operations: Array.from(document.querySelectorAll('.opblock-summary')).map(o => [
                o.querySelector('.opblock-summary-method').textContent.trim(),
                o.querySelector('.opblock-summary-path').getAttribute('data-path')]),
            stamps: Array.from(document.querySelectorAll('.info pre.version')).map(
                v => v.textContent.trim()),
            invalid: document.body.innerText.includes('Unable to render this definition')})""")
        page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        page.close()
        schema = httpx.get(f"{server.url}/openapi.json").json()
    assert not seen["invalid"]
    drawn = {(method, path) for method, path in seen["operations"]}
    assert drawn == {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert ESSENTIAL <= drawn
    assert "OAS 3.1" in seen["stamps"]  # the OpenAPI version Swagger UI read
    assert errors == [] and elsewhere == []
