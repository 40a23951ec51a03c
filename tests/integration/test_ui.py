"""The web UI in a real browser: Playwright driving Debian's Chromium against a server started in this process.

The server (uvicorn on a thread, auth on) serves the test's KITARU_HOME database
on the shared Ray session; drivers the UI starts (resume, replay) are detached
processes that join that session. Screenshots of every page go to
``tests/artifacts/ui/``. Chromium missing: skipped locally, a failure in CI.
"""

import os
from pathlib import Path

import pytest

from kitaru import KitaruClient
from kitaru.testing import FakeModelServer, wait_for

TESTS = Path(__file__).resolve().parent
ARTIFACTS = TESTS.parent / "artifacts" / "ui"
CHROMIUM = os.environ.get("KITARU_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling out, and this machine's closed network refuses it.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DRIVER_TIMEOUT = 120_000  # ms: a detached driver imports Kitaru and joins Ray first

pytestmark = pytest.mark.timeout(600)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI must run the browser tests (make test installs Chromium and playwright).")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).is_file():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def ui(ray_session, kitaru_home, monkeypatch, tmp_path):
    """The server over this test's home (auth on) and an admin key; detached drivers join the shared Ray session."""
    from kitaru_server import service_for
    from kitaru_server.api import create_app
    from kitaru_server.testing import serve_in_thread

    from kitaru.config import resolve_settings

    for name in ("KITARU_SERVER_URL", "KITARU_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KITARU_RAY_ADDRESS", ray_session)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("KITARU_LEASE_SECONDS", "2")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.chdir(TESTS)  # detached drivers start here, so they (and their Ray workers) import ui_flows
    service = service_for(resolve_settings().database_url)
    key = service.create_api_key("ui-tests", admin=True)["key"]
    with serve_in_thread(create_app(service=service, auth=True)) as url:
        yield {"url": url, "key": key, "service": service, "home": kitaru_home}


@pytest.fixture
def page(browser, ui):
    """A signed-in page (the cookie the login page sets); JavaScript errors fail the test."""
    from kitaru_server.api._common import KEY_COOKIE

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_cookies([{"name": KEY_COOKIE, "value": ui["key"], "url": ui["url"], "httpOnly": True, "sameSite": "Strict"}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def model(ui):
    """``fake``: a model alias on a local OpenAI-compatible server (priced as gpt-4o-mini), for the summarize step."""
    with FakeModelServer() as server:
        client = KitaruClient()
        client.secrets.set("creds", OPENAI_API_KEY="sk-test")
        client.models.register("fake", model="openai/gpt-4o-mini", secret="creds", base_url=server.openai_base_url)
        yield "fake"


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def finished(exec_id: str, status: str = "completed", timeout: float = 120) -> None:
    wait_for(lambda: KitaruClient().executions.get(exec_id).status == status, timeout=timeout, message=f"{exec_id} {status}")


@pytest.mark.ray
def test_sign_in_then_the_list_shows_executions_live(browser, ui, model):
    import ui_flows
    from playwright.sync_api import expect

    done = ui_flows.research.run("ray", 3, model)
    failed = ui_flows.broken.run("no sources")
    done.wait(timeout=120)
    finished(failed.exec_id, "failed")

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(f"{ui['url']}/executions?status=failed")
    expect(page).to_have_url(f"{ui['url']}/login?next=%2Fexecutions%3Fstatus%3Dfailed")  # no key yet: the login page
    shot(page, "login")
    page.fill("#api_key", "ktr_0123456789abcdef.wrongwrongwrongwrongwrong")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("refused this key")
    page.fill("#api_key", ui["key"])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{ui['url']}/executions?status=failed")  # back where it was going
    rows = page.locator("#execution-rows tr[data-exec]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-exec", failed.exec_id)

    page.goto(f"{ui['url']}/executions")
    expect(rows).to_have_count(2)
    expect(page.locator(f'tr[data-exec="{done.exec_id}"] .badge')).to_have_text("completed")
    expect(page.locator("#status-counts")).to_contain_text("failed 1")
    later = ui_flows.sleepy.run(0.2)  # the list refreshes itself: a new execution appears without a reload
    expect(page.locator(f'tr[data-exec="{later.exec_id}"]')).to_be_visible(timeout=15_000)
    later.wait(timeout=60)
    expect(page.locator(f'tr[data-exec="{later.exec_id}"] .badge')).to_have_text("completed", timeout=15_000)
    page.select_option("#filter-status", "completed")  # submits the filter
    expect(page).to_have_url(f"{ui['url']}/executions?flow=&status=completed")
    expect(rows).to_have_count(2)
    shot(page, "executions")
    context.close()


@pytest.mark.ray
def test_execution_page_shows_the_fan_out_its_outputs_and_llm_calls(page, ui, model):
    import ui_flows
    from playwright.sync_api import expect

    from kitaru._html import ui_url

    handle = ui_flows.research.run("durable agents", 4, model)
    result = handle.wait(timeout=120)
    link = ui_url(ui["url"], handle.exec_id)  # the notebook view links here
    assert link == f"{ui['url']}/executions/{handle.exec_id}"
    page.goto(link)
    expect(page.locator(".exec-head .badge")).to_have_text("completed")
    for invocation in ("plan", "fetch", "fetch_2", "fetch_3", "fetch_4", "tabulate", "summarize"):
        expect(page.locator(f'.dag-node[data-call="{invocation}"]')).to_have_count(1)
        expect(page.locator(f'#calls-table tr[data-call="{invocation}"]')).to_contain_text("completed")
    assert page.locator(".dag-edge").count() == 4 + 4 + 1  # plan → each fetch → tabulate → summarize
    expect(page.locator("#ray-dashboard")).to_have_count(0)  # no dashboard in the test session: no link
    expect(page.locator("#region-result")).to_contain_text(result["summary"])

    page.click('.dag-node[data-call="fetch_3"]')
    panel = page.locator("#call-panel")
    expect(panel.locator("h2")).to_have_text("fetch_3")
    expect(panel.locator(".value-json")).to_contain_text('"source": "durable agents-source-2"')
    expect(panel).to_contain_text("plan")  # its input comes from plan
    page.click('#calls-table tr[data-call="tabulate"]')
    expect(panel.locator(".value-table tbody tr")).to_have_count(4)
    expect(panel.locator(".value-table thead")).to_contain_text("quality")
    page.click('.dag-node[data-call="summarize"]')
    expect(panel.locator(".llm-prompt")).to_contain_text("Summarize 4 sources")
    expect(panel.locator(".llm-response")).to_have_text(result["summary"])
    expect(panel.locator(".llm-head")).to_contain_text("tokens")
    expect(panel.locator(".llm-head")).to_contain_text("$")
    expect(page.locator("#logs")).to_contain_text("fetching durable agents-source-3")
    page.click("#tab-timeline")
    expect(page.locator(".tl-row")).to_have_count(7)
    shot(page, "execution-timeline")
    page.click("#tab-graph")
    shot(page, "execution")

    page.click('.dag-node[data-call="fetch_2"]')
    page.click('#call-panel [data-log-filter="fetch_2"]')
    expect(page.locator("#logs .log-line:visible")).to_have_count(1)
    expect(page.locator("#logs .log-line:visible")).to_contain_text("fetching durable agents-source-1")
    page.click("#tab-events")
    expect(page.locator("#events")).to_contain_text("checkpoint.returned")

    ui["service"].update_execution_metadata(handle.exec_id, {"dashboard_url": "http://127.0.0.1:8265/#/jobs/01000000"})
    page.reload()
    expect(page.locator("#ray-dashboard")).to_have_attribute("href", "http://127.0.0.1:8265/#/jobs/01000000")

    wide = ui_flows.research.run("wide", 12, model)  # a wide fan-out draws one stacked node
    wide.wait(timeout=120)
    page.goto(f"{ui['url']}/executions/{wide.exec_id}")
    expect(page.locator('.dag-node[data-call="fetch"]')).to_contain_text("fetch ×12")
    expect(page.locator('#calls-table tr[data-call^="fetch"]')).to_have_count(12)
    shot(page, "execution-wide")
    page.emulate_media(color_scheme="dark")  # the stylesheet follows the system's dark mode
    page.click('.dag-node[data-call="summarize"]')
    expect(page.locator("#call-panel .llm-prompt")).to_be_visible()
    shot(page, "execution-dark")


@pytest.mark.ray
def test_wait_form_checks_input_shows_the_servers_refusal_and_resumes(page, ui):
    import ui_flows
    from playwright.sync_api import expect

    handle = ui_flows.review.run("ray", timeout=0.5)
    suspended = lambda: ui["service"].get_execution(handle.exec_id, with_calls=False)  # noqa: E731
    wait_for(lambda: suspended()["status"] == "waiting" and suspended()["driver_id"] is None, timeout=60, message="suspended")
    page.goto(f"{ui['url']}/executions/{handle.exec_id}")
    form = page.locator("form.wait-form")
    expect(form).to_contain_text("Publish this draft?")
    expect(page.locator(".exec-head .badge")).to_contain_text("suspended")
    shot(page, "wait-form")

    form.locator("#wait-0-score").fill("9")
    form.locator("button[type=submit]").click()
    expect(form.locator(".field:has(#wait-0-score) .field-error")).to_have_text("Enter at most 5.")  # checked here, nothing sent
    assert [w.name for w in KitaruClient().executions.pending_waits(handle.exec_id)] == ["review"]

    form.locator("#wait-0-score").fill("4")
    form.locator("#wait-0-approved").check()
    form.locator("#wait-0-tags").fill('["ui", 3]')  # valid JSON, but not a list of strings: the server refuses it
    form.locator("button[type=submit]").click()
    error = form.locator(".form-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("input for wait 'review' is invalid at tags/1")
    shot(page, "wait-form-refused")

    form.locator("#wait-0-tags").fill('["ui"]')
    form.locator("button[type=submit]").click()
    expect(page.locator("#action-message")).to_contain_text("resumed in a detached driver", timeout=DRIVER_TIMEOUT)
    expect(page.locator(".exec-head .badge")).to_have_text("completed", timeout=DRIVER_TIMEOUT)
    expect(page.locator("form.wait-form")).to_have_count(0)
    assert KitaruClient().executions.get(handle.exec_id).result() == "published (4/5, ui): A draft about ray."


@pytest.mark.ray
def test_replay_from_a_call_with_an_output_override(page, ui, model):
    import ui_flows
    from playwright.sync_api import expect

    original = ui_flows.research.run("replays", 2, model)
    original.wait(timeout=120)
    page.goto(f"{ui['url']}/executions/{original.exec_id}#call=summarize")
    form = page.locator("#call-panel form.replay-form")
    form.locator("input[name=override_output]").check()
    form.locator("textarea[name=output]").fill('"an edited summary')  # not JSON: refused here
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-error")).to_contain_text("The output override is not valid JSON")
    form.locator("textarea[name=output]").fill('"an edited summary"')
    shot(page, "replay-form")
    form.locator("button[type=submit]").click()

    page.wait_for_url(lambda url: "/executions/" in url and original.exec_id not in url, timeout=DRIVER_TIMEOUT)
    new_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#original-link")).to_have_text(original.exec_id)
    expect(page.locator(".exec-head .badge")).to_have_text("completed", timeout=DRIVER_TIMEOUT)
    expect(page.locator('#calls-table tr[data-call="summarize"]')).to_contain_text("overridden")
    expect(page.locator('#calls-table tr[data-call="fetch_2"]')).to_contain_text("replayed")
    shot(page, "replay")
    replayed = KitaruClient().executions.get(new_id)
    assert replayed.original_exec_id == original.exec_id and replayed.result() == {"summary": "an edited summary", "sources": 2}


@pytest.mark.ray
def test_cancel_then_resume_a_running_execution(page, ui, tmp_path):
    import ui_flows
    from playwright.sync_api import expect

    marker = tmp_path / "wake-up"
    handle = ui_flows.sleepy.run(120, str(marker))
    wait_for(lambda: [c for c in KitaruClient().executions.get(handle.exec_id).checkpoints if c.status == "running"], timeout=60)
    page.goto(f"{ui['url']}/executions/{handle.exec_id}")
    expect(page.locator('#calls-table tr[data-call="nap"]')).to_contain_text("running")
    page.click("button[data-action=cancel]")
    expect(page.locator("#action-message")).to_contain_text("cancelled", timeout=30_000)
    expect(page.locator(".exec-head .badge")).to_have_text("cancelled", timeout=15_000)
    assert KitaruClient().executions.get(handle.exec_id).status == "cancelled"
    expect(page.locator('#calls-table tr[data-call="nap"]')).to_contain_text("cancelled", timeout=15_000)
    shot(page, "cancelled")

    marker.touch()  # the resumed call returns at once
    page.click("button[data-action=resume]")
    expect(page.locator("#action-message")).to_contain_text("Resumed in a detached driver", timeout=DRIVER_TIMEOUT)
    expect(page.locator(".exec-head .badge")).to_have_text("completed", timeout=DRIVER_TIMEOUT)
    assert KitaruClient().executions.get(handle.exec_id).result() == 120


@pytest.mark.ray
def test_retry_a_failed_execution(page, ui, tmp_path):
    import ui_flows
    from playwright.sync_api import expect

    marker = tmp_path / "fixed"
    handle = ui_flows.fragile.run(str(marker))
    finished(handle.exec_id, "failed")
    page.goto(f"{ui['url']}/executions/{handle.exec_id}")
    expect(page.locator("#failure")).to_contain_text(f"{marker} is missing")
    expect(page.locator("#call-panel .attempt-error")).to_contain_text("RuntimeError")  # the failed call is selected
    expect(page.locator("button[data-action=resume]")).to_be_disabled()
    shot(page, "failed")
    marker.touch()
    page.click("button[data-action=retry]")
    expect(page.locator("#action-message")).to_contain_text("Retrying in a detached driver", timeout=DRIVER_TIMEOUT)
    expect(page.locator(".exec-head .badge")).to_have_text("completed", timeout=DRIVER_TIMEOUT)
    expect(page.locator('#calls-table tr[data-call="check"]')).to_contain_text("2")  # a second attempt


@pytest.mark.ray
def test_stacks_page_masks_credentials(page, ui):
    from playwright.sync_api import expect

    ui["service"].create_stack(
        "team-s3",
        storage_url="s3://kitaru-team/runs",
        storage_options={"key": "AKIAEXAMPLE", "secret": "very-secret", "client_kwargs": {"region_name": "eu-west-1"}},
    )
    page.goto(f"{ui['url']}/stacks")
    table = page.locator("#stacks-table")
    expect(table).to_contain_text("default")
    expect(table).to_contain_text("s3://kitaru-team/runs")
    page.click("#stacks-table summary")
    expect(table).to_contain_text("eu-west-1")
    assert "very-secret" not in page.content() and "AKIAEXAMPLE" not in page.content()
    shot(page, "stacks")


def test_kitaru_ui_starts_the_local_server_once_and_prints_its_address(tmp_path, monkeypatch):
    import json

    import httpx
    from typer.testing import CliRunner

    from conftest import free_port
    from kitaru.cli import app
    from kitaru.testing import isolated_home

    for name in ("KITARU_SERVER_URL", "KITARU_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    with isolated_home(tmp_path / "home"):
        first = CliRunner().invoke(app, ["ui", "--port", str(port), "--no-open", "-o", "json"])
        try:
            assert first.exit_code == 0, first.output
            started = json.loads(first.stdout)
            assert started["started"] is True and started["url"] == f"http://127.0.0.1:{port}/executions"
            key = started["admin_key"]
            assert httpx.get(started["url"], headers={"Accept": "text/html"}).status_code == 303  # no key: the login page
            page = httpx.get(started["url"], headers={"Authorization": f"Bearer {key}"})
            assert page.status_code == 200 and "<h1>Executions" in page.text
            again = json.loads(CliRunner().invoke(app, ["ui", "--no-open", "-o", "json"]).stdout)
            assert again["started"] is False and again["url"] == started["url"] and again["admin_key"] is None
        finally:
            CliRunner().invoke(app, ["server", "stop"])
