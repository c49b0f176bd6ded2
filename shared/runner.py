"""Start one service: ``python -m shared.runner dossier`` (what ``make run`` and the containers use).

Like ``nameko run``, but the configuration is read and checked before anything starts, so a wrong or
missing setting stops the service with one line naming it rather than a traceback.
"""

from __future__ import annotations

import warnings

# eventlet and nameko's pkg_resources import announce their deprecation on every start.
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")
warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging.config  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from shared import clock, logs  # noqa: E402
from shared.auth import auth_settings  # noqa: E402
from shared.config import ConfigurationError, load_config, validate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def service_class(name: str) -> type:
    module = importlib.import_module(f"services.{name}.service")
    return getattr(module, f"{name.capitalize()}Service")


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
    logs.install()
    from nameko.cli.run import run

    run([service_class(args.service)], config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
