"""Applications: create, read, rename."""

import secrets

from pyramid.view import view_config
from sqlalchemy import bindparam, select

from chatsys.models import Application, utcnow
from chatsys.representations import application_json
from chatsys.resources import validated_body

TOKEN_BYTES = 24  # 192 bits from the OS CSPRNG, 32 URL-safe characters
APPLICATIONS = Application.__table__
BY_ID = select(APPLICATIONS).where(APPLICATIONS.c.id == bindparam("id"))


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@view_config(route_name="applications.collection", request_method="POST", renderer="json")
def create_application(request):
    fields = validated_body(request, "ApplicationCreate")
    now = utcnow()
    app = Application(token=new_token(), name=fields["name"], chats_count=0, created_at=now, updated_at=now)
    request.dbsession.add(app)
    request.dbsession.flush()
    request.response.status = 201
    return application_json(app)


@view_config(route_name="applications.item", request_method="GET", renderer="json")
def get_application(context, request):
    return application_json(request.dbsession.execute(BY_ID, {"id": context.application.id}).one())


@view_config(route_name="applications.item", request_method="PATCH", renderer="json")
def update_application(context, request):
    fields = validated_body(request, "ApplicationUpdate")
    app = request.dbsession.get(Application, context.application.id, with_for_update=True)
    app.name = fields["name"]
    app.updated_at = utcnow()
    request.dbsession.flush()
    return application_json(app)
