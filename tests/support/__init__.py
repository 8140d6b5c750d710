"""Real local servers (blog, SMTP, webhook) that the notifier's tests talk to."""

from tests.support.blog_server import BlogServer, RecordedRequest
from tests.support.smtp_server import ReceivedMail, Rejection, SmtpServer
from tests.support.webhook_receiver import ReceivedWebhook, ScriptedResponse, WebhookReceiver

__all__ = [
    "BlogServer",
    "ReceivedMail",
    "ReceivedWebhook",
    "RecordedRequest",
    "Rejection",
    "ScriptedResponse",
    "SmtpServer",
    "WebhookReceiver",
]
