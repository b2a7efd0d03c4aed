"""End to end: ``streamlit run app.py`` in a subprocess, the app in headless Chromium through
three states of one ``ARCHOPT_HOME``: empty, a campaign with four proposals, and the same campaign
with two recorded runs (created with the Python API while the app runs, as the CLI would).

Chromium and its driver come from Debian (``chromium``, ``chromium-driver``). Under ``CI=true``
``.ci/run`` installs them before the tests and a missing browser FAILS this test (CI must not go
green without it). Elsewhere the test installs them with apt-get when it runs as root and they
are missing, and skips with the reason (shown by ``-ra``) only where that is impossible.

The server runs with the shipped ``.streamlit/config.toml`` (only the port, headless mode and
file watcher are given on the command line), and the test checks what that file promises: the
server listens on loopback only and prints no external URL or usage-statistics notice.

Screenshots go to ``test-artifacts/screenshots/`` (``ARCHOPT_SCREENSHOT_DIR`` overrides it; the
committed set in ``results/screenshots/`` is made with ``ARCHOPT_SCREENSHOT_DIR=results/screenshots``),
with ``timings.json``: for each page request (or interaction) the wall seconds until the app is
idle in this headless Chromium (which renders with software WebGL on the same cores) and the
server's CPU seconds for it.
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
from support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.browser]


#: Screenshots go here; ``ARCHOPT_SCREENSHOT_DIR`` overrides it (the README's set is made with
#: ``ARCHOPT_SCREENSHOT_DIR=results/screenshots``).
ARTIFACTS = Path(
    os.environ.get("ARCHOPT_SCREENSHOT_DIR") or REPO / "test-artifacts" / "screenshots"
)
#: (url path, page title in the app, file name of the screenshot)
PAGES = [
    ("", "Campaigns", "campaigns"),  # the default page lives at the root URL
    ("next-run", "Next run", "next_run"),
    ("pareto", "Pareto front", "pareto"),
    ("model", "Model", "model"),
    ("scaling-law", "Scaling law", "scaling_law"),
    ("throughput", "Throughput model", "throughput"),
    ("export", "Export", "export"),
]
#: The campaign the test creates: 1B non-embedding params, 20B tokens, A100-40GB, vLLM serving.
CAMPAIGN = "demo-1b"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def in_ci() -> bool:
    """True on CI (``CI=true``, as ``.ci/run`` is run), where the browser test may not skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _unavailable(reason: str) -> None:
    """Skip with ``reason`` -- or, under CI, fail: a CI run must not pass without the browser."""
    if in_ci():
        pytest.fail(
            f"CI=true and {reason}; .ci/run installs Debian chromium and chromium-driver "
            "before the tests, so the browser test must run",
            pytrace=False,
        )
    pytest.skip(reason)


def _ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing the Debian packages when possible."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    if in_ci():  # .ci/run installed them (or failed loudly); nothing to retry here
        _unavailable(
            f"chromium or chromedriver is not on PATH (chromium: {chromium}, "
            f"chromedriver: {driver})"
        )
    if not shutil.which("apt-get"):
        _unavailable("headless Chromium is not installed and there is no apt-get to install it")
    if os.geteuid() != 0:
        _unavailable("headless Chromium is not installed and installing it needs root (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(
            ["apt-get", "update", "-qq"], check=True, env=env, timeout=300, capture_output=True
        )
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
            check=True,
            env=env,
            timeout=600,
            capture_output=True,
        )
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
    """The app under test: its URL, port, ``ARCHOPT_HOME``, the server's log file and pid."""

    url: str
    port: int
    home: Path
    log: Path
    pid: int


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Served:
    """The app served from an empty ``ARCHOPT_HOME`` (the test fills it while the app runs)."""
    home = tmp_path_factory.mktemp("browser-home")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("streamlit-log") / "streamlit.log"
    log = open(log_path, "w")
    # HOME: no user-level ~/.streamlit settings; the repository's .streamlit/config.toml (read
    # from the working directory, as `streamlit run app.py` in the README) sets the address.
    env = {
        **os.environ,
        "ARCHOPT_HOME": str(home),
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path_factory.mktemp("streamlit-home")),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.fileWatcherType",
            "none",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
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
        yield Served(url, port, home, log_path, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _quick_prior():
    """A least-squares fit of the conditional law on the Morph runs (the package default is a
    NUTS fit, too slow for a test)."""
    from surrogate import bundled_path, fit_lsq, load_runs

    return fit_lsq(
        load_runs(bundled_path("morph_runs.csv")), "conditional", n_starts=2
    ).to_posterior(200)


def make_campaign_with_proposals(home: Path):
    """Campaign :data:`CAMPAIGN` in ``home`` with four pending proposals."""
    from optim.campaign import Campaign, CampaignSpec

    spec = CampaignSpec(name=CAMPAIGN, params=1.0e9, tokens=20e9, hardware="a100-40gb", band=0.02)
    campaign = Campaign.create(
        spec, store=home / "campaigns.sqlite", prior=_quick_prior(), progress=False
    )
    campaign.propose(4)
    return campaign


def record_two_runs(campaign) -> None:
    """Results for the first two proposals: 0.07 above and 0.01 below their predicted means
    (runs that disagree with each other, so the leave-one-out check has something to flag)."""
    pending = [t for t in campaign.trials() if t["status"] == "pending"]
    for row, delta in zip(pending[:2], (0.07, -0.01)):
        campaign.observe(row["trial"], row["pred_loss_mean"] + delta)


def _wait_idle(driver, timeout: float = 180.0, since: float | None = None) -> float:
    """Until the script has run (the app reports notRunning) and no spinner is left; returns
    the seconds from ``since`` (default: the call) until the app was idle."""
    from selenium.webdriver.common.by import By

    start = since or time.time()
    deadline = time.time() + timeout
    idle_since = None
    while time.time() < deadline:
        states = [
            e.get_attribute("data-test-script-state")
            for e in driver.find_elements(By.CSS_SELECTOR, "[data-test-script-state]")
        ]
        busy = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSpinner"]')
        if states and all(s == "notRunning" for s in states) and not busy:
            idle_since = idle_since or time.time()
            if time.time() - idle_since > 1.5:  # charts finish drawing after the script ends
                return idle_since - start
        else:
            idle_since = None
        time.sleep(0.2)
    raise AssertionError(f"page did not finish running within {timeout}s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Timings(dict):
    """``step -> (wall seconds until the app is idle, server CPU seconds spent)``."""

    def __init__(self, pid: int) -> None:
        super().__init__()
        self.pid = pid
        self._cpu = _cpu_seconds(pid)

    def add(self, step: str, wall: float) -> None:
        cpu = _cpu_seconds(self.pid)
        self[step] = {"wall_s": round(wall, 2), "server_cpu_s": round(cpu - self._cpu, 2)}
        self._cpu = cpu

    def mark(self) -> None:
        """Start counting server CPU from now (work outside the measured steps excluded)."""
        self._cpu = _cpu_seconds(self.pid)


def _visit(
    driver, server: Served, path: str, title: str, shot: str | None = None
) -> tuple[str, float]:
    """Open a page, wait until idle, check it shows its title and no exception; screenshot."""
    from selenium.webdriver.common.by import By

    start = time.time()
    driver.get(f"{server.url}/{path}")
    seconds = _wait_idle(driver, since=start)
    text = driver.find_element(By.TAG_NAME, "body").text
    if shot:
        driver.save_screenshot(str(ARTIFACTS / f"{shot}.png"))
    exceptions = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not exceptions, f"{path}: {exceptions[0].text[:500]}"
    assert title in text, f"{path}: page title {title!r} not shown"
    return text, seconds


def _choose(driver, label: str, option: str) -> float:
    """Pick ``option`` (a prefix of its text) in the selectbox labelled ``label``; returns the
    seconds until the app is idle again."""
    from selenium.webdriver.common.by import By

    combos = driver.find_elements(By.CSS_SELECTOR, f'input[role="combobox"][aria-label="{label}"]')
    assert combos, f"no selectbox labelled {label!r}"
    combos[0].click()
    combos[0].send_keys(option)  # the combobox filters its (virtualised) list as one types
    time.sleep(0.8)
    options = [
        o
        for o in driver.find_elements(By.CSS_SELECTOR, '[role="option"]')
        if o.text.strip().startswith(option)
    ]
    assert options, f"no option {option!r} in {label!r}"
    start = time.time()
    options[0].click()
    return _wait_idle(driver, since=start)


def _click_tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    tabs = [t for t in driver.find_elements(By.CSS_SELECTOR, '[role="tab"]') if name in t.text]
    assert tabs, f"no {name!r} tab"
    tabs[0].click()
    _wait_idle(driver)


def _click_a_reference_point(driver) -> float:
    """Clicking a marker selects it (plotly selection event -> rerun) and shows its details."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from surrogate import reference_architectures

    names = set(reference_architectures()["name"])

    def details_heading() -> str:  # the picked architecture's name, above its numbers
        return driver.find_elements(By.CSS_SELECTOR, '[data-testid="stHeading"] h3')[
            -1
        ].text.strip()

    assert details_heading() not in names  # the default pick is the first front architecture
    # The reference-model trace is the only one with text labels.
    refs = [
        t
        for t in driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace")
        if t.find_elements(By.CSS_SELECTOR, ".textpoint")
    ]
    assert refs, "no reference-model trace in the Pareto chart"
    point = refs[0].find_elements(By.CSS_SELECTOR, ".point")[0]
    start = time.time()
    ActionChains(driver).move_to_element(point).click().perform()
    seconds = _wait_idle(driver, since=start)
    heading = details_heading()
    assert heading in names, f"clicking a reference point did not select it (shows {heading!r})"
    return seconds


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


def test_app_states_in_chromium(browser, server):
    """An empty home, a campaign with proposals, then two recorded runs: every page renders
    without an exception and shows what that state should; screenshots and timings saved."""
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    timings = _Timings(server.pid)

    # 1. Empty home: the create form, and pages that say what to do first. Nothing is fitted.
    text, wall = _visit(browser, server, "", "Campaigns", "empty_home")
    timings.add("empty home: campaigns (the server's first page)", wall)
    assert "No campaigns yet" in text and "Create campaign" in text
    for path, title in (("next-run", "Next run"), ("model", "Model")):
        text, _ = _visit(browser, server, path, title)
        assert "No campaign selected" in text
    text, _ = _visit(browser, server, "scaling-law", "Scaling law", "empty_scaling_law")
    from surrogate import prior
    from surrogate.posterior import LawPosterior

    shipped = (
        prior.SHIPPED_PRIOR.is_file()
        and LawPosterior.load(prior.SHIPPED_PRIOR).info.get("cache_key")
        == prior.default_prior_path().stem
    )
    if shipped:  # the package ships the default prior fitted: shown at once, no fit
        assert "Fit the default prior now" not in text
        assert prior.DEFAULT_PRIOR_SETTINGS["law"] in text
    else:  # never fitted silently on a page visit
        assert "Fit the default prior now" in text

    # 2. A campaign with four proposals and no result.
    campaign = make_campaign_with_proposals(server.home)
    timings.mark()
    text, wall = _visit(browser, server, "", "Campaigns", "proposals_campaigns")
    timings.add("proposals: campaigns (first load)", wall)
    assert "predicted loss at proposal and now" in text
    text, wall = _visit(browser, server, "next-run", "Next run", "proposals_next_run")
    timings.add("proposals: next run (first load)", wall)
    assert "No run is observed yet" in text and "Learned offset" in text
    _visit(browser, server, "pareto", "Pareto front", "proposals_pareto")

    # 3. Two recorded runs: every page, and one interaction on the pages that have them.
    record_two_runs(campaign)
    timings.mark()
    for path, title, shot in PAGES:
        text, wall = _visit(browser, server, path, title, shot)
        timings.add(f"two runs: {shot} (first load)", wall)
        if path == "":
            assert "is out of date" in text  # pending trials' proposal-time predictions
        if path == "next-run":
            assert "improves the observed front" in text and "Hypervolume over trials" in text
            timings.add(
                "two runs: next run, reference -> Llama-3.2-1B",
                _choose(browser, "Reference", "Llama-3.2-1B (published"),
            )
            body = browser.find_element(By.TAG_NAME, "body").text
            assert "Reference: d2048-L16-h32/8x64-f8192 (Llama-3.2-1B" in body
            browser.save_screenshot(str(ARTIFACTS / "next_run_reference_model.png"))
            timings.add(
                "two runs: next run, pending trial -> trial 3",
                _choose(browser, "Pending trial", "trial 3"),
            )
        if path == "pareto":
            points = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .point")
            assert len(points) > 3, "the Pareto chart has no points"
            timings.add(
                "two runs: pareto, click a reference point", _click_a_reference_point(browser)
            )
            browser.save_screenshot(str(ARTIFACTS / "pareto_selected.png"))
        if path == "model":
            assert "Leave-one-out" in text and "Prior weight" in text
            _click_tab(browser, "Explore")
            assert browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .parcoords"), (
                "no parallel-coordinates plot"
            )
            browser.save_screenshot(str(ARTIFACTS / "model_explore.png"))
            timings.mark()
            timings.add(
                "two runs: model, slices through trial 2", _choose(browser, "Through", "trial 2")
            )
        if path == "scaling-law":
            _click_tab(browser, "Predicted loss")
            bands = [
                p
                for p in browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
                if p.is_displayed()
            ]
            assert len(bands) >= 5, "the swept-band charts did not render"
            browser.save_screenshot(str(ARTIFACTS / "scaling_law_bands.png"))
            field = browser.find_element(By.CSS_SELECTOR, 'input[aria-label="r"]')
            field.send_keys(Keys.CONTROL, "a")
            timings.mark()
            start = time.time()
            field.send_keys("2.5" + Keys.ENTER)
            timings.add("two runs: scaling law, r -> 2.5", _wait_idle(browser, since=start))
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    print(json.dumps(timings, indent=1))
