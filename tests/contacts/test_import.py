"""CSV import: encodings, bad input, per-row validation, dedupe, re-runs, crash/resume, and the wizard pages."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from django.db import OperationalError, connection
from django.urls import reverse

from contacts.models import Company, Contact, ContactIdentity, CustomFieldDefinition, ImportJob, ImportRowError
from contacts.selectors import contact_search_ids
from contacts.services import contact_search_refresh, imports
from contacts.services.imports import import_job_create, import_job_process, import_job_resume, import_job_start
from contacts.tasks.imports import import_job_task
from crm.errors import DomainError
from tests.contacts.factories import CompanyFactory, ContactFactory, IdentityFactory

DATA = Path(__file__).parent / "data"
Status = ImportJob.Status


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def run_import(user, data: bytes, *, mapping: dict[str, str] | None = None, on_duplicate: str = "skip") -> ImportJob:  # type: ignore[no-untyped-def]
    job = import_job_create(actor=user, file_name="people.csv", data=data)
    import_job_start(job=job, actor=user, mapping=mapping or job.mapping, on_duplicate=on_duplicate)
    return import_job_process(job_id=job.pk)


# --- Encodings and bad files ---


def test_utf8_file_with_bom_is_read_without_the_bom_in_the_header(world) -> None:
    job = run_import(world.a1, (DATA / "utf8_bom.csv").read_bytes())
    assert job.encoding == "utf-8-sig"
    assert job.headers[0] == "First Name"
    assert job.mapping["First Name"] == "first_name"
    assert job.status == Status.DONE and job.created_count == 2
    jose = Contact.objects.get(first_name="José")
    assert jose.last_name == "Müller" and jose.company.name == "Acme"
    assert jose.identities.get(kind="phone").normalized == "+14155550100"
    assert str(jose.birthday) == "1980-02-03"
    assert str(Contact.objects.get(first_name="Renée").birthday) == "1975-03-01"
    assert Company.objects.filter(name="Acme").count() == 1  # one company for both rows


def test_cp1252_file_keeps_accented_names_and_says_how_it_was_read(world, client) -> None:
    job = import_job_create(actor=world.a1, file_name="excel.csv", data=(DATA / "cp1252.csv").read_bytes())
    assert job.encoding == "cp1252"
    client.force_login(world.a1)
    page = client.get(reverse("contacts:import_mapping", args=[job.pk])).content.decode()
    assert "Windows-1252" in page and "José" in page
    import_job_start(job=job, actor=world.a1, mapping=job.mapping, on_duplicate="skip")
    import_job_process(job_id=job.pk)
    assert Contact.objects.filter(first_name="José", last_name="Müller").exists()


def test_utf16_file_with_bom_is_imported(world) -> None:
    job = run_import(world.a1, (DATA / "utf16.csv").read_bytes())
    assert job.encoding == "utf-16" and job.created_count == 2
    assert Contact.objects.filter(first_name="Renée", last_name="Côté").exists()


def test_semicolon_delimiter_is_sniffed_and_german_headers_guessed(world) -> None:
    job = import_job_create(actor=world.a1, file_name="de.csv", data=(DATA / "semicolon.csv").read_bytes())
    assert job.delimiter == ";"
    assert job.mapping["Email Address"] == "identity:email" and job.mapping["Mobile"] == "identity:phone"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   \n  ", "empty"),
        (b"\x00\x01\x02\xff\xfe\x00binary\x00junk" * 50, "not a readable CSV"),
        (b"\x81\x8d\x8f\x90\x9d" * 20, "not a readable CSV"),  # neither UTF-8 nor cp1252
        (b"a,b\n", "no data rows"),
        (b",b\n1,2\n", "no header"),
        (b"Email,email\n1,2\n", "Duplicate column"),
    ],
    ids=["empty", "whitespace", "binary", "wrong-encoding", "header-only", "blank-header", "duplicate-header"],
)
def test_unusable_files_are_refused_with_a_clear_message(world, data: bytes, message: str) -> None:
    with pytest.raises(DomainError) as exc:
        import_job_create(actor=world.a1, file_name="x.csv", data=data)
    assert message in exc.value.message
    assert not ImportJob.objects.exists()


def test_file_over_the_limit_is_refused(world, settings) -> None:
    settings.IMPORT_MAX_BYTES = 100
    with pytest.raises(DomainError, match="limit is"):
        import_job_create(actor=world.a1, file_name="big.csv", data=b"Email\n" + b"a@example.com\n" * 20)


def test_invalid_mapping_is_refused_and_job_stays_a_draft(world) -> None:
    job = import_job_create(actor=world.a1, file_name="x.csv", data=_csv([["A", "B"], ["x", "y"]]))
    with pytest.raises(DomainError) as exc:
        import_job_start(job=job, actor=world.a1, mapping={"A": "first_name", "B": "first_name"}, on_duplicate="skip")
    assert "only identities may repeat" in str(exc.value.fields)
    with pytest.raises(DomainError):
        import_job_start(job=job, actor=world.a1, mapping={"A": "password"}, on_duplicate="skip")
    with pytest.raises(DomainError):
        import_job_start(job=job, actor=world.a1, mapping={"A": "first_name"}, on_duplicate="merge")
    job.refresh_from_db()
    assert job.status == Status.DRAFT


# --- Row validation ---


def test_bad_rows_are_reported_and_good_rows_still_imported(world) -> None:
    job = run_import(world.a1, (DATA / "mixed.csv").read_bytes())
    assert (job.status, job.created_count, job.error_count, job.total_rows) == (Status.DONE, 2, 4, 6)
    assert sorted(Contact.objects.filter(last_name__in=["One", "Two"]).values_list("last_name", flat=True)) == [
        "One",
        "Two",
    ]
    assert Contact.objects.get(last_name="Two").lifecycle_stage == "customer"
    errors = {e.row_number: e for e in ImportRowError.objects.filter(job=job)}
    assert set(errors) == {2, 3, 4, 5}
    assert "not a valid e-mail" in str(errors[2].errors["Email"])
    assert "phone number" in str(errors[3].errors["Phone"])
    assert "ambiguous" in str(errors[4].errors["Birthday"])
    assert "lifecycle stage" in str(errors[5].errors["Stage"])
    assert errors[2].raw["Email"] == "not-an-email"
    assert not Contact.objects.filter(first_name="Bad").exists()


def test_error_report_lists_rows_errors_and_raw_values_formula_safe(world, client) -> None:
    data = _csv([["Name", "Email"], ['=HYPERLINK("http://evil")', "not-an-email"], ["Ok", "ok@example.com"]])
    job = run_import(world.a1, data, mapping={"Name": "first_name", "Email": "identity:email"})
    client.force_login(world.a1)
    response = client.get(reverse("contacts:import_errors", args=[job.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0] == ["row", "errors", "Name", "Email"]
    assert rows[1][0] == "1" and "not a valid e-mail" in rows[1][1]
    assert rows[1][2] == '\'=HYPERLINK("http://evil")'
    assert len(rows) == 2


def test_custom_fields_are_validated_per_row(world) -> None:
    CustomFieldDefinition.objects.create(key="seats", label="Seats", field_type="number")
    data = _csv([["Email", "Seats"], ["a@example.com", "12"], ["b@example.com", "lots"]])
    job = run_import(world.a1, data)
    assert job.mapping["Seats"] == "custom:seats"
    assert (job.created_count, job.error_count) == (1, 1)
    assert Contact.objects.get(identities__normalized="a@example.com").custom_fields == {"seats": 12}
    assert "not a number" in str(ImportRowError.objects.get(job=job).errors["Seats"])


def test_a_huge_custom_number_fails_its_row_not_the_whole_import(world) -> None:
    CustomFieldDefinition.objects.create(key="seats", label="Seats", field_type="number")
    data = _csv([["Email", "Seats"], ["a@example.com", "12"], ["b@example.com", "1e5000"]])
    job = run_import(world.a1, data)
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created_count, job.error_count) == (1, 1)
    assert "too large" in str(ImportRowError.objects.get(job=job).errors["Seats"])


def test_an_address_that_grows_when_lower_cased_fails_its_row_not_the_whole_import(world) -> None:
    data = _csv([["Name", "Other"], ["Al", "ok-handle"], ["Bo", "İ" * 300]])
    job = run_import(world.a1, data, mapping={"Name": "first_name", "Other": "identity:other"})
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created_count, job.error_count) == (1, 1)
    assert "too long" in str(ImportRowError.objects.get(job=job).errors["Other"])


def test_required_custom_field_only_blocks_rows_that_create_a_contact(world) -> None:
    existing = ContactFactory(owner=world.a1, team=world.team_a)
    IdentityFactory(contact=existing, value="known@example.com")
    CustomFieldDefinition.objects.create(key="region_code", label="Region code", required=True)
    data = _csv([["Email", "Title"], ["known@example.com", "CTO"], ["new@example.com", "CEO"]])
    job = run_import(world.a1, data, on_duplicate="update")
    assert (job.updated_count, job.error_count, job.created_count) == (1, 1, 0)
    existing.refresh_from_db()
    assert existing.title == "CTO"


def test_a_ten_megabyte_cell_fails_its_row_and_is_truncated_in_the_report(world) -> None:
    huge = "x" * (10 * 1024 * 1024)
    data = _csv([["First Name", "Email", "Notes"], [huge, "big@example.com", ""], ["Ok", "ok@example.com", huge]])
    job = run_import(world.a1, data)
    assert (job.created_count, job.error_count) == (0, 2)
    first, second = ImportRowError.objects.filter(job=job).order_by("row_number")
    assert "cell too long" in str(first.errors["First Name"])
    assert "cell too long" in str(second.errors["Notes"])
    assert len(first.raw["First Name"]) < 1200 and "truncated" in first.raw["First Name"]


def test_identity_of_a_contact_the_importer_cannot_see_is_not_touched(world) -> None:
    IdentityFactory(contact=world.b1_shared, value="bea@example.com")
    job = run_import(world.a1, _csv([["Email", "Title"], ["bea@example.com", "Spy"]]), on_duplicate="update")
    assert job.error_count == 1
    assert "cannot see" in str(ImportRowError.objects.get(job=job).errors)
    world.b1_shared.refresh_from_db()
    assert world.b1_shared.title == ""


# --- Dedupe and re-runs ---


def _people(n: int) -> bytes:
    rows = [["First Name", "Last Name", "Email", "Phone", "Company", "Title"]]
    rows += [[f"P{i}", f"L{i}", f"p{i}@example.com", f"+1 415 555 {i:04d}", "Acme", "Dev"] for i in range(n)]
    return _csv(rows)


def test_rerunning_the_same_file_in_skip_mode_creates_no_duplicates(world) -> None:
    first = run_import(world.a1, _people(30))
    second = run_import(world.a1, _people(30))
    assert (first.created_count, second.created_count, second.skipped_count) == (30, 0, 30)
    assert Contact.objects.filter(first_name__startswith="P").count() == 30
    assert ContactIdentity.objects.filter(kind="phone").count() == 30
    assert Company.objects.filter(name="Acme").count() == 1


def test_rerunning_the_same_file_in_update_mode_updates_and_creates_nothing(world) -> None:
    run_import(world.a1, _people(20))
    changed = _people(20).replace(b",Dev\r\n", b",Lead Dev\r\n")
    job = run_import(world.a1, changed, on_duplicate="update")
    assert (job.created_count, job.updated_count) == (0, 20)
    assert set(Contact.objects.filter(first_name__startswith="P").values_list("title", flat=True)) == {"Lead Dev"}
    assert ContactIdentity.objects.count() == 40


def test_rows_without_identity_are_matched_by_name_and_company(world) -> None:
    company = CompanyFactory(name="Globex", owner=world.a1, team=world.team_a)
    ContactFactory(first_name="Hank", last_name="Scorpio", company=company, owner=world.a1, team=world.team_a)
    data = _csv([["First", "Last", "Company"], ["hank", "SCORPIO", "globex"], ["Hank", "Scorpio", "Other Co"]])
    job = run_import(world.a1, data)
    assert (job.skipped_count, job.created_count) == (1, 1)
    assert Contact.objects.filter(first_name__iexact="hank").count() == 2
    again = run_import(world.a1, data)
    assert again.created_count == 0 and again.skipped_count == 2


def test_duplicates_inside_one_file_become_one_contact(world) -> None:
    data = _csv([["Name", "Email", "Phone"], ["Ann", "ann@x.example", ""], ["Ann B", "ANN@x.example", "+14155550199"]])
    mapping = {"Name": "first_name", "Email": "identity:email", "Phone": "identity:phone"}
    job = run_import(world.a1, data, mapping=mapping, on_duplicate="update")
    assert (job.created_count, job.updated_count) == (1, 1)
    contact = Contact.objects.get(identities__normalized="ann@x.example")
    assert contact.first_name == "Ann B"
    assert contact.identities.count() == 2


def test_row_whose_addresses_belong_to_two_contacts_is_an_error(world) -> None:
    IdentityFactory(contact=world.a1_shared, value="ann@example.com")
    IdentityFactory(contact=world.a2_shared, kind="phone", value="+14155550123", normalized="+14155550123")
    data = _csv([["Email", "Phone"], ["ann@example.com", "+1 415 555 0123"]])
    job = run_import(world.a1, data, on_duplicate="update")
    assert job.error_count == 1 and "different existing contacts" in str(ImportRowError.objects.get().errors)


# --- Crashes, retries, duplicate deliveries ---


def test_crash_mid_file_then_resume_loses_and_duplicates_nothing(world, monkeypatch) -> None:
    monkeypatch.setattr(imports, "CHUNK_SIZE", 10)
    job = import_job_create(actor=world.a1, file_name="p.csv", data=_people(35))
    import_job_start(job=job, actor=world.a1, mapping=job.mapping, on_duplicate="skip")
    real = imports._ImportContext.process_chunk
    calls = {"n": 0}

    def crash_on_second_chunk(self, rows):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        counts = real(self, rows)  # the chunk's rows are written ... then the worker dies before commit
        if calls["n"] == 2:
            raise RuntimeError("worker died")
        return counts

    monkeypatch.setattr(imports._ImportContext, "process_chunk", crash_on_second_chunk)
    job = import_job_process(job_id=job.pk)
    assert (job.status, job.next_row, job.created_count) == (Status.FAILED, 10, 10)
    assert "worker died" in job.error
    assert Contact.objects.filter(first_name__startswith="P").count() == 10  # chunk 2 rolled back entirely

    assert import_job_resume(job=job)
    job = import_job_process(job_id=job.pk)
    assert (job.status, job.next_row, job.created_count, job.error_count) == (Status.DONE, 35, 35, 0)
    assert Contact.objects.filter(first_name__startswith="P").count() == 35
    assert ContactIdentity.objects.count() == 70


def test_transient_database_error_leaves_job_running_for_the_retry(world, monkeypatch) -> None:
    monkeypatch.setattr(imports, "CHUNK_SIZE", 10)
    job = import_job_create(actor=world.a1, file_name="p.csv", data=_people(25))
    import_job_start(job=job, actor=world.a1, mapping=job.mapping, on_duplicate="skip")
    real = imports._ImportContext.process_chunk
    calls = {"n": 0}

    def flaky(self, rows):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise OperationalError("server closed the connection unexpectedly")
        return real(self, rows)

    monkeypatch.setattr(imports._ImportContext, "process_chunk", flaky)
    with pytest.raises(OperationalError):
        import_job_process(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.next_row) == (Status.RUNNING, 10)
    job = import_job_process(job_id=job.pk)  # what the task's retry does
    assert (job.status, job.created_count) == (Status.DONE, 25)
    assert Contact.objects.filter(first_name__startswith="P").count() == 25


def test_duplicate_delivery_of_the_task_does_nothing_harmful(world) -> None:
    job = import_job_create(actor=world.a1, file_name="p.csv", data=_people(15))
    import_job_start(job=job, actor=world.a1, mapping=job.mapping, on_duplicate="skip")
    import_job_task.apply(args=[job.pk])
    import_job_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert (job.status, job.created_count, job.skipped_count) == (Status.DONE, 15, 0)
    assert Contact.objects.filter(first_name__startswith="P").count() == 15
    # A draft (never started) job is not picked up by a stray message either.
    draft = import_job_create(actor=world.a1, file_name="d.csv", data=_people(3))
    assert import_job_process(job_id=draft.pk).status == Status.DRAFT


def test_start_enqueues_the_task_after_commit(world, django_capture_on_commit_callbacks, monkeypatch) -> None:
    sent: list[int] = []
    monkeypatch.setattr(import_job_task, "delay", lambda job_id: sent.append(job_id))
    job = import_job_create(actor=world.a1, file_name="p.csv", data=_people(2))
    with django_capture_on_commit_callbacks(execute=True):
        import_job_start(job=job, actor=world.a1, mapping=job.mapping, on_duplicate="skip")
    assert sent == [job.pk]
    with pytest.raises(DomainError, match="already been started"):
        import_job_start(job=job, actor=world.a1, mapping=job.mapping, on_duplicate="skip")


def test_a_large_file_imports_in_chunks_with_correct_counts(world) -> None:
    # 20k rows (20 chunks) keeps the suite fast on a shared machine; 100k rows behave the same, only longer
    # (see the throughput figure in README). One bad row among them must not cost the others.
    n = 20_000
    rows = [["First Name", "Last Name", "Email", "Title"]]
    rows += [[f"F{i}", f"L{i}", f"user{i}@bulk.example", "Engineer"] for i in range(n)]
    rows[5000][2] = "broken-address"
    job = import_job_create(actor=world.a1, file_name="big.csv", data=_csv(rows))
    import_job_start(job=job, actor=world.a1, mapping=job.mapping, on_duplicate="skip")
    started = time.monotonic()
    job = import_job_process(job_id=job.pk)
    elapsed = time.monotonic() - started
    assert (job.status, job.total_rows, job.created_count, job.error_count) == (Status.DONE, n, n - 1, 1)
    assert ContactIdentity.objects.filter(kind="email", normalized__endswith="@bulk.example").count() == n - 1
    assert ImportRowError.objects.get(job=job).row_number == 5000
    assert job.data == b""  # the file is dropped once it is no longer needed
    assert elapsed < 60, f"{n} rows took {elapsed:.1f}s"


# --- Wizard pages ---


def test_wizard_upload_map_start_progress_and_summary(world, client, monkeypatch) -> None:
    monkeypatch.setattr(import_job_task, "delay", lambda job_id: None)
    client.force_login(world.a1)
    page = client.get(reverse("contacts:import_upload"))
    assert page.status_code == 200 and b"50 MB" in page.content
    upload = io.BytesIO((DATA / "mixed.csv").read_bytes())
    upload.name = "mixed.csv"
    response = client.post(reverse("contacts:import_upload"), {"file": upload})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("contacts:import_mapping", args=[job.pk])
    mapping_page = client.get(response.url).content.decode()
    assert 'value="identity:email" selected' in mapping_page
    assert "ambiguous" in mapping_page  # preview shows per-row validation
    preview = client.post(reverse("contacts:import_preview", args=[job.pk]), {"map-0": "first_name"})
    assert preview.status_code == 200 and b"OK" in preview.content
    form = {f"map-{i}": target for i, target in enumerate(job.mapping[h] for h in job.headers)}
    response = client.post(response.url, {**form, "on_duplicate": "update"})
    assert response.status_code == 302 and response.url == reverse("contacts:import_progress", args=[job.pk])
    running = client.get(response.url, headers={"HX-Request": "true"}).content.decode()
    assert 'hx-trigger="every 1s"' in running
    import_job_process(job_id=job.pk)
    done = client.get(response.url, headers={"HX-Request": "true"}).content.decode()
    assert 'hx-trigger="every 1s"' not in done and "Import finished" in done
    assert reverse("contacts:import_errors", args=[job.pk]) in done


def test_wizard_bad_upload_shows_the_error(world, client) -> None:
    client.force_login(world.a1)
    upload = io.BytesIO(b"\x00\x01binary\x00")
    upload.name = "photo.jpg"
    response = client.post(reverse("contacts:import_upload"), {"file": upload})
    assert response.status_code == 400 and b"not a readable CSV" in response.content
    assert not ImportJob.objects.exists()


def test_imports_are_visible_to_their_owner_and_admins_only(world, client) -> None:
    job = import_job_create(actor=world.a1, file_name="p.csv", data=_people(2))
    for user, status in ((world.a2, 404), (world.b1, 404), (world.a1, 200), (world.admin, 200)):
        client.force_login(user)
        assert client.get(reverse("contacts:import_mapping", args=[job.pk])).status_code == status, user
        assert client.get(reverse("contacts:import_errors", args=[job.pk])).status_code == status, user


def test_upload_page_query_count_does_not_grow_with_imports(world, client, django_assert_max_num_queries) -> None:
    for _ in range(5):
        import_job_create(actor=world.a1, file_name="p.csv", data=_people(2))
    client.force_login(world.a1)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("contacts:import_upload")).status_code == 200


def test_imported_search_document_equals_the_one_contact_search_refresh_builds(world) -> None:
    data = _csv(
        [
            ["First Name", "Last Name", "Title", "Company", "Email", "Twitter"],
            ["Ada", "Lovelace", "Analyst", "Engines Ltd", "ada.l@engines.example", "@AdaL"],
        ]
    )
    run_import(world.a1, data)
    contact = Contact.objects.get(first_name="Ada")
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_vector::text FROM contacts_contact WHERE id = %s", [contact.pk])
        imported = cursor.fetchone()[0]
        contact_search_refresh(contact_ids=[contact.pk])
        cursor.execute("SELECT search_vector::text FROM contacts_contact WHERE id = %s", [contact.pk])
        assert imported == cursor.fetchone()[0]
    assert "'engines':" in imported and "'adal':" in imported
    assert Contact.objects.filter(pk__in=contact_search_ids(user=world.a1, query="lovel")).exists()


# --- API and admin ---


def test_api_upload_preview_start_and_errors(world, api_client, monkeypatch) -> None:
    monkeypatch.setattr(import_job_task, "delay", lambda job_id: None)
    api_client.force_authenticate(world.a1)
    upload = io.BytesIO((DATA / "mixed.csv").read_bytes())
    upload.name = "mixed.csv"
    response = api_client.post("/api/v1/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    assert response.json()["mapping"]["Email"] == "identity:email" and response.json()["total_rows"] == 6
    preview = api_client.post(f"/api/v1/imports/{job_id}/preview/", {}, format="json").json()["rows"]
    assert [r["ok"] for r in preview] == [True, False, False, False, False, True]
    bad = api_client.post(f"/api/v1/imports/{job_id}/start/", {"mapping": {"Email": "nope"}, "on_duplicate": "skip"},
                          format="json")  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_mapping"
    mapping = ImportJob.objects.get(pk=job_id).mapping
    started = api_client.post(f"/api/v1/imports/{job_id}/start/", {"mapping": mapping, "on_duplicate": "skip"},
                              format="json")  # fmt: skip
    assert started.status_code == 202 and started.json()["status"] == "queued"
    import_job_process(job_id=job_id)
    job = api_client.get(f"/api/v1/imports/{job_id}/").json()
    assert (job["status"], job["created_count"], job["error_count"], job["progress_percent"]) == ("done", 2, 4, 100)
    errors = api_client.get(f"/api/v1/imports/{job_id}/row-errors/").json()["results"]
    assert [e["row_number"] for e in errors] == [2, 3, 4, 5]
    report = api_client.get(f"/api/v1/imports/{job_id}/error-report/", HTTP_ACCEPT="text/csv")
    assert report.status_code == 200 and b"not-an-email" in b"".join(report.streaming_content)
    api_client.force_authenticate(world.b1)
    assert api_client.get(f"/api/v1/imports/{job_id}/").status_code == 404
    assert api_client.get("/api/v1/imports/").json()["results"] == []


def test_api_preview_with_non_text_targets_ignores_them_instead_of_a_500(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    job = import_job_create(actor=world.a1, file_name="p.csv", data=_csv([["Email", "Name"], ["a@example.com", "Al"]]))
    for mapping in ({"Email": 5}, {"Email": ["identity:email"], "Name": "first_name"}):
        response = api_client.post(f"/api/v1/imports/{job.pk}/preview/", {"mapping": mapping}, format="json")
        assert response.status_code == 200, response.content
    assert response.json()["rows"][0]["ok"] is True  # the name alone is enough; the list target was ignored


def test_api_upload_of_garbage_is_a_clear_400(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    upload = io.BytesIO(b"\x00\x01\x02garbage\x00")
    upload.name = "x.csv"
    response = api_client.post("/api/v1/imports/", {"file": upload}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_encoding"


def test_admin_lists_imports_and_resumes_failed_ones(
    world, client, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(import_job_task, "delay", lambda job_id: sent.append(job_id))
    world.admin.is_staff = True
    world.admin.is_superuser = True
    world.admin.save()
    job = import_job_create(actor=world.a1, file_name="p.csv", data=_people(3))
    ImportJob.objects.filter(pk=job.pk).update(status=Status.FAILED, error="boom", next_row=1)
    done = import_job_create(actor=world.a1, file_name="q.csv", data=_people(3))
    ImportJob.objects.filter(pk=done.pk).update(status=Status.DONE)
    client.force_login(world.admin)
    assert client.get("/admin/contacts/importjob/").status_code == 200
    assert client.get(f"/admin/contacts/importjob/{job.pk}/change/").status_code == 200
    assert client.get("/admin/contacts/erasurerecord/").status_code == 200
    assert client.get("/admin/contacts/importrowerror/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/contacts/importjob/", {"action": "resume", "_selected_action": [job.pk, done.pk]}, follow=True
        )
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.error == "" and job.next_row == 1
    assert ImportJob.objects.get(pk=done.pk).status == Status.DONE
    assert sent == [job.pk]
