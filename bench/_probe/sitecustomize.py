"""Benchmark probe, active only when ``BENCH_PROBE_LOG`` is set (bench/ puts this directory on
PYTHONPATH of the processes it starts, including those the Pulumi CLI starts for it).

Appends JSON lines to that file: one ``start`` per Python process (with its command line), one
``client`` per ``CloudTasksClient`` constructed, and ``call`` spans (start/end times) of the
provider's check/diff/create/read/delete. It patches after import (a meta-path hook), so a process
that never imports pulumi_cloudtasks pays nothing but the hook."""
import os

if os.environ.get("BENCH_PROBE_LOG"):
    import importlib.abc
    import importlib.machinery
    import json
    import sys
    import threading
    import time

    _PATH = os.environ["BENCH_PROBE_LOG"]
    _LOCK = threading.Lock()

    def _emit(**event):
        event.setdefault("t", time.time())
        event["pid"] = os.getpid()
        line = json.dumps(event) + "\n"
        with _LOCK:
            fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    _emit(ev="start", argv=list(getattr(sys, "orig_argv", [])))

    def _span(cls, name):
        fn = getattr(cls, name)

        def wrapper(self, *args, **kwargs):
            t0 = time.time()
            ok = False
            try:
                result = fn(self, *args, **kwargs)
                ok = True
                return result
            finally:
                _emit(ev="call", op=name, t0=t0, t=time.time(), ok=ok)

        setattr(cls, name, wrapper)

    def _patch(module_name, module):
        if module_name == "pulumi_cloudtasks.provider":
            for op in ("check", "diff", "create", "read", "delete", "configure"):
                _span(module.TaskProvider, op)
        elif module_name == "pulumi_cloudtasks.client":
            cls = module.tasks_v2.CloudTasksClient
            init = cls.__init__

            def counted(self, *args, **kwargs):
                _emit(ev="client")
                init(self, *args, **kwargs)

            cls.__init__ = counted

    class _Finder(importlib.abc.MetaPathFinder):
        WATCH = ("pulumi_cloudtasks.provider", "pulumi_cloudtasks.client")

        def find_spec(self, fullname, path, target=None):
            if fullname not in self.WATCH:
                return None
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return spec
            loader = spec.loader
            exec_module = loader.exec_module

            class _Loader(importlib.abc.Loader):
                def create_module(self, spec):
                    return loader.create_module(spec)

                def exec_module(self, module):
                    exec_module(module)
                    _patch(fullname, module)

            spec.loader = _Loader()
            return spec

    sys.meta_path.insert(0, _Finder())
