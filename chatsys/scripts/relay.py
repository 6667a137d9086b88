"""chatsys-relay <ini>: publish the outbox to RabbitMQ (several may run at once)."""

from chatsys.outbox.relay import Relay, RelaySettings
from chatsys.runtime.process import load
from chatsys.scripts import parser, serve_metrics


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics here")
    args = p.parse_args(argv)
    services = load(args.config_uri)
    serve_metrics(args.metrics_port)
    try:
        Relay(
            services.engine,
            services.amqp_parameters("chatsys-relay"),
            services.topology,
            RelaySettings.from_settings(services.settings),
        ).run()
    finally:
        services.close()
