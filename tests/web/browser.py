"""The console in a real browser: headless Debian Chromium through Selenium and the system
chromedriver, against a real `slatefs serve` that tests/web.rs (`web_browser`) started and
filled: reports/q1.txt and reports/draft.txt written before snapshot `monday`, then draft.txt
rewritten and reports/q2.txt added; then a policy (prefix `hourly`) took snapshot
$SLATEFS_WEB_POLICY_SNAPSHOT. The dataset is recorded as made for PVC shop/orders-db and
monday for VolumeSnapshot shop/orders-monday.

Logs in (a wrong token first), sees the datasets (with the PVC's name), sees on the timeline
which snapshot the policy made and the VolumeSnapshot's name, opens the snapshot, finds q1.txt and reads it, compares monday with live
(draft.txt changed, q2.txt added), restores draft.txt in place after confirming, takes
snapshot ui-snap and deletes it, pauses the policy, sets the quota (a bad one first), clones
monday (into a taken name first) and gives the clone a policy from the form. Screenshots go to
$SLATEFS_WEB_SCREENSHOTS. The Rust test then checks over NFS and the API what the page did.
"""

import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ["SLATEFS_WEB_URL"]
TOKEN = os.environ["SLATEFS_WEB_TOKEN"]
SHOTS = os.environ["SLATEFS_WEB_SCREENSHOTS"]
BY_POLICY = os.environ["SLATEFS_WEB_POLICY_SNAPSHOT"]


def driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)


def main():
    d = driver()
    wait = WebDriverWait(d, 30)

    def shot(name):
        path = os.path.join(SHOTS, name + ".png")
        d.save_screenshot(path)
        print("screenshot", path)

    def visible(css):
        return wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def text_of(css):
        return d.find_element(By.CSS_SELECTOR, css).text

    def wait_text(css, needle):
        wait.until(lambda _: needle in text_of(css))

    def no_error():
        err = d.find_element(By.ID, "error")
        assert not err.is_displayed(), "the page shows an error: " + err.text

    try:
        d.get(URL + "/")
        visible("#login-token")
        # A wrong token is refused with the server's message.
        d.find_element(By.ID, "login-token").send_keys("not-the-token")
        d.find_element(By.ID, "login-submit").click()
        visible("#error")
        wait_text("#error", "wrong token")
        shot("login")
        d.find_element(By.ID, "login-token").clear()
        d.find_element(By.ID, "login-token").send_keys(TOKEN)
        d.find_element(By.ID, "login-submit").click()

        # The datasets, with usage and health.
        row = visible('#datasets tr[data-dataset="root"]')
        wait.until(lambda _: "ok" in row.text)
        assert row.find_element(By.CSS_SELECTOR, ".snapshot-count").text == "2", row.text
        assert row.find_element(By.CSS_SELECTOR, ".kubernetes").text == "shop/orders-db", row.text
        no_error()
        shot("datasets")

        # The dataset: its snapshot on the timeline; browse the snapshot and find q1.txt.
        row.click()
        visible('#snapshots li[data-snapshot="monday"]')
        # The timeline tells the policy's snapshot from the hand-made one.
        policy_dot = d.find_element(By.CSS_SELECTOR, '#timeline .dot[data-snapshot="%s"]' % BY_POLICY)
        hand_dot = d.find_element(By.CSS_SELECTOR, '#timeline .dot[data-snapshot="monday"]')
        assert "policy" in policy_dot.get_attribute("class").split(), policy_dot.get_attribute("class")
        assert "policy" not in hand_dot.get_attribute("class").split(), hand_dot.get_attribute("class")
        assert "made by policy hourly" in policy_dot.get_attribute("title"), policy_dot.get_attribute("title")
        wait_text('#snapshots li[data-snapshot="%s"]' % BY_POLICY, "made by policy hourly")
        wait_text('#snapshots li[data-snapshot="monday"]', "made by hand")
        # The names people know: the PVC of the dataset, the VolumeSnapshot on the timeline.
        wait_text("#dataset-kubernetes", "PersistentVolumeClaim shop/orders-db (PersistentVolume pvc-0f3c)")
        assert hand_dot.text == "shop/orders-monday", hand_dot.text
        assert "VolumeSnapshot shop/orders-monday" in hand_dot.get_attribute("title"), hand_dot.get_attribute("title")
        wait_text('#snapshots li[data-snapshot="monday"]', "VolumeSnapshot shop/orders-monday")
        wait_text("#policy-summary", "every 1h, keeping 24 last; active")
        d.find_element(By.CSS_SELECTOR, '#snapshots li[data-snapshot="monday"] .browse-snapshot').click()
        wait_text("#browse-version", "snapshot monday")
        visible('#entries tr[data-name="reports"]').click()
        visible('#entries tr[data-name="q1.txt"]')
        names = [r.get_attribute("data-name") for r in d.find_elements(By.CSS_SELECTOR, "#entries tbody tr")]
        assert names == ["draft.txt", "q1.txt"], names
        d.find_element(By.CSS_SELECTOR, '#entries tr[data-name="q1.txt"]').click()
        visible("#viewer-text")
        wait_text("#viewer-text", "written before the snapshot")
        no_error()
        shot("snapshot")

        # Compare monday with live: draft.txt changed, q2.txt added.
        d.find_element(By.CSS_SELECTOR, '#compare-from option[value="monday"]').click()
        d.find_element(By.CSS_SELECTOR, '#compare-to option[value="live"]').click()
        d.find_element(By.ID, "compare-content").click()
        d.find_element(By.ID, "compare-run").click()
        visible('#diff-added li[data-path="/reports/q2.txt"]')
        visible('#diff-changed li[data-path="/reports/draft.txt"]')
        assert text_of("#diff-removed") == "", text_of("#diff-removed")
        assert "q1.txt" not in text_of("#diff-changed"), text_of("#diff-changed")
        no_error()
        shot("compare")

        # Restore draft.txt in place: refused until confirmed, then done.
        d.find_element(By.CSS_SELECTOR, '#entries tr[data-name="draft.txt"] .restore').click()
        visible("#restore-dialog")
        d.find_element(By.ID, "restore-replace").click()
        d.find_element(By.ID, "restore-go").click()
        wait_text("#error", "tick the confirmation")
        d.find_element(By.ID, "restore-confirm").click()
        d.find_element(By.ID, "restore-go").click()
        wait_text("#status", "restored /reports/draft.txt from monday to /reports/draft.txt")
        no_error()
        shot("restored")

        # Take a snapshot and delete it.
        d.find_element(By.ID, "snapshot-name").send_keys("ui-snap")
        d.find_element(By.ID, "snapshot-take").click()
        visible('#snapshots li[data-snapshot="ui-snap"]')
        wait_text("#status", "took snapshot ui-snap")
        shot("snapshot-taken")
        d.find_element(By.CSS_SELECTOR, '#snapshots li[data-snapshot="ui-snap"] .delete-snapshot').click()
        visible("#delete-dialog")
        d.find_element(By.ID, "delete-go").click()
        wait_text("#status", "deleted snapshot ui-snap")
        wait.until(lambda _: not d.find_elements(By.CSS_SELECTOR, '#snapshots li[data-snapshot="ui-snap"]'))
        no_error()
        shot("snapshot-deleted")

        # Pause the policy.
        d.find_element(By.ID, "policy-pause").click()
        wait_text("#policy-summary", "; paused")
        visible("#policy-resume")

        # The quota: a bad one is refused with the server's message, then 2 GiB.
        d.find_element(By.ID, "quota-value").clear()
        d.find_element(By.ID, "quota-value").send_keys("lots")
        d.find_element(By.ID, "quota-set").click()
        visible("#error")
        wait_text("#error", "quota")
        d.find_element(By.ID, "quota-value").clear()
        d.find_element(By.ID, "quota-value").send_keys("2GiB")
        d.find_element(By.ID, "quota-set").click()
        wait_text("#status", "quota of root is now 2.0 GiB")
        wait_text("#dataset-summary", "of 2.0 GiB")
        no_error()

        # Clone monday: into a taken name (refused, with the message), then into monday-copy.
        def clone_into(name):
            d.find_element(By.CSS_SELECTOR, '#snapshots li[data-snapshot="monday"] .clone-snapshot').click()
            visible("#clone-dialog")
            d.find_element(By.ID, "clone-name").send_keys(name)
            d.find_element(By.ID, "clone-go").click()

        clone_into("root")
        visible("#error")
        wait_text("#error", 'dataset "root" already exists')
        clone_into("monday-copy")
        wait_text("#status", "cloned snapshot monday into dataset monday-copy")
        wait_text("#dataset-title", "monday-copy")
        visible('#entries tr[data-name="reports"]')
        wait_text("#policy-summary", "No snapshot policy")
        no_error()
        shot("cloned")

        # A policy for the clone, from the form (paused: it must not run during the test).
        d.find_element(By.ID, "policy-edit-title").click()
        visible("#policy-every").send_keys("1d")
        d.find_element(By.ID, "policy-keep-daily").send_keys("7")
        d.find_element(By.ID, "policy-prefix").send_keys("copy")
        d.find_element(By.ID, "policy-paused").click()
        d.find_element(By.ID, "policy-save").click()
        wait_text("#status", "policy of monday-copy: every 1day, keeping 7 daily")
        wait_text("#policy-summary", "; paused")
        no_error()
        print("browser test passed")
    except Exception:
        shot("failure")
        print(d.page_source[:4000], file=sys.stderr)
        raise
    finally:
        d.quit()


if __name__ == "__main__":
    main()
