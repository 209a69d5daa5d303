"""Prints the patient app's load budget beside the care-team console's (figures, not asserted).

For each, in a fresh browser profile under an emulated slow 4G network (the DevTools protocol's
Network.emulateNetworkConditions with Lighthouse's slow 4G figures: 562.5 ms latency, about
1.47 Mbit/s down and 0.6 Mbit/s up): the bytes transferred (compressed, headers included, as
the network layer counts them) and the time until the screen is usable. The emulation applies to the page's requests only: what
the service worker fetches itself is not slowed, so the app's return visit is also measured with
the service worker bypassed (every request over the slow network); that figure is the one
compared. The app's aims
(issue 25): under 150 KB for the first load, under 2 s until the home screen is usable.

Run against a server started like tests/browser/run.sh does:
  python3 tests/browser/app_budget.py --base http://127.0.0.1:PORT --admin-email E --admin-password P
"""

import argparse
import time

from playwright.sync_api import sync_playwright

from app_test import CHROMIUM_ARGS, PASSWORD, Api

SLOW_4G = {"offline": False, "latency": 562.5,
           "downloadThroughput": 1.6 * 1024 * 1024 * 0.9 / 8,
           "uploadThroughput": 750 * 1024 * 0.9 / 8}


class Meter:
    """Counts the bytes a page's network layer received."""

    def __init__(self, context, page):
        self.cdp = context.new_cdp_session(page)
        self.bytes = 0
        self.requests = 0
        self.cdp.on("Network.loadingFinished", self._finished)
        self.cdp.send("Network.enable")
        self.cdp.send("Network.emulateNetworkConditions", SLOW_4G)

    def _finished(self, event):
        self.bytes += event.get("encodedDataLength", 0)
        self.requests += 1

    def reset(self):
        taken = (self.bytes, self.requests)
        self.bytes = 0
        self.requests = 0
        return taken


def timed(work):
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--shots", help="ignored (accepted so run.sh can call it like the tests)")
    args = parser.parse_args()
    api = Api(args.base)
    org = api.login(args.admin_email, args.admin_password)
    clinic = api.call("POST", "/v1/clinics", org, {"name": "Budget Clinic", "timezone": "America/Chicago"})["id"]
    admin = api.join(org, clinic, "clinic_admin", "budget-admin@browser.example", "Budget Admin")
    api.join(admin, clinic, "clinician", "budget-clinician@browser.example", "Budget Clinician")
    api.join(admin, clinic, "patient", "budget-patient@browser.example", "Budget Patient")

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

        # The patient app: first visit (sign-in screen), sign in to home, and a return visit.
        ctx = browser.new_context(viewport={"width": 390, "height": 844})
        page = ctx.new_page()
        meter = Meter(ctx, page)
        t = timed(lambda: (page.goto(args.base + "/app/#/sign-in"),
                           page.wait_for_selector("body[data-view='sign-in']")))
        b, n = meter.reset()
        rows.append(("app: first load, sign-in screen usable", b, n, t))
        page.fill("#email", "budget-patient@browser.example")
        page.fill("#password", PASSWORD)
        t = timed(lambda: (page.click("button:has-text('Sign in')"),
                           page.wait_for_selector("body[data-view='home']")))
        b2, n2 = meter.reset()
        rows.append(("app: sign in until home usable", b2, n2, t))
        app_first = (b + b2, None)
        deadline = time.time() + 30
        while not page.evaluate("navigator.serviceWorker.controller !== null") and time.time() < deadline:
            page.wait_for_timeout(100)
        meter.reset()
        t = timed(lambda: (page.reload(), page.wait_for_selector("body[data-view='home']")))
        b3, n3 = meter.reset()
        rows.append(("app: return visit, home usable", b3, n3, t))
        # The emulation covers the page's own requests, not the service worker's: bypass it so
        # every request (the page revalidated, each API read) crosses the throttled network.
        meter.cdp.send("Network.setBypassServiceWorker", {"bypass": True})
        t = timed(lambda: (page.reload(), page.wait_for_selector("body[data-view='home']")))
        b4, n4 = meter.reset()
        rows.append(("app: return visit, no service worker", b4, n4, t))
        app_home_time = t
        ctx.close()

        # The console: sign-in page, then the inbox.
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        meter = Meter(ctx, page)
        t = timed(lambda: (page.goto(args.base + "/console/login"), page.wait_for_selector("#email")))
        cb, cn = meter.reset()
        rows.append(("console: first load, sign-in page usable", cb, cn, t))
        page.fill("#email", "budget-clinician@browser.example")
        page.fill("#password", PASSWORD)
        t = timed(lambda: (page.click("button[type=submit]"), page.wait_for_selector("h1:has-text('Alert inbox')")))
        cb2, cn2 = meter.reset()
        rows.append(("console: sign in until inbox usable", cb2, cn2, t))
        console_first = cb + cb2
        t = timed(lambda: (page.reload(), page.wait_for_selector("h1:has-text('Alert inbox')")))
        cb3, cn3 = meter.reset()
        rows.append(("console: return visit, inbox usable", cb3, cn3, t))
        console_home_time = t
        ctx.close()
        browser.close()

    print("Slow 4G (562.5 ms latency, 1.47 Mbit/s down), fresh profile")
    print(f"{'':45} {'bytes':>9} {'requests':>9} {'seconds':>8}")
    for name, b, n, t in rows:
        print(f"{name:45} {b:9d} {n:9d} {t:8.2f}")
    print(f"first load (sign-in screen + home), app / console bytes: {app_first[0]} / {console_first}"
          f" = {app_first[0] / max(console_first, 1):.2f}")
    print(f"return visit until usable (app without its service worker), app home / console inbox seconds: {app_home_time:.2f} / {console_home_time:.2f}"
          f" = {app_home_time / max(console_home_time, 0.001):.2f}")
    print(f"aims: first load under 150 KB ({'met' if app_first[0] < 150 * 1024 else 'missed'}), "
          f"home usable under 2 s ({'met' if app_home_time < 2 else 'missed'})")


if __name__ == "__main__":
    main()
