"""The dashboard in a real browser: Debian's headless Chromium, driven by selenium through
chromium-driver, against a runtime with one demo-like run. Screenshots of each page are
kept under .troupe/test-artifacts/dashboard/ (ignored by git)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.polling import wait_until
from troupe.client.broker import post_event
from troupe.client.eventlog import read_events
from troupe.events import TRAINING_FAILED, make_event
from troupe.local.controlplane.kinds import SERVICE, TRIGGER

from .conftest import MODEL, REPO, RUN_STEPS, DemoRuntime

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]
ARTIFACTS = REPO / ".troupe" / "test-artifacts" / "dashboard"
WAIT_S = 60


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    # Checked before the runtime starts: a browser that cannot run skips at once.
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip("headless Chromium is not installed: `make test` installs Debian's "
                    "chromium and chromium-driver where apt-get can (as root)")
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium drives the browser: pip install -e '.[test]'")
    demo_runtime: DemoRuntime = request.getfixturevalue("demo_runtime")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(demo_runtime.runtime.dashboard_url)  # sets the token's cookie
        yield driver
    finally:
        driver.quit()


def base_of(demo_runtime: DemoRuntime) -> str:
    return demo_runtime.runtime.dashboard_url.split("/login")[0]


def show(driver: Any, url: str, ready: str) -> list[Any]:
    """Open `url`, wait for the element `ready` selects, and return those elements."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    return WebDriverWait(driver, WAIT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ready), f"{ready} on {url}")


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_every_page_loads_with_no_console_errors(browser: Any,
                                                 demo_runtime: DemoRuntime) -> None:
    base = base_of(demo_runtime)
    pages = {"graph": "#choreography g[data-function]", "runs": "#runs tr[data-runid]",
             f"runs/{demo_runtime.runid}": "#waterfall g.span",
             "models": f"table.versions[data-model='{MODEL}']",
             "dead-letters": "#dead-letters tr[data-key]"}
    for fragment, ready in pages.items():
        show(browser, f"{base}/#/{fragment}", ready)
        browser.save_screenshot(str(ARTIFACTS / f"{fragment.split('/')[0]}.png"))
        assert console_errors(browser) == [], fragment
    assert (ARTIFACTS / "graph.png").stat().st_size > 0


def test_the_graph_shows_every_function_and_trigger(browser: Any,
                                                    demo_runtime: DemoRuntime) -> None:
    objects = demo_runtime.runtime.objects
    functions = [s["metadata"]["name"] for s in objects.list(SERVICE)]
    triggers = [t["metadata"]["name"] for t in objects.list(TRIGGER)]
    assert len(functions) >= 8 and len(triggers) >= 9
    show(browser, f"{base_of(demo_runtime)}/#/graph", "#choreography")
    for name in functions:
        show(browser, f"{base_of(demo_runtime)}/#/graph",
             f"#choreography g.function[data-function='{name}']")
    for name in triggers:
        (label,) = show(browser, f"{base_of(demo_runtime)}/#/graph",
                        f"#choreography g.trigger[data-trigger='{name}']")
        assert "not-ready" not in (label.get_attribute("class") or "")
    # data-rejected goes to subscribers only: no Trigger here delivers it.
    show(browser, f"{base_of(demo_runtime)}/#/graph",
         "#choreography g.type.unconsumed[data-type='dev.troupe.data.rejected']")
    assert not browser.find_elements(
        "css selector", "#choreography g.type.unconsumed[data-type='dev.troupe.data.arrived']")


def test_a_new_event_appears_on_the_runs_page_without_a_reload(
    browser: Any, demo_runtime: DemoRuntime,
) -> None:
    show(browser, f"{base_of(demo_runtime)}/#/runs", "#runs tr[data-runid]")
    browser.execute_script("window.stayed = true")  # gone if the page were loaded again
    event = make_event(TRAINING_FAILED, {"reason": "a test's own", "model": MODEL},
                       source="/tests/dashboard")

    post_event(demo_runtime.broker_url, event)

    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_elements("css selector", f"#runs tr[data-runid='{event.get_id()}']"),
        "the new run on the runs page")
    assert browser.execute_script("return window.stayed") is True


def test_a_runs_waterfall_shows_its_hops_in_order(browser: Any,
                                                  demo_runtime: DemoRuntime) -> None:
    url = f"{base_of(demo_runtime)}/#/runs/{demo_runtime.runid}"
    rows = show(browser, url, "#hops tr[data-hop]")
    assert [row.find_elements("css selector", "td")[2].text for row in rows] == list(RUN_STEPS)
    handlers = browser.find_elements("css selector", "#waterfall g.span[data-role='handler']")
    assert [g.get_attribute("data-service") for g in handlers] == list(RUN_STEPS)

    rows[0].click()  # the event's data, a click away
    detail = browser.find_element("css selector", "#detail")
    wait_until(lambda: demo_runtime.runid in detail.text, 10, "the first event's data")
    assert "incoming/dashboard.csv" in detail.text
    browser.save_screenshot(str(ARTIFACTS / "run.png"))


def test_leaving_a_live_page_cancels_the_refresh_it_had_scheduled(
    browser: Any, demo_runtime: DemoRuntime,
) -> None:
    """A run's page re-renders half a second after the last live update about the run.
    Leaving it for another page must cancel that refresh: it re-rendered the new page
    under the user's cursor, and a button found there went stale before its click."""
    base = base_of(demo_runtime)
    cookie = {"troupe_dashboard": browser.get_cookie("troupe_dashboard")["value"]}
    started = make_event(TRAINING_FAILED, {"reason": "a test's own", "model": MODEL},
                         source="/tests/dashboard")
    runid = started.get_id()  # a run of this test's own, apart from the demo's
    post_event(demo_runtime.broker_url, started)
    def run_has_its_event() -> bool:  # a run can exist by its spans before its event
        answer = requests.get(f"{base}/api/runs/{runid}", cookies=cookie, timeout=10)
        return answer.status_code == 200 and bool(answer.json()["events"])

    wait_until(run_has_its_event, WAIT_S, "the run's event")
    show(browser, f"{base}/#/runs/{runid}", "#events td")
    # A second listener on the page's stream says when updates about the run arrive.
    browser.execute_script(
        "const stream = new EventSource('/api/stream');"
        "stream.addEventListener('event', (m) => {"
        f"  if (JSON.parse(m.data).runid === '{runid}') window.nudged = true; }});")
    stop = threading.Event()

    def nudge() -> None:  # an update about the run every 0.1 s: a refresh stays pending
        while not stop.is_set():
            post_event(demo_runtime.broker_url, make_event(
                TRAINING_FAILED, {"reason": "a test's own", "model": MODEL},
                source="/tests/dashboard", extensions={"runid": runid}))
            stop.wait(0.1)

    nudging = threading.Thread(target=nudge, daemon=True)
    nudging.start()
    try:
        wait_until(lambda: browser.execute_script("return window.nudged === true"), WAIT_S,
                   "a live update about the run to reach the page")
        browser.execute_script("location.hash = '#/dead-letters'")
        wait_until(lambda: browser.find_elements("css selector", "#dead-letters button.replay"),
                   WAIT_S, "the dead-letters page")
    finally:
        stop.set()
        nudging.join(10)
    browser.execute_script(
        "document.querySelector('#dead-letters button.replay').dataset.found = 'yes';"
        "setTimeout(() => { window.waited = true; }, 1500);")  # three times the run's delay
    wait_until(lambda: browser.execute_script("return window.waited === true"), WAIT_S,
               "the page's own clock to pass the refresh it had scheduled")
    assert browser.execute_script(
        "return document.querySelector('#dead-letters button.replay[data-found]') !== null")


def test_a_page_whose_data_arrives_after_the_user_left_it_does_not_render(
    browser: Any, demo_runtime: DemoRuntime,
) -> None:
    """A view fetches its data, then renders. A run's page whose data came after the user
    had moved on to the dead letters rendered over them, and took their live updates."""
    base = base_of(demo_runtime)
    show(browser, f"{base}/#/graph", "#choreography")
    (run,) = show(browser, f"{base}/#/runs", "#runs tr[data-runid]")[:1]
    runid = run.get_attribute("data-runid")
    show(browser, f"{base}/#/graph", "#choreography")
    # The page's own fetch, holding back the run's data until the test lets it go.
    browser.execute_script("""
        const real = window.fetch;
        window.held = [];
        window.fetch = (path, options) => !String(path).startsWith('/api/runs/') ?
            real(path, options) : new Promise((resolve) => window.held.push(() =>
                real(path, options).then((r) => { window.released = true; resolve(r); })));
        location.hash = '#/runs/' + encodeURIComponent(arguments[0]);""", runid)
    wait_until(lambda: browser.execute_script("return window.held.length") == 1, WAIT_S,
               "the run's page to ask for its data")
    browser.execute_script("location.hash = '#/dead-letters'")
    wait_until(lambda: browser.find_elements("css selector", "#replay-result"), WAIT_S,
               "the dead-letters page")

    browser.execute_script("window.held.forEach((release) => release());"
                           "setTimeout(() => { window.waited = true; }, 1000);")
    wait_until(lambda: browser.execute_script(
        "return window.released === true && window.waited === true"), WAIT_S,
        "the run's data to arrive, and the page's clock to pass it")

    assert browser.find_elements("css selector", "#replay-result")
    assert not browser.find_elements("css selector", "#hops, #events")
    assert console_errors(browser) == []


def test_replay_from_the_dead_letters_page_and_a_post_without_csrf_is_refused(
    browser: Any, demo_runtime: DemoRuntime,
) -> None:
    base = base_of(demo_runtime)
    cookie = {"troupe_dashboard": browser.get_cookie("troupe_dashboard")["value"]}
    key, event_id = demo_runtime.dead_letter_key, demo_runtime.dead_letter_id
    before = copies_of(demo_runtime, event_id)

    refused = requests.post(f"{base}/api/dead-letters/replay", json={"key": key},
                            cookies=cookie, timeout=10)
    assert refused.status_code == 403
    assert "X-CSRF-Token" in refused.text

    (button,) = show(browser, f"{base}/#/dead-letters",
                     f"#dead-letters tr[data-key='{key}'] button.replay")
    button.click()
    result = browser.find_element("css selector", "#replay-result")
    wait_until(lambda: result.text.startswith("replayed"), WAIT_S, lambda: result.text)
    assert event_id in result.text
    # The broker took it: one more copy in the event log, and only one (the refused
    # POST sent nothing).
    wait_until(lambda: copies_of(demo_runtime, event_id) == before + 1, WAIT_S,
               "the replayed event in the event log")
    browser.save_screenshot(str(ARTIFACTS / "dead-letters-replayed.png"))


def copies_of(demo_runtime: DemoRuntime, event_id: str) -> int:
    info = demo_runtime.runtime.data_plane_info()
    return sum(1 for logged in read_events(info["bootstrap_servers"], info["topic"])
               if logged.event.get_id() == event_id)

