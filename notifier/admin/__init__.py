"""What an operator looks at while the daemon runs: Prometheus metrics, a health check and a
read-only status page, served by the admin listener (`admin.listen`, off by default).

    metrics  the `notifier_` metrics: counters fed by the cycles' reports, gauges read from
             the state at each scrape
    page     the status page at `/`, rendered from the state, every value escaped
    server   the aiohttp listener that serves them
"""

from notifier.admin.metrics import Metrics
from notifier.admin.page import PageFacts, read_facts, render_page
from notifier.admin.server import AdminServer, AdminView

__all__ = ["AdminServer", "AdminView", "Metrics", "PageFacts", "read_facts", "render_page"]
