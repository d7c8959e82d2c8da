"""gunicorn's access log, without the lines that would undo Confide's anonymity.

An access-log line carries the client's address (from X-Forwarded-For), the time to the second
and the user agent: for POST /api/v1/agent/confide that ties an anonymous report to the computer
it came from. So the web process never writes those lines (named reports included: the path
alone does not say which kind a request is). Every other request is logged as configured.

Used with `gunicorn --logger-class=safeguard.core.accesslog.AccessLogWithoutConfide` (Dockerfile,
docker-compose.yml, Makefile); nginx skips the same path (deploy/nginx.conf).
"""

from gunicorn.glogging import Logger

# Paths whose requests are not written to the access log.
UNLOGGED_PATHS = ("/api/v1/agent/confide",)


class AccessLogWithoutConfide(Logger):
    def access(self, resp, req, environ, request_time) -> None:
        if environ.get("PATH_INFO", "").rstrip("/") in UNLOGGED_PATHS:
            return
        super().access(resp, req, environ, request_time)
