"""An anonymous Confide report can never carry who sent it."""

import pytest
from django.db import IntegrityError, transaction

from tests.factories import ConfideReportFactory, DeviceFactory, PersonFactory

pytestmark = pytest.mark.django_db


def test_an_anonymous_report_cannot_store_a_person():
    with pytest.raises(IntegrityError), transaction.atomic():
        ConfideReportFactory(is_anonymous=True, person=PersonFactory(), device=None)


def test_an_anonymous_report_cannot_store_a_device():
    with pytest.raises(IntegrityError), transaction.atomic():
        ConfideReportFactory(is_anonymous=True, person=None, device=DeviceFactory())


def test_an_anonymous_report_without_identity_is_stored():
    report = ConfideReportFactory(is_anonymous=True, person=None, device=None)
    assert report.pk is not None
