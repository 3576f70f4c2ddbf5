"""pypiserver's WSGI app over the seeded wheels, for gunicorn (which terminates TLS), and, for
requests to git.bottle.test, git's smart HTTP (``git http-backend``) over /srv/git (clone only)."""
import os
import subprocess

import pypiserver

pypi = pypiserver.app(roots=["/srv/pypi/packages"])
GIT_HOST = "git.bottle.test"
# The CGI variables git http-backend reads (RFC 3875), passed on from the WSGI environ.
CGI_KEYS = ("REQUEST_METHOD", "QUERY_STRING", "PATH_INFO", "CONTENT_TYPE", "CONTENT_LENGTH", "REMOTE_ADDR",
            "REMOTE_USER", "SERVER_PROTOCOL", "HTTP_CONTENT_ENCODING", "HTTP_GIT_PROTOCOL")


def git(environ, start_response):
    env = {key: environ[key] for key in CGI_KEYS if environ.get(key)}
    env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), GIT_PROJECT_ROOT="/srv/git", GIT_HTTP_EXPORT_ALL="1")
    body = environ["wsgi.input"].read() if environ.get("REQUEST_METHOD") == "POST" else b""
    env["CONTENT_LENGTH"] = str(len(body))  # a chunked request body arrives whole here
    proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=120,
                          check=False)
    head, _sep, payload = proc.stdout.partition(b"\r\n\r\n")
    if not _sep:
        head, _sep, payload = proc.stdout.partition(b"\n\n")
    status, headers = "200 OK", []
    for line in head.decode("latin-1").splitlines():
        name, _colon, value = line.partition(":")
        if name.lower() == "status":
            status = value.strip()
        elif name:
            headers.append((name.strip(), value.strip()))
    if proc.returncode != 0 and not head:
        status, headers, payload = "500 Internal Server Error", [("Content-Type", "text/plain")], proc.stderr
    start_response(status, headers + [("Content-Length", str(len(payload)))])
    return [payload]


def application(environ, start_response):
    if environ.get("HTTP_HOST", "").split(":")[0].lower() == GIT_HOST:
        return git(environ, start_response)
    return pypi(environ, start_response)
