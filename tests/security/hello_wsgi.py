"""A WSGI app that answers 200 to anything: the real gunicorn serves it to test the access logger."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
