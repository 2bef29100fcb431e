"""The console's Node view in a cluster (issue 16), in a real headless Chromium against a real 3-node cluster: GET
/status lists every member as the node sees it, and the page's members table shows the same."""

from __future__ import annotations

from pathlib import Path

import requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bench.browser import start_chromium

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def test_the_node_view_lists_the_cluster_members(start_cluster):
    cluster = start_cluster(3)
    expected = [(1, cluster.addresses[0], "up", False), (2, cluster.addresses[1], "up", True),
                (3, cluster.addresses[2], "up", False)]

    def listed() -> list[tuple]:
        status = requests.get(cluster.url(1) + "/status", timeout=10).json()["cluster"]
        return [(m["node"], m["address"], m["state"], m["self"]) for m in status["members"]]

    # NOTE: each worker keeps its own view of its peers: the one answering may see node 3 a heartbeat later
    cluster.wait_until(lambda: listed() == expected, 30, f"/status lists {expected}")
    assert requests.get(cluster.url(1) + "/status", timeout=10).json()["cluster"]["ring"]["phase"] == "settled"
    browser = start_chromium()
    try:
        browser.get(cluster.url(1) + "/")
        browser.find_element(By.ID, "tab-node").click()
        seen: dict[str, list] = {}

        def all_up(driver) -> bool:  # the view reads /status every 2 s, replacing the rows
            seen["rows"] = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                            for tr in driver.find_elements(By.CSS_SELECTOR, "#node-members tr")[1:]]
            return len(seen["rows"]) == 3 and all(row[2] == "up" for row in seen["rows"])

        WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(all_up)
        assert [row[:4] for row in seen["rows"]] == [["1", cluster.addresses[0], "up", "yes"],
                                                     ["2 (this node)", cluster.addresses[1], "up", "yes"],
                                                     ["3", cluster.addresses[2], "up", "yes"]]
        assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
        browser.save_screenshot(str(IMAGES / "console-node-cluster.png"))
    finally:
        browser.quit()
