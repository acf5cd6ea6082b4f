"""`piherd dashboard` in Debian's headless Chromium against light sim nodes (no Slurm).

Also holds the helpers the Slurm tests (test_watch_slurm.py) reuse: starting the
dashboard command, a Chromium driven through chromedriver (selenium), reading /metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from piherd.sim.virtual_cluster import VirtualCluster

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)
SCREENSHOTS = Path(os.environ.get("PIHERD_SCREENSHOTS", "/tmp/piherd-screenshots"))


def piherd() -> str:
    """The installed piherd command of this environment."""
    command = Path(sys.executable).parent / "piherd"
    assert command.exists(), f"piherd is not installed next to {sys.executable}"
    return str(command)


def interrupt(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C a piherd process we started, as a user would; kill it if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Poll `check` until it returns something true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def http_get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextmanager
def dashboard(
    cluster_file: Path, *extra: str, token: str | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `piherd dashboard` on a free loopback port until the block ends; its base URL."""
    port = free_port()
    env = dict(os.environ)
    env.pop("PIHERD_DASHBOARD_TOKEN", None)
    if token:
        env["PIHERD_DASHBOARD_TOKEN"] = token
    argv = [piherd(), "dashboard", "-f", str(cluster_file), "--port", str(port), *extra]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                status, body = http_get(f"{base}/api/state", token)
            except OSError:
                return False
            return status == 200 and json.loads(body)["ready"]

        wait_for(ready, 60, "the dashboard's first round")
        yield base, proc
    finally:
        interrupt(proc)


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """Headless Chromium through chromedriver, with a throw-away profile."""
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "chromium and chromium-driver are needed (scripts/apt-packages.txt)"
    )
    profile = tempfile.mkdtemp(prefix="piherd-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def load_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"
    )


def cards(driver: WebDriver) -> dict[str, dict[str, str]]:
    """Node cards in the page: {node: {level, slurm, class, text}}, read in one script
    (the page redraws every 2 s, so elements found one by one can go stale)."""
    found = driver.execute_script(
        """
        const out = {};
        document.querySelectorAll("#grid .node").forEach((c) => {
          out[c.dataset.node] = {
            level: c.dataset.level, slurm: c.dataset.slurm, class: c.className,
            text: c.innerText,
          };
        });
        return out;
        """
    )
    assert isinstance(found, dict)
    return found


def click(driver: WebDriver, css: str) -> None:
    """A real click on the element; found again if a redraw replaced it meanwhile."""
    for _ in range(5):
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{css} kept being redrawn under the click")


def screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), "chromium took no screenshot"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, "screenshot is not a page"
    return path


def metric_values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse Prometheus text with prometheus_client's parser: {(name, labels): value}."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


def metric(
    values: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return values[(name, frozenset(labels.items()))]


# ----- tests on light nodes ----------------------------------------------------------

NAME = "tstat"


@pytest.fixture(scope="module")
def light(
    sim_cm: Callable[..., AbstractContextManager[VirtualCluster]],
) -> Iterator[tuple[VirtualCluster, Path]]:
    with sim_cm(NAME, 3, light=True) as vc:
        for node in vc.node_names():  # a cluster left up by an earlier run: clean signals
            vc.inject(node, "clear")
        yield vc, vc.cluster_file


@pytest.mark.sim
def test_page_shows_every_node_and_its_state(light: tuple[VirtualCluster, Path]) -> None:
    vc, path = light
    vc.inject("node03", "undervoltage")
    try:
        with dashboard(path, "--interval", "1") as (base, _), chromium() as driver:
            load_page(driver, base + "/")

            def shown() -> dict[str, dict[str, str]] | None:
                found = cards(driver)
                return found if found.get("node03", {}).get("level") == "critical" else None

            found = wait_for(shown, 30, "node03 shown critical")
            assert sorted(found) == vc.node_names()
            assert "under-voltage" in found["node03"]["text"]
            assert "level-critical" in found["node03"]["class"]
            shot = screenshot(driver, "dashboard-light")
            assert shot.stat().st_size > 10_000
            title = driver.find_element(By.ID, "summary").text
            assert title.startswith(f"{len(vc.node_names())} nodes")
    finally:
        vc.inject("node03", "clear")


@pytest.mark.sim
def test_metrics_parse_and_match(light: tuple[VirtualCluster, Path]) -> None:
    vc, path = light
    with dashboard(path, "--interval", "1") as (base, _):
        status, text = http_get(base + "/metrics")
        assert status == 200
        values = metric_values(text)
        for node in vc.node_names():
            assert metric(values, "piherd_node_up", node=node) == 1.0
            assert metric(values, "piherd_node_temperature_celsius", node=node) == 45.0
            assert (
                metric(values, "piherd_node_throttled", node=node, flag="under-voltage", when="now")
                == 0.0
            )
            assert metric(values, "piherd_node_load1", node=node) >= 0.0


@pytest.mark.sim
def test_token_guards_the_data(light: tuple[VirtualCluster, Path]) -> None:
    _, path = light
    with dashboard(path, "--interval", "1", token="t0ken-for-test") as (base, _):
        assert http_get(base + "/api/state")[0] == 401
        assert http_get(base + "/metrics")[0] == 401
        assert http_get(base + "/metrics", "t0ken-for-test")[0] == 200
        with chromium() as driver:
            load_page(driver, base + "/?token=t0ken-for-test")
            assert len(cards(driver)) == 4
