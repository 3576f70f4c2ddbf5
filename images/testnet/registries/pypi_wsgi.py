"""pypiserver's WSGI app over the seeded wheels, for gunicorn (which terminates TLS)."""
import pypiserver

application = pypiserver.app(roots=["/srv/pypi/packages"])
