"""/v1 applications: create, read, rename, delete."""

from pyramid.view import view_config

from chatsys.domain import applications
from chatsys.domain.fields import isoformat
from chatsys.web.validation import json_body


@view_config(route_name="v1.applications.collection", request_method="POST", renderer="json")
def create_application(request):
    fields = json_body(request, "ApplicationCreate")
    request.response.status = 201
    return applications.representation(applications.create(request.dbsession, fields["name"]))


@view_config(route_name="v1.applications.item", request_method="GET", renderer="json")
def get_application(context, request):
    return applications.representation(applications.load(request.dbsession, context))


@view_config(route_name="v1.applications.item", request_method="PATCH", renderer="json")
def rename_application(context, request):
    fields = json_body(request, "ApplicationUpdate")
    return applications.representation(applications.rename(request.dbsession, context, fields["name"]))


@view_config(route_name="v1.applications.item", request_method="DELETE", renderer="json")
def delete_application(context, request):
    """202: the token names nothing from now on; its chats, messages and search documents are
    purged in the background."""
    deleted_at = applications.delete(request.dbsession, context)
    request.response.status = 202
    return {"app_token": context.token, "deleted_at": isoformat(deleted_at), "purge": "in progress"}
