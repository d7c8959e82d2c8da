"""The agent REST API (/api/v1/agent/...). Each app contributes its endpoints from its api.py."""

from safeguard.captures import api as captures_api
from safeguard.confide import api as confide_api
from safeguard.groups import api as groups_api
from safeguard.logs import api as logs_api
from safeguard.policies import api as policies_api

urlpatterns = [
    *groups_api.urlpatterns,
    *policies_api.urlpatterns,
    *logs_api.urlpatterns,
    *captures_api.urlpatterns,
    *confide_api.urlpatterns,
]
