"""The figure-2 worker in a process of its own, so its receive times do not wait for the GIL of the
bench process (where 16 threads are busy creating the tasks): `common.Worker` plus a control port with
`GET /` (its records, JSON), `GET /count` and `POST /` (reset). Prints its URL when ready, serves until SIGTERM."""
from __future__ import annotations

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common import Worker


def main() -> None:
    with Worker() as worker:
        class Control(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # /count: how many so far; anything else: the records
                with worker.lock:
                    body = json.dumps(len(worker.records) if self.path == "/count" else worker.records).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                worker.reset()
                self.send_response(204)
                self.end_headers()

        control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
        threading.Thread(target=control.serve_forever, daemon=True).start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print(f"{worker.url} http://127.0.0.1:{control.server_address[1]}", flush=True)
        stop.wait()
        control.shutdown()


if __name__ == "__main__":
    sys.exit(main())
