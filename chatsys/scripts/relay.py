"""chatsys-relay <ini>: publish the outbox to RabbitMQ (several may run at once)."""

from chatsys.broker import connection_parameters, topology_from_settings
from chatsys.outbox.relay import Relay, RelaySettings
from chatsys.scripts import load, parser, serve_metrics


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics here")
    args = p.parse_args(argv)
    env = load(args.config_uri)
    registry = env["registry"]
    settings = registry.settings
    serve_metrics(args.metrics_port)
    params = connection_parameters({**settings, "amqp.connection_name": "chatsys-relay"})
    try:
        Relay(
            registry["db_engine"], params, topology_from_settings(settings), RelaySettings.from_settings(settings)
        ).run()
    finally:
        env["closer"]()
