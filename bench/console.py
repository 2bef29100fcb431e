"""Web console weight and speed (issue 16) in the system's headless Chromium against a real count-server:
bytes transferred by a first load, and click-to-drawn time charting 100 series x 1 day at the automatic step,
beside the same query fetched bare from the page (the baseline measured in the same run).

    python -m bench.console [--series 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bench.browser import start_chromium
from bench.server import CountServer

DAY_MS = 86_400_000
CLICK_TO_DRAWN = """
const done = arguments[arguments.length - 1], chart = document.getElementById("chart"), before = chart.dataset.drawn;
delete chart.dataset.drawn;
const started = performance.now();
document.getElementById("draw").click();
(function poll() {
  if (chart.dataset.drawn) requestAnimationFrame(() => done(performance.now() - started));
  else if (window.countConsole.explore === null && document.getElementById("error").textContent) done(-1);
  else setTimeout(poll, 1);
})();
"""
BARE_FETCH = """
const done = arguments[arguments.length - 1], started = performance.now();
fetch(arguments[0]).then((r) => r.json()).then(() => done(performance.now() - started));
"""


def load(server: CountServer, series: int) -> None:
    """`series` series named bench, one point a minute over the last day."""
    now_ms = int(time.time() * 1000)
    for first in range(0, series, 10):
        body = [{"series": "bench", "tags": {"i": str(i)}, "timestamp": now_ms - minute * 60_000, "value": minute % 97}
                for i in range(first, min(series, first + 10)) for minute in range(1440)]
        requests.post(server.url + "/insert", json=body, timeout=60).raise_for_status()


def measure(url: str, repeat: int) -> dict:
    driver = start_chromium()
    try:
        driver.get(url + "/")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#series-list li"))
        first_load_bytes = driver.execute_script(
            "return [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')]"
            ".reduce((n, e) => n + e.transferSize, 0)")
        driver.find_element(By.CSS_SELECTOR, f"#range option[value='{DAY_MS}']").click()
        driver.set_script_timeout(60)
        drawn_ms = [driver.execute_async_script(CLICK_TO_DRAWN) for _ in range(repeat)]
        explore = driver.execute_script("return window.countConsole.explore")
        bare_ms = [driver.execute_async_script(BARE_FETCH, explore["url"]) for _ in range(repeat)]
        return {"first_load_bytes": first_load_bytes, "series_drawn": len(explore["series"]),
                "points_drawn": sum(len(s["points"]) for s in explore["series"]), "step": explore["step"],
                "click_to_drawn_ms_median": round(statistics.median(drawn_ms), 1),
                "bare_fetch_ms_median": round(statistics.median(bare_ms), 1)}
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="count-console-bench-") as tmp:
        server = CountServer(Path(tmp) / "data", Path(tmp) / "server.log").start()
        try:
            load(server, args.series)
            result = measure(server.url, args.repeat)
        finally:
            server.stop()
    result["drawn_over_bare_fetch"] = round(result["click_to_drawn_ms_median"] / result["bare_fetch_ms_median"], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
