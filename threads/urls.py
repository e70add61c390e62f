from django.urls import path

from threads import views
from threads.views import connect, oauth

app_name = "threads"
urlpatterns = [
    path("", views.index, name="index"),
    path("unmatched/", views.unmatched, name="unmatched"),
    path("unmatched/<int:pk>/assign/", views.unmatched_assign, name="unmatched_assign"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/reply/", views.reply, name="reply"),
    path("<int:pk>/assign/", views.assign, name="assign"),
    path("<int:pk>/close/", views.close, name="close"),
    path("<int:pk>/reopen/", views.reopen, name="reopen"),
    path("<int:pk>/split/", views.split, name="split"),
    path("<int:pk>/merge/", views.merge, name="merge"),
    path("messages/<int:pk>/move/", views.message_move, name="message_move"),
    path("attachments/<int:pk>/", views.attachment, name="attachment"),
    path("contact/<int:contact_id>/", views.contact_conversation, name="contact"),
    path("channels/", views.account_list, name="accounts"),
    path("channels/connect/", connect.account_connect, name="account_connect"),
    path("channels/connect/<slug:kind>/", connect.account_connect, name="account_connect_kind"),
    path("channels/<int:pk>/", views.account_detail, name="account_detail"),
    path("channels/<int:pk>/edit/", connect.account_edit, name="account_edit"),
    path("channels/<int:pk>/test/", connect.account_test, name="account_test"),
    path("channels/<int:pk>/oauth/twitter/", oauth.twitter_oauth_start, name="twitter_oauth_start"),
    path("channels/oauth/twitter/callback/", oauth.twitter_oauth_callback, name="twitter_oauth_callback"),
    path("channels/<int:pk>/oauth/facebook/", oauth.facebook_oauth_start, name="facebook_oauth_start"),
    path("channels/oauth/facebook/callback/", oauth.facebook_oauth_callback, name="facebook_oauth_callback"),
    path("channels/<int:pk>/retry/", views.account_retry, name="account_retry"),
    path("channels/<int:pk>/sync/", views.account_sync, name="account_sync"),
    path("channels/<int:pk>/pause/", views.account_pause, name="account_pause"),
    path("channels/<int:pk>/resume/", views.account_resume, name="account_resume"),
]
