"""The contact timeline reads messages through the contact's threads, so messages lose their (contact, sent_at)
index: one random index insert fewer for every ingested message. A check constraint states what that relies on:
a message with a contact is in a thread.

Both steps are written for a large table: the index is dropped concurrently, and the constraint is added NOT VALID
(no table scan under an exclusive lock) and then validated (a scan that lets writes go on).
"""

from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations, models

CONSTRAINT = models.CheckConstraint(
    condition=models.Q(("contact__isnull", True), ("thread__isnull", False), _connector="OR"),
    name="message_contact_has_thread",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("threads", "0007_message_thread_key_index_only"),
    ]

    operations = [
        RemoveIndexConcurrently(model_name="message", name="message_contact_order"),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddConstraint(model_name="message", constraint=CONSTRAINT)],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE threads_message ADD CONSTRAINT message_contact_has_thread "
                    "CHECK (contact_id IS NULL OR thread_id IS NOT NULL) NOT VALID",
                    reverse_sql="ALTER TABLE threads_message DROP CONSTRAINT message_contact_has_thread",
                ),
                migrations.RunSQL(
                    "ALTER TABLE threads_message VALIDATE CONSTRAINT message_contact_has_thread",
                    reverse_sql=migrations.RunSQL.noop,
                ),
            ],
        ),
    ]
