#!/usr/bin/env python3
"""A mixed soak: CONNECTIONS concurrent browsers, each looping sign-in, pages, sign-out, for SECONDS.
Prints the counts of each status and of errors; exits 1 on any 5xx or transport error.

    bench_mixed.py BASE_URL USERNAME PASSWORD SECONDS CONNECTIONS
"""
import http.client
import re
import sys
import threading
import time
import urllib.parse
from collections import Counter

base, username, password, seconds, connections = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
host = urllib.parse.urlparse(base).netloc
deadline = time.monotonic() + seconds
statuses, errors, lock = Counter(), Counter(), threading.Lock()
TOKEN = re.compile(r'name="csrf-token" content="([^"]+)"')


def cookies_of(resp, jar):
    for name, value in resp.getheaders():
        if name.lower() == "set-cookie":
            pair = value.split(";", 1)[0]
            k, _, v = pair.partition("=")
            if "Max-Age=0" in value:
                jar.pop(k, None)
            else:
                jar[k] = v


def browse():
    conn = http.client.HTTPConnection(host, timeout=30)
    jar = {}

    def req(method, path, body=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read().decode("utf-8", "replace")
        cookies_of(resp, jar)
        with lock:
            statuses[resp.status] += 1
        return resp.status, data

    while time.monotonic() < deadline:
        try:
            _, page = req("GET", "/login")
            token = TOKEN.search(page).group(1)
            form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token})
            req("POST", "/login", form)
            for i in range(8):
                _, page = req("GET", "/account/sessions" if i % 4 == 3 else "/")
            m = TOKEN.search(page)
            if m:
                req("POST", "/logout", urllib.parse.urlencode({"csrf_token": m.group(1)}))
        except Exception as e:  # a transport error is a failure of the run
            with lock:
                errors[type(e).__name__] += 1
            conn.close()
            conn = http.client.HTTPConnection(host, timeout=30)
            jar.clear()


threads = [threading.Thread(target=browse) for _ in range(connections)]
start = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - start
total = sum(statuses.values())
five = sum(n for s, n in statuses.items() if s >= 500)
print(f"mixed: {total} requests in {elapsed:.0f} s ({total / elapsed:.0f}/s), statuses {dict(sorted(statuses.items()))}, "
      f"5xx {five}, transport errors {dict(errors) or 0}")
sys.exit(1 if five or errors else 0)
