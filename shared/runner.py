"""Start one service: ``python -m shared.runner dossier`` (what ``make run`` and the containers use).

Like ``nameko run``, but the configuration is read and checked before anything starts, so a wrong or
missing setting stops the service with one line naming it rather than a traceback; and SIGINT and SIGTERM
both start one graceful stop, however many arrive (Ctrl-C on ``make run`` sends the terminal's SIGINT and
``make run``'s SIGTERM to every service: two concurrent stops of nameko's runner hang until killed).
"""

from __future__ import annotations

import warnings

# eventlet and nameko's pkg_resources import announce their deprecation on every start.
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")
warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated")

import eventlet  # noqa: E402
from eventlet.hubs import trampoline  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import errno  # noqa: E402
import importlib  # noqa: E402
import logging.config  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from shared import clock, logs  # noqa: E402
from shared.auth import auth_settings  # noqa: E402
from shared.config import ConfigurationError, load_config, validate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def service_class(name: str) -> type:
    module = importlib.import_module(f"services.{name}.service")
    return getattr(module, f"{name.capitalize()}Service")


def wake_on_signals() -> None:
    """Make a signal wake the hub at once, whatever it is waiting for.

    The hub sleeps in ``epoll`` until its next timer or socket. A signal interrupts that sleep, Python runs
    the handler (which only schedules the stop), then resumes the very same sleep (PEP 475): a service with
    nothing to do, such as the payment service between its reconciliation rounds, went on sleeping until
    its next timer, a minute later, and Kubernetes' grace period or ``make run``'s 15 s ran out first.
    With a wakeup descriptor, the signal also writes a byte that the hub is watching, so its sleep ends
    and the scheduled stop runs.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def drain() -> None:
        while True:
            trampoline(read_end, read=True)
            with contextlib.suppress(BlockingIOError):
                os.read(read_end, 4096)

    eventlet.spawn_n(drain)


def serve(service: type, config: dict) -> None:
    """Run ``service`` until SIGINT or SIGTERM, then stop it once: in-flight work finishes first."""
    from nameko.runners import ServiceRunner

    runner = ServiceRunner(config)
    runner.add_service(service)
    stopping: list[int] = []

    def stop(signum: int, _frame) -> None:
        if not stopping:
            stopping.append(signum)
            # A signal handler runs in the hub's main loop, where eventlet's primitives cannot block.
            eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    wake_on_signals()
    runner.start()
    running = eventlet.spawn(runner.wait)
    while True:
        try:
            running.wait()
            return
        except OSError as exc:  # a signal arriving while the hub waits on a socket: keep waiting
            if exc.errno != errno.EINTR:
                raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one motcua service.")
    parser.add_argument("service", help="dossier, postal, esign or metrics")
    parser.add_argument("--config", help="config.yml (default services/<service>/config.yml)")
    args = parser.parse_args(argv)
    path = Path(args.config) if args.config else ROOT / "services" / args.service / "config.yml"
    try:
        config = load_config(path)
        validate(config)
        if refused := clock.refusal(os.environ):
            raise ConfigurationError(refused)
        auth_settings(config, args.service)
    except ConfigurationError as exc:
        print(f"{args.service}: {exc}", file=sys.stderr)
        return 2
    if "LOGGING" in config:
        logging.config.dictConfig(config["LOGGING"])
    try:
        logs.use_format(os.environ.get("LOG_FORMAT") or "plain", args.service)
    except ValueError as exc:
        print(f"{args.service}: {exc}", file=sys.stderr)
        return 2
    logs.install()
    serve(service_class(args.service), config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
