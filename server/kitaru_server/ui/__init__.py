"""The web UI, served by the Kitaru server (``create_app`` includes :data:`router`): server-rendered pages that work offline.

Jinja2 templates (``templates/``), one stylesheet and one script (``static/``),
all served by the server itself: no CDN, no build step. Pages: executions
(filters, paging, live refresh), an execution (timeline, DAG, calls with their
attempts, outputs, metadata, logs and LLM calls; wait forms; replay, retry,
resume and cancel), stacks, and the login page (when auth is on).
"""

from kitaru_server.ui._routes import router

__all__ = ["router"]
