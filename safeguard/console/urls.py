"""Console URLs (the contract in issue 5). Captures and logs views live in views_captures/views_logs."""

from django.urls import path

from safeguard.console import views, views_alerts, views_captures, views_exports, views_insight, views_logs

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("captures/", views_captures.capture_list, name="captures"),
    path("captures/<uuid:capture_uuid>/", views_captures.capture_detail, name="capture"),
    path("captures/<uuid:capture_uuid>/screenshot", views_captures.capture_screenshot, name="capture_screenshot"),
    path("captures/<uuid:capture_uuid>/preview", views_captures.capture_preview, name="capture_preview"),
    path("captures/<uuid:capture_uuid>/pdf", views_captures.capture_pdf, name="capture_pdf"),
    path("captures/<uuid:capture_uuid>/status", views_captures.capture_status, name="capture_status"),
    path("captures/<uuid:capture_uuid>/assign", views_captures.capture_assignee, name="capture_assign"),
    path("captures/<uuid:capture_uuid>/notes", views_captures.capture_note, name="capture_note"),
    path("captures/<uuid:capture_uuid>/move", views_captures.capture_move, name="capture_move"),
    path("logs/", views_logs.log_viewer, name="logs"),
    path("exports/", views_exports.export_list, name="exports"),
    path("exports/new", views_exports.export_create, name="export_create"),
    path("exports/<uuid:job_uuid>/", views_exports.export_detail, name="export"),
    path("exports/<uuid:job_uuid>/progress", views_exports.export_progress, name="export_progress"),
    path("exports/<uuid:job_uuid>/download", views_exports.export_download, name="export_download"),
    path("insight/", views_insight.insight_page, name="insight"),
    path("insight/summary.pdf", views_insight.insight_summary_pdf, name="insight_summary"),
    path("thumbnails/", views.thumbnails, name="thumbnails"),
    path("thumbnails/grid", views.thumbnails_grid, name="thumbnails_grid"),
    path("devices/<uuid:device_uuid>/", views.device_detail, name="device"),
    path("devices/<uuid:device_uuid>/thumbnail", views.device_thumbnail, name="device_thumbnail"),
    path("devices/<uuid:device_uuid>/record", views.device_record, name="device_record"),
    path("recordings/", views.recordings, name="recordings"),
    path("recordings/<uuid:recording_uuid>/", views.recording_detail, name="recording"),
    path("recordings/<uuid:recording_uuid>/video", views.recording_video, name="recording_video"),
    path("confide/", views.confide_list, name="confide_list"),
    path("confide/<uuid:report_uuid>/", views.confide_detail, name="confide_detail"),
    path("confide/<uuid:report_uuid>/update", views.confide_update, name="confide_update"),
    path("confide/<uuid:report_uuid>/notes", views.confide_note_add, name="confide_note_add"),
    path("assistance/", views.assistance_notifications, name="assistance_notifications"),
    path("assistance/<uuid:request_uuid>/acknowledge", views.assistance_acknowledge, name="assistance_acknowledge"),
    path("alerts/", views_alerts.alert_rules, name="alerts"),
    path("alerts/<uuid:rule_uuid>/delete", views_alerts.alert_rule_delete, name="alert_delete"),
]
