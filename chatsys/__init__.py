"""chatsys: a multi-tenant chat backend.  ``main`` is the WSGI application factory.

Nothing is imported at package level: ``chatsys-web``'s master process imports this package but
never builds the application, and should stay small.
"""


def main(global_config, **settings):
    """Build the WSGI application (``paste.app_factory``)."""
    from pyramid.config import Configurator

    from chatsys.lookups import Lookups
    from chatsys.representations import json_renderer
    from chatsys.request import bake_request_extensions, skip_baked_extensions
    from chatsys.settings import as_int, resolve_settings

    settings = resolve_settings(settings)
    with Configurator(settings=settings) as config:
        config.registry["chatsys.max_body_bytes"] = as_int(settings, "chatsys.max_body_bytes")
        config.registry["lookups"] = Lookups(as_int(settings, "chatsys.lookup_cache_size"))
        config.add_renderer("json", json_renderer())
        config.include(".db")
        config.include(".numbering")
        config.include(".broker")
        config.include(".search")
        config.include(".metrics")
        config.include(".openapi")
        config.include(".validation")
        config.include(".routes")
        config.scan(".views")
        bake_request_extensions(config)
    app = config.make_wsgi_app()
    skip_baked_extensions(app)
    return app
