"""chatsys-stream <ini>: the event-stream gateway (Server-Sent Events from the RabbitMQ stream)."""

import asyncio

from chatsys.runtime.process import load
from chatsys.scripts import parser
from chatsys.stream import StreamSettings


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--port", type=int, default=None, help="listen on this port (default: stream.port)")
    args = p.parse_args(argv)
    services = load(args.config_uri)
    settings = StreamSettings.from_settings(services.settings)
    if args.port is not None:
        settings = StreamSettings(**{**settings.__dict__, "port": args.port})
    from chatsys.stream.app import serve

    try:
        asyncio.run(serve(services, settings))
    finally:
        services.close()
