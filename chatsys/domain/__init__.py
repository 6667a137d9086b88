"""The domain layer: one module per aggregate (applications, chats, messages), each owning its
table, its SQL, the events it writes to the outbox and its representation.  Both API surfaces
(``chatsys.web.views.original`` and ``chatsys.web.views.v1``) and the consumers call these
modules; these modules never call back into the web."""
