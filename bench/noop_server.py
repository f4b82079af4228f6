"""Baseline of figure 1: a bare grpcio servicer of google.cloud.tasks.v2.CloudTasks that answers every
RPC with an empty response of the right type, in the same server setup as the emulator's
(``grpc.server(HandlerPool(), options=[("grpc.so_reuseport", 0)])``: the emulator's handler threads,
so the ratio measures the emulator's work per call, not a thread-pool choice; generic handler built
from ``core/methods.py``). Prints ``export CLOUD_TASKS_EMULATOR_HOST=127.0.0.1:PORT``
like the emulator and serves until SIGTERM."""
from __future__ import annotations

import signal
import threading

import grpc

from cloudtasks_emulator.core.methods import METHODS, SERVICE_NAME
from cloudtasks_emulator.handler_pool import HandlerPool


def _noop(response_type):
    def handle(request, context):
        return response_type()

    return handle


def main() -> None:
    server = grpc.server(HandlerPool(), options=[("grpc.so_reuseport", 0)])
    handlers = {name: grpc.unary_unary_rpc_method_handler(_noop(m.response), request_deserializer=m.request.FromString,
                                                          response_serializer=m.response.SerializeToString)
                for name, m in METHODS.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"export CLOUD_TASKS_EMULATOR_HOST=127.0.0.1:{port}", flush=True)
    stop.wait()
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
