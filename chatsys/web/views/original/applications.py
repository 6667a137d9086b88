"""ApplicationsController of the original API: create, show, update (204), index (its chats)."""

from pyramid.httpexceptions import HTTPNoContent
from pyramid.view import view_config

from chatsys.domain import applications, chats
from chatsys.web.pagination import original_list
from chatsys.web.params import required_text
from chatsys.web.views.original import rails_time


def application_json(row) -> dict:
    return {
        "app_token": row.token,
        "name": row.name,
        "updated_at": rails_time(row.updated_at),
        "created_at": rails_time(row.created_at),
        "chats_count": row.chats_count,
    }


@view_config(route_name="original.applications.collection", request_method="POST", renderer="json")
def create(request):
    name = required_text(request.original_params, "name")
    request.response.status = 201
    return application_json(applications.create(request.dbsession, name))


@view_config(route_name="original.applications.item", request_method="GET", renderer="json")
def show(context, request):
    return application_json(applications.load(request.dbsession, context))


@view_config(route_name="original.applications.item", request_method="PATCH")
def update(context, request):
    applications.rename(request.dbsession, context, required_text(request.original_params, "name"))
    return HTTPNoContent()


@view_config(route_name="original.applications.chats", request_method="GET", renderer="json")
def index(context, request):
    return original_list(
        request,
        lambda direction, cursor, limit: chats.page(request.dbsession, context, direction, cursor, limit),
        lambda row: {
            "number": row.number,
            "name": row.name,
            "created_at": rails_time(row.created_at),
            "updated_at": rails_time(row.updated_at),
            "messages_count": row.messages_count,
        },
    )
