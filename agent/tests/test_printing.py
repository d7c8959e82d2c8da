"""Print logging against a real CUPS scheduler: a private cupsd with a printer that prints to /dev/null.

The scheduler runs from a temporary folder on its own Unix socket (CUPS_SERVER points the probe and the
`lp`/`lpstat`/`lpadmin` commands at it), so the machine's own printing is never touched.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from safeguard_agent.monitors.printing import PrintMonitor
from safeguard_agent.platform.base import PrintJob
from safeguard_agent.platform.cups import (
    IppError,
    cups_print_jobs,
    cups_server,
    ipp_print_jobs,
    lpstat_print_jobs,
    parse_lpstat,
)
from safeguard_agent.platform.linux_x11 import LinuxX11Probe
from safeguard_agent.testing import XvfbDisplay

pytestmark = pytest.mark.integration

CUPSD = "/usr/sbin/cupsd"
PRINTER = "Library_Printer"
ME = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
WAIT = 15.0

CUPSD_CONF = """\
Listen {root}/cups.sock
LogLevel warn
WebInterface No
Browsing No
DefaultAuthType None
<Location />
  Order allow,deny
  Allow all
</Location>
<Location /admin>
  Order allow,deny
  Allow all
</Location>
<Policy default>
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""
CUPS_FILES_CONF = """\
FileDevice Yes
ServerRoot {root}
RequestRoot {root}/spool
CacheDir {root}/cache
StateDir {root}/state
TempDir {root}/spool/tmp
ErrorLog {root}/log/error_log
AccessLog {root}/log/access_log
PageLog {root}/log/page_log
"""


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=WAIT, check=False)
    assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def cups():
    """A running private cupsd with one enabled printer; yields its socket path."""
    assert os.path.exists(CUPSD), "cupsd is missing: run scripts/install-system-packages.sh (cups, cups-client)"
    # Not pytest's tmp_path: cupsd's printing backends run as the `lp` user, who must reach the spool folder.
    root = Path(tempfile.mkdtemp(prefix="sg-cups-"))
    root.chmod(0o755)
    for folder in ("spool", "cache", "state", "log"):
        (root / folder).mkdir()
        (root / folder).chmod(0o755)
    (root / "spool" / "tmp").mkdir()
    (root / "spool" / "tmp").chmod(0o1777)
    (root / "cupsd.conf").write_text(CUPSD_CONF.format(root=root))
    (root / "cups-files.conf").write_text(CUPS_FILES_CONF.format(root=root))
    socket_path = str(root / "cups.sock")
    previous = os.environ.get("CUPS_SERVER")
    os.environ["CUPS_SERVER"] = socket_path
    daemon = subprocess.Popen(
        [CUPSD, "-f", "-c", str(root / "cupsd.conf"), "-s", str(root / "cups-files.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        while subprocess.run(["lpstat", "-r"], capture_output=True, text=True).stdout.strip() != "scheduler is running":
            assert daemon.poll() is None, f"cupsd exited: {daemon.stderr.read().decode()}"
            assert time.monotonic() < deadline, "cupsd did not start"
            time.sleep(0.05)
        run("lpadmin", "-p", PRINTER, "-E", "-v", "file:///dev/null")
        yield socket_path
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=WAIT)
        daemon.stderr.close()
        if previous is None:
            os.environ.pop("CUPS_SERVER", None)
        else:
            os.environ["CUPS_SERVER"] = previous
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def probe(cups):
    with XvfbDisplay():
        probe = LinuxX11Probe()
        yield probe
        probe.close()


def print_document(title: str, printer: str = PRINTER) -> str:
    """`lp -t TITLE` a small text file; returns the CUPS job id ("Library_Printer-3")."""
    output = run("lp", "-d", printer, "-t", title, "/etc/hostname")
    return output.split("request id is ", 1)[1].split()[0]


def wait_until(condition, what: str):
    deadline = time.monotonic() + WAIT
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Events(list):
    def __call__(self, type_, data, occurred_at, user):
        assert type_ == "print"
        assert set(data) <= {"document", "printer", "pages"}  # the server's print event keys
        self.append((data, occurred_at, user))


# --- the CUPS source ----------------------------------------------------------------------------------
def test_ipp_reports_a_printed_document_by_name_printer_and_owner(cups):
    job_id = print_document("Essay on Macbeth.docx")

    job = wait_until(lambda: next((j for j in ipp_print_jobs(user=ME) if j.id == job_id), None), "the job")

    assert (job.document, job.printer, job.user) == ("Essay on Macbeth.docx", PRINTER, ME)
    finished = wait_until(
        lambda: next((j for j in ipp_print_jobs(user=ME) if j.id == job_id and j.finished), None), "it to print"
    )
    assert finished.document == "Essay on Macbeth.docx"


def test_the_scheduler_is_found_through_cups_server(cups):
    assert cups_server() == cups


def test_lpstat_is_the_fallback_with_ids_and_owners_only(cups):
    job_id = print_document("Fallback.txt")

    jobs = wait_until(lambda: [j for j in lpstat_print_jobs() if j.id == job_id], "lpstat to list it")

    assert jobs == [PrintJob(id=job_id, document="", printer=PRINTER, user=ME, finished=True)]


def test_an_unreachable_scheduler_is_an_ipp_error(tmp_path):
    with pytest.raises(IppError, match="did not answer"):
        ipp_print_jobs(user=ME, server=str(tmp_path / "no.sock"))


def test_no_cups_at_all_means_no_print_jobs(tmp_path, monkeypatch):
    monkeypatch.setenv("CUPS_SERVER", str(tmp_path / "no.sock"))
    monkeypatch.setenv("PATH", str(tmp_path))  # and no lpstat either

    assert cups_print_jobs(user=ME) == []


def test_lpstat_output_is_parsed_line_by_line():
    output = (
        "Library_Printer-12      jsmith            1024   Mon 02 Mar 2026 09:00:00 GMT\n"
        "\tStatus: printing\n"
        "ART-COLOUR-3  akhan  2048  Mon 02 Mar 2026 09:01:00 GMT\n"
        "garbage\n"
    )

    assert parse_lpstat(output) == [
        PrintJob(id="Library_Printer-12", document="", printer="Library_Printer", user="jsmith", finished=True),
        PrintJob(id="ART-COLOUR-3", document="", printer="ART-COLOUR", user="akhan", finished=True),
    ]


# --- the monitor on the real scheduler ----------------------------------------------------------------
def test_a_document_printed_while_monitoring_is_one_print_event(probe):
    events = Events()
    monitor = PrintMonitor(probe, events)
    monitor.poll_once()

    print_document("Science homework.pdf")
    wait_until(lambda: monitor.poll_once() or events, "the print event")
    for _ in range(3):
        monitor.poll_once()

    ((data, occurred_at, user),) = events
    assert data == {"document": "Science homework.pdf", "printer": PRINTER}  # a raw queue counts no pages
    assert user == probe.user_name()
    assert occurred_at.tzinfo is not None


def test_documents_printed_before_monitoring_began_are_not_reported(probe):
    old = print_document("Printed yesterday.docx")
    wait_until(lambda: any(j.id == old and j.finished for j in probe.print_jobs()), "it to print")
    events = Events()
    monitor = PrintMonitor(probe, events)

    monitor.poll_once()
    monitor.poll_once()

    assert events == []


def test_a_job_waiting_at_a_stopped_printer_is_reported_once_it_has_waited_long_enough(probe):
    run("cupsdisable", PRINTER)
    try:
        seconds = [0.0]
        events = Events()
        monitor = PrintMonitor(probe, events, max_wait_seconds=60, monotonic=lambda: seconds[0])
        monitor.poll_once()
        job_id = print_document("Stuck in the queue.docx")
        wait_until(lambda: any(j.id == job_id for j in probe.print_jobs()), "the job to be queued")

        monitor.poll_once()
        seconds[0] = 59
        monitor.poll_once()
        assert events == []  # still pending: its page count may yet come

        seconds[0] = 60
        monitor.poll_once()
        monitor.poll_once()
        assert [data["document"] for data, *_ in events] == ["Stuck in the queue.docx"]
    finally:
        run("cancel", "-a", PRINTER)
        run("cupsenable", PRINTER)


def test_a_cancelled_job_is_reported_when_it_is_cancelled(probe):
    run("cupsdisable", PRINTER)
    try:
        events = Events()
        monitor = PrintMonitor(probe, events)
        monitor.poll_once()
        job_id = print_document("Changed my mind.docx")
        wait_until(lambda: any(j.id == job_id for j in probe.print_jobs()), "the job to be queued")
        monitor.poll_once()
        assert events == []

        run("cancel", job_id)
        wait_until(lambda: monitor.poll_once() or events, "the print event")

        assert [data["document"] for data, *_ in events] == ["Changed my mind.docx"]
    finally:
        run("cupsenable", PRINTER)


# --- the monitor's rules, with a scripted spooler (as on Windows, where printed jobs leave the queue) ---
class Spooler:
    def __init__(self) -> None:
        self.jobs: list[PrintJob] = []

    def print_jobs(self):
        return list(self.jobs)

    def user_name(self):
        return "SCHOOL\\jsmith"


def test_a_job_that_leaves_the_queue_unfinished_is_reported_with_what_was_known():
    spooler, events = Spooler(), Events()
    monitor = PrintMonitor(spooler, events, clock=lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    monitor.poll_once()
    spooler.jobs = [PrintJob(id="LIB:7", document="Essay.docx", printer="LIB", pages=3)]
    monitor.poll_once()
    assert events == []

    spooler.jobs = []
    monitor.poll_once()

    assert events == [
        (
            {"document": "Essay.docx", "printer": "LIB", "pages": 3},
            datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
            "SCHOOL\\jsmith",
        )
    ]


def test_a_finished_job_is_reported_once_with_its_final_page_count():
    spooler, events = Spooler(), Events()
    monitor = PrintMonitor(spooler, events)
    monitor.poll_once()
    spooler.jobs = [PrintJob(id="LIB:8", document="Poster.png", printer="LIB")]
    monitor.poll_once()
    spooler.jobs = [PrintJob(id="LIB:8", document="Poster.png", printer="LIB", pages=2, finished=True)]

    for _ in range(3):
        monitor.poll_once()

    assert [data for data, *_ in events] == [{"document": "Poster.png", "printer": "LIB", "pages": 2}]


def test_a_paused_monitor_reports_no_printing():
    spooler, events = Spooler(), Events()
    monitor = PrintMonitor(spooler, events)
    monitor.poll_once()
    monitor.paused = True
    spooler.jobs = [PrintJob(id="LIB:9", document="Secret.docx", printer="LIB", finished=True)]

    monitor.poll_once()
    monitor.paused = False
    monitor.poll_once()

    assert events == []
