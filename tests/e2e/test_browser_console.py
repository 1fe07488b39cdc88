"""The browser console through the gateway, in headless Chromium (Debian's
`chromium`, driven by Playwright): sign in as a dev user, two users chat from two
browser contexts, a 3-second paid session flips to "paused for recharge" for
both. Each step leaves a screenshot under .data/artifacts/browser/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser_support import UI_TIMEOUT_MS, chromium, chromium_available, console_gateway, shot
from tests.e2e.gateway_harness import Gateway
from tests.support.processes import EmbeddedMongo

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect

if not chromium_available():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def gateway(mongo: EmbeddedMongo, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with console_gateway(mongo, keys, tmp_path_factory.mktemp("browser")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def _signed_in(browser: Browser, gateway: Gateway, user: str) -> Page:
    """A fresh browser context (own storage) signed in as the dev user `user`."""
    page = browser.new_context().new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(gateway.url + "/")
    page.click(f"#dev-users button[data-user='{user}']")
    expect(page.get_by_test_id("whoami")).to_contain_text(user)
    return page


def _shot(page: Page, name: str) -> None:
    shot(page, name)


def _skip_if_unimplemented(page: Page, what: str) -> None:
    """Services are built in parallel: a stub answers UNIMPLEMENTED (HTTP 501)."""
    error = page.get_by_test_id("error")
    if error.is_visible() and "501" in error.inner_text():
        pytest.skip(f"{what} is not implemented yet: {error.inner_text()}")


def test_console_offers_dev_users_and_signs_in(browser: Browser, gateway: Gateway) -> None:
    page = browser.new_context().new_page()
    page.goto(gateway.url + "/")
    expect(page.locator("#dev-note")).to_be_visible()
    _shot(page, "01-sign-in")
    page.click("#dev-users button[data-user='alice']")
    expect(page.get_by_test_id("whoami")).to_have_text("alice (customer)")
    expect(page.get_by_test_id("chat")).to_be_visible()
    _shot(page, "02-signed-in-alice")


def test_two_users_chat_live_from_two_browser_contexts(browser: Browser, gateway: Gateway) -> None:
    alice = _signed_in(browser, gateway, "alice")
    bob = _signed_in(browser, gateway, "bob")
    alice.fill("#room-name", "gateway-e2e")
    alice.click("#room-form button")
    alice.wait_for_timeout(500)
    _skip_if_unimplemented(alice, "CreateRoom")
    room_id = alice.get_by_test_id("room-id").inner_text()
    assert room_id
    bob.fill("#join-id", room_id)
    bob.click("#join-form button")
    expect(bob.get_by_test_id("room-id")).to_have_text(room_id)
    _shot(bob, "03-bob-joined")

    alice.fill("#message-body", "hello bob")
    alice.click("#message-form button")
    expect(bob.get_by_test_id("messages")).to_contain_text("alice: hello bob")
    bob.fill("#message-body", "hi alice")
    bob.click("#message-form button")
    expect(alice.get_by_test_id("messages")).to_contain_text("bob: hi alice")
    _shot(alice, "04-alice-chat")
    _shot(bob, "05-bob-chat")


def test_three_second_session_flips_to_paused_for_both(browser: Browser, gateway: Gateway) -> None:
    alice = _signed_in(browser, gateway, "alice")
    bob = _signed_in(browser, gateway, "bob")
    alice.fill("#session-advisor", "bob")
    alice.fill("#session-seconds", "3")
    alice.click("#session-form button")
    alice.wait_for_timeout(500)
    _skip_if_unimplemented(alice, "StartSession")
    expect(alice.get_by_test_id("session-state")).to_have_text("active")
    session_id = alice.get_by_test_id("session-id").inner_text()
    _shot(alice, "06-session-active")

    bob.click("#sessions-refresh")
    bob.click(f"#sessions li[data-session-id='{session_id}']")
    for page, who in ((alice, "alice"), (bob, "bob")):
        expect(page.get_by_test_id("session-state")).to_have_text("paused for recharge", timeout=20_000)
        _shot(page, f"07-session-paused-{who}")

    alice.fill("#recharge-seconds", "30")
    alice.get_by_test_id("recharge").click()
    for page in (alice, bob):
        expect(page.get_by_test_id("session-state")).to_have_text("active")
    _shot(bob, "08-session-recharged-bob")
