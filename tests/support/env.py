"""Where the servers are, from the CHATSYS_* environment (as the compose test service sets it).

Read once at start-up and removed from the environment: the application gives those variables
precedence over its ini, and the tests must point each app they build at this run's own
database, or at a dead one, or at the Elasticsearch double.
"""

import os

from chatsys.runtime.settings import ENV_OVERRIDES

SERVER_ENV: dict[str, str] = {name: os.environ.pop(name) for name in ENV_OVERRIDES if name in os.environ}
