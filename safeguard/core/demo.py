"""Demo data: a plausible UK secondary school, so a fresh `make run` shows a working console.

Everything here is idempotent: rows are found by a natural key (a username, a group name, a
hostname) or by a UUID derived from a fixed namespace, and only the missing ones are made, so a
second run changes nothing. Random choices come from a seeded `random.Random`, so two fresh
databases get the same school. The rows are written through the ORM directly (this is demo data,
not an agent's report), keeping the invariants the agent API keeps: every event, capture, report
and request has a UUID, and an anonymous Confide report carries no person, no device and only
the hour it was sent.
"""

from __future__ import annotations

import io
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from PIL import Image, ImageDraw, ImageFont

from safeguard.captures.models import Capture, CaptureNote, CaptureStatus
from safeguard.confide.models import AssistanceRequest, ConfideNote, ConfideReport
from safeguard.groups.models import (
    Device,
    EnrolmentCode,
    GroupKind,
    Membership,
    MonitoringGroup,
    Person,
    StaffAccess,
)
from safeguard.groups.services import enrolment_code_create
from safeguard.logs.models import ActivityEvent, EventType
from safeguard.logs.services import audit_record
from safeguard.policies.library import install_default_library
from safeguard.policies.models import ActionRule, AgentSettings, AlertRule, Category, Keyword, KeywordPolicy, Severity

DEMO_PASSWORD = "safeguard-demo"  # noqa: S105 - the published password of the demo accounts
DOMAIN = "HILLSIDE"
EMAIL_DOMAIN = "hillside-school.example"
ENROLMENT_LABEL = "Demo: IT Suite 1"
DEMO_LEAD_EMAIL = "lead@demo.school"
DEMO_ALERT_RULE = "Severe captures anywhere: email the safeguarding lead"
RANDOM_SEED = 20240901

# Every demo UUID is derived from this namespace and a stable name, so a rerun finds its rows.
NAMESPACE = uuid.UUID("5d1c3c1e-2f0b-4d63-9f58-6a1f0c6e9a11")

YEAR_GROUPS = ["Year 7", "Year 8", "Year 9", "Year 10", "Year 11"]
WATCH_GROUP = "Watch Group"
STAFF_GROUP = "Staff"

# (display name, year group): 30 pupils, more in Years 9 and 10 where most demo activity happens.
PUPILS = [
    ("Oliver Bennett", "Year 7"),
    ("Isla Hughes", "Year 7"),
    ("Arjun Sharma", "Year 7"),
    ("Grace O'Connor", "Year 7"),
    ("Noah Williams", "Year 8"),
    ("Ava Thompson", "Year 8"),
    ("Leo Kowalski", "Year 8"),
    ("Maryam Hussain", "Year 8"),
    ("Amelia Jones", "Year 9"),
    ("Jack Evans", "Year 9"),
    ("Freya Roberts", "Year 9"),
    ("Mohammed Ali", "Year 9"),
    ("Poppy Walker", "Year 9"),
    ("Harry Wright", "Year 9"),
    ("Sophie Clarke", "Year 9"),
    ("Kai Edwards", "Year 9"),
    ("Emily Davies", "Year 10"),
    ("George Taylor", "Year 10"),
    ("Chloe Green", "Year 10"),
    ("Daniel Okoye", "Year 10"),
    ("Lily Turner", "Year 10"),
    ("Ethan Morris", "Year 10"),
    ("Zara Begum", "Year 10"),
    ("Alfie Cooper", "Year 10"),
    ("Jessica Hall", "Year 11"),
    ("Thomas Wood", "Year 11"),
    ("Ruby Jackson", "Year 11"),
    ("Samuel Price", "Year 11"),
    ("Hannah Lewis", "Year 11"),
    ("Ryan Murphy", "Year 11"),
]
WATCH_GROUP_PUPILS = ["Poppy Walker", "Ethan Morris"]

# username, first name, last name, OS account (their monitored identity), role
STAFF = [
    ("admin", "Priya", "Nair", "pnair", "IT manager"),
    ("lead", "Joy", "Okafor", "jokafor", "Designated Safeguarding Lead"),
    ("teacher", "Tom", "Brown", "tbrown", "Year 9 form tutor"),
]

# hostname, OS, device group
DEVICES = [
    ("HS-IT1-PC01", "Windows 11 Education 23H2", "IT Suite 1"),
    ("HS-IT1-PC02", "Windows 11 Education 23H2", "IT Suite 1"),
    ("HS-IT1-PC03", "Windows 11 Education 23H2", "IT Suite 1"),
    ("HS-IT1-PC04", "Windows 11 Education 23H2", "IT Suite 1"),
    ("HS-IT1-PC05", "Windows 11 Education 23H2", "IT Suite 1"),
    ("HS-LIB-PC01", "Windows 10 Education 22H2", "Library"),
    ("HS-LIB-PC02", "Windows 10 Education 22H2", "Library"),
    ("HS-LIB-PC03", "Ubuntu 24.04 LTS", "Library"),
]
DEVICE_GROUPS = {
    "IT Suite 1": "The computing classroom on the first floor.",
    "Library": "Open-access machines in the library, used before school, at lunch and after school.",
}
AGENT_VERSION = "0.1.0"
DAYS_OF_ACTIVITY = 3


@dataclass(frozen=True)
class Scenario:
    """One demo capture: what the pupil typed, where, and how staff have handled it so far."""

    pupil: str
    keyword: str
    category: str
    severity: str  # used when the keyword is not in the installed library
    typed: str
    application: str
    window_title: str
    url: str = ""
    status: str = CaptureStatus.NEW
    notes: tuple[tuple[str, str], ...] = ()  # (staff username, text)
    assign_to: str = ""
    day: int = 0  # 0 = today (minutes before the seed ran), 1 = yesterday, ...
    minute: int = 0  # minutes after 08:45 on that day, or minutes ago when day == 0


SCENARIOS = [
    Scenario(
        "Poppy Walker",
        "kill myself",
        Category.SUICIDE,
        Severity.SEVERE,
        "how to kill myself without it hurting",
        "chrome.exe",
        "how to kill myself without it hurting - Google Search - Google Chrome",
        "https://www.google.com/search?q=how+to+kill+myself+without+it+hurting",
        CaptureStatus.ESCALATED,
        (
            ("lead", "Spoke to Poppy with her Head of Year at break. Parents contacted; referral made to CAMHS."),
            ("lead", "Safety plan agreed with Poppy and shared with her form tutor."),
        ),
        "lead",
        day=3,
        minute=95,
    ),
    Scenario(
        "Poppy Walker",
        "want to die",
        Category.SUICIDE,
        Severity.SEVERE,
        "honestly i just want to die, nobody would even notice",
        "ms-teams.exe",
        "Chat | Microsoft Teams",
        status=CaptureStatus.UNDER_REVIEW,
        notes=(("lead", "Linked to Monday's capture; checking in with Poppy this afternoon."),),
        assign_to="lead",
        day=1,
        minute=280,
    ),
    Scenario(
        "Freya Roberts",
        "self harm",
        Category.SELF_HARM,
        Severity.HIGH,
        "how do you hide self harm scars from your mum",
        "msedge.exe",
        "hide scars - Search - Microsoft Edge",
        "https://www.bing.com/search?q=how+do+you+hide+self+harm+scars",
        CaptureStatus.UNDER_REVIEW,
        (("teacher", "Freya seemed withdrawn in form time this week. Passed to the DSL."),),
        "lead",
        day=2,
        minute=130,
    ),
    Scenario(
        "Chloe Green",
        "thinspo",
        Category.EATING_DISORDERS,
        Severity.HIGH,
        "thinspo accounts to follow",
        "chrome.exe",
        "thinspo - TikTok - Google Chrome",
        "https://www.tiktok.com/search?q=thinspo",
        day=1,
        minute=215,
    ),
    Scenario(
        "Chloe Green",
        "pro ana",
        Category.EATING_DISORDERS,
        Severity.HIGH,
        "pro ana tips to stop feeling hungry",
        "chrome.exe",
        "pro ana tips - Google Search - Google Chrome",
        "https://www.google.com/search?q=pro+ana+tips",
        day=0,
        minute=40,
    ),
    Scenario(
        "Jack Evans",
        "kys",
        Category.BULLYING,
        Severity.HIGH,
        "lol nobody asked, just kys",
        "Discord.exe",
        "#year-9-chat - Discord",
        status=CaptureStatus.RESOLVED_ACTION,
        notes=(
            ("teacher", "Jack sent this to Kai in a group chat during the lesson."),
            ("teacher", "Restorative conversation held with both pupils; sanction issued; parents informed."),
        ),
        day=3,
        minute=200,
    ),
    Scenario(
        "Harry Wright",
        "nobody likes you",
        Category.BULLYING,
        Severity.MEDIUM,
        "nobody likes you kai, stop sitting with us",
        "chrome.exe",
        "Snapchat - Google Chrome",
        "https://web.snapchat.com/",
        day=2,
        minute=320,
    ),
    Scenario(
        "Ethan Morris",
        "beat him up",
        Category.WEAPONS,
        Severity.MEDIUM,
        "we're gonna beat him up after school behind the sports hall",
        "chrome.exe",
        "WhatsApp - Google Chrome",
        "https://web.whatsapp.com/",
        CaptureStatus.UNDER_REVIEW,
        (("lead", "Heads of Year 10 and 11 told; staff on the gate at 15:20."),),
        "lead",
        day=1,
        minute=330,
    ),
    Scenario(
        "Ethan Morris",
        "knife",
        Category.WEAPONS,
        Severity.HIGH,
        "im bringing a knife tomorrow just in case",
        "chrome.exe",
        "WhatsApp - Google Chrome",
        "https://web.whatsapp.com/",
        CaptureStatus.ESCALATED,
        (("lead", "Police liaison officer informed. Search carried out at the gate in line with policy."),),
        "lead",
        day=1,
        minute=335,
    ),
    Scenario(
        "Alfie Cooper",
        "weed",
        Category.DRUGS,
        Severity.MEDIUM,
        "anyone selling weed for friday",
        "chrome.exe",
        "Instagram - Google Chrome",
        "https://www.instagram.com/direct/inbox/",
        day=2,
        minute=45,
    ),
    Scenario(
        "Thomas Wood",
        "vape",
        Category.DRUGS,
        Severity.LOW,
        "where can you buy a vape under 18",
        "chrome.exe",
        "buy vape under 18 - Google Search - Google Chrome",
        "https://www.google.com/search?q=where+can+you+buy+a+vape+under+18",
        CaptureStatus.RESOLVED_ACTION,
        (("lead", "Thomas spoke with the school nurse about vaping; leaflet given."),),
        day=3,
        minute=260,
    ),
    Scenario(
        "Samuel Price",
        "free bets",
        Category.GAMBLING,
        Severity.MEDIUM,
        "free bets no deposit sign up",
        "chrome.exe",
        "free bets no deposit - Google Search - Google Chrome",
        "https://www.google.com/search?q=free+bets+no+deposit",
        day=2,
        minute=240,
    ),
    Scenario(
        "Zara Begum",
        "don't tell your parents",
        Category.GROOMING,
        Severity.SEVERE,
        "ok i won't. he said don't tell your parents about our chats",
        "RobloxPlayerBeta.exe",
        "Roblox",
        status=CaptureStatus.ESCALATED,
        notes=(
            ("lead", "Zara says an adult she met in a game asked her to keep their chats secret."),
            ("lead", "Reported to CEOP. Parents informed; account details passed on."),
        ),
        assign_to="lead",
        day=2,
        minute=300,
    ),
    Scenario(
        "Daniel Okoye",
        "send nudes",
        Category.GROOMING,
        Severity.SEVERE,
        "he keeps asking me to send nudes what do i do",
        "chrome.exe",
        "Instagram - Google Chrome",
        "https://www.instagram.com/direct/inbox/",
        assign_to="lead",
        day=0,
        minute=25,
    ),
    Scenario(
        "Mohammed Ali",
        "join isis",
        Category.RADICALISATION,
        Severity.HIGH,
        "why did british teenagers join isis",
        "msedge.exe",
        "teenagers join isis - Search - Microsoft Edge",
        "https://www.bing.com/search?q=why+did+british+teenagers+join+isis",
        CaptureStatus.RESOLVED_FALSE_POSITIVE,
        (("teacher", "History coursework on extremism and radicalisation; confirmed with Mr Shah."),),
        day=3,
        minute=150,
    ),
    Scenario(
        "Kai Edwards",
        "columbine",
        Category.WEAPONS,
        Severity.MEDIUM,
        "columbine flower seeds for the wildlife garden",
        "chrome.exe",
        "columbine seeds - Google Search - Google Chrome",
        "https://www.google.com/search?q=columbine+flower+seeds+for+the+wildlife+garden",
        CaptureStatus.RESOLVED_FALSE_POSITIVE,
        (("teacher", "Science: Kai is planning the wildlife garden. Columbine is a flower. No concern."),),
        day=2,
        minute=70,
    ),
    Scenario(
        "George Taylor",
        "porn",
        Category.ADULT_CONTENT,
        Severity.HIGH,
        "free porn sites not blocked at school",
        "chrome.exe",
        "sites not blocked - Google Search - Google Chrome",
        "https://www.google.com/search?q=free+porn+sites+not+blocked+at+school",
        day=1,
        minute=190,
    ),
    Scenario(
        "Sophie Clarke",
        "punish myself",
        Category.SELF_HARM,
        Severity.MEDIUM,
        "Dear diary, I keep wanting to punish myself and everyone can tell",
        "WINWORD.EXE",
        "diary.docx - Word",
        status=CaptureStatus.UNDER_REVIEW,
        notes=(("teacher", "Mentioned to Sophie's Head of Year; keeping an eye on her."),),
        day=1,
        minute=60,
    ),
    Scenario(
        "Lily Turner",
        "starve myself",
        Category.EATING_DISORDERS,
        Severity.HIGH,
        "going to starve myself until prom",
        "chrome.exe",
        "Snapchat - Google Chrome",
        "https://web.snapchat.com/",
        day=0,
        minute=95,
    ),
    Scenario(
        "Ruby Jackson",
        "suicide",
        Category.SUICIDE,
        Severity.HIGH,
        "Lady Macbeth's suicide and the theme of guilt in Macbeth",
        "WINWORD.EXE",
        "Macbeth essay.docx - Word",
        status=CaptureStatus.RESOLVED_FALSE_POSITIVE,
        notes=(("lead", "English literature essay. No concern."),),
        day=2,
        minute=180,
    ),
    Scenario(
        "Amelia Jones",
        "loser",
        Category.BULLYING,
        Severity.LOW,
        "ur such a loser amelia lol",
        "chrome.exe",
        "Google Docs - Google Chrome",
        "https://docs.google.com/document/d/1x/edit",
        day=0,
        minute=130,
    ),
]

# What pupils do between captures: (application, window title, url or "").
BROWSING = [
    ("chrome.exe", "BBC Bitesize - GCSE Biology - Google Chrome", "https://www.bbc.co.uk/bitesize/subjects/z9ddmp3"),
    ("chrome.exe", "Seneca - Learn 2x Faster - Google Chrome", "https://app.senecalearning.com/dashboard"),
    ("chrome.exe", "Sparx Maths - Google Chrome", "https://www.sparxmaths.uk/student"),
    ("chrome.exe", "YouTube - Google Chrome", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
    ("msedge.exe", "Oak National Academy - Microsoft Edge", "https://www.thenational.academy/pupils"),
    ("msedge.exe", "Wikipedia, the free encyclopedia - Microsoft Edge", "https://en.wikipedia.org/wiki/Photosynthesis"),
    ("chrome.exe", "Quizlet - Google Chrome", "https://quizlet.com/latest"),
    ("chrome.exe", "Inbox - Outlook - Google Chrome", "https://outlook.office.com/mail/"),
    ("chrome.exe", "Scratch - Imagine, Program, Share - Google Chrome", "https://scratch.mit.edu/projects/editor/"),
    ("chrome.exe", "Cool Math Games - Google Chrome", "https://www.coolmathgames.com/"),
]
OFFICE = "C:\\Program Files\\Microsoft Office\\root\\Office16"
APPLICATIONS = [
    ("WINWORD.EXE", "Document1 - Word", f"{OFFICE}\\WINWORD.EXE"),
    ("EXCEL.EXE", "Book1 - Excel", f"{OFFICE}\\EXCEL.EXE"),
    ("POWERPNT.EXE", "Presentation1 - PowerPoint", f"{OFFICE}\\POWERPNT.EXE"),
    ("ms-teams.exe", "Microsoft Teams", "C:\\Program Files\\WindowsApps\\MSTeams\\ms-teams.exe"),
    ("notepad.exe", "Untitled - Notepad", "C:\\Windows\\System32\\notepad.exe"),
    ("pythonw.exe", "IDLE Shell 3.12", "C:\\Program Files\\Python312\\pythonw.exe"),
    ("explorer.exe", "Documents - File Explorer", "C:\\Windows\\explorer.exe"),
]
PRINTS = [
    ("History homework - The Blitz.docx", "Library Printer (Mono)", 2),
    ("Biology revision notes.pdf", "IT1-Printer", 6),
    ("CV draft.docx", "Library Printer (Mono)", 1),
    ("Maths worksheet 7B.pdf", "IT1-Printer", 3),
]
DELETED_FILES = ["Old essay draft.docx", "screenshot.png", "New Text Document.txt", "game_save.dat"]

# Which year groups use each room, so each device has a believable set of users.
ROOM_USERS = {"IT Suite 1": ["Year 9", "Year 10", "Year 11"], "Library": ["Year 7", "Year 8", "Year 9", "Year 10"]}


@dataclass
class SeedResult:
    """What a run made. `created` counts only new rows: a second run reports zeros."""

    created: dict[str, int] = field(default_factory=dict)
    enrolment_code: str | None = None  # the plain code, only on the run that made it

    def count(self, name: str, amount: int = 1) -> None:
        if amount:
            self.created[name] = self.created.get(name, 0) + amount


def demo_uuid(name: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, name)


def _rng(section: str) -> random.Random:
    """A generator per section, so what one section skips on a rerun cannot shift another's draws."""
    return random.Random(f"{RANDOM_SEED}-{section}")


def seed_demo() -> SeedResult:
    """Create (or complete) the demo school. Safe to run any number of times."""
    result = SeedResult()
    with transaction.atomic():
        install_default_library()
        staff = _seed_staff(result)
        groups = _seed_groups(result)
        people = _seed_people(result, groups, staff)
        devices = _seed_devices(result, groups, people, _rng("devices"))
        _seed_staff_access(result, groups, staff)
        _seed_rules(result, groups, staff)
        _seed_demo_alert_rule(result, staff)
        _seed_agent_settings(result)
        _seed_events(result, devices, people, _rng("events"))
        _seed_captures(result, devices, people, staff, _rng("captures"))
        _seed_confide(result, devices, people, staff)
        if result.created.get("activity events"):
            _update_last_seen()
        result.enrolment_code = _seed_enrolment_code(result, groups, staff)
    return result


# --- accounts, groups, people, devices ------------------------------------------------------------


def _staff_email(username: str, first: str, last: str) -> str:
    # The demo alert rule emails the lead: an address the issue names, easy to spot in the console log.
    return DEMO_LEAD_EMAIL if username == "lead" else f"{first[0].lower()}.{last.lower()}@{EMAIL_DOMAIN}"


def _seed_staff(result: SeedResult) -> dict[str, object]:
    user_model = get_user_model()
    staff = {}
    for username, first, last, _account, _role in STAFF:
        user = user_model.objects.filter(username=username).first()
        if user is not None and username == "lead" and user.email != DEMO_LEAD_EMAIL:
            # A demo database seeded before the alert rule existed: give the lead the rule's address.
            user_model.objects.filter(pk=user.pk).update(email=DEMO_LEAD_EMAIL)
            user.email = DEMO_LEAD_EMAIL
        if user is None:
            user = user_model(
                username=username,
                first_name=first,
                last_name=last,
                email=_staff_email(username, first, last),
                is_staff=username == "admin",
                is_superuser=username == "admin",
            )
            user.set_password(DEMO_PASSWORD)
            user.save()
            result.count("staff accounts")
        staff[username] = user
    return staff


def _group(result: SeedResult, name: str, kind: str, **defaults) -> MonitoringGroup:
    group, created = MonitoringGroup.objects.get_or_create(
        name=name, kind=kind, parent=None, owner=None, defaults=defaults
    )
    if created:
        result.count("groups")
    return group


def _seed_groups(result: SeedResult) -> dict[str, MonitoringGroup]:
    groups = {}
    for name in YEAR_GROUPS:
        groups[name] = _group(result, name, GroupKind.USER, description=f"Pupils in {name}.")
    groups[WATCH_GROUP] = _group(
        result,
        WATCH_GROUP,
        GroupKind.USER,
        is_watch_group=True,
        description="Pupils who would benefit from additional scrutiny. Reviewed weekly by the DSL.",
    )
    groups[STAFF_GROUP] = _group(result, STAFF_GROUP, GroupKind.USER, description="Teaching and support staff.")
    for name, description in DEVICE_GROUPS.items():
        groups[name] = _group(result, name, GroupKind.DEVICE, description=description)
    return groups


def _username(display_name: str) -> str:
    first, last = display_name.split(" ", 1)
    surname = "".join(ch for ch in last.lower() if ch.isalpha())
    return f"{DOMAIN}\\{first[0].lower()}{surname}"


def _person(result: SeedResult, username: str, display_name: str, seen_at: datetime, **extra) -> Person:
    person = Person.objects.filter(username__iexact=username).first()
    if person is None:
        person = Person.objects.create(
            username=username, display_name=display_name, first_seen_at=seen_at, last_seen_at=seen_at, **extra
        )
        result.count("people")
    return person


def _member(result: SeedResult, group: MonitoringGroup, *, person=None, device=None) -> None:
    _, created = Membership.objects.get_or_create(group=group, person=person, device=device)
    if created:
        result.count("memberships")


def _seed_people(result: SeedResult, groups, staff) -> dict[str, Person]:
    first_seen = _school_day(DAYS_OF_ACTIVITY + 10, 8 * 60 + 45)
    people = {}
    for display_name, year in PUPILS:
        person = _person(result, _username(display_name), display_name, first_seen)
        _member(result, groups[year], person=person)
        people[display_name] = person
    for display_name in WATCH_GROUP_PUPILS:
        _member(result, groups[WATCH_GROUP], person=people[display_name])
    for username, first, last, account, _role in STAFF:
        person = _person(result, f"{DOMAIN}\\{account}", f"{first} {last}", first_seen, staff_user=staff[username])
        _member(result, groups[STAFF_GROUP], person=person)
    return people


def _seed_devices(result: SeedResult, groups, people, rng: random.Random) -> dict[str, Device]:
    now = timezone.now()
    devices = {}
    for index, (hostname, os_name, room) in enumerate(DEVICES):
        device = Device.objects.filter(hostname=hostname).first()
        if device is None:
            user = people[PUPILS[(index * 7) % len(PUPILS)][0]]
            device = Device(
                hostname=hostname,
                os=os_name,
                agent_version=AGENT_VERSION,
                enrolled_at=now - timedelta(days=DAYS_OF_ACTIVITY + 14),
                last_seen_at=now - timedelta(seconds=rng.randint(5, 50)),
                current_person=user,
                thumbnail_updated_at=now,
            )
            device.thumbnail.save(
                f"{demo_uuid('thumbnail-' + hostname)}.png",
                ContentFile(_thumbnail_png(hostname, user)),
                save=False,
            )
            device.save()
            result.count("devices")
        _member(result, groups[room], device=device)
        devices[hostname] = device
    return devices


def _seed_staff_access(result: SeedResult, groups, staff) -> None:
    everything = {"can_view_captures": True, "can_manage_captures": True, "can_view_recordings": True}
    for group in groups.values():
        _, created = StaffAccess.objects.get_or_create(
            user=staff["lead"], group=group, defaults={**everything, "is_confide_viewer": True}
        )
        result.count("staff access", int(created))
    _, created = StaffAccess.objects.get_or_create(
        user=staff["teacher"],
        group=groups["Year 9"],
        defaults={"can_view_captures": True, "can_manage_captures": True, "can_view_recordings": False},
    )
    result.count("staff access", int(created))


def _seed_rules(result: SeedResult, groups, staff) -> None:
    for year in YEAR_GROUPS:
        rule, created = AlertRule.objects.get_or_create(
            name=f"High and severe captures in {year}",
            group=groups[year],
            defaults={"min_severity": Severity.HIGH, "digest": AlertRule.Digest.IMMEDIATE},
        )
        if created:
            rule.recipients.add(staff["lead"])
            result.count("alert rules")
        _, created = ActionRule.objects.get_or_create(
            name=f"Move to the Watch Group after 50 severe captures ({year})",
            group=groups[year],
            defaults={
                "min_severity": Severity.SEVERE,
                "threshold": 50,
                "move_to_group": groups[WATCH_GROUP],
                "notify_staff": True,
            },
        )
        result.count("action rules", int(created))


def _seed_demo_alert_rule(result: SeedResult, staff) -> None:
    """Severe captures in any group email the lead at once: a rule with no group covers the whole school.

    Demo captures are written directly, so they send nothing; a capture from an enrolled agent
    does (in the embedded mode the email is printed to the terminal).
    """
    rule, created = AlertRule.objects.get_or_create(
        name=DEMO_ALERT_RULE,
        group=None,
        owner=None,
        defaults={"min_severity": Severity.SEVERE, "digest": AlertRule.Digest.IMMEDIATE},
    )
    if created:
        rule.recipients.add(staff["lead"])
        result.count("alert rules")


def _seed_agent_settings(result: SeedResult) -> None:
    _, created = AgentSettings.objects.get_or_create(pk=1, defaults={"confide_desktop_button": True})
    result.count("agent settings", int(created))


def _seed_enrolment_code(result: SeedResult, groups, staff) -> str | None:
    if EnrolmentCode.objects.filter(label=ENROLMENT_LABEL).exists():
        return None
    _, code = enrolment_code_create(
        label=ENROLMENT_LABEL,
        max_uses=30,
        expires_at=timezone.now() + timedelta(days=30),
        device_group=groups["IT Suite 1"],
        created_by=staff["admin"],
    )
    result.count("enrolment codes")
    return code


# --- time ------------------------------------------------------------------------------------------


def _school_day(days_ago: int, minute_of_day: int) -> datetime:
    """An aware datetime `days_ago` days before today, at `minute_of_day` local time."""
    zone = ZoneInfo(settings.TIME_ZONE)
    day: date = timezone.localdate() - timedelta(days=days_ago)
    return datetime.combine(day, time(0, 0), tzinfo=zone) + timedelta(minutes=minute_of_day)


# --- activity events -------------------------------------------------------------------------------


def _seed_events(result: SeedResult, devices, people, rng: random.Random) -> None:
    """Lessons on each device over the last few school days: logon, work, browsing, logoff."""
    members_of = {year: [people[name] for name, group in PUPILS if group == year] for year in YEAR_GROUPS}
    lesson_starts = [8 * 60 + 50, 9 * 60 + 50, 11 * 60 + 10, 12 * 60 + 30, 13 * 60 + 50]
    events = []
    for days_ago in range(DAYS_OF_ACTIVITY, 0, -1):
        for hostname, _os, room in DEVICES:
            for lesson, start in enumerate(lesson_starts):
                if rng.random() < 0.3:  # not every machine is used every lesson
                    continue
                pupil = rng.choice(members_of[rng.choice(ROOM_USERS[room])])
                key = f"event-{days_ago}-{hostname}-{lesson}"
                events.extend(_lesson_events(key, devices[hostname], pupil, _school_day(days_ago, start), rng))
    existing = set(ActivityEvent.objects.filter(uuid__in=[e.uuid for e in events]).values_list("uuid", flat=True))
    new = [event for event in events if event.uuid not in existing]
    ActivityEvent.objects.bulk_create(new, batch_size=500)
    result.count("activity events", len(new))


def _update_last_seen() -> None:
    """Each person was last seen at their latest activity (only after new events were added)."""
    latest = ActivityEvent.objects.filter(person=OuterRef("pk")).order_by("-occurred_at").values("occurred_at")[:1]
    Person.objects.filter(events__isnull=False).distinct().update(last_seen_at=Subquery(latest))


def _lesson_events(
    key: str, device: Device, person: Person, start: datetime, rng: random.Random
) -> list[ActivityEvent]:
    """One pupil's lesson on one device. `key` names the lesson, so its events keep their UUIDs on a rerun."""
    events = []

    def add(kind: str, at: datetime, data: dict) -> None:
        events.append(
            ActivityEvent(
                uuid=demo_uuid(f"{key}-{len(events)}"),
                type=kind,
                device=device,
                person=person,
                occurred_at=at,
                data=data,
            )
        )

    account = person.username.split("\\")[-1]
    at = start + timedelta(seconds=rng.randint(0, 240))
    add(EventType.LOGON, at, {"session": "console"})
    for _ in range(rng.randint(4, 9)):
        at += timedelta(seconds=rng.randint(60, 420))
        roll = rng.random()
        if roll < 0.5:
            browser, title, url = rng.choice(BROWSING)
            add(EventType.WINDOW, at, {"title": title, "application": browser})
            add(EventType.WEBSITE, at, {"url": url, "title": title.rsplit(" - ", 1)[0], "browser": browser})
        elif roll < 0.8:
            application, title, path = rng.choice(APPLICATIONS)
            add(EventType.APPLICATION, at, {"name": application, "path": path, "action": "started"})
            add(EventType.WINDOW, at + timedelta(seconds=2), {"title": title, "application": application})
        elif roll < 0.9:
            document, printer, pages = rng.choice(PRINTS)
            add(EventType.PRINT, at, {"document": document, "printer": printer, "pages": pages})
        else:
            filename = rng.choice(DELETED_FILES)
            add(EventType.FILE_DELETED, at, {"path": f"C:\\Users\\{account}\\Documents\\{filename}"})
    add(EventType.LOGOFF, start + timedelta(minutes=58), {"session": "console"})
    return events


# --- captures --------------------------------------------------------------------------------------


def _scenario_time(scenario: Scenario) -> datetime:
    seconds = (len(scenario.typed) * 7) % 60  # not every capture on the minute
    if scenario.day == 0:
        return timezone.now().replace(microsecond=0) - timedelta(minutes=scenario.minute, seconds=seconds)
    return _school_day(scenario.day, 8 * 60 + 45 + scenario.minute) + timedelta(seconds=seconds)


def _library_keyword(scenario: Scenario) -> tuple[Keyword | None, KeywordPolicy | None, str]:
    """The installed library's keyword for this scenario, else the policy of its category."""
    keyword = (
        Keyword.objects.select_related("policy")
        .filter(text__iexact=scenario.keyword, policy__category=scenario.category)
        .first()
    ) or Keyword.objects.select_related("policy").filter(text__iexact=scenario.keyword).first()
    if keyword is not None:
        return keyword, keyword.policy, keyword.severity
    policy = KeywordPolicy.objects.filter(category=scenario.category).order_by("name").first()
    return None, policy, scenario.severity


def _seed_captures(result: SeedResult, devices, people, staff, rng: random.Random) -> None:
    hostnames = [hostname for hostname, _os, _room in DEVICES]
    existing = set(
        Capture.objects.filter(uuid__in=[demo_uuid(f"capture-{i}") for i in range(len(SCENARIOS))]).values_list(
            "uuid", flat=True
        )
    )
    for index, scenario in enumerate(SCENARIOS):
        device = devices[hostnames[rng.randrange(len(hostnames))]]  # drawn before any skip: keeps the draws stable
        capture_uuid = demo_uuid(f"capture-{index}")
        if capture_uuid in existing:
            continue
        person = people[scenario.pupil]
        keyword, policy, severity = _library_keyword(scenario)
        occurred_at = _scenario_time(scenario)
        capture = Capture(
            uuid=capture_uuid,
            person=person,
            device=device,
            policy=policy,
            keyword=keyword,
            keyword_text=keyword.text if keyword else scenario.keyword,
            severity=severity,
            context=scenario.typed[:400],
            application=scenario.application,
            window_title=scenario.window_title,
            url=scenario.url,
            occurred_at=occurred_at,
            status=scenario.status,
            assignee=staff[scenario.assign_to] if scenario.assign_to else None,
        )
        png = screenshot_png(
            scenario=scenario,
            person=person,
            hostname=device.hostname,
            occurred_at=occurred_at,
            keyword_text=capture.keyword_text,
            severity=severity,
            policy_name=policy.name if policy else "",
        )
        capture.screenshot.save(f"{capture_uuid}.png", ContentFile(png), save=False)
        capture.screenshot_preview.save(f"{capture_uuid}.webp", ContentFile(_preview_webp(png)), save=False)
        capture.save()
        result.count("captures")
        _capture_context_events(result, capture, scenario, index)
        _capture_history(result, capture, scenario, staff)


def _capture_context_events(result: SeedResult, capture: Capture, scenario: Scenario, index: int) -> None:
    """The window (and page) the capture happened in, so the timeline around it is not empty."""
    at = capture.occurred_at - timedelta(seconds=40)
    events = [
        ActivityEvent(
            uuid=demo_uuid(f"capture-{index}-window"),
            type=EventType.WINDOW,
            device=capture.device,
            person=capture.person,
            occurred_at=at,
            data={"title": scenario.window_title, "application": scenario.application},
        )
    ]
    if scenario.url:
        events.append(
            ActivityEvent(
                uuid=demo_uuid(f"capture-{index}-website"),
                type=EventType.WEBSITE,
                device=capture.device,
                person=capture.person,
                occurred_at=at,
                data={
                    "url": scenario.url,
                    "title": scenario.window_title.rsplit(" - ", 1)[0],
                    "browser": scenario.application,
                },
            )
        )
    ActivityEvent.objects.bulk_create(events)
    result.count("activity events", len(events))


def _capture_history(result: SeedResult, capture: Capture, scenario: Scenario, staff) -> None:
    """Notes and the audit trail a real review would have left behind."""
    handler = staff[scenario.assign_to] if scenario.assign_to else staff[(scenario.notes or [("lead", "")])[0][0]]
    if scenario.assign_to:
        _audit(result, handler, "capture.assigned", capture, {"assignee": None}, {"assignee": handler.username})
    if scenario.status != CaptureStatus.NEW:
        _audit(
            result,
            handler,
            "capture.status_changed",
            capture,
            {"status": CaptureStatus.NEW},
            {"status": scenario.status},
        )
    for author_name, text in scenario.notes:
        CaptureNote.objects.create(capture=capture, author=staff[author_name], text=text)
        _audit(result, staff[author_name], "capture.note_added", capture, None, {"text": text})
        result.count("capture notes")


def _audit(result: SeedResult, actor, action: str, capture: Capture, before, after) -> None:
    audit_record(
        action=action,
        target=capture,
        actor=actor,
        summary=f"{action.split('.')[-1].replace('_', ' ')}: capture of '{capture.keyword_text}' by {capture.person}",
        before=before,
        after=after,
    )
    result.count("audit entries")


# --- Confide ---------------------------------------------------------------------------------------


def _seed_confide(result: SeedResult, devices, people, staff) -> None:
    anonymous_uuid = demo_uuid("confide-anonymous")
    if not ConfideReport.objects.filter(uuid=anonymous_uuid).exists():
        # The agent truncates an anonymous report's time to the hour and sends no identity.
        sent = _school_day(1, 12 * 60 + 47).replace(minute=0, second=0, microsecond=0)
        ConfideReport.objects.create(
            uuid=anonymous_uuid,
            message=(
                "Someone in my year is getting messages in a group chat telling them to kill themselves. "
                "They said they don't want to come to school any more. Please help them but don't say it was me."
            ),
            about=ConfideReport.About.SOMEONE_ELSE,
            is_anonymous=True,
            person=None,
            device=None,
            reported_at=sent,
        )
        result.count("confide reports")
    named_uuid = demo_uuid("confide-named")
    if not ConfideReport.objects.filter(uuid=named_uuid).exists():
        report = ConfideReport.objects.create(
            uuid=named_uuid,
            message=(
                "Someone I don't know keeps messaging me on Snapchat asking for photos. "
                "I blocked them but they made a new account."
            ),
            about=ConfideReport.About.ME,
            is_anonymous=False,
            person=people["Zara Begum"],
            device=devices["HS-LIB-PC02"],
            reported_at=_school_day(2, 12 * 60 + 52),
            status=ConfideReport.Status.IN_PROGRESS,
            handler=staff["lead"],
        )
        ConfideNote.objects.create(
            report=report,
            author=staff["lead"],
            text="Met Zara at lunch. Helped her report the account; parents informed. Follow up Friday.",
        )
        result.count("confide reports")
    request_uuid = demo_uuid("assistance-1")
    if not AssistanceRequest.objects.filter(uuid=request_uuid).exists():
        AssistanceRequest.objects.create(
            uuid=request_uuid,
            person=people["Kai Edwards"],
            device=devices["HS-IT1-PC02"],
            message="Can someone come and help? I feel really upset and don't want to say why in class.",
            requested_at=timezone.now().replace(microsecond=0) - timedelta(minutes=12),
        )
        result.count("assistance requests")


# --- pictures --------------------------------------------------------------------------------------

SCREEN = (1280, 800)
FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu")]


@cache
def _font(size: int, bold: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans when the system has it (fonts-dejavu-core), else Pillow's built-in font."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in FONT_DIRS:
        if (folder / name).exists():
            return ImageFont.truetype(str(folder / name), size)
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _draw_taskbar(draw: ImageDraw.ImageDraw, clock: str, application: str) -> None:
    width, height = SCREEN
    draw.rectangle([0, height - 40, width, height], fill=(32, 36, 44))
    draw.rectangle([8, height - 32, 32, height - 8], fill=(0, 120, 212))
    label = application.removesuffix(".exe").removesuffix(".EXE")
    draw.rectangle([48, height - 34, 200, height - 6], fill=(58, 64, 76))
    draw.text((58, height - 28), label, fill=(235, 238, 242), font=_font(13))
    clock_width = draw.textlength(clock, font=_font(13))
    draw.text((width - clock_width - 14, height - 28), clock, fill=(235, 238, 242), font=_font(13))


def screenshot_png(
    *,
    scenario: Scenario,
    person: Person,
    hostname: str,
    occurred_at: datetime,
    keyword_text: str,
    severity: str,
    policy_name: str,
) -> bytes:
    """A plausible desktop with the window the pupil typed in, and the evidence watermark top-right."""
    width, height = SCREEN
    local = timezone.localtime(occurred_at)
    image = Image.new("RGB", SCREEN, (28, 74, 122))
    draw = ImageDraw.Draw(image)
    for band in range(0, height, 8):  # a soft wallpaper gradient
        shade = 74 + band * 60 // height
        draw.rectangle([0, band, width, band + 8], fill=(28, shade, 122 + band * 40 // height))

    left, top, right, bottom = 60, 124, width - 60, height - 56  # below the watermark, as a real window often is
    draw.rectangle([left + 4, top + 4, right + 4, bottom + 4], fill=(20, 30, 50))  # shadow
    draw.rectangle([left, top, right, bottom], fill=(255, 255, 255))
    draw.rectangle([left, top, right, top + 32], fill=(241, 243, 244))
    draw.text((left + 12, top + 8), scenario.window_title[:110], fill=(32, 33, 36), font=_font(13))
    for offset, glyph in ((138, "\u2013"), (92, "\u25a1"), (46, "\u2715")):  # minimise, maximise, close
        draw.text((right - offset + 16, top + 7), glyph, fill=(60, 64, 67), font=_font(14))

    content_top = top + 32
    is_browser = bool(scenario.url)
    if is_browser:
        draw.rectangle([left, content_top, right, content_top + 40], fill=(255, 255, 255))
        draw.rounded_rectangle(
            [left + 90, content_top + 6, right - 90, content_top + 34], radius=14, fill=(241, 243, 244)
        )
        draw.text((left + 108, content_top + 12), scenario.url[:120], fill=(60, 64, 67), font=_font(13))
        draw.line([left, content_top + 40, right, content_top + 40], fill=(218, 220, 224))
        content_top += 40

    typed_font = _font(22)
    box = [left + 80, content_top + 80, right - 80, content_top + 80 + 56]
    if "Search" in scenario.window_title or "search" in scenario.url:
        draw.text((left + 80, content_top + 30), "Search", fill=(66, 133, 244), font=_font(30, bold=True))
        draw.rounded_rectangle(box, radius=28, outline=(218, 220, 224), width=2, fill=(255, 255, 255))
        draw.text((box[0] + 28, box[1] + 14), scenario.typed, fill=(32, 33, 36), font=typed_font)
        for row in range(4):  # result placeholders
            y = box[3] + 40 + row * 80
            draw.rectangle([box[0], y, box[0] + 380, y + 14], fill=(26, 13, 171))
            draw.rectangle([box[0], y + 26, box[2] - 120, y + 36], fill=(222, 222, 222))
            draw.rectangle([box[0], y + 44, box[2] - 260, y + 54], fill=(222, 222, 222))
    elif scenario.application.upper() == "WINWORD.EXE":
        draw.rectangle([left, content_top, right, content_top + 60], fill=(43, 87, 154))
        draw.rectangle([left + 220, content_top + 80, right - 220, bottom - 10], outline=(200, 200, 200))
        y = content_top + 130
        for line in _wrap(draw, scenario.typed, typed_font, right - left - 560):
            draw.text((left + 280, y), line, fill=(20, 20, 20), font=typed_font)
            y += 34
        draw.line([left + 280, y + 4, left + 280, y + 30], fill=(20, 20, 20), width=2)  # the caret
    else:  # a chat: earlier messages, then the message being typed in the compose box
        bubbles = ["hey are you there", "yeah whats up", "did you see what happened earlier"]
        for row, text in enumerate(bubbles):
            y = content_top + 40 + row * 70
            x = left + 60 if row % 2 == 0 else right - 420
            draw.rounded_rectangle([x, y, x + 360, y + 44], radius=18, fill=(233, 233, 235))
            draw.text((x + 18, y + 11), text, fill=(20, 20, 20), font=_font(17))
        draw.rounded_rectangle(
            [left + 40, bottom - 90, right - 40, bottom - 30], radius=24, outline=(190, 190, 190), width=2
        )
        draw.text((left + 68, bottom - 74), scenario.typed, fill=(20, 20, 20), font=typed_font)

    _draw_taskbar(draw, f"{local:%H:%M}  {local:%d/%m/%Y}", scenario.application)
    _draw_watermark(
        image,
        [
            f"Who: {person.username} ({person.display_name})" if person.display_name else f"Who: {person.username}",
            f"What: '{keyword_text}' ({severity.title()}{', ' + policy_name if policy_name else ''})",
            f"When: {local:%Y-%m-%d %H:%M:%S %Z}",
            f"Where: {hostname} · {scenario.application}",
        ],
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()


def _draw_watermark(image: Image.Image, lines: list[str]) -> None:
    """Who, what, when and where in a translucent panel in the top-right corner."""
    font = _font(14)
    measure = ImageDraw.Draw(image)
    text_width = max(int(measure.textlength(line, font=font)) for line in lines)
    panel_width, panel_height = text_width + 24, 12 + 20 * len(lines)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    x0 = image.width - panel_width - 10
    draw.rectangle([x0, 10, image.width - 10, 10 + panel_height], fill=(0, 0, 0, 170))
    for row, line in enumerate(lines):
        draw.text((x0 + 12, 16 + row * 20), line, fill=(255, 255, 255, 255), font=font)
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))


def _preview_webp(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        image.thumbnail((480, 300))
        buffer = io.BytesIO()
        image.save(buffer, "WEBP", quality=70)
        return buffer.getvalue()


def _thumbnail_png(hostname: str, person: Person) -> bytes:
    """A small live-view thumbnail: a desktop with one window open."""
    image = Image.new("RGB", (320, 200), (28, 84, 132))
    draw = ImageDraw.Draw(image)
    draw.rectangle([20, 16, 300, 170], fill=(255, 255, 255))
    draw.rectangle([20, 16, 300, 30], fill=(241, 243, 244))
    for row in range(6):
        draw.rectangle([36, 44 + row * 18, 36 + 200 - row * 17, 52 + row * 18], fill=(210, 214, 220))
    draw.rectangle([0, 186, 320, 200], fill=(32, 36, 44))
    draw.text((6, 187), f"{hostname} · {person.display_name}", fill=(235, 238, 242), font=_font(10))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
