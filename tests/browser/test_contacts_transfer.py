"""Browser: import wizard (upload → map → start → progress bar → error report) and the export links."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import expect

from accounts.models import User
from contacts.models import Contact
from contacts.services.imports import import_job_process
from contacts.tasks.imports import import_job_task
from tests.accounts.factories import TeamFactory, UserFactory, membership
from tests.contacts.factories import ContactFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV = (
    "First Name,Last Name,E-mail,Mobile,Company\n"
    "Grace,Hopper,grace@navy.example,+1 415 555 0170,Navy\n"
    "Bad,Row,not-an-email,,\n"
    "Alan,Turing,alan@bletchley.example,,Bletchley\n"
)


def _sign_in(page, live_server, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()


def _run_in_worker(job_id: int) -> None:
    """Stands in for a Celery worker: processes the job a moment later, in its own thread and connection."""

    def work() -> None:
        time.sleep(1.5)
        try:
            import_job_process(job_id=job_id)
        finally:
            connection.close()

    threading.Thread(target=work, daemon=True).start()


def test_import_wizard_to_done_and_error_report(page, live_server, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(import_job_task, "delay", _run_in_worker)
    user = membership(UserFactory(username="imp", role=User.Role.REP), TeamFactory(name="Importers"))
    ContactFactory(first_name="Existing", last_name="Person", owner=user)
    _sign_in(page, live_server, "imp")
    page.goto(f"{live_server.url}/contacts/?lifecycle_stage=lead")
    expect(page.get_by_role("link", name="Export CSV")).to_have_attribute(
        "href", "/contacts/export.csv?lifecycle_stage=lead"
    )
    page.get_by_role("link", name="Import", exact=True).click()
    expect(page).to_have_title("Import contacts · Threadline")
    expect(page.get_by_text("At most 50 MB")).to_be_visible()

    csv_path = tmp_path / "people.csv"
    csv_path.write_text(CSV)
    page.get_by_label("CSV file", exact=True).set_input_files(str(csv_path))
    page.get_by_role("button", name="Upload and map columns").click()
    expect(page.get_by_role("heading", name="Map columns")).to_be_visible()
    page.wait_for_load_state("load")  # htmx (a deferred script) must have bound the selects before we change one
    expect(page.get_by_label("E-mail", exact=True)).to_have_value("identity:email")
    expect(page.get_by_label("Mobile", exact=True)).to_have_value("identity:phone")
    expect(page.get_by_label("Company", exact=True)).to_have_value("company")
    expect(page.locator("#import-preview")).to_contain_text("not a valid e-mail")
    # Changing a mapping re-validates the preview (htmx): ignoring the e-mail column makes row 2 a name-only row.
    page.get_by_label("E-mail", exact=True).select_option("")
    expect(page.locator("#import-preview")).not_to_contain_text("not a valid e-mail")
    page.get_by_label("E-mail", exact=True).select_option("identity:email")
    expect(page.locator("#import-preview")).to_contain_text("not a valid e-mail")
    page.get_by_label("Update the existing contact").check()
    page.get_by_role("button", name="Start import").click()

    expect(page.get_by_role("heading", name="Import of people.csv")).to_be_visible()
    expect(page.locator("#import-status")).to_have_attribute("data-status", "done", timeout=15_000)
    expect(page.locator("#import-progress-bar")).to_have_attribute("value", "100")
    expect(page.get_by_text("Import finished: 2 created, 0 updated, 0 skipped, 1 with errors.")).to_be_visible()
    assert Contact.objects.filter(first_name__in=["Grace", "Alan"]).count() == 2

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the error report (CSV)").click()
    report = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    assert report.splitlines()[0] == "row,errors,First Name,Last Name,E-mail,Mobile,Company"
    assert report.splitlines()[1].startswith("2,") and "not-an-email" in report
