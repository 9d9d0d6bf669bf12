"""The web console: server-rendered pages under /ui/<owner>/<workspace>/ for the people who watch the
relay. Pages in views.py, who is signed in in signin.py; the session key is filerelay.secret_key's."""

from __future__ import annotations

import datetime as dt

from flask import Flask, Request, render_template, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers.response import Response

from filerelay.api.console.views import assets, blueprint
from filerelay.secret_key import secret_key
from filerelay.settings import Settings

csrf = CSRFProtect()

# The console's own pages load only their own stylesheet; nothing else runs or frames them.
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed session cookie, opened only under the console's path. The browser sends it nowhere
    else (SESSION_COOKIE_PATH), and opening an empty one for each ArchiveLink and REST request built a
    signing serializer every time (4 % of a `create`'s CPU). Elsewhere the session is Flask's null one,
    which refuses to be written."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(self.get_cookie_path(app)):
            return None
        return super().open_session(app, request)


def init_app(app: Flask, settings: Settings) -> None:
    app.session_interface = ConsoleSessions()
    app.secret_key = secret_key(settings)
    app.config.update(
        SESSION_COOKIE_NAME="filerelay_console",
        SESSION_COOKIE_PATH="/ui/",  # never sent to the REST API or ArchiveLink
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        # Flask checks the signature's age on every request and re-signs the cookie on each one: an idle
        # session expires on the server's clock, not the browser's.
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=settings.console_idle_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        # Only the console's forms are checked (below); the REST API and ArchiveLink authenticate every request.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        WTF_CSRF_SSL_STRICT=settings.session_cookie_secure,
    )
    csrf.init_app(app)
    app.register_blueprint(blueprint)
    app.register_blueprint(assets)


@blueprint.before_request
def _protect() -> None:
    if request.method == "POST":
        csrf.protect()


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.errorhandler(CSRFError)
def _csrf_error(error: CSRFError) -> tuple[str, int]:
    message = "This form was not sent from this console's page (or its page is too old): nothing was changed."
    return render_template("console/error.html", message=message), 400


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int]:
    messages = {
        401: "Your session has ended: sign in again. Nothing was changed.",
        403: "Your key's role does not allow this. Nothing was changed.",
        404: "There is nothing here (or not in this workspace).",
    }
    code = error.code or 500
    return render_template("console/error.html", message=messages.get(code, error.description)), code
