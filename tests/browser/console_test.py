"""Drives the care-team console in headless Chromium against a running server.

Seeds a clinic through the JSON API (an admin, a clinician, a patient with five days of mood
check-ins), then walks: sign-in; a PHQ-9 with item 9 submitted through the API showing up in
the open inbox without a reload; acknowledge and resolve; the patient page's mood chart with
one point per day; scheduling a session; a clinic admin changing the crisis phone; a forged form post refused; sign out. Prints
"N passed, N failed" and exits non-zero on any failure.
"""

import argparse
import datetime as dt
import json
import sys
import urllib.error
import urllib.request
import uuid

from playwright.sync_api import sync_playwright

PASSWORD = "browser test passphrase"


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, token=None, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", "Bearer " + token)
        with urllib.request.urlopen(req) as resp:
            text = resp.read()
            return json.loads(text) if text else None

    def login(self, email, password):
        return self.call("POST", "/v1/auth/login", body={"email": email, "password": password})["access_token"]

    def join(self, inviter, clinic, role, email, name):
        code = self.call("POST", f"/v1/clinics/{clinic}/invitations", inviter, {"role": role})["code"]
        tokens = self.call("POST", "/v1/invitations/accept", body={
            "code": code, "email": email, "password": PASSWORD, "display_name": name,
            "timezone": "America/Chicago"})
        return tokens["access_token"]


def iso(t):
    return t.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def check_in(api, token, instrument, answers, at):
    api.call("POST", "/v1/check-ins", token, {
        "id": str(uuid.uuid4()), "instrument": instrument, "answers": answers, "completed_at": iso(at)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--shots", required=True)
    args = parser.parse_args()
    api = Api(args.base)

    org = api.login(args.admin_email, args.admin_password)
    clinic = api.call("POST", "/v1/clinics", org, {"name": "Browser Clinic", "timezone": "America/Chicago"})["id"]
    admin = api.join(org, clinic, "clinic_admin", "clinic-admin@browser.example", "Dr. Admin")
    api.join(admin, clinic, "clinician", "clinician@browser.example", "Dr. Clinician")
    patient = api.join(admin, clinic, "patient", "patient@browser.example", "Pat Browser")
    patient_id = api.call("GET", "/v1/me", patient)["id"]
    now = dt.datetime.now(dt.timezone.utc)
    mood_days = 5
    for k in range(mood_days, 0, -1):
        check_in(api, patient, "daily_mood", {"mood": 5 + k % 3}, now - dt.timedelta(days=k - 1, hours=1))

    results = []

    def step(name, fn):
        try:
            fn()
            results.append((name, None))
            print(f"ok   {name}")
        except Exception as error:  # noqa: BLE001 - every failure is reported, then counted
            results.append((name, error))
            print(f"FAIL {name}: {error}")

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        shot = lambda name, pg=page: pg.screenshot(path=f"{args.shots}/{name}.png", full_page=True)
        state = {}

        def sign_in():
            page.goto(args.base + "/console")
            assert page.url.endswith("/console/login"), page.url
            shot("01-sign-in")
            page.fill("#email", "clinician@browser.example")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("h1:has-text('Alert inbox')")
            assert "No open alerts." in page.content()
            shot("02-empty-inbox")

        def live_inbox():
            page.evaluate("window.__notReloaded = true")
            answers = {f"q{i}": 1 for i in range(1, 9)}
            answers["q9"] = 2
            check_in(api, patient, "phq9", answers, dt.datetime.now(dt.timezone.utc))
            page.wait_for_selector("tr[data-severity=urgent]", timeout=20000)
            assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
            assert page.is_visible("#urgent-banner"), "the urgent banner is shown"
            row = page.locator("tr[data-severity=urgent]").first
            assert "Pat Browser" in row.inner_text()
            assert "Safety answer" in row.inner_text()
            assert "Urgent alert" in page.title()
            state["alert"] = row.get_attribute("data-alert-id")
            shot("03-live-urgent-alert")

        def acknowledge_and_resolve():
            row = page.locator(f"tr[data-alert-id='{state['alert']}']")
            row.locator("button:has-text('Acknowledge')").click()
            page.wait_for_load_state()
            page.click("a:has-text('Acknowledged')")
            row = page.locator(f"tr[data-alert-id='{state['alert']}']")
            row.locator("summary").click()
            row.locator("textarea[name=note]").fill("Called the patient; safety plan reviewed.")
            shot("04-resolving")
            row.locator("button:has-text('Resolve')").click()
            page.wait_for_load_state()
            page.click("a:has-text('Resolved')")
            assert "safety plan reviewed" in page.locator(f"tr[data-alert-id='{state['alert']}']").inner_text()
            shot("05-resolved")

        def patient_chart():
            page.click("a:has-text('Pat Browser')")
            page.wait_for_selector("#mood-chart")
            points = page.locator("#mood-chart circle.point").count()
            assert points == mood_days, f"{points} mood points for {mood_days} days"
            assert page.locator("#phq9-chart circle.point").count() == 1
            assert "Pat Browser" not in page.title(), "no patient name in the title"
            shot("06-patient-page")
            phone = context.new_page()
            phone.set_viewport_size({"width": 390, "height": 844})
            phone.goto(page.url)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"page is {width}px wide at phone width"
            phone.screenshot(path=f"{args.shots}/07-patient-page-phone.png", full_page=True)
            phone.close()

        def schedule_session():
            when = (dt.datetime.now() + dt.timedelta(days=3)).strftime("%Y-%m-%dT10:30")
            page.select_option("#modality", "intranasal_esketamine")
            page.fill("#scheduled_at", when)
            page.click("#schedule-form button[type=submit]")
            page.wait_for_selector("#sessions td:has-text('Esketamine nasal spray')")
            sessions = api.call("GET", f"/v1/patients/{patient_id}/sessions", admin)["items"]
            assert len(sessions) == 1 and sessions[0]["modality"] == "intranasal_esketamine", sessions
            shot("08-session-scheduled")

        def invitations():
            # Invitations are the clinic admin's: sign in as one in a second browser context.
            admin_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            admin_page = admin_ctx.new_page()
            admin_page.goto(args.base + "/console/login")
            admin_page.fill("#email", "clinic-admin@browser.example")
            admin_page.fill("#password", PASSWORD)
            admin_page.click("button[type=submit]")
            admin_page.wait_for_selector("h1:has-text('Alert inbox')")
            admin_page.click("header nav a:has-text('Clinic')")
            admin_page.select_option("#role", "patient")
            admin_page.fill("#invite-email", "new-patient@browser.example")
            admin_page.click("#invite-form button[type=submit]")
            admin_page.wait_for_selector("#new-invitation")
            code = admin_page.inner_text("code.invitation-code").strip()
            assert len(code) >= 8, code
            row = admin_page.locator("#invitations tr[data-invitation-id]")
            assert row.count() == 1 and "new-patient@browser.example" in row.first.inner_text()
            admin_page.screenshot(path=f"{args.shots}/09-invitation-created.png", full_page=True)
            row.first.locator("button:has-text('Revoke')").click()
            admin_page.wait_for_selector("#invitations td:has-text('No pending invitations.')")
            admin_page.screenshot(path=f"{args.shots}/10-invitation-revoked.png", full_page=True)
            try:
                api.call("POST", "/v1/invitations/accept", body={
                    "code": code, "email": "new-patient@browser.example", "password": PASSWORD})
                raise AssertionError("a revoked invitation was accepted")
            except urllib.error.HTTPError as error:
                assert error.code in (404, 409, 410, 422), error.code
            admin_ctx.close()

        def change_crisis_phone():
            # Clinic details are the clinic admin's: a second browser context signed in as one.
            admin_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            admin_page = admin_ctx.new_page()
            admin_page.goto(args.base + "/console/login")
            admin_page.fill("#email", "clinic-admin@browser.example")
            admin_page.fill("#password", PASSWORD)
            admin_page.click("button[type=submit]")
            admin_page.wait_for_selector("h1:has-text('Alert inbox')")
            admin_page.click("header nav a:has-text('Settings')")
            admin_page.wait_for_selector("h1:has-text('Clinic settings')")
            admin_page.click("#details-h ~ details summary")
            admin_page.fill("#crisis_phone", "+1 312 555 0100")
            admin_page.click("#clinic-form button[type=submit]")
            admin_page.wait_for_selector("#crisis-phone:has-text('+1 312 555 0100')")
            shown = api.call("GET", f"/v1/clinics/{clinic}", admin)["crisis_phone"]
            assert shown == "+1 312 555 0100", shown
            # The default care plan: add a weekly GAD-7 in the first empty row.
            admin_page.click("#plan-h ~ details summary")
            admin_page.fill("#rule4-id", "weekly_gad7")
            admin_page.select_option("#rule4-instrument", "gad7")
            admin_page.select_option("#rule4-when", "weekly")
            admin_page.select_option("#rule4-weekday", "thu")
            admin_page.click("#care-plan-form button[type=submit]")
            admin_page.wait_for_selector("#care-plan td:has-text('every Thu')")
            rules = api.call("GET", f"/v1/clinics/{clinic}/care-plan", admin)["rules"]
            assert [r["id"] for r in rules][-1] == "weekly_gad7", rules
            admin_page.click("#plan-h ~ details summary")
            width = admin_page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1280, f"settings page with the care plan form open is {width}px wide"
            admin_page.screenshot(path=f"{args.shots}/11-clinic-settings.png", full_page=True)
            admin_page.set_viewport_size({"width": 390, "height": 844})
            width = admin_page.evaluate("document.documentElement.scrollWidth")
            admin_page.screenshot(path=f"{args.shots}/12-clinic-settings-phone.png", full_page=True)
            assert width <= 390, f"settings page is {width}px wide at phone width"
            admin_ctx.close()

        def forged_post_refused():
            page.goto(args.base + "/console")
            with page.expect_navigation() as navigation:
                page.evaluate("""(id) => {
                    const f = document.createElement('form');
                    f.method = 'post';
                    f.action = '/console/alerts/' + id + '/acknowledge';
                    document.body.appendChild(f);
                    f.submit();
                }""", state["alert"])
            assert navigation.value.status == 403, navigation.value.status
            page.wait_for_selector("h1:has-text('Form expired')")
            shot("13-forged-post-refused")

        def sign_out():
            page.goto(args.base + "/console")
            page.click("button:has-text('Sign out')")
            page.wait_for_selector("text=You are signed out.")
            shot("14-signed-out")
            page.goto(args.base + "/console")
            assert "/console/login" in page.url, page.url

        for name, fn in [
            ("sign in", sign_in),
            ("open inbox shows an item-9 alert without a reload", live_inbox),
            ("acknowledge and resolve", acknowledge_and_resolve),
            ("patient page charts one point per day", patient_chart),
            ("schedule a session", schedule_session),
            ("create and revoke an invitation", invitations),
            ("clinic admin changes the crisis phone and the care plan", change_crisis_phone),
            ("forged form post refused", forged_post_refused),
            ("sign out", sign_out),
        ]:
            step(name, fn)
        browser.close()

    failed = sum(1 for _, e in results if e is not None)
    print(f"screenshots in {args.shots}")
    print(f"browser: {len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
