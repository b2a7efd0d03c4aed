"""End to end: ``streamlit run app.py`` in a subprocess, every page loaded in headless Chromium.

Chromium and its driver come from Debian (``chromium``, ``chromium-driver``). Under ``CI=true``
``.ci/run`` installs them before the tests and a missing browser FAILS this test (CI must not go
green without it). Elsewhere the test installs them with apt-get when it runs as root and they
are missing, and skips with the reason (shown by ``-ra``) only where that is impossible.

The server runs with the shipped ``.streamlit/config.toml`` (only the port, headless mode and
file watcher are given on the command line), and the test checks what that file promises: the
server listens on loopback only and prints no external URL or usage-statistics notice.
Screenshots of every page go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
#: Screenshots go here; ``ARCHOPT_SCREENSHOT_DIR`` overrides it (the README's set is made with
#: ``ARCHOPT_APP_HOME=<home with the demo campaign> ARCHOPT_SCREENSHOT_DIR=results/screenshots``).
ARTIFACTS = Path(os.environ.get("ARCHOPT_SCREENSHOT_DIR") or REPO / "test-artifacts" / "screenshots")
#: (url path, page title in the app, file name of the screenshot)
PAGES = [("", "Campaigns", "campaigns"),  # the default page lives at the root URL
          ("pareto", "Pareto front", "pareto"),
         ("scaling-law", "Scaling law", "scaling_law"), ("throughput", "Throughput model", "throughput"),
         ("export", "Export", "export")]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


def in_ci() -> bool:
    """True on CI (``CI=true``, as ``.ci/run`` is run), where the browser test may not skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _unavailable(reason: str) -> None:
    """Skip with ``reason`` -- or, under CI, fail: a CI run must not pass without the browser."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}; .ci/run installs Debian chromium and chromium-driver "
                    "before the tests, so the browser test must run", pytrace=False)
    pytest.skip(reason)


def _ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing the Debian packages when possible."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    if in_ci():  # .ci/run installed them (or failed loudly); nothing to retry here
        _unavailable(f"chromium or chromedriver is not on PATH (chromium: {chromium}, "
                     f"chromedriver: {driver})")
    if not shutil.which("apt-get"):
        _unavailable("headless Chromium is not installed and there is no apt-get to install it")
    if os.geteuid() != 0:
        _unavailable("headless Chromium is not installed and installing it needs root (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300,
                       capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
                       check=True, env=env, timeout=600, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        _unavailable(f"could not install chromium with apt-get: {exc}")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        _unavailable("apt-get ran but chromium/chromedriver are still missing")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (the dev extra)")

    chromium, driver_path = _ensure_chromium()
    profile = tempfile.mkdtemp(prefix="archopt-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}", "--window-size=1440,2000"]:
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download drivers
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass(frozen=True)
class Served:
    """The app under test: its URL, port and the server's log file."""

    url: str
    port: int
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Served:
    """The app served from a home that holds one small campaign with a few trials."""
    if os.environ.get("ARCHOPT_APP_HOME"):  # serve an existing home (e.g. `archopt demo`'s)
        home = Path(os.environ["ARCHOPT_APP_HOME"]).expanduser()
    else:
        home = tmp_path_factory.mktemp("browser-home")
        make_demo_campaign(home)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("streamlit-log") / "streamlit.log"
    log = open(log_path, "w")
    # HOME: no user-level ~/.streamlit settings; the repository's .streamlit/config.toml (read
    # from the working directory, as `streamlit run app.py` in the README) sets the address.
    env = {**os.environ, "ARCHOPT_HOME": str(home), "PYTHONPATH": str(REPO),
           "HOME": str(tmp_path_factory.mktemp("streamlit-home"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            break
    else:
        proc.terminate()
        pytest.fail(f"streamlit did not start: {log_path.read_text()[-2000:]}")
    if proc.poll() is not None:
        pytest.fail(f"streamlit exited: {log_path.read_text()[-2000:]}")
    try:
        yield Served(url, port, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def make_demo_campaign(home: Path) -> None:
    """A 1B / 20B-token / A100-40GB campaign with three trials, two of them observed.

    The prior is a quick least-squares fit on the Morph runs (the package default is a NUTS fit,
    too slow for a test); observed losses are the predicted means plus a small offset.
    """
    from optim.campaign import Campaign, CampaignSpec
    from surrogate import bundled_path, fit_lsq, load_runs

    prior = fit_lsq(load_runs(bundled_path("morph_runs.csv")), "conditional",
                    n_starts=2).to_posterior(200)
    spec = CampaignSpec(name="demo-1b", params=1.0e9, tokens=20e9, hardware="a100-40gb", band=0.02)
    campaign = Campaign.create(spec, store=home / "campaigns.sqlite", prior=prior, progress=False)
    proposals = campaign.propose(3)
    for row, delta in zip(proposals[:2], (0.012, -0.008)):
        campaign.observe(row["trial"], row["pred_loss_mean"] + delta)


def _wait_idle(driver, timeout: float = 120.0) -> None:
    """Until the script has run (the app reports notRunning) and no spinner is left."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    idle_since = None
    while time.time() < deadline:
        states = [e.get_attribute("data-test-script-state")
                  for e in driver.find_elements(By.CSS_SELECTOR, "[data-test-script-state]")]
        busy = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSpinner"]')
        if states and all(s == "notRunning" for s in states) and not busy:
            idle_since = idle_since or time.time()
            if time.time() - idle_since > 1.5:  # charts finish drawing after the script ends
                return
        else:
            idle_since = None
        time.sleep(0.3)
    raise AssertionError(f"page did not finish running within {timeout}s")


def _click_a_reference_point(driver) -> None:
    """Clicking a marker selects it (plotly selection event -> rerun) and shows its details."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from surrogate import reference_architectures

    names = set(reference_architectures()["name"])

    def details_heading() -> str:  # the picked architecture's name, above its numbers
        return driver.find_elements(By.CSS_SELECTOR, '[data-testid="stHeading"] h3')[-1].text.strip()

    assert details_heading() not in names  # the default pick is the first front architecture
    # The reference-model trace is the only one with text labels.
    refs = [t for t in driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace")
            if t.find_elements(By.CSS_SELECTOR, ".textpoint")]
    assert refs, "no reference-model trace in the Pareto chart"
    point = refs[0].find_elements(By.CSS_SELECTOR, ".point")[0]
    ActionChains(driver).move_to_element(point).click().perform()
    time.sleep(1.0)
    _wait_idle(driver)
    heading = details_heading()
    assert heading in names, f"clicking a reference point did not select it (shows {heading!r})"


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.append(address)
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


def test_server_listens_on_loopback_only_without_usage_stats(server):
    """The shipped .streamlit/config.toml: localhost only, no usage statistics, no external IP."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read the listening sockets from (not Linux)")
    addresses = _listening(server.port)
    assert addresses, f"nothing listens on port {server.port}"
    assert set(addresses) <= LOOPBACK, f"listening beyond loopback: {addresses}"
    log = server.log.read_text()
    assert f"URL: http://localhost:{server.port}" in log, log
    for text in ("External URL", "Network URL", "Collecting usage statistics"):
        assert text not in log, f"{text!r} in the server log: {log[-1000:]}"


def test_every_page_renders_in_chromium(browser, server):
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for path, title, shot in PAGES:
        browser.get(f"{server.url}/{path}")
        _wait_idle(browser)
        text = browser.find_element(By.TAG_NAME, "body").text
        browser.save_screenshot(str(ARTIFACTS / f"{shot}.png"))
        exceptions = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        assert not exceptions, f"{path}: {exceptions[0].text[:500]}"
        assert title in text, f"{path}: page title {title!r} not shown"
        if path == "pareto":
            plots = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
            assert plots, "the Pareto chart did not render"
            points = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .point")
            assert len(points) > 3, "the Pareto chart has no points"
            _click_a_reference_point(browser)
            browser.save_screenshot(str(ARTIFACTS / "pareto_selected.png"))
        if path in ("scaling-law", "throughput"):
            assert browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"), f"{path}: no chart"
        if path == "scaling-law":
            tabs = [t for t in browser.find_elements(By.CSS_SELECTOR, '[role="tab"]')
                    if "Predicted loss" in t.text]
            assert tabs, "no 'Predicted loss' tab"
            tabs[0].click()
            _wait_idle(browser)
            bands = [p for p in browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
                     if p.is_displayed()]
            assert len(bands) >= 5, "the swept-band charts did not render"
            browser.save_screenshot(str(ARTIFACTS / "scaling_law_bands.png"))
