"""The timeline page's files and addresses (podwatch.webui): only the page's own files are served,
each with its type, an ETag and the page's security headers; a view's URL carries its state."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from podwatch import webui

UI = Path(__file__).resolve().parents[2] / "functions" / "history" / "ui"


def test_the_shipped_page_is_html_js_and_css_with_etags_and_a_strict_policy() -> None:
    assets = webui.Assets(UI)
    assert assets.names() == ["app.css", "app.js", "index.html"]
    index = assets.get("index.html")
    assert index is not None
    assert index.headers()["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in index.headers()["Content-Security-Policy"]
    assert index.etag != assets.get("app.js").etag  # type: ignore[union-attr]
    assert b'src="ui/app.js"' in index.body  # relative: the page works under any prefix


def test_anything_else_is_not_served(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "secret.py").write_text("x = 1")
    assets = webui.Assets(tmp_path)
    assert assets.get("secret.py") is None
    assert assets.get("../app.py") is None
    assert assets.names() == ["index.html"]


def test_a_folder_without_its_page_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"index\.html"):
        webui.Assets(tmp_path)


def test_a_view_url_names_cluster_namespace_pod_and_the_hour_around_the_event() -> None:
    url = webui.view_url(
        "https://abc.execute-api.eu-west-1.amazonaws.com/",
        namespace="payments",
        pod="payments-api-1",
        cluster="prod eu",
        around=datetime(2026, 11, 20, 9, 3, 4, 700_000, tzinfo=UTC),
    )
    parts = urlsplit(url)
    assert parts.path == "/"
    assert dict(parse_qsl(parts.fragment)) == {
        "c": "prod eu",
        "ns": "payments",
        "w": "range",
        "from": "2026-11-20T08:18:04",
        "to": "2026-11-20T09:18:04",
        "pod": "payments-api-1",
    }
    assert webui.view_url("http://127.0.0.1:1", namespace="shop") == "http://127.0.0.1:1/#ns=shop"
