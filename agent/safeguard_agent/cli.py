"""`safeguard-agent`: the endpoint agent's command line.

Subcommands: `scan` (match keywords in text on stdin); `enrol` (trade an enrolment code for this
device's token), `run` (the agent, with its tray icon or `--headless`) and `status` (server, device id,
last contact, policy version, outbox depth). `enrol`, `run` and `status` take `--config-dir` (else
SAFEGUARD_AGENT_HOME, else the OS's per-machine folder: see safeguard_agent.config).
"""

import argparse
import io
import json
import sys
from collections.abc import Sequence

from safeguard_agent import __version__


def _engine_for(args: argparse.Namespace):
    from safeguard_agent.keywords.engine import KeywordEngine
    from safeguard_agent.keywords.library import config_specs, library_specs, load_library

    if args.library:
        return KeywordEngine.build(*library_specs(load_library(args.library)))
    try:
        with open(args.policies, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as error:
        raise SystemExit(f"safeguard-agent scan: cannot read {args.policies}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise SystemExit(f"safeguard-agent scan: {args.policies} is not JSON: {error}") from None
    if not isinstance(config, dict) or not isinstance(config.get("policies"), list):
        raise SystemExit(f'safeguard-agent scan: {args.policies} has no "policies" list (agent config shape)')
    try:
        return KeywordEngine.build(*config_specs(config))
    except (KeyError, TypeError, ValueError) as error:
        raise SystemExit(f"safeguard-agent scan: bad policy in {args.policies}: {error}") from None


def cmd_scan(args: argparse.Namespace) -> int:
    from safeguard_agent.keywords.lines import scan_lines

    engine = _engine_for(args)
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="")
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n", write_through=True)
    scan_lines(engine, stdin, stdout)
    return 0


# -- enrol / run / status ---------------------------------------------------------------------------


def _state_dir(args: argparse.Namespace):
    from safeguard_agent.config import state_dir

    return state_dir(getattr(args, "config_dir", None))


def cmd_enrol(args: argparse.Namespace) -> int:
    import platform
    import socket
    from datetime import UTC, datetime

    from safeguard_agent.client import ApiClient, Outcome
    from safeguard_agent.config import (
        Enrolment,
        NotEnrolled,
        Status,
        ensure_state_dir,
        load_enrolment,
        save_enrolment,
        save_status,
    )
    from safeguard_agent.sync import PolicySync

    server = args.server.strip().rstrip("/")
    if not server.startswith(("http://", "https://")):
        print(f"safeguard-agent enrol: --server must start with https:// (or http://), not {server!r}", file=sys.stderr)
        return 2
    directory = ensure_state_dir(_state_dir(args))
    hostname = args.hostname or socket.gethostname()
    client = ApiClient(server)
    result = client.enrol(code=args.code, hostname=hostname, os_name=platform.platform(terse=True))
    if result.outcome is not Outcome.OK or not isinstance(result.body, dict) or "token" not in result.body:
        reason = result.describe()
        print(f"safeguard-agent enrol: enrolment failed: {reason}", file=sys.stderr)
        return 1
    try:
        previous = load_enrolment(directory)
        print(f"Replacing the previous enrolment (device {previous.device_id}); queued reports are kept.")
    except NotEnrolled:
        pass
    enrolment = Enrolment(
        server=server,
        device_id=str(result.body["device_id"]),
        token=str(result.body["token"]),
        enrolled_at=datetime.now(UTC).isoformat(),
    )
    save_enrolment(directory, enrolment)
    print(f"Enrolled {hostname} as device {enrolment.device_id} with {server}.")
    # Fetch the policies now, so monitoring works from the first boot even if the server is away then.
    client.token = enrolment.token
    sync = PolicySync(client, directory, fallback_library=None)
    sync_result = sync.refresh()
    status = Status(last_contact=datetime.now(UTC).isoformat())
    if sync_result.ok:
        status.last_sync, status.policy_version = status.last_contact, sync.version
        print("Downloaded the keyword policies.")
    else:
        print(f"Could not download the policies yet ({sync_result.describe()}); the agent will retry.")
    save_status(directory, status)
    print(f"State folder: {directory}")
    return 0


def _configure_logging(directory, level: str) -> None:
    import logging
    import logging.handlers

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    try:
        from safeguard_agent.config import LOG_FILE

        file_handler = logging.handlers.RotatingFileHandler(
            directory / LOG_FILE, maxBytes=1_000_000, backupCount=3, encoding="utf-8"
        )
        handlers.append(file_handler)
    except OSError as error:
        print(f"safeguard-agent: not logging to a file ({error})", file=sys.stderr)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    from safeguard_agent.config import NotEnrolled, ensure_state_dir, load_enrolment

    directory = ensure_state_dir(_state_dir(args))
    try:
        enrolment = load_enrolment(directory)
    except NotEnrolled as error:
        print(
            f"safeguard-agent run: {error} Run `safeguard-agent enrol --server URL --code CODE` first.", file=sys.stderr
        )
        return 2
    _configure_logging(directory, args.log_level)
    from safeguard_agent.runtime import Agent, tune_memory

    tune_memory()  # before any thread starts
    agent = Agent(directory, enrolment=enrolment)

    def request_stop(signum, frame) -> None:
        agent.stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if args.headless:
        agent.run_until_stopped()
        return 0
    from safeguard_agent.tray import run_tray

    agent.start()
    try:
        run_tray(agent)  # returns when the tray ends, or at once where there is no system tray
        while not agent.stop_requested.wait(1.0):
            pass
    finally:
        agent.stop()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from safeguard_agent.config import OUTBOX_FILE, NotEnrolled, load_enrolment, load_status, read_json

    directory = _state_dir(args)
    try:
        enrolment = load_enrolment(directory)
    except NotEnrolled as error:
        print(f"safeguard-agent status: {error}", file=sys.stderr)
        return 2
    status = load_status(directory)
    cached = read_json(directory / "config.json")
    policy_version = status.policy_version or (
        cached.get("config", {}).get("version") if isinstance(cached, dict) else None
    )
    depth, dead = 0, 0
    if (directory / OUTBOX_FILE).exists():
        from safeguard_agent.outbox import Outbox

        outbox = Outbox(directory / OUTBOX_FILE)
        stats = outbox.stats()
        outbox.close()
        depth, dead = stats["depth"], stats["dead"]
    report = {
        "server": enrolment.server,
        "device_id": enrolment.device_id,
        "last_contact": status.last_contact,
        "last_sync": status.last_sync,
        "policy_version": policy_version,
        "outbox_depth": depth,
        "outbox_moved_aside": dead,
        "paused_until": status.paused_until,
        "state_dir": str(directory),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Server:          {report['server']}")
    print(f"Device id:       {report['device_id']}")
    print(f"Last contact:    {report['last_contact'] or 'never'}")
    print(f"Last sync:       {report['last_sync'] or 'never'}")
    print(f"Policy version:  {report['policy_version'] or 'none yet'}")
    print(f"Outbox depth:    {depth}" + (f" ({dead} refused by the server, kept aside)" if dead else ""))
    if report["paused_until"]:
        print(f"Paused until:    {report['paused_until']}")
    print(f"State folder:    {report['state_dir']}")
    return 0


def _add_config_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config-dir",
        metavar="DIR",
        help="the agent's state folder (default: $SAFEGUARD_AGENT_HOME, else the OS's per-machine folder)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safeguard-agent", description="Safeguard endpoint agent.")
    parser.add_argument("--version", action="version", version=f"safeguard-agent {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    scan = commands.add_parser(
        "scan",
        help="match keyword policies in UTF-8 lines on stdin; print one JSON object per line",
        description='Reads UTF-8 lines on stdin and prints, per line and in order, {"line": n, "matches": '
        '[{"keyword", "policy", "category", "severity", "start", "end", "matched_text", "explanation"}]}.',
    )
    source = scan.add_mutually_exclusive_group(required=True)
    source.add_argument("--policies", metavar="FILE", help="policies JSON in the shape of GET /api/v1/agent/config")
    source.add_argument("--library", metavar="NAME", help='a library shipped with the agent ("default")')
    scan.set_defaults(handler=cmd_scan)

    enrol = commands.add_parser("enrol", help="enrol this computer with a server, using an enrolment code")
    enrol.add_argument(
        "--server", required=True, metavar="URL", help="the Safeguard server, e.g. https://safeguard.example.sch.uk"
    )
    enrol.add_argument("--code", required=True, help="the enrolment code an administrator issued")
    enrol.add_argument("--hostname", help="the name to enrol under (default: this computer's name)")
    _add_config_dir(enrol)
    enrol.set_defaults(handler=cmd_enrol)

    run_parser = commands.add_parser("run", help="run the agent: monitoring, reporting and the tray icon")
    run_parser.add_argument("--headless", action="store_true", help="no tray icon or dialogs (servers, tests)")
    run_parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    _add_config_dir(run_parser)
    run_parser.set_defaults(handler=cmd_run)

    status = commands.add_parser(
        "status", help="show the server, device id, last contact, policy version, outbox depth"
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_config_dir(status)
    status.set_defaults(handler=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as error:
        print(f"safeguard-agent {args.command}: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
