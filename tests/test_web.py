"""`barkwatch web`: a real server on a real port, over HTTP (status codes, JSON shapes, clips, path traversal
refused, the token enforced, labelling written, the live feed), and its pages in a real headless Chromium
(Debian's, driven through chromedriver): the today page shows a prepared log, a clip's audio element loads,
a new bark appears without reloading, and a click on the label page writes labels.jsonl.

Set WEB_SCREENSHOTS=DIR to keep screenshots of the three pages there (docs/ holds the ones shown)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import soundfile as sf

from barkwatch.home.label import labels_in
from helpers import DOGS, OTHERS, REPO

pytest.importorskip("aiohttp", reason="the web interface needs aiohttp (scripts/setup installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bark_record(event_id: str, start: datetime, seconds: float, score: float, clip: Path | None) -> dict:
    end = start + timedelta(seconds=seconds)
    return {"event": "bark", "id": event_id, "source": "vmic", "start": start.isoformat(timespec="milliseconds"),
            "end": end.isoformat(timespec="milliseconds"), "offset_s": 0.0, "end_offset_s": seconds,
            "duration_s": seconds, "peak_score": score, "mean_score": score - 0.05, "level_dbfs": -30.0,
            "windows": 4, "model": {"file": "default.pt", "sha256": "0"}, "clip": str(clip) if clip else None}


@pytest.fixture
def home(tmp_path):
    """A service's folders as `listen` leaves them: today's log with four barks (three with clips) and one from
    yesterday, the clips, a status file naming this process (so it counts as running), and a folder of clips
    `record` kept, to label."""
    now = datetime.now().astimezone()
    morning = now.replace(hour=0, minute=30, second=0, microsecond=0)
    state, events, clips = tmp_path / "state", tmp_path / "state" / "events", tmp_path / "state" / "clips"
    events.mkdir(parents=True)
    records, dogs = [], sorted(DOGS.iterdir())
    for k in range(4):
        start = morning + timedelta(minutes=7 * k)
        event_id = f"{k:04x}aa55cc33ee11"
        clip = None
        if k < 3:
            clip = clips / start.strftime("%Y-%m-%d") / f"{start.strftime('%H%M%S')}_{event_id}.flac"
            clip.parent.mkdir(parents=True, exist_ok=True)
            audio, rate = sf.read(str(dogs[k]), dtype="float32")
            sf.write(str(clip), audio[: 3 * rate], rate)
        records.append(bark_record(event_id, start, 2.0 + k, 0.9 + k / 100, clip))
    (events / f"barks-{morning.date()}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    yesterday = morning - timedelta(days=1)
    (events / f"barks-{yesterday.date()}.jsonl").write_text(
        json.dumps(bark_record("ffff00001111aaaa", yesterday + timedelta(hours=13), 4.0, 0.97, None)) + "\n")
    (state / "status.json").write_text(json.dumps({"pid": os.getpid(), "started": now.isoformat(), "device": "vmic",
                                                   "status": "listening", "updated": now.isoformat()}))
    secret = tmp_path / "secret.flac"  # outside every served folder
    shutil.copy(dogs[5], secret)
    os.symlink(secret, clips / morning.strftime("%Y-%m-%d") / "000000_evil.flac")  # a link out of the folder
    labels = tmp_path / "rex"
    (labels / "clips").mkdir(parents=True)
    index = []
    for k, src in enumerate([dogs[6], OTHERS.iterdir().__next__(), dogs[7]]):
        shutil.copy(src, labels / "clips" / f"10{k:02d}00_{k:04x}.ogg")
        index.append({"kind": "sound", "clip": f"clips/10{k:02d}00_{k:04x}.ogg",
                      "start": f"2026-11-25T10:{k:02d}:00.000+00:00", "end": f"2026-11-25T10:{k:02d}:05.000+00:00"})
    index.append({"kind": "sound", "clip": "../secret.flac", "start": "2026-11-25T11:00:00.000+00:00"})
    (labels / "recorded.jsonl").write_text("".join(json.dumps(e) + "\n" for e in index))
    return {"state": state, "events": events, "clips": clips, "records": records, "labels": labels,
            "today": events / f"barks-{morning.date()}.jsonl", "morning": morning}


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Server:
    def __init__(self, *args: str, expect_start: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "barkwatch", "web", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not expect_start:
            return
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                assert self.proc.poll() is None, self.proc.communicate()
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.1)

    def request(self, path: str, headers: dict | None = None, data: bytes | None = None, follow: bool = True):
        """(status, headers, body) of a GET, or of a POST when ``data`` is given."""
        request = urllib.request.Request(self.url + path, headers=headers or {}, data=data)
        opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirects)
        try:
            with opener.open(request, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


@pytest.fixture
def serve(home):
    servers: list[Server] = []

    def start(*extra: str, expect_start: bool = True) -> Server:
        server = Server("--events", str(home["events"]), "--clips", str(home["clips"]), "--state-dir",
                        str(home["state"]), "--labels", str(home["labels"]), *extra, expect_start=expect_start)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def test_the_api_gives_status_events_and_clips(home, serve):
    server = serve("--no-score")
    code, _, body = server.request("/api/status")
    status = json.loads(body)
    assert code == 200 and status["running"] is True and status["device"] == "vmic"
    assert status["barks_today"] == 4 and status["barking_today_s"] == pytest.approx(2 + 3 + 4 + 5)
    assert status["last_bark"] == home["records"][3]["start"]

    code, _, body = server.request("/api/events?since=today")
    events = json.loads(body)["events"]
    assert code == 200 and [e["id"] for e in events] == [r["id"] for r in reversed(home["records"])]
    code, _, body = server.request("/api/events?since=2d")
    assert len(json.loads(body)["events"]) == 5  # yesterday's too
    assert server.request("/api/events?since=someday")[0] == 400

    record = home["records"][1]
    code, headers, body = server.request(f"/api/clips/{record['id']}")
    assert code == 200 and headers["Content-Type"] == "audio/flac" and body == Path(record["clip"]).read_bytes()
    code, _, part = server.request(f"/api/clips/{record['id']}", headers={"Range": "bytes=0-99"})
    assert code == 206 and part == body[:100]  # seeking in the browser's player
    assert server.request(f"/api/clips/{home['records'][3]['id']}")[0] == 404  # an event without a clip

    for page in ("/", "/history", f"/history?day={home['morning'].date()}", "/label"):
        code, headers, text = server.request(page)
        assert code == 200 and headers["Content-Type"].startswith("text/html"), page
    for day in ("tomorrow", "1900-01-01", str((home["morning"] + timedelta(days=2)).date())):
        assert server.request(f"/history?day={day}")[0] == 400, day
    assert server.request("/api/events?since=9999999d")[0] == 400
    assert server.request("/api/label", data=b"[1, 2", headers={"Content-Type": "application/json"})[0] == 400
    assert server.request("/api/label", data=b"[1, 2]", headers={"Content-Type": "application/json"})[0] == 400
    # A bad line in the log is left out, not a broken page.
    with open(home["today"], "a") as f:
        f.write(json.dumps({"event": "bark", "id": 7, "start": "soon"}) + "\n")
    assert server.request("/")[0] == 200 and len(json.loads(server.request("/api/events")[2])["events"]) == 5

    # The service's state folder alone: its events folder is found inside it.
    alone = Server("--state-dir", str(home["state"]), "--no-score")
    try:
        assert json.loads(alone.request("/api/status")[2])["barks_today"] == 4
    finally:
        alone.stop()


def test_clip_requests_cannot_leave_their_folders(home, serve):
    server = serve("--no-score")
    for path in ("/api/clips/..%2F..%2Fsecret", "/api/clips/%2Fetc%2Fpasswd", "/api/clips/..",
                 "/api/clips/evil",  # a link in the clip folder to a file outside it
                 "/api/label/3/audio", "/api/label/-1/audio", "/api/label/..%2Fsecret/audio",
                 "/api/label/99/spectrogram.png"):
        code, _, body = server.request(path)
        assert code in (400, 404), (path, code)
        assert body != (home["labels"].parent / "secret.flac").read_bytes()
    code, _, text = server.request("/label")
    assert b"secret" not in text and b"clip 1 of 3" in text  # the index's "../secret.flac" is not offered


def test_a_clip_is_found_by_its_id_only_inside_the_clip_folder(home):
    from barkwatch.service.web import WebSettings, find_clip

    settings = WebSettings(clips_dir=home["clips"])
    record = home["records"][0]
    assert find_clip(settings, record["id"]) == Path(record["clip"])
    for bad in ("../secret", "/etc/passwd", "..", "", "evil", record["id"] + "\n", "*", "0000aa55cc33ee1?"):
        assert find_clip(settings, bad) is None, bad


def test_a_log_written_by_detect_is_shown_as_a_recording_not_as_a_stopped_service(tmp_path):
    log = tmp_path / "barks.jsonl"
    subprocess.run([sys.executable, "-m", "barkwatch", "detect", str(REPO / "samples" / "example.ogg"), "--events",
                    str(log), "-q"], cwd=REPO, check=True, capture_output=True)
    server = Server("--events", str(log), "--no-score")
    try:
        code, _, body = server.request("/")
        status = json.loads(server.request("/api/status")[2])
    finally:
        server.stop()
    assert code == 200 and "from a recording" in body.decode() and "not running" not in body.decode()
    assert status["live"] is False and status["sources"] == [str(REPO / "samples" / "example.ogg")]


def test_other_sites_and_other_host_names_are_refused(home, serve):
    server = serve("--no-score")
    assert server.request("/api/status", headers={"Host": f"evil.example:{server.port}"})[0] == 421  # rebinding
    label = json.dumps({"index": 0, "clip": "clips/100000_0000.ogg", "label": "my_dog"}).encode()
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        code, _, _ = server.request("/api/label", data=label, headers={"Content-Type": "application/json", **headers})
        assert code == 403, headers
        assert server.request("/api/label/undo", data=b"", headers=headers)[0] == 403
    assert not (home["labels"] / "labels.jsonl").exists()
    same = {"Content-Type": "application/json", "Origin": server.url}
    assert server.request("/api/label", data=label, headers=same)[0] == 200  # the page's own form


def test_a_token_is_required_and_a_public_address_needs_one(home, serve):
    server = serve("--no-score", "--host", "0.0.0.0", expect_start=False)
    _, stderr = server.proc.communicate(timeout=60)
    assert server.proc.returncode == 1 and "web.host 0.0.0.0" in stderr and "token" in stderr

    server = serve("--no-score", "--token", "correct-horse")
    assert server.request("/api/status")[0] == 401
    assert server.request("/api/status", headers={"Authorization": "Bearer wrong-horse"})[0] == 401
    code, _, text = server.request("/")
    assert code == 401 and b"token" in text  # a page asks for it
    assert server.request("/api/status", headers={"Authorization": "Bearer correct-horse"})[0] == 200
    code, headers, _ = server.request("/history?token=correct-horse&day=" + str(home["morning"].date()),
                                      follow=False)
    assert code == 303 and headers["Location"] == f"/history?day={home['morning'].date()}"  # out of the URL
    assert "barkwatch_token=correct-horse" in headers["Set-Cookie"]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert server.request("/api/events", headers={"Cookie": "barkwatch_token=correct-horse"})[0] == 200
    body = json.dumps({"index": 0, "clip": "clips/100000_0000.ogg", "label": "my_dog"}).encode()
    assert server.request("/api/label", headers={"Content-Type": "application/json"}, data=body)[0] == 401
    assert not (home["labels"] / "labels.jsonl").exists()


def test_labelling_over_http_writes_the_labels_file_and_undo_takes_it_back(home, serve):
    server = serve("--no-score")
    post = lambda payload: server.request("/api/label", headers={"Content-Type": "application/json"},  # noqa: E731
                                      data=json.dumps(payload).encode())
    code, _, body = post({"index": 0, "clip": "clips/100000_0000.ogg", "label": "my_dog"})
    assert code == 200 and json.loads(body)["ok"] is True
    assert post({"index": 1, "clip": "clips/100100_0001.ogg", "label": "not_bark"})[0] == 200
    assert post({"index": 2, "clip": "clips/100000_0000.ogg", "label": "my_dog"})[0] == 409  # not that clip
    assert post({"index": 2, "clip": "clips/100200_0002.ogg", "label": "rm -rf"})[0] == 400
    assert post({"index": 7, "clip": "x", "label": "my_dog"})[0] == 400
    labels = home["labels"] / "labels.jsonl"
    assert labels_in(labels) == {"clips/100000_0000.ogg": "my_dog", "clips/100100_0001.ogg": "not_bark"}
    code, _, text = server.request("/label")
    assert b"clip 3 of 3" in text and b"clips/100200_0002.ogg" in text  # resumes at the first unlabelled
    code, _, text = server.request("/api/label/undo", data=b"")  # POST
    assert code == 200 and b"undone" in text
    assert labels_in(labels) == {"clips/100000_0000.ogg": "my_dog"}
    assert set(os.listdir(home["labels"])) == {"clips", "recorded.jsonl", "labels.jsonl"}  # nothing else written


def test_the_live_feed_sends_new_barks(home, serve):
    server = serve("--no-score")
    stream = urllib.request.urlopen(server.url + "/api/stream", timeout=30)
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert stream.readline().startswith(b":")  # the server's hello: the feed is open
    time.sleep(1.0)
    # Logged now, as it ends: it began before the feed was opened, and still comes through.
    new = bark_record("beef0000beef0000", datetime.now().astimezone() - timedelta(seconds=20), 20.0, 0.99, None)
    with open(home["today"], "a") as f:
        f.write(json.dumps(new) + "\n")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = stream.readline()
        if line.startswith(b"data: ") and json.loads(line[6:])["id"] == "beef0000beef0000":
            break
    else:
        pytest.fail("the new bark never came through the feed")
    stream.close()


# -- the pages in a real browser --------------------------------------------------------------------------------


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium")
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver, or scripts/setup --tests)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=420,900"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_until(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what} never held")


@pytest.mark.slow
def test_the_pages_in_a_browser(home, serve, browser):
    from selenium.webdriver.common.by import By

    shots = os.environ.get("WEB_SCREENSHOTS")
    server = serve()  # with scores: the label page loads the model
    browser.get(server.url + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert len(rows) == 4 and browser.find_element(By.ID, "count").text == "4"
    assert "listening" in browser.find_element(By.ID, "state").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#hours rect")) == 24

    # A clip loads in the browser's own player.
    ready = browser.execute_script(
        "const a = document.querySelector('#events audio'); a.preload = 'auto'; a.load(); return a.src;")
    assert ready.endswith(home["records"][3 - 1]["id"])  # newest first: the last bark with a clip
    wait_until(lambda: browser.execute_script(
        "const a = document.querySelector('#events audio'); return a.readyState >= 2 && a.duration > 2.9;"),
        what="the audio element loaded its clip")
    assert browser.execute_script("return document.querySelector('#events audio').error") is None

    # A bark written to the log appears without a reload.
    time.sleep(1.5)  # the page's feed is open
    new = bark_record("beef0000beef0001", datetime.now().astimezone(), 1.5, 0.99, None)
    with open(home["today"], "a") as f:
        f.write(json.dumps(new) + "\n")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-id="beef0000beef0001"]'),
               what="the new bark's row")
    assert browser.find_element(By.ID, "count").text == "5"
    if shots:
        browser.save_screenshot(str(Path(shots) / "web-today.png"))

    # At a small phone's width (375 CSS pixels) nothing is cut off: every player lies inside the page, which
    # does not scroll sideways.
    browser.set_window_size(375, 812)
    browser.get(server.url + "/")
    width = browser.execute_script("return window.innerWidth")
    assert width <= 390, f"the window is {width} px wide, not a phone's"
    overflow = browser.execute_script(
        "return [document.documentElement.scrollWidth, ...Array.from(document.querySelectorAll('#events audio'),"
        " a => a.getBoundingClientRect().right)];")
    assert len(overflow) == 1 + 3 and max(overflow) <= width, f"wider than the {width} px window: {overflow}"
    if shots:
        browser.save_screenshot(str(Path(shots) / "web-phone.png"))
    browser.set_window_size(420, 900)

    browser.get(server.url + "/history")
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.map tr")) == 28 + 1
    if shots:
        browser.save_screenshot(str(Path(shots) / "web-history.png"))

    # Labelling by clicking.
    browser.get(server.url + "/label")
    assert "clip 1 of 3" in browser.page_source
    assert wait_until(lambda: browser.find_element(By.ID, "score").text, what="a score").startswith("score ")
    wait_until(lambda: browser.execute_script("const i = document.querySelector('img.spec');"
                                              "return i.complete && i.naturalWidth > 0;"), what="the spectrogram")
    if shots:
        browser.save_screenshot(str(Path(shots) / "web-label.png"))
    browser.find_element(By.CSS_SELECTOR, "button.mine").click()
    wait_until(lambda: "clip 2 of 3" in browser.page_source, what="the next clip")
    assert labels_in(home["labels"] / "labels.jsonl") == {"clips/100000_0000.ogg": "my_dog"}
    line = json.loads((home["labels"] / "labels.jsonl").read_text().splitlines()[-1])
    assert line["score"] is not None and 0.0 <= line["score"] <= 1.0


def test_the_service_serves_the_pages_beside_listening(tmp_path):
    """`listen` with web.enabled: the page is there while it listens (here to a recording), with the status
    file's level, and gone when it stops."""
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f"paths:\n  state_dir: {tmp_path / 'state'}\nweb:\n  enabled: true\n  port: {port}\n"
                      "logging:\n  status_every_s: 0.5\n")
    proc = subprocess.Popen([sys.executable, "-m", "barkwatch", "listen", "--config", str(config), "--device",
                             f"file:{REPO / 'samples' / 'example.ogg'}", "-q"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def status():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as r:
                    return json.loads(r.read())
            except OSError:
                assert proc.poll() is None, proc.communicate()
                return None

        wait_until(status, timeout=60, what="the web interface")
        seen = wait_until(lambda: (s := status()) and s["level_dbfs"] is not None and s, timeout=30,
                          what="a level in the status")
        assert -90.0 < seen["level_dbfs"] < 0.0 and seen["running"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
