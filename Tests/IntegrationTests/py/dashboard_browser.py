"""Loads evnode's dashboard in a real browser (headless Chromium, Debian's `chromium`) and reads
what it rendered: the phase and the store height, twice per visit, the second read once the
height has moved. Chromium is driven over its DevTools protocol on a pipe
(`--remote-debugging-pipe`: JSON messages separated by NUL, commands on fd 3, answers on fd 4),
so nothing here but Python's standard library and the browser.

Each `--visit PHASE` loads the page afresh once the node is in PHASE (waiting on the live page
for it first), then reads twice. One JSON line per visit on stdout:
  {"visit": 1, "expect": "syncing", "reads": [{"phase": ..., "store": ..., ...}, ...], "screenshot": path}
A visit that does not see its phase, or a height that moves, within --timeout exits 1 naming what
the page last showed. Chromium runs in its own session and is killed by its process group id
(its own pid) however this script ends.
"""

import argparse
import base64
import fcntl
import json
import os
import select
import signal
import sys
import time

# What the page shows, read from the DOM the browser rendered (ids from DashboardPage.swift).
READ_DOM = """JSON.stringify({
  phase: document.getElementById("phase").textContent,
  store: document.getElementById("store-height").textContent,
  reason: document.getElementById("reason").textContent,
  catchup: document.getElementById("catchup-state").textContent,
  catchup_bar: document.getElementById("catchup-bar").style.width,
  conn: document.getElementById("conn").textContent,
  peers: document.getElementById("peer-count").textContent,
})"""


class Browser:
    def __init__(self, chromium, profile, log_path, width, height):
        commands_r, commands_w = os.pipe()
        answers_r, answers_w = os.pipe()
        # Above 4, so that the dup2 onto 3 and 4 in the child never meets its own source.
        commands_r, commands_w, answers_r, answers_w = (self._high(fd) for fd in (commands_r, commands_w, answers_r, answers_w))
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        args = [chromium, "--headless=new", "--no-sandbox", f"--user-data-dir={profile}", "--remote-debugging-pipe",
                f"--window-size={width},{height}", "--hide-scrollbars", "--no-first-run", "--no-default-browser-check",
                "--disable-gpu", "--disable-extensions", "--disable-background-networking", "--mute-audio", "about:blank"]
        # setsid: the browser and every process it forks share a process group whose id is its pid.
        self.pid = os.posix_spawn(chromium, args, os.environ, setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, commands_r, 3), (os.POSIX_SPAWN_DUP2, answers_w, 4),
            (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)])
        for fd in (commands_r, answers_w, log):
            os.close(fd)
        self.out, self.inp = commands_w, answers_r
        self.buffer = b""
        self.next_id = 0
        self.session = None

    @staticmethod
    def _high(fd):
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return moved

    def kill(self):
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        self.pid = None

    def call(self, method, params=None, session=True, timeout=30.0):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._message(deadline, method)
            if answer.get("id") != self.next_id:
                continue  # an event, or an answer to nobody
            if "error" in answer:
                raise RuntimeError(f"{method}: {answer['error']}")
            return answer.get("result", {})

    def _message(self, deadline, waiting_for):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"chromium did not answer {waiting_for}")
            ready, _, _ = select.select([self.inp], [], [], left)
            if ready:
                chunk = os.read(self.inp, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed its DevTools pipe while {waiting_for} was asked")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def open_page(self, width, height):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
        self.call("Page.enable")

    def navigate(self, url):
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise RuntimeError(f"loading {url}: {result['errorText']}")

    def read(self):
        result = self.call("Runtime.evaluate", {"expression": READ_DOM, "returnByValue": True})
        if "exceptionDetails" in result:
            return None  # the page is not there yet
        return json.loads(result["result"]["value"])

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))


def height(read):
    return int(read["store"]) if read and read["store"].isdigit() else None


def wait_for(browser, what, condition, timeout):
    """Reads the DOM every 100 ms until `condition(read)` holds; returns that read."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = browser.read()
        if last is not None and condition(last):
            last["t"] = time.time()
            return last
        time.sleep(0.1)
    raise RuntimeError(f"the page did not show {what} within {timeout} s; it last showed {last}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--url", required=True)
    parser.add_argument("--visit", action="append", required=True, help="a phase to load the page in")
    parser.add_argument("--dir", required=True, help="a fresh folder: the profile, chromium's log, the screenshots")
    parser.add_argument("--width", type=int, default=390)
    parser.add_argument("--height", type=int, default=844)
    parser.add_argument("--timeout", type=float, default=60.0, help="per wait")
    args = parser.parse_args()

    browser = Browser(args.chromium, os.path.join(args.dir, "profile"), os.path.join(args.dir, "chromium.log"),
                      args.width, args.height)
    # A SIGTERM from the test harness ends the browser too.
    signal.signal(signal.SIGTERM, lambda *_: (browser.kill(), sys.exit(143)))
    try:
        browser.open_page(args.width, args.height)
        browser.navigate(args.url)
        for number, phase in enumerate(args.visit, 1):
            # Wait on the live page for the phase, then load the page afresh in it.
            wait_for(browser, f"phase {phase}", lambda r: r["phase"] == phase, args.timeout)
            browser.navigate(args.url)
            first = wait_for(browser, f"phase {phase} with a height after a fresh load",
                             lambda r: r["phase"] == phase and height(r) is not None, args.timeout)
            second = wait_for(browser, f"a height above {first['store']} in phase {phase}",
                              lambda r: height(r) is not None and height(r) > height(first), args.timeout)
            shot = os.path.join(args.dir, f"visit-{number}-{phase}.png")
            browser.screenshot(shot)
            print(json.dumps({"visit": number, "expect": phase, "reads": [first, second], "screenshot": shot}), flush=True)
    except RuntimeError as error:
        print(f"dashboard_browser: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        browser.kill()


if __name__ == "__main__":
    main()
