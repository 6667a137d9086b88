"""One request class for the application, with its request methods and properties built in.

``config.add_request_method`` (``request.dbsession``, ``request.tm``, ``request.allocator``,
``request.search``) is, in Pyramid, applied to every request as it is made: reified properties by
creating a new subclass of the request class for that one request.  That costs about 40 µs per
request and, worse, hands CPython's attribute caches and specialised bytecode a class they have
never seen on every request.  Measured in process on single-message reads (interleaved A/B, 15
rounds): 1,183 → 1,053 µs median CPU per request.

:func:`bake_request_extensions` runs once, after the configuration is committed: it puts the
extensions on one subclass of the request factory and registers that class as the factory.
:func:`skip_baked_extensions` then tells the router not to apply them again to the requests it
makes.  The extensions stay registered, so a request made any other way still gets them: one
given to ``pyramid.scripting.prepare`` (or ``bootstrap``), or a subrequest made with
``Request.blank`` and passed to ``request.invoke_subrequest``.
"""

from pyramid.interfaces import IRequestExtensions, IRequestFactory
from pyramid.request import Request, apply_request_extensions
from pyramid.router import Router


def bake_request_extensions(config) -> None:
    config.commit()  # add_request_method is a deferred action: its extensions exist after commit
    registry = config.registry
    extensions = registry.queryUtility(IRequestExtensions)
    if extensions is None:
        return
    base = registry.queryUtility(IRequestFactory, default=Request)
    # Methods are functions and properties are descriptors: on a class they behave exactly as
    # Pyramid's per-request application makes them behave (reify stores the value on the request).
    attributes = {**extensions.methods, **extensions.descriptors, "__module__": __name__}
    registry.registerUtility(type(base.__name__, (base,), attributes), IRequestFactory)


def skip_baked_extensions(router: Router) -> None:
    """After :func:`bake_request_extensions`: the router's own requests are of the baked class,
    so apply nothing more to them.  A subrequest of another class still gets the extensions."""
    extensions = router.request_extensions
    if extensions is None:
        return
    baked = router.request_factory
    router.request_extensions = None
    invoke = router.invoke_subrequest

    def invoke_subrequest(request, use_tweens=False):
        if not isinstance(request, baked):
            apply_request_extensions(request, extensions=extensions)
        return invoke(request, use_tweens=use_tweens)

    router.invoke_subrequest = invoke_subrequest
