"""What a person sees in the browser console (headless Chromium against the real
gateway and services): what is visible signed out and per role, percentages and
amounts in their units, a pause warning that stays until the session changes, and
lists and banners that follow every action and every watch stream. Every request
the page sends must parse strictly into its proto request message."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.browser_support import (
    People,
    chromium,
    chromium_available,
    console_gateway,
    shot,
)
from tests.e2e.gateway_harness import Gateway
from tests.support.processes import EmbeddedMongo

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Locator, Page, expect

if not chromium_available():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

# Elements carrying `hidden` that a stylesheet rule shows anyway.
HIDDEN_BUT_SHOWN = """() => [...document.querySelectorAll('[hidden]')]
  .filter((e) => getComputedStyle(e).display !== 'none').map((e) => e.id || e.tagName)"""
FORMS = (
    "#room-form",
    "#join-form",
    "#message-form",
    "#session-form",
    "#recharge-form",
    "#job-form",
    "#order-form",
)
SLOW_MS = 30_000


@pytest.fixture(scope="module")
def gateway(mongo: EmbeddedMongo, keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with console_gateway(mongo, keys, tmp_path_factory.mktemp("browser-see")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def people(browser: Browser, gateway: Gateway) -> Iterator[People]:
    crowd = People(browser, gateway)
    yield crowd
    crowd.close()
    assert not crowd.log.violations, "the page sent what the contract does not have:\n" + "\n".join(
        crowd.log.violations
    )


def _stays_visible(locator: Locator, page: Page, seconds: float, also: Locator | None = None) -> None:
    """`locator` is visible at every look for `seconds` (a person needs time to read it)."""
    for _ in range(int(seconds * 4)):
        assert locator.is_visible(), "it vanished while a person was still reading it"
        if also is not None:
            expect(also).to_have_text("active", timeout=1)
        page.wait_for_timeout(250)


def _create_room(page: Page, name: str) -> str:
    page.fill("#room-name", name)
    page.click("#room-form button")
    expect(page.locator("#room-title")).to_have_text(name)
    room_id = page.get_by_test_id("room-id").inner_text()
    assert room_id
    return room_id


def _join(page: Page, room_id: str) -> None:
    page.fill("#join-id", room_id)
    page.click("#join-form button")
    expect(page.get_by_test_id("room-id")).to_have_text(room_id)


def _send(page: Page, body: str) -> None:
    page.fill("#message-body", body)
    page.click("#message-form button")
    expect(page.get_by_test_id("messages")).to_contain_text(body)


def _start_session(page: Page, seconds: int) -> str:
    page.fill("#session-advisor", "bob")
    page.fill("#session-seconds", str(seconds))
    page.click("#session-form button")
    expect(page.get_by_test_id("session-state")).to_have_text("active")
    session_id = page.get_by_test_id("session-id").inner_text()
    assert session_id
    return session_id


def _created_id(page: Page, path: str, click: str, resource: str) -> str:
    """Clicks `click` and returns the id of the `resource` its POST `path` created."""
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith(path)) as answer:
        page.click(click)
    created: str = answer.value.json()[resource]["id"]
    return created


def _submit_job(page: Page, definition: str, parameters: str) -> Locator:
    page.select_option("#job-definition", definition)
    page.fill("#job-parameters", parameters)
    job_id = _created_id(page, "/v1/jobs", "#job-form button", "job")
    job = page.locator(f"#job-list li[data-job-id='{job_id}']")
    expect(job).to_be_visible()
    return job


def _place_order(page: Page, sku: str, quantity: int, price: str) -> Locator:
    page.fill("#order-sku", sku)
    page.fill("#order-quantity", str(quantity))
    page.fill("#order-price", price)
    order_id = _created_id(page, "/v1/orders", "#order-form button", "order")
    return page.locator(f"#order-list li[data-order-id='{order_id}']")


# ---- visibility ------------------------------------------------------------------


def test_signed_out_person_sees_only_the_sign_in(people: People) -> None:
    page = people.page()
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    expect(page.get_by_test_id("console")).to_be_hidden()
    assert page.eval_on_selector("#console", "e => getComputedStyle(e).display") == "none"
    for form in FORMS:
        expect(page.locator(form)).to_be_hidden()
    expect(page.locator("#sign-out")).to_be_hidden()
    expect(page.get_by_test_id("error")).to_be_hidden()
    assert page.evaluate(HIDDEN_BUT_SHOWN) == []
    shot(page, "see-01-signed-out")


@pytest.mark.parametrize(
    ("user", "shown", "not_shown"),
    [
        ("alice", ("#room-form", "#session-form", "#job-form", "#order-form"), ("#stats",)),
        ("bob", ("#room-form", "#job-form", "#sessions-refresh"), ("#session-form", "#orders", "#stats")),
        ("admin", ("#stats", "#orders", "#job-form"), ("#order-form", "#session-form")),
    ],
)
def test_each_role_sees_only_the_forms_its_rpcs_admit(
    people: People, user: str, shown: tuple[str, ...], not_shown: tuple[str, ...]
) -> None:
    page = people.signed_in(user)
    expect(page.get_by_test_id("sign-in")).to_be_hidden()
    for selector in shown:
        expect(page.locator(selector)).to_be_visible()
    for selector in not_shown:
        expect(page.locator(selector)).to_be_hidden()
    # Nothing opened yet: no room, no session view, no empty error banner.
    for selector in ("#room", "#session-view", "#error"):
        expect(page.locator(selector)).to_be_hidden()
    assert page.evaluate(HIDDEN_BUT_SHOWN) == []
    shot(page, f"see-02-signed-in-{user}")


# ---- units -----------------------------------------------------------------------


def test_finished_job_shows_100_percent_and_never_more(people: People) -> None:
    page = people.signed_in("alice")
    page.evaluate(
        """() => { window.jobTexts = [];
        const list = document.getElementById('job-list');
        new MutationObserver(() => window.jobTexts.push(list.innerText))
          .observe(list, { subtree: true, childList: true, characterData: true }); }"""
    )
    job = _submit_job(page, "sleep", '{"seconds": 1.5, "steps": 3}')
    expect(job).to_contain_text(re.compile("succeeded", re.IGNORECASE), timeout=SLOW_MS)
    expect(job).to_contain_text(re.compile(r"(?<!\d)100%"))
    shot(page, "see-03-job-100-percent")
    seen = " ".join(page.evaluate("() => window.jobTexts"))
    percents = [int(p) for p in re.findall(r"(\d+)%", seen)]
    assert percents and max(percents) <= 100, seen


def test_order_amounts_are_shown_in_major_units(people: People) -> None:
    page = people.signed_in("alice")
    expect(_place_order(page, "tea", 3, "1.25")).to_contain_text("3 x tea, 3.75 EUR, placed")


# ---- transient states stay until the state changes --------------------------------


def test_pause_warning_stays_visible_until_recharge(people: People) -> None:
    alice = people.signed_in("alice")
    bob = people.signed_in("bob")
    # The warning lead is 60 s by default: a 65 s session warns after about 5 s.
    session_id = _start_session(alice, 65)
    bob.click("#sessions-refresh")
    bob.click(f"#sessions li[data-session-id='{session_id}']")
    for page in (alice, bob):
        expect(page.get_by_test_id("session-warning")).to_be_visible(timeout=SLOW_MS)
    for page in (alice, bob):
        state = page.get_by_test_id("session-state")
        _stays_visible(page.get_by_test_id("session-warning"), page, 4, also=state)
    shot(alice, "see-04-warning-alice")
    shot(bob, "see-05-warning-bob")

    alice.fill("#recharge-seconds", "120")
    alice.get_by_test_id("recharge").click()
    for page in (alice, bob):
        expect(page.get_by_test_id("session-warning")).to_be_hidden()
        expect(page.get_by_test_id("session-state")).to_have_text("active")
    alice.get_by_test_id("session-end").click()
    for page in (alice, bob):
        expect(page.get_by_test_id("session-state")).to_have_text("ended")
        expect(page.locator("#recharge-form")).to_be_hidden()
        expect(page.get_by_test_id("session-end")).to_be_hidden()


def test_error_banner_stays_until_the_next_action_succeeds(people: People) -> None:
    page = people.signed_in("alice")
    page.fill("#join-id", "no-such-room")
    page.click("#join-form button")
    banner = page.get_by_test_id("error")
    expect(banner).to_be_visible()
    _stays_visible(banner, page, 2)
    shot(page, "see-06-error-banner")
    _create_room(page, "after-an-error")
    expect(banner).to_be_hidden()


# ---- lists follow every action and every watch stream --------------------------------


def test_session_lists_follow_start_and_end_for_both_participants(people: People) -> None:
    bob = people.signed_in("bob")
    alice = people.signed_in("alice")
    session_id = _start_session(alice, 300)
    mine = f"#sessions li[data-session-id='{session_id}']"
    expect(alice.locator(mine)).to_contain_text("active")
    # Bob did nothing: the session's room arriving on his chat stream refreshes his list.
    expect(bob.locator(mine)).to_contain_text("active", timeout=SLOW_MS)
    shot(bob, "see-07-bob-sessions")
    alice.get_by_test_id("session-end").click()
    expect(alice.locator(mine)).to_contain_text("ended")
    expect(bob.locator(mine)).to_contain_text("ended", timeout=SLOW_MS)


def test_order_list_shows_placed_then_cancelled_and_survives_reload(people: People) -> None:
    page = people.signed_in("alice")
    item = _place_order(page, "coffee", 2, "2.50")
    expect(item).to_contain_text("2 x coffee, 5.00 EUR, placed")
    order_id = item.get_attribute("data-order-id")
    # The newest order is on top, whenever the list read at sign-in came back.
    expect(page.locator("#order-list li").first).to_have_attribute("data-order-id", str(order_id))
    item.get_by_role("button", name="Cancel").click()
    expect(item).to_contain_text("cancelled")
    expect(item.get_by_role("button", name="Cancel")).to_be_hidden()
    shot(page, "see-08-order-cancelled")
    page.reload()
    expect(page.locator(f"#order-list li[data-order-id='{order_id}']")).to_contain_text("cancelled")


def test_job_list_follows_cancel_and_keeps_following_after_reload(people: People) -> None:
    page = people.signed_in("alice")
    long_job = _submit_job(page, "sleep", '{"seconds": 120, "steps": 120}')
    expect(long_job).to_contain_text("running", timeout=SLOW_MS)
    long_job.get_by_role("button", name="Cancel").click()
    expect(long_job).to_contain_text("cancelled", timeout=SLOW_MS)
    expect(long_job.get_by_role("button", name="Cancel")).to_be_hidden()

    short_job = _submit_job(page, "sleep", '{"seconds": 2, "steps": 2}')
    job_id = short_job.get_attribute("data-job-id")
    page.reload()
    # Listed at load while unfinished, then followed live: no action needed.
    reloaded = page.locator(f"#job-list li[data-job-id='{job_id}']")
    expect(reloaded).to_contain_text("succeeded", timeout=SLOW_MS)
    shot(page, "see-09-jobs")


def test_private_message_reaches_only_its_recipient_and_names_its_audience(people: People) -> None:
    alice = people.signed_in("alice")
    bob = people.signed_in("bob")
    carol = people.signed_in("carol")
    room_id = _create_room(alice, "three of us")
    _join(bob, room_id)
    _join(carol, room_id)
    alice.focus("#message-audience")  # the members changed since alice opened the room
    expect(alice.locator("#message-audience option[value='bob']")).to_have_count(1)
    alice.select_option("#message-audience", "bob")
    _send(alice, "psst bob")
    alice.select_option("#message-audience", "")
    _send(alice, "hello all")
    expect(bob.get_by_test_id("messages")).to_contain_text("alice → bob: psst bob")
    expect(bob.get_by_test_id("messages")).to_contain_text("alice: hello all")
    expect(carol.get_by_test_id("messages")).to_contain_text("alice: hello all")
    expect(carol.get_by_test_id("messages")).not_to_contain_text("psst")
    shot(bob, "see-10-private-bob")
    sent = people.log.bodies("POST", r"/v1/rooms/[^/]+/messages")
    assert [b.get("audience") for b in sent] == [
        {"kind": "AUDIENCE_KIND_MEMBER", "recipientIds": ["bob"]},
        {"kind": "AUDIENCE_KIND_ROOM"},
    ]


def test_room_list_follows_new_messages_and_leaving(people: People) -> None:
    alice = people.signed_in("alice")
    bob = people.signed_in("bob")
    quiet = _create_room(alice, "quiet room")
    busy = _create_room(alice, "busy room")
    _join(bob, quiet)
    _join(bob, busy)
    alice.click(f"#rooms li[data-room-id='{quiet}']")
    expect(alice.get_by_test_id("room-id")).to_have_text(quiet)
    _send(bob, "news in the busy room")
    expect(alice.locator(f"#rooms li[data-room-id='{busy}']")).to_contain_text("1 new")
    shot(alice, "see-11-unread")

    alice.get_by_test_id("room-leave").click()
    expect(alice.locator(f"#rooms li[data-room-id='{quiet}']")).to_have_count(0)
    expect(alice.get_by_test_id("room")).to_be_hidden()
    # The stream still works after leaving (no position for a room alice is not in).
    _send(bob, "more news")
    expect(alice.locator(f"#rooms li[data-room-id='{busy}']")).to_contain_text("2 new")
    alice.click(f"#rooms li[data-room-id='{busy}']")
    expect(alice.get_by_test_id("messages")).to_contain_text("bob: more news")
    expect(alice.get_by_test_id("error")).to_be_hidden()


def test_many_unfinished_jobs_keep_the_page_responsive_and_followed(people: People) -> None:
    page = people.signed_in("alice")
    jobs = [_submit_job(page, "sleep", '{"seconds": 120, "steps": 120}') for _ in range(5)]
    # Each open stream holds one of the browser's six connections: requests still pass.
    expect(_place_order(page, "water", 1, "0.50")).to_contain_text("1 x water, 0.50 EUR, placed")
    for job in jobs:
        job.get_by_role("button", name="Cancel").click()
    for job in jobs:
        expect(job).to_contain_text("cancelled", timeout=SLOW_MS)
    expect(page.get_by_test_id("error")).to_be_hidden()


def test_statistics_show_each_currency_in_its_own_minor_unit(
    people: People, gateway: Gateway, token: Callable[..., str]
) -> None:
    admin = people.signed_in("admin")
    expect(admin.get_by_test_id("stats")).to_contain_text("placed")
    # Yen have no minor unit (ISO 4217 exponent 0): 1500 minor units are 1500 JPY.
    yen = {"currencyCode": "JPY", "amountMinor": "1500"}
    order = {"idempotencyKey": "yen-order", "lines": [{"sku": "sushi", "quantity": "1", "unitPrice": yen}]}
    body = json.dumps(order).encode()
    placed = gateway.request("POST", "/v1/orders", token=token("dave", "customer"), body=body)
    assert placed.status == 200, placed.body
    expect(admin.get_by_test_id("stats")).to_contain_text("1500 JPY", timeout=SLOW_MS)
    shot(admin, "see-12-stats-yen")
