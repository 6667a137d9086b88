"""chatsys: a multi-tenant chat backend.  ``main`` is the WSGI application factory."""


def main(global_config, **settings):
    """Build the WSGI application (``paste.app_factory``): the web over this ini's services."""
    from pyramid.config import Configurator

    from chatsys.runtime.services import configure
    from chatsys.web.metrics import RequestLog

    services = configure(settings)
    with Configurator(settings=services.settings) as config:
        config.registry["services"] = services
        config.include("chatsys.web")
    return RequestLog(config.make_wsgi_app())
