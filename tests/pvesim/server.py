"""HTTPS transport: a threaded ``http.server`` that hands each request to ``Simulator.handle``.

HTTP/1.1 keep-alive is supported (proxmoxer keeps one session open), TLS handshakes happen in
the connection's own thread, and client-side TLS aborts (a client that does not trust the CA)
are not reported as server errors.
"""

import json
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_QUIET_ERRORS = (ssl.SSLError, ConnectionError, TimeoutError, socket.timeout, BrokenPipeError)


def _reason(text):
    """Make a message usable as an HTTP reason phrase (one latin-1 line)."""
    line = " ".join(str(text).split())
    return line.encode("latin-1", "replace").decode("latin-1")[:1000] or "Error"


class PveRequestHandler(BaseHTTPRequestHandler):
    """Serves GET/POST/PUT/DELETE by delegating to the server's Simulator."""

    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    timeout = 120

    def setup(self):
        self.request.settimeout(self.timeout)
        # Headers and body go out as separate TLS records; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def _serve(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "invalid Content-Length")
            return
        body = self.rfile.read(length) if length > 0 else b""
        path, _ignored, query = self.path.partition("?")
        response = self.server.app.handle(self.command, path, query, body, self.headers, self.client_address)
        payload = json.dumps(response.body, separators=(",", ":")).encode()
        self.send_response(response.status, _reason(response.reason))
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "max-age=0")
        self.send_header("Pragma", "no-cache")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        if self.server.verbose:
            sys.stderr.write("pvesim: %s - %s\n" % (self.address_string(), format % args))


class PveHttpsServer(ThreadingHTTPServer):
    """A threaded HTTPS server bound to one address; ``port=0`` picks a free port."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, app, host, port, cert_file, key_file, verbose=False):
        self.app = app
        self.verbose = verbose
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.address_family = family
        super().__init__((host, port), PveRequestHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_file, key_file)
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    @property
    def port(self):
        """The bound TCP port."""
        return self.server_address[1]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, _QUIET_ERRORS):
            return
        super().handle_error(request, client_address)
