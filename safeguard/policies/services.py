"""Writes for keyword policies: importing and exporting a policy's keywords as CSV."""

import csv
import io
from dataclasses import dataclass
from typing import IO

from django.db import transaction

from safeguard.logs.services import audit_record
from safeguard.policies.models import Keyword, KeywordExclusion, KeywordPolicy, MatchKind, Severity

KEYWORD_CSV_COLUMNS = ("text", "match_kind", "severity", "enabled")
# Limits that keep a mistaken upload (a whole database export, a binary) from tying up a worker.
KEYWORD_CSV_MAX_BYTES = 2 * 1024 * 1024
KEYWORD_CSV_MAX_ROWS = 20_000
KEYWORD_TEXT_MAX_LENGTH = Keyword._meta.get_field("text").max_length

_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection). Export
# prefixes such a keyword with an apostrophe, as spreadsheets do, and import removes it again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class KeywordImportResult:
    created: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class CsvRowError:
    row: int  # as a spreadsheet numbers it: the header is row 1
    message: str

    def __str__(self) -> str:
        return f"Row {self.row}: {self.message}" if self.row else self.message


class KeywordCsvError(Exception):
    """The file was refused; nothing was written. `errors` names every bad row."""

    def __init__(self, errors: list[CsvRowError]):
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class _Row:
    number: int
    text: str
    match_kind: str
    severity: str
    enabled: bool


def keyword_export_csv(*, policy: KeywordPolicy) -> str:
    """The policy's keywords as CSV text with the header `text,match_kind,severity,enabled`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(KEYWORD_CSV_COLUMNS)
    for keyword in policy.keywords.order_by("text"):
        text = f"'{keyword.text}" if keyword.text.startswith(_FORMULA_START) else keyword.text
        writer.writerow([text, keyword.match_kind, keyword.severity, "true" if keyword.enabled else "false"])
    return buffer.getvalue()


def keyword_import_csv(*, policy: KeywordPolicy, file: IO[bytes] | IO[str], imported_by=None) -> KeywordImportResult:
    """Add or update the policy's keywords from a CSV file: every row, or none.

    The header names the columns (any order; only `text` is required, the others default to
    word / medium / enabled). A keyword already in the policy, compared without regard to case,
    is updated rather than duplicated (keeping its spelling); keywords missing from the file are
    left alone. Every row
    is checked first; any error raises KeywordCsvError naming the rows, and nothing is written.
    An import that changes anything leaves an audit row naming `imported_by`.
    """
    rows = _parse_keyword_csv(file)
    with transaction.atomic():
        # Two imports into one policy at once would both try to create the same new keywords.
        KeywordPolicy.objects.select_for_update().filter(pk=policy.pk).first()
        existing = {keyword.text.lower(): keyword for keyword in policy.keywords.all()}
        to_create: list[Keyword] = []
        to_update: list[Keyword] = []
        unchanged = 0
        for row in rows:
            keyword = existing.get(row.text.lower())
            if keyword is None:
                to_create.append(
                    Keyword(
                        policy=policy,
                        text=row.text,
                        match_kind=row.match_kind,
                        severity=row.severity,
                        enabled=row.enabled,
                    )
                )
                continue
            # Matching ignores case, so the spelling already in the policy is kept.
            new_values = {
                "match_kind": row.match_kind,
                "severity": row.severity,
                "enabled": row.enabled,
            }
            if all(getattr(keyword, name) == value for name, value in new_values.items()):
                unchanged += 1
                continue
            for name, value in new_values.items():
                setattr(keyword, name, value)
            to_update.append(keyword)
        Keyword.objects.bulk_create(to_create)
        # bulk_update skips auto_now, so set updated_at through save() on the (usually few) changed rows.
        for keyword in to_update:
            keyword.save(update_fields=["match_kind", "severity", "enabled", "updated_at"])
        result = KeywordImportResult(created=len(to_create), updated=len(to_update), unchanged=unchanged)
        if result.created or result.updated:
            audit_record(
                actor=imported_by,
                action="policy.keywords_imported",
                target=policy,
                summary=f"Imported keywords into {policy.name}: {result.created} created, {result.updated} updated",
                after={"created": result.created, "updated": result.updated, "unchanged": result.unchanged},
            )
    return result


def _read_text(file: IO[bytes] | IO[str]) -> str:
    data = file.read(KEYWORD_CSV_MAX_BYTES + 1)
    if len(data) > KEYWORD_CSV_MAX_BYTES:
        raise KeywordCsvError([CsvRowError(0, f"The file is larger than {KEYWORD_CSV_MAX_BYTES // 1024} KiB.")])
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError:
        raise KeywordCsvError(
            [CsvRowError(0, "The file is not UTF-8 text. In Excel, save it as “CSV UTF-8 (comma delimited)”.")]
        ) from None


def _choice(value: str, choices: type, default: str) -> str | None:
    """The choice's stored value for its value or label (any case); the default when blank; None when unknown."""
    value = value.strip()
    if not value:
        return default
    for choice in choices:
        if value.lower() in (choice.value, choice.label.lower()):
            return choice.value
    return None


def _parse_keyword_csv(file: IO[bytes] | IO[str]) -> list[_Row]:
    text = _read_text(file)
    reader = csv.reader(io.StringIO(text, newline=""))
    errors: list[CsvRowError] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise KeywordCsvError([CsvRowError(1, f"not valid CSV ({exc})")]) from None
    if header is None:
        raise KeywordCsvError(
            [CsvRowError(0, "The file is empty: it needs a header row text,match_kind,severity,enabled.")]
        )
    columns = [name.strip().lower() for name in header]
    unknown = [name for name in columns if name not in KEYWORD_CSV_COLUMNS]
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if "text" not in columns or unknown or duplicated:
        problems = []
        if "text" not in columns:
            problems.append("it has no “text” column")
        if unknown:
            problems.append("unknown column(s) " + ", ".join(f"“{name}”" for name in unknown))
        if duplicated:
            problems.append("repeated column(s) " + ", ".join(f"“{name}”" for name in duplicated))
        expected = ",".join(KEYWORD_CSV_COLUMNS)
        raise KeywordCsvError([CsvRowError(1, f"the header must be {expected}: {'; '.join(problems)}.")])
    index = {name: position for position, name in enumerate(columns)}

    rows: list[_Row] = []
    first_row_of: dict[str, int] = {}
    number = 1
    try:
        for record in reader:
            number += 1
            if not any(cell.strip() for cell in record):
                continue  # blank line
            if len(rows) + len(errors) >= KEYWORD_CSV_MAX_ROWS:
                errors.append(CsvRowError(number, f"more than {KEYWORD_CSV_MAX_ROWS} keywords in one file."))
                break
            row_errors = _parse_row(record, index, number, first_row_of, rows)
            errors.extend(row_errors)
    except csv.Error as exc:
        errors.append(CsvRowError(number + 1, f"not valid CSV ({exc})."))
    if errors:
        raise KeywordCsvError(errors)
    return rows


def _parse_row(
    record: list[str], index: dict[str, int], number: int, first_row_of: dict[str, int], rows: list[_Row]
) -> list[CsvRowError]:
    """Check one record; append it to `rows` when it is good, else return why not."""
    if len(record) > len(index):
        return [CsvRowError(number, f"{len(record)} cells, but the header has {len(index)} columns.")]

    def cell(name: str) -> str:
        position = index.get(name)
        return record[position] if position is not None and position < len(record) else ""

    errors: list[str] = []
    text = cell("text").strip()
    if text.startswith("'") and text[1:].startswith(_FORMULA_START):
        text = text[1:]
    if not text:
        errors.append("the keyword text is empty")
    elif len(text) > KEYWORD_TEXT_MAX_LENGTH:
        errors.append(f"the keyword is longer than {KEYWORD_TEXT_MAX_LENGTH} characters")
    elif any(ord(ch) < 32 for ch in text):
        errors.append("the keyword contains a line break or control character")
    match_kind = _choice(cell("match_kind"), MatchKind, MatchKind.WORD)
    if match_kind is None:
        errors.append(f"match_kind “{cell('match_kind').strip()}” is not one of {', '.join(MatchKind.values)}")
    severity = _choice(cell("severity"), Severity, Severity.MEDIUM)
    if severity is None:
        errors.append(f"severity “{cell('severity').strip()}” is not one of {', '.join(Severity.values)}")
    enabled_text = cell("enabled").strip().lower()
    if enabled_text and enabled_text not in _TRUE | _FALSE:
        errors.append(f"enabled “{cell('enabled').strip()}” is not true or false")
    if text and not errors:
        earlier = first_row_of.get(text.lower())
        if earlier is not None:
            errors.append(f"“{text}” is already on row {earlier}")
        else:
            first_row_of[text.lower()] = number
    if errors:
        return [CsvRowError(number, "; ".join(errors) + ".")]
    rows.append(
        _Row(
            number=number,
            text=text,
            match_kind=match_kind,
            severity=severity,
            enabled=enabled_text not in _FALSE,
        )
    )
    return []


# --- Per-group keyword exclusions ---------------------------------------------------------------


class KeywordExclusionError(ValueError):
    """The exclusion was refused (no reason given, or the keyword is already excluded there)."""


def keyword_display_text(*, keyword: Keyword) -> str:
    """The keyword as it may appear outside the policy's own admin pages (audit rows, lists for viewers).

    A term of an illegal-content policy comes from a list a school is licensed to use; it is shown
    as its first letter and its length only, so the audit log and read-only pages never repeat it.
    """
    if keyword.policy.is_illegal_content:
        return illegal_term_masked(text=keyword.text, keyword_id=keyword.pk)
    return keyword.text


def illegal_term_masked(*, text: str, keyword_id: int | None = None) -> str:
    """'a' + bullets for the rest: enough to tell terms apart, not enough to read one."""
    shown = text[:1] + "\u2022" * min(max(len(text) - 1, 1), 12)
    return f"{shown} (illegal-content term #{keyword_id})" if keyword_id else shown


def keyword_exclusion_create(*, group, keyword: Keyword, reason: str, created_by=None) -> KeywordExclusion:
    """Stop monitoring `keyword` for `group` and its subgroups; the reason is required and audited."""
    reason = (reason or "").strip()
    if not reason:
        raise KeywordExclusionError("Give the reason this keyword is not monitored for the group.")
    with transaction.atomic():
        if KeywordExclusion.objects.filter(group=group, keyword=keyword).exists():
            raise KeywordExclusionError(f"This keyword is already excluded for {group}.")
        exclusion = KeywordExclusion.objects.create(group=group, keyword=keyword, reason=reason, created_by=created_by)
        _audit_exclusion(exclusion, actor=created_by, created=True)
    return exclusion


def keyword_exclusion_delete(*, exclusion: KeywordExclusion, deleted_by=None) -> None:
    """Monitor the keyword for the group again; the audit row keeps what the exclusion was and why."""
    with transaction.atomic():
        _audit_exclusion(exclusion, actor=deleted_by, created=False)
        exclusion.delete()


def _audit_exclusion(exclusion: KeywordExclusion, *, actor, created: bool) -> None:
    keyword = exclusion.keyword
    shown = keyword_display_text(keyword=keyword)
    state = {
        "group": str(exclusion.group.uuid),
        "group_name": exclusion.group.name,
        "policy": str(keyword.policy.uuid),
        "keyword_id": keyword.pk,
        "keyword": shown,
        "reason": exclusion.reason,
    }
    verb = "Excluded" if created else "Monitoring again"
    audit_record(
        actor=actor,
        action="policy.keyword_excluded" if created else "policy.keyword_exclusion_removed",
        target_type="keywordexclusion",
        target_id=str(exclusion.pk),
        summary=f"{verb} “{shown}” ({keyword.policy.name}) for {exclusion.group.name}: {exclusion.reason}",
        before=None if created else state,
        after=state if created else None,
    )


def keyword_import_plain_file(
    *, policy: KeywordPolicy, file: IO[bytes] | IO[str], severity: str = Severity.HIGH, imported_by=None
) -> KeywordImportResult:
    """Add the terms of a plain list (one per line, '#' comments) to the policy: all, or none.

    Lists a school is licensed to use (the "Illegal content" policy) usually come like this. The file
    limits and UTF-8 rule are the CSV import's; the terms go through `keyword_import_plain_list`, which
    leaves terms already in the policy as they are. The audit row gives counts only, never the terms.
    """
    from safeguard.policies.library import PlainListError, keyword_import_plain_list

    text = _read_text(file)
    with transaction.atomic():
        KeywordPolicy.objects.select_for_update().filter(pk=policy.pk).first()
        try:
            result = keyword_import_plain_list(policy=policy, lines=text.splitlines(), severity=severity)
        except PlainListError as exc:
            message = str(exc)
            raise KeywordCsvError([CsvRowError(0, f"{message[:1].upper()}{message[1:]}.")]) from None
        if result.created:
            audit_record(
                actor=imported_by,
                action="policy.keywords_imported",
                target=policy,
                summary=f"Imported a plain list into {policy.name}: {result.created} created",
                after={"created": result.created, "updated": 0, "unchanged": result.unchanged},
            )
    return KeywordImportResult(created=result.created, updated=0, unchanged=result.unchanged)
