"""Who may share a listening rule or source with whom, and who may change one (used by rules and sources)."""

from __future__ import annotations

from typing import Any

from accounts.models import OwnedModel, Team, User, Visibility
from accounts.selectors import user_team_ids
from crm.errors import DomainError
from listening.selectors import can_edit_owned

__all__ = ["NotEditor", "can_edit_owned", "check_sharing", "resolve_team", "sharing_changes"]


class NotEditor(DomainError):
    """Seeing a rule or source (a team's) is not the right to change it."""

    code = "not_editor"
    status = 403


def resolve_team(value: Any) -> Team | None:
    if value is None or value == "":
        return None
    if isinstance(value, Team):
        return value
    try:
        pk = int(value)
    except (TypeError, ValueError):
        raise DomainError("Choose a team.", fields={"team": ["Invalid team."]}) from None
    team = Team.objects.filter(pk=pk).first()
    if team is None:
        raise DomainError("Choose a team.", fields={"team": ["No such team."]})
    return team


def check_sharing(actor: User, visibility: str, team: Team | None) -> Team | None:
    """Reps may keep a rule or source private or share it with a team they belong to; managers share with their
    teams; admins with any team. Returns the team to store (a private record keeps the owner's first team, so a
    manager of that team sees it, as with every other owned record)."""
    if visibility not in Visibility.values:
        raise DomainError("Choose private or team.", fields={"visibility": ["Invalid choice."]})
    own = user_team_ids(actor)
    if team is not None and not actor.is_admin_role and team.pk not in own:
        raise DomainError("You can only share with a team you belong to.", fields={"team": ["Not your team."]})
    if team is None and own:
        team = Team.objects.filter(pk=own[0]).first()
    if visibility == Visibility.TEAM and team is None:
        raise DomainError("Choose the team to share it with.", fields={"team": ["Required."]})
    return team


def sharing_changes(actor: User, data: dict[str, Any], record: OwnedModel | None) -> dict[str, Any]:
    """The ``visibility`` and ``team`` to store for a new or changed rule or source, checked by
    :func:`check_sharing` only when they change: whoever may edit a record may keep it shared as it is (a manager
    editing a rep's rule of a team the manager is not in)."""
    if record is not None and not {"visibility", "team", "team_id"} & set(data):
        return {}
    visibility = data.get("visibility") or (record.visibility if record is not None else Visibility.TEAM)
    if "team" in data or "team_id" in data:
        team = resolve_team(data.get("team", data.get("team_id")))
    else:
        team = record.team if record is not None else None
    if record is not None and visibility == record.visibility and (team.pk if team else None) == record.team_id:
        return {}
    return {"visibility": visibility, "team": check_sharing(actor, visibility, team)}
