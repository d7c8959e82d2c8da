"""Fault: PostgreSQL goes down just as the SMTP server accepts an alert. The email still goes once.

The worker has claimed the email (PENDING, committed) and is in the SMTP conversation when the
database stops; the SMTP server then answers "250". The SENT mark cannot be written: were the task
to fail and retry, it would send the email again. Instead the mark waits for the database
(safeguard.policies.alerts.after_send_durably), which is back three seconds later.

The worker and the data live on a PostgreSQL cluster of this module's own; the SMTP server is
an aiosmtpd whose DATA handler stops that cluster before it answers.
"""

import asyncio
import json
import threading

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings

from safeguard.policies import tasks
from tests.faults.servers import HOST, app_environment, free_port, manage, wait_until
from tests.workers import new_queue_name, sending_to, start_worker, stop_worker

pytestmark = pytest.mark.integration

SEED = """
import json
from tests.factories import (
    AlertRuleFactory, CaptureFactory, KeywordFactory, MembershipFactory, PersonFactory, StaffAccessFactory,
    StaffUserFactory, UserGroupFactory,
)
group = UserGroupFactory(name="Year 9")
pupil = PersonFactory(username="SCHOOL\\\\pupil")
MembershipFactory(group=group, person=pupil)
teacher = StaffAccessFactory(user=StaffUserFactory(username="teacher9"), group=group).user
rule = AlertRuleFactory(group=group)
rule.recipients.set([teacher])
capture = CaptureFactory(person=pupil, keyword=KeywordFactory(text="blade", severity="severe"))
print(json.dumps({"capture": capture.pk, "address": teacher.email}))
"""


class StopDatabaseOnData:
    """Accepts every message; on the first one, stops PostgreSQL before answering, and starts it 3 s later."""

    def __init__(self, database) -> None:
        self.database = database
        self.received: list = []
        self.armed = True
        self.restarted = threading.Event()

    def _start_later(self) -> None:
        try:
            self.database.start()
        finally:
            self.restarted.set()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self.armed:
            self.armed = False
            await asyncio.get_running_loop().run_in_executor(None, self.database.stop, "fast")
            threading.Timer(3.0, self._start_later).start()
        self.received.append(envelope)
        return "250 Message accepted for delivery"


def test_database_down_between_smtp_accept_and_the_sent_mark_sends_the_email_once(
    private_postgres, tmp_path, postgresql_transactional_db
):
    env = app_environment(private_postgres, tmp_path)
    manage("migrate", "--noinput", env=env, timeout=300)
    seeded = json.loads(manage("shell", "-c", SEED, env=env).strip().splitlines()[-1])
    handler = StopDatabaseOnData(private_postgres)
    smtp_port = free_port()
    controller = Controller(handler, hostname=HOST, port=smtp_port)
    controller.start()
    queue = new_queue_name()
    try:
        with sending_to(queue):
            worker = start_worker(
                queue=queue,
                media_root=env["MEDIA_ROOT"],
                log_path=tmp_path / "worker.log",
                extra_env={
                    "DATABASE_URL": env["DATABASE_URL"],
                    "EMAIL_URL": f"smtp://{HOST}:{smtp_port}",
                    "DEFAULT_FROM_EMAIL": "safeguard@school.test",
                },
            )
            try:
                result = tasks.capture_alerts_send.delay(seeded["capture"])
                line = worker.wait_for_task(result.id, timeout=120)
            finally:
                stop_worker(worker)
    finally:
        controller.stop()
    assert handler.restarted.wait(30)

    assert [envelope.rcpt_tos for envelope in handler.received] == [[seeded["address"]]]  # once
    assert " succeeded in " in line, line
    assert " retry: " not in worker.log()  # not failed and retried: a retry would have sent again
    assert "Recording a sent email failed" in worker.log()  # the database really was down for the mark
    rows = wait_until(
        lambda: private_postgres.query("SELECT status, attempts FROM policies_alertdelivery"),
        timeout=30,
        what="the delivery row",
    )
    assert rows == [("sent", 1)]
    assert django_settings.CELERY_TASK_ACKS_LATE and django_settings.CELERY_TASK_REJECT_ON_WORKER_LOST
