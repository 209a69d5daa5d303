"""Creates, through the API of a running server, the accounts the contract check signs in as.

Usage: setup.py BASE_URL COMPANION_BINARY DATA_DIR OUT_JSON

The organisation admin comes from the command line (`companion admin create-org-admin`, as on a
fresh installation); a clinic, its admin, a clinician and a patient come from invitations. Writes
their access tokens and ids (and one of each record the operations take as a path parameter) to
OUT_JSON, with, under "example", what examples/typescript signs in with: a patient invitation
code and a clinician's email and password in a second clinic. Standard library only.
"""

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from datetime import datetime, timezone

PASSWORD = "contract check passphrase"


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {path}: {error.code} {error.read().decode()}") from None


def join(base, inviter_token, clinic_id, role):
    _, invitation = call(base, "POST", f"/v1/clinics/{clinic_id}/invitations",
                         {"role": role}, inviter_token)
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.org"
    _, tokens = call(base, "POST", "/v1/invitations/accept",
                     {"code": invitation["code"], "email": email, "password": PASSWORD,
                      "display_name": f"Contract {role}"})
    _, me = call(base, "GET", "/v1/me", token=tokens["access_token"])
    return {"token": tokens["access_token"], "id": me["id"], "email": email}


def main():
    base, binary, data_dir, out = sys.argv[1:5]
    admin_email = f"org-{uuid.uuid4().hex[:8]}@example.org"
    env = dict(os.environ, COMPANION_DATA_DIR=data_dir, COMPANION_ADMIN_PASSWORD=PASSWORD)
    subprocess.run([binary, "admin", "create-org-admin", "--email", admin_email],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    _, login = call(base, "POST", "/v1/auth/login", {"email": admin_email, "password": PASSWORD})
    org = login["access_token"]
    _, clinic = call(base, "POST", "/v1/clinics",
                     {"name": "Contract Clinic", "timezone": "America/Chicago"}, org)
    admin = join(base, org, clinic["id"], "clinic_admin")
    clinician = join(base, admin["token"], clinic["id"], "clinician")
    patient = join(base, clinician["token"], clinic["id"], "patient")
    # A few records, so that operations on an id have one to find.
    now = datetime.now(timezone.utc).isoformat()
    answers = {f"q{i}": 1 for i in range(1, 10)}
    call(base, "POST", "/v1/check-ins",
         {"id": str(uuid.uuid4()), "instrument": "phq9", "answers": answers,
          "completed_at": now}, patient["token"])
    _, session = call(base, "POST", f"/v1/patients/{patient['id']}/sessions",
                      {"modality": "iv_infusion", "scheduled_at": now}, clinician["token"])
    json.dump({"clinic_id": clinic["id"], "org_admin": {"token": org},
               "clinic_admin": admin, "clinician": clinician, "patient": patient,
               "session_id": session["id"], "example": example_client(base, org)},
              open(out, "w"), indent=2)


def example_client(base, org):
    """What examples/typescript needs: a patient invitation code and a clinician's credentials,
    in a clinic of their own (with a consent document in force, which the example accepts), so
    that the example's patient and alert stay out of the accounts schemathesis drives."""
    _, clinic = call(base, "POST", "/v1/clinics",
                     {"name": "Example Clinic", "timezone": "America/New_York"}, org)
    admin = join(base, org, clinic["id"], "clinic_admin")
    call(base, "POST", f"/v1/clinics/{clinic['id']}/consent-documents",
         {"title": "Monitoring between sessions",
          "body": "The clinic reads your check-ins and is alerted to safety answers."},
         admin["token"])
    clinician = join(base, admin["token"], clinic["id"], "clinician")
    _, invitation = call(base, "POST", f"/v1/clinics/{clinic['id']}/invitations",
                         {"role": "patient"}, clinician["token"])
    return {"clinic_id": clinic["id"], "invitation_code": invitation["code"],
            "clinician_email": clinician["email"], "clinician_password": PASSWORD}


if __name__ == "__main__":
    main()
