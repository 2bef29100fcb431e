"""The console's Node view in a cluster (issue 16), in a real headless Chromium against a real 3-node cluster: GET
/status lists every member as the node sees it, and the page's members table shows the same."""

from __future__ import annotations

from pathlib import Path

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bench.browser import start_chromium

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def test_the_node_view_lists_the_cluster_members(start_cluster):
    cluster = start_cluster(3)
    status = requests.get(cluster.url(1) + "/status", timeout=10).json()["cluster"]
    assert [(m["node"], m["address"], m["state"], m["self"]) for m in status["members"]] == [
        (1, cluster.addresses[0], "up", False), (2, cluster.addresses[1], "up", True),
        (3, cluster.addresses[2], "up", False)]
    assert status["ring"]["phase"] == "settled"
    browser = start_chromium()
    try:
        browser.get(cluster.url(1) + "/")
        browser.find_element(By.ID, "tab-node").click()
        WebDriverWait(browser, 15).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#node-members tr")) == 4)
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in browser.find_elements(By.CSS_SELECTOR, "#node-members tr")[1:]]
        assert [row[:4] for row in rows] == [["1", cluster.addresses[0], "up", "yes"],
                                             ["2 (this node)", cluster.addresses[1], "up", "yes"],
                                             ["3", cluster.addresses[2], "up", "yes"]]
        assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
        browser.save_screenshot(str(IMAGES / "console-node-cluster.png"))
    finally:
        browser.quit()
