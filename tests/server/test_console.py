"""The web console (issue 16) in a real headless Chromium against real gunicorn with data: each view works,
draws what the API answers, shows the API's own error text, and leaves a screenshot in docs/images/."""

from __future__ import annotations

import csv
import io
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from bench.browser import start_chromium
from support.waiting import wait_for

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
HOSTS = ("a", "b")


@pytest.fixture(scope="module")
def node(count_server):
    """cpu{host=a|b}, one point a minute over the last two hours; some of it flushed to Parquet."""
    node = count_server(MEMORY_BUFFER_SIZE=100, FLUSH_INTERVAL_SECONDS=1, WORKERS=1, COMPACTION_INTERVAL_SECONDS=1)
    now_ms = int(time.time() * 1000)
    body = [{"series": "cpu", "tags": {"host": host}, "timestamp": now_ms - minute * 60_000,
             "value": float(minute % 17 + (10 if host == "b" else 0))}
            for host in HOSTS for minute in range(120)]
    assert node.post("/insert", json=body).status_code == 201
    assert wait_for(lambda: node.get("/storage").json()["months"], 30), node.get("/storage").text
    return node


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    driver = start_chromium(download_dir=str(downloads))
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait(driver, condition, seconds: float = 15):
    return WebDriverWait(driver, seconds).until(lambda d: condition(d))


def open_console(browser, node):
    browser.get(node.url + "/")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#series-list li"))


def console_errors(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_static_files_have_types_caching_and_no_traversal(node):
    page = node.get("/")
    assert page.headers["Content-Type"].startswith("text/html") and "console.js" in page.text
    script = node.get("/console/console.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert node.get("/console/console.js", headers={"If-None-Match": script.headers["ETag"]}).status_code == 304
    vendored = node.get("/console/vendor/uplot-1.6.32/uPlot.iife.min.js")
    assert "immutable" in vendored.headers["Cache-Control"]
    for path in ("/console/../app.py", "/console/%2e%2e/app.py", "/console/vendor/../../errors.py", "/console/"):
        answer = requests.get(node.url + path, timeout=10)
        assert answer.status_code == 404 and "error" in answer.json(), path


def test_picked_series_are_charted_as_the_api_answers(node, browser):
    open_console(browser, node)
    browser.find_element(By.ID, "search").send_keys("host=\"a")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#series-list li")) == 1)
    item = browser.find_element(By.CSS_SELECTOR, "#series-list li")
    item.send_keys(Keys.ENTER)  # picking works from the keyboard
    browser.find_element(By.ID, "draw").click()
    wait(browser, lambda d: d.find_element(By.ID, "chart").get_attribute("data-drawn"))
    drawn = browser.execute_script("return window.countConsole.explore")
    assert "step=" in drawn["url"] and browser.find_elements(By.CSS_SELECTOR, "#chart canvas")
    answer = node.get(drawn["url"]).json()["series"]
    expected = [s for s in answer if s["key"] == item.text]
    assert [s["key"] for s in drawn["series"]] == [item.text]
    assert drawn["series"][0]["points"] == expected[0]["points"] and len(expected[0]["points"]) > 10
    assert console_errors(browser) == []
    requested = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert requested and all(url.startswith(node.url + "/") for url in requested), requested
    browser.save_screenshot(str(IMAGES / "console-explore.png"))


def test_names_and_tag_values_are_listed_with_their_series_counts_and_filter_the_list(node, browser):
    open_console(browser, node)
    listed = node.get("/series").json()["series"]
    hosts = sorted({s["tags"]["host"] for s in listed if s["tags"].get("host")})
    shown = {item.find_element(By.TAG_NAME, "span").text: [b.text for b in item.find_elements(By.TAG_NAME, "button")]
             for item in browser.find_elements(By.CSS_SELECTOR, "#tag-list li")}
    assert shown[f"host ({len(hosts)})"] == [
        f"{host} ({sum(s['tags'].get('host') == host for s in listed)})" for host in hosts]
    assert f"cpu ({sum(s['name'] == 'cpu' for s in listed)})" in shown[f"name ({len({s['name'] for s in listed})})"]
    browser.find_element(By.XPATH, "//ul[@id='tag-list']//button[text()='b (1)']").send_keys(Keys.ENTER)
    wait(browser, lambda d: [li.text for li in d.find_elements(By.CSS_SELECTOR, "#series-list li")]
         == [s["key"] for s in listed if s["tags"].get("host") == "b"])
    assert browser.find_element(By.ID, "search").get_attribute("value") == 'host="b"'
    assert console_errors(browser) == []


def test_sql_result_is_tabled_charted_and_downloadable_as_csv(node, browser):
    open_console(browser, node)
    browser.find_element(By.ID, "tab-sql").click()
    editor = browser.find_element(By.ID, "sql")
    editor.clear()
    sql = "SELECT ts, value FROM points WHERE tags['host'] = 'b' ORDER BY ts"
    editor.send_keys(sql, Keys.CONTROL, Keys.ENTER)
    wait(browser, lambda d: "rows in" in d.find_element(By.ID, "sql-status").text)
    expected = node.post("/query/sql", json={"sql": sql}).json()["rows"]
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in browser.find_elements(By.CSS_SELECTOR, "#sql-table tr")[1:]]
    assert len(cells) == len(expected) == 120
    assert cells == [[ts, str(value).removesuffix(".0")] for ts, value in expected]
    assert browser.find_elements(By.CSS_SELECTOR, "#sql-chart canvas")
    highlighted = [(span.get_attribute("class"), span.text)
                   for span in browser.find_elements(By.CSS_SELECTOR, "#sql-highlight span")]
    assert ("kw", "SELECT") in highlighted and ("str", "'b'") in highlighted
    browser.save_screenshot(str(IMAGES / "console-sql.png"))
    browser.find_element(By.ID, "csv").click()
    download = browser.downloads / "result.csv"
    assert wait_for(lambda: download.exists() and download.stat().st_size > 0, 10)
    rows = list(csv.reader(io.StringIO(download.read_text())))
    assert rows[0] == ["ts", "value"] and [[ts, float(v)] for ts, v in rows[1:]] == expected
    browser.find_element(By.ID, "parquet").click()
    parquet = browser.downloads / "result.parquet"
    assert wait_for(lambda: parquet.exists() and parquet.stat().st_size > 0, 10)
    assert pq.read_table(parquet).column("value").to_pylist() == [value for _, value in expected]
    assert console_errors(browser) == []


def test_invalid_query_shows_the_api_error_text(node, browser):
    open_console(browser, node)
    browser.find_element(By.ID, "tab-sql").click()
    editor = browser.find_element(By.ID, "sql")
    editor.clear()
    editor.send_keys("SELECT nope FROM points", Keys.CONTROL, Keys.ENTER)
    error = wait(browser, lambda d: d.find_element(By.ID, "error").text)
    assert error == node.post("/query/sql", json={"sql": "SELECT nope FROM points"}).json()["error"]
    # Chromium logs the failed request itself; nothing else went wrong on the page.
    assert [m for m in console_errors(browser) if "/query/sql" not in m or "400" not in m] == []


def stored_rows(node) -> int:
    return sum(month["rows"] for month in node.get("/storage").json()["months"])


def test_node_page_shows_version_storage_compaction_and_ingest_rate(node, browser):
    now_ms = int(time.time() * 1000)
    for batch in range(4):  # four small flushes of one month: the background compactor merges them
        rows = stored_rows(node)
        body = [{"series": "zcompact", "timestamp": now_ms - batch * 100 - i, "value": 1.0} for i in range(10)]
        assert node.post("/insert", json=body).status_code == 201
        assert wait_for(lambda: stored_rows(node) > rows, 30), "a flush"

    def compacted() -> bool:  # then the figures the page shows stay put while they are compared
        compaction = node.get("/status").json()["compaction"]
        return compaction["last"] is not None and compaction["pending"] == []

    assert wait_for(compacted, 30), node.get("/status").text
    open_console(browser, node)
    browser.find_element(By.ID, "tab-node").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#node-storage td"))
    health, storage = node.get("/health").json(), node.get("/storage").json()
    assert health["version"] in browser.find_element(By.ID, "node-health").text
    first = storage["months"][0]
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#node-storage tr")[1]
             .find_elements(By.TAG_NAME, "td")]
    assert cells[:3] == [first["month"], first["kind"], str(first["blocks"])] and int(cells[3]) > 0
    assert first["kind"] == "points" and int(cells[4]) == first["rows"] > 0
    assert float(cells[5]) == first["bytes_per_row"] == round(first["bytes"] / first["rows"], 2)
    last = node.get("/status").json()["compaction"]["last"]
    assert "The last compaction finished" in browser.find_element(By.ID, "node-compaction").text
    assert f"{last['jobs']} jobs in {last['seconds']} s. Nothing pending." in browser.find_element(By.ID, "node-compaction").text
    assert browser.find_element(By.ID, "node-cluster").get_attribute("hidden") is not None  # a single node

    stop = threading.Event()

    def write() -> None:  # about 500 points/s until stopped (bounded)
        for step in range(600):
            if stop.wait(0.1):
                return
            start_ms = 1_700_000_000_000 + step * 50
            node.post("/insert", json=[{"series": "rate", "timestamp": start_ms + i, "value": 1.0} for i in range(50)])

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait(browser, lambda d: (d.execute_script("return window.countConsole.node.rate") or 0) > 50, 20)
        shown = figure(browser, "ingest rate")
        assert shown.endswith(" points/s") and int(shown.split()[0].replace(",", "")) > 50, shown
        browser.save_screenshot(str(IMAGES / "console-node.png"))
        browser.find_element(By.ID, "tab-explore").click()  # the view refreshes itself only while it is shown
        last_reading = browser.execute_script("return window.countConsole.node.status.time")
        time.sleep(5)  # two and a half refresh periods
        assert browser.execute_script("return window.countConsole.node.status.time") == last_reading
    finally:
        stop.set()
        writer.join(30)
    assert console_errors(browser) == []


def figure(browser, name: str) -> str:
    """The value the node view shows for `name` (its <dt>)."""
    terms = browser.find_elements(By.CSS_SELECTOR, "#node-health dt")
    values = browser.find_elements(By.CSS_SELECTOR, "#node-health dd")
    return next(value.text for term, value in zip(terms, values) if term.text == name)


def test_absolute_range_is_the_one_queried(node, browser):
    open_console(browser, node)
    browser.find_element(By.CSS_SELECTOR, "#series-list li").send_keys(Keys.SPACE)
    start_ms = (int(time.time()) // 60 - 90) * 60_000
    browser.execute_script("""
        const pad = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 19);
        document.getElementById("from").value = pad(arguments[0]);
        document.getElementById("to").value = pad(arguments[0] + 1800000);""", start_ms)
    browser.find_element(By.ID, "draw").click()
    wait(browser, lambda d: d.find_element(By.ID, "chart").get_attribute("data-drawn"))
    drawn = browser.execute_script("return window.countConsole.explore")
    assert (drawn["start"], drawn["end"]) == (start_ms, start_ms + 1_800_000)
    assert drawn["series"][0]["points"] == node.get(drawn["url"]).json()["series"][0]["points"]
