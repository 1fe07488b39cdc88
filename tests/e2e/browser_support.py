"""Harness of the browser-console tests: the whole mesh behind Envoy serving the
console, headless Debian Chromium through Playwright, and a recorder that checks
every REST request the page makes against its proto request message (the gateway
refuses unknown fields, so a page that sends one is broken).

`SWITCHBOARD_CONSOLE_DIR=/some/copy` serves another copy of gateway/web (e.g. the
page before a fix) to show that a test fails on it."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from switchboard.activity.v1 import activity_service_pb2  # noqa: F401  (registers the types)
from switchboard.chat.v1 import chat_service_pb2  # noqa: F401
from switchboard.order.v1 import order_service_pb2  # noqa: F401
from switchboard.registration.v1 import registration_service_pb2  # noqa: F401
from switchboard.session.v1 import session_service_pb2  # noqa: F401

from mesh import gateway as gateway_module
from mesh.gateway import GatewaySettings
from mesh.openapi import RpcMethod, rest_methods
from mesh.topology import SERVICES
from tests.e2e.gateway_harness import Gateway, start_gateway, start_services
from tests.support.processes import ROOT, EmbeddedMongo

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / ".data" / "artifacts" / "browser"
# Generous: the tests share two cores with whole meshes of other test modules.
UI_TIMEOUT_MS = 30_000


def chromium_available() -> bool:
    return Path(CHROMIUM).exists()


@contextmanager
def console_gateway(mongo: EmbeddedMongo, keys: Path, tmp: Path) -> Iterator[Gateway]:
    """All six services and an Envoy with dev tokens, serving gateway/web (or the
    copy named by SWITCHBOARD_CONSOLE_DIR)."""
    services = start_services([s.name for s in SERVICES], mongo, keys, tmp / "logs")
    web = os.environ.get("SWITCHBOARD_CONSOLE_DIR")
    with pytest.MonkeyPatch.context() as patch:
        if web:
            patch.setattr(gateway_module, "WEB_DIR", Path(web))
        gateway = start_gateway(tmp, keys, services, GatewaySettings(dev_tokens=True))
    try:
        yield gateway
    finally:
        gateway.stop()


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot under .data/artifacts/browser/ (to look at what a person sees)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# ---- the contract of every request the page sends ------------------------------


def _route_pattern(method: RpcMethod) -> re.Pattern[str]:
    # `{room_id}` matches one path segment up to a custom verb (`:join`).
    parts = re.split(r"(\{[^}]+\})", method.http_path)
    regex = "".join("[^/:]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(f"^{regex}$")


_ROUTES = [(m.http_verb.upper(), _route_pattern(m), m) for m in rest_methods()]


def _request_class(full_name: str) -> type[Message]:
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def contract_violations(verb: str, url: str, body: str | None) -> list[str]:
    """What in one request is not in its RPC's request message: an unknown route, an
    unknown body field (strict proto3 JSON parse), an unknown query parameter."""
    parts = urlsplit(url)
    matches = [m for v, pattern, m in _ROUTES if v == verb and pattern.match(parts.path)]
    if not matches:
        return [f"{verb} {parts.path}: no REST route of the contract"]
    method = matches[0]
    cls = _request_class(method.input_type)
    problems = []
    if body:
        try:
            json_format.Parse(body, cls(), ignore_unknown_fields=False)
        except json_format.ParseError as error:
            problems.append(f"{method.name} body {body}: {error}")
    fields = cls.DESCRIPTOR.fields_by_name
    names = {f.json_name for f in fields.values()} | set(fields)
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if name not in names:
            problems.append(f"{method.name}: unknown query parameter {name!r}")
    return problems


@dataclass
class RequestLog:
    """Every /v1/ request of the pages a test opened, with the contract's verdict."""

    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def record(self, request: Request) -> None:
        path = urlsplit(request.url).path
        if not path.startswith("/v1/"):
            return
        self.requests.append((request.method, path, request.post_data))
        self.violations += contract_violations(request.method, request.url, request.post_data)

    def bodies(self, verb: str, path_pattern: str) -> list[dict[str, object]]:
        return [
            json.loads(body or "{}")
            for v, path, body in self.requests
            if v == verb and re.fullmatch(path_pattern, path)
        ]


class People:
    """Browser contexts (own storage, own streams) signed in as dev users; closed after the test."""

    def __init__(self, browser: Browser, gateway: Gateway) -> None:
        self.browser = browser
        self.gateway = gateway
        self.log = RequestLog()
        self.contexts: list[BrowserContext] = []

    def page(self) -> Page:
        context = self.browser.new_context()
        context.on("request", self.log.record)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(self.gateway.url + "/")
        return page

    def signed_in(self, user: str) -> Page:
        page = self.page()
        page.click(f"#dev-users button[data-user='{user}']")
        expect(page.get_by_test_id("whoami")).to_contain_text(user)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
