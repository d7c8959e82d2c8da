"""Activity events range-partitioned by month on PostgreSQL (issue 8, part 4).

Placeholder committed first so later migrations can depend on it; the partitioning itself follows.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("logs", "0003_retentionsettings"),
    ]

    operations = []
