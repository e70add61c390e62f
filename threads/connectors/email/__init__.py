"""E-mail connector: MIME normalizer (mime.py), IMAP poller (imap.py), SMTP sender (smtp.py)."""

from threads.connectors import register_connection_test, register_normalizer, register_poller, register_sender
from threads.connectors.email.imap import poll_account, test_connection
from threads.connectors.email.mime import normalize_email_event
from threads.connectors.email.smtp import prepare_email, send_email

register_normalizer("email", normalize_email_event)
register_poller("email", poll_account)
register_sender("email", send_email, prepare=prepare_email)
register_connection_test("email", test_connection)
