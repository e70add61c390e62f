"""REST API conventions: auth, cursor pagination, one error format, OpenAPI served from our own static files."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from tests.contacts.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_anonymous_gets_401_in_error_format(api_client) -> None:
    response = api_client.get("/api/v1/contacts/")
    assert response.status_code in (401, 403)
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_token_auth(world, api_client) -> None:
    token = Token.objects.create(user=world.a1)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = api_client.get("/api/v1/users/me/")
    assert response.status_code == 200
    assert response.json()["username"] == "a1"


def test_malformed_body_gets_400_with_field_errors(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.post(
        "/api/v1/contacts/", {"lifecycle_stage": "astronaut", "latitude": "north"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) >= {"lifecycle_stage", "latitude"}


def test_unparseable_json_gets_400(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.post("/api/v1/contacts/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_unknown_object_is_404(world, api_client) -> None:
    api_client.force_authenticate(world.admin)
    response = api_client.get("/api/v1/contacts/999999999/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_identity_taken_is_409_and_names_no_invisible_owner(world, api_client) -> None:
    api_client.force_authenticate(world.b1)
    api_client.post(f"/api/v1/contacts/{world.b1_shared.pk}/identities/", {"kind": "email", "value": "X@Acme.com"})
    api_client.force_authenticate(world.a1)
    response = api_client.post(
        f"/api/v1/contacts/{world.a1_shared.pk}/identities/", {"kind": "email", "value": "x@acme.com"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "identity_taken"
    assert "Other" not in response.json()["error"]["message"]  # b1's contact is invisible to a1


def test_create_contact_with_identities(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.post(
        "/api/v1/contacts/",
        {"first_name": "Nia", "identities": [{"kind": "phone", "value": "(617) 555-0101"}]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["owner"] == world.a1.pk and body["team"] == world.team_a.pk
    assert body["identities"][0]["normalized"] == "+16175550101"


def test_cursor_pagination_without_count(world, api_client, django_assert_max_num_queries) -> None:
    for _ in range(7):
        ContactFactory(owner=world.a1, team=world.team_a)
    api_client.force_authenticate(world.a1)
    seen: list[int] = []
    url = "/api/v1/contacts/?page_size=3"
    while url:
        with django_assert_max_num_queries(8):
            page = api_client.get(url).json()
        assert "count" not in page
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert len(seen) == len(set(seen)) == 10
    assert seen == sorted(seen, reverse=True)


def test_openapi_schema_and_local_swagger(client) -> None:
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/contacts/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()


def test_not_found_is_a_404_page_in_the_browser_too(world, client) -> None:
    client.force_login(world.a1)
    assert client.get(f"/contacts/{world.b1_shared.pk}/").status_code == 404
    assert client.get(f"/contacts/{world.b1_shared.pk}/merge/").status_code == 404


def test_mangled_cursor_is_a_400_field_error(world, api_client) -> None:
    api_client.force_authenticate(world.a1)
    response = api_client.get("/api/v1/contacts/?cursor=not-a-cursor")
    assert response.status_code == 400
    assert "cursor" in response.json()["error"]["fields"]
