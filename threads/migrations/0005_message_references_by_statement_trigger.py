"""Message → thread, contact and channel account: enforced per statement, not per row.

Django's foreign keys check each inserted row with its own lookup at commit; at ingest rates that was a fifth of
the time. These triggers keep the same guarantees with one set-based statement per INSERT or UPDATE:

- After messages are written, every thread, contact and channel account they point to is locked ``FOR KEY SHARE``
  (in id order, so two writers cannot deadlock on them) and must exist; a dangling reference raises
  ``foreign_key_violation``. The lock holds until commit, so nobody can delete the row underneath.
- When a thread, contact or channel account is deleted, no message may point to it at commit (a deferred
  constraint trigger, deferred like Django's foreign keys: the ORM's cascade may delete a thread before its
  messages within one transaction). A delete that had to wait for an ingest's lock sees the ingest's committed
  messages at its own commit and fails, as a foreign key's check would.
"""

import django.db.models.deletion
from django.db import migrations, models

# (trigger name part, referenced table, message column, what the error calls it), in lock order.
_REFERENCED = [
    ("thread", "threads_thread", "thread_id", "thread"),
    ("contact", "contacts_contact", "contact_id", "contact"),
    ("account", "threads_channelaccount", "channel_account_id", "channel account"),
]

_MESSAGE_CHECK = """
CREATE OR REPLACE FUNCTION threads_message_refs_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    found_n integer;
    bad bigint;
BEGIN
{blocks}
    RETURN NULL;
END $$;

CREATE TRIGGER threads_message_refs_insert AFTER INSERT ON threads_message
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION threads_message_refs_check();
CREATE TRIGGER threads_message_refs_update AFTER UPDATE ON threads_message
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION threads_message_refs_check();
"""

# One block per reference: the statement's distinct ids, locked in id order, all of which must exist.
_MESSAGE_CHECK_BLOCK = """
    SELECT array_agg(DISTINCT n.{column}) FILTER (WHERE n.{column} IS NOT NULL) INTO ids FROM new_rows n;
    IF ids IS NOT NULL THEN
        SELECT count(*) INTO found_n FROM (SELECT 1 FROM {table} r WHERE r.id = ANY(ids) ORDER BY r.id FOR KEY SHARE) x;
        IF found_n < cardinality(ids) THEN
            SELECT u INTO bad FROM unnest(ids) u WHERE NOT EXISTS (SELECT 1 FROM {table} r WHERE r.id = u) LIMIT 1;
            RAISE EXCEPTION 'threads_message.{column}=% points to no {label}', bad
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;
"""

_REFERENCED_CHECK = """
CREATE OR REPLACE FUNCTION threads_message_{name}_delete_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- As a foreign key's check: nothing to do if a row with the same id exists again by commit (an unmerge
    -- restores a merged-away contact under its old id).
    IF EXISTS (SELECT 1 FROM threads_message m WHERE m.{column} = OLD.id)
       AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.id = OLD.id) THEN
        RAISE EXCEPTION '{table}.id=% is still referenced from threads_message.{column}', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER threads_message_{name}_delete AFTER DELETE ON {table}
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION threads_message_{name}_delete_check();
"""


def _forward_sql() -> str:
    blocks = "".join(_MESSAGE_CHECK_BLOCK.format(table=t, column=c, label=label) for _, t, c, label in _REFERENCED)
    parts = [_MESSAGE_CHECK.format(blocks=blocks)]
    parts += [_REFERENCED_CHECK.format(name=n, table=t, column=c) for n, t, c, _ in _REFERENCED]
    return "\n".join(parts)


def _reverse_sql() -> str:
    parts = [
        "DROP TRIGGER IF EXISTS threads_message_refs_insert ON threads_message;",
        "DROP TRIGGER IF EXISTS threads_message_refs_update ON threads_message;",
        "DROP FUNCTION IF EXISTS threads_message_refs_check();",
    ]
    for name, table, _, _ in _REFERENCED:
        parts += [
            f"DROP TRIGGER IF EXISTS threads_message_{name}_delete ON {table};",
            f"DROP FUNCTION IF EXISTS threads_message_{name}_delete_check();",
        ]
    return "\n".join(parts)


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0005_last_touch_hot_updates"),
        ("threads", "0004_message_deleted_at"),
    ]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="channel_account",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="messages",
                to="threads.channelaccount",
            ),
        ),
        migrations.AlterField(
            model_name="message",
            name="contact",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="messages",
                to="contacts.contact",
            ),
        ),
        migrations.AlterField(
            model_name="message",
            name="thread",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="messages",
                to="threads.thread",
            ),
        ),
        migrations.RunSQL(_forward_sql(), _reverse_sql()),
    ]
