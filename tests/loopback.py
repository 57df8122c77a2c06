"""A loopback HTTP server for download and hub tests (the ``server`` and ``hub`` fixtures of conftest.py).

It answers ``server.routes`` (exact path -> ``(status, body, headers, cut)``: fixed files, cut
transfers), and hands every other request to ``server.app(method, path, headers, body)`` when a
test sets one (returning ``(status, body, headers)``, or None for a 404): tests/test_hub.py's
fake hub API. ``server.hits`` lists every ``(method, path)`` in order.
"""

import http.server
import threading


class Handler(http.server.BaseHTTPRequestHandler):

  def _body(self) -> bytes:
    if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
      return self.rfile.read(int(self.headers.get("Content-Length") or 0))
    data = b""
    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
      data += self.rfile.read(size)
      self.rfile.readline()
    self.rfile.readline()  # the blank line after the last chunk
    return data

  def _reply(self, body: bool) -> None:
    self.server.hits.append((self.command, self.path))
    data = self._body() if self.command in ("POST", "PUT") else b""
    route = self.server.routes.get(self.path)
    if route is None and self.server.app is not None:
      answer = self.server.app(self.command, self.path, self.headers, data)
      route = None if answer is None else (*answer, False)
    status, data, headers, cut = route or (404, b"not here", {}, False)
    self.send_response(status)
    self.send_header("Content-Length", str(len(data)))
    for k, v in headers.items():
      self.send_header(k, v)
    self.end_headers()
    if body:
      # A cut transfer: half the promised bytes, then the connection closes.
      self.wfile.write(data[: len(data) // 2] if cut else data)

  def do_GET(self):
    self._reply(body=True)

  def do_HEAD(self):
    self._reply(body=False)

  def do_POST(self):
    self._reply(body=True)

  def do_PUT(self):
    self._reply(body=True)

  def log_message(self, *args):
    pass


def start() -> http.server.ThreadingHTTPServer:
  """A server on a free loopback port, serving from a daemon thread; ``stop`` it."""
  srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
  srv.routes, srv.hits, srv.app = {}, [], None
  srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
  threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
  return srv


def stop(srv) -> None:
  srv.shutdown()
  srv.server_close()
