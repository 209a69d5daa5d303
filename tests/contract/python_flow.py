"""A short flow through the Python client openapi-python-client generates from the document
with its default settings: the zones a client may send, a daily mood and a PHQ-9 with item 9 as
the patient (the safety notice in the answer), then the urgent alert in the care team's inbox.
Run by run.sh with the generated package installed; exits non-zero on any failure."""

import json
import sys
import uuid
from datetime import datetime, timezone

from companion_api_client import AuthenticatedClient, Client
from companion_api_client.api.accounts import list_time_zones
from companion_api_client.api.alerts import list_alerts
from companion_api_client.api.check_ins import create_check_in
from companion_api_client.models.submit_check_in import SubmitCheckIn


def main():
    base, accounts_file = sys.argv[1:3]
    accounts = json.load(open(accounts_file))
    zones = list_time_zones.sync(client=Client(base_url=base))
    assert "America/Chicago" in zones.time_zones, zones

    patient = AuthenticatedClient(base_url=base, token=accounts["patient"]["token"])
    now = datetime.now(timezone.utc).isoformat()
    mood = create_check_in.sync_detailed(client=patient, body=SubmitCheckIn.from_dict({
        "id": str(uuid.uuid4()), "instrument": "daily_mood",
        "answers": {"mood": 6, "sleep_hours": 7.25}, "completed_at": now}))
    assert mood.status_code == 201, (mood.status_code, mood.content)

    answers = {f"q{i}": 1 for i in range(1, 9)}
    answers["q9"] = 2
    phq9 = create_check_in.sync_detailed(client=patient, body=SubmitCheckIn.from_dict({
        "id": str(uuid.uuid4()), "instrument": "phq9", "answers": answers, "completed_at": now}))
    assert phq9.status_code in (200, 201), (phq9.status_code, phq9.content)
    safety = json.loads(phq9.content)["safety"]
    assert safety["care_team"] in ("reached", "trying", "unreachable"), safety

    clinician = AuthenticatedClient(base_url=base, token=accounts["clinician"]["token"])
    inbox = list_alerts.sync_detailed(client=clinician)
    assert inbox.status_code == 200, (inbox.status_code, inbox.content)
    items = json.loads(inbox.content)["items"]
    assert any(a["severity"] == "urgent" for a in items), items
    print("python client: time zones, a daily mood, a PHQ-9 with item 9, the urgent alert in the inbox")


if __name__ == "__main__":
    main()
