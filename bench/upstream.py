#!/usr/bin/env python3
"""Fixture upstream for bench/run: serves a GOPROXY tree from disk over HTTP/1.1.

* counts requests per (decoded) path;
* a configurable latency before the response headers, and an optional per-response bandwidth;
* records its own server-side timings per path: time to first body byte and to the last byte,
  measured from the moment the request was parsed.

Control endpoints (not part of the GOPROXY URL space, which never starts with "_"):
  GET /_bench/stats                                  -> JSON {"counts": {...}, "timings": {...}}
  GET /_bench/config?latency_ms=50&bandwidth=0        -> sets latency (ms) and bandwidth (bytes/s, 0 = unlimited)
  GET /_bench/reset                                  -> clears counts and timings

Python 3.11 standard library only. Listens on 127.0.0.1 only.
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 256 * 1024


class State:
    def __init__(self, root, latency_ms, bandwidth):
        self.root = os.path.realpath(root)
        self.latency = latency_ms / 1000.0
        self.bandwidth = bandwidth
        self.lock = threading.Lock()
        self.counts = {}
        self.timings = {}

    def record(self, path, ttfb, total, sent):
        with self.lock:
            self.timings.setdefault(path, []).append(
                {"ttfb_ms": ttfb * 1000.0, "total_ms": total * 1000.0, "bytes": sent}
            )


def content_type(path):
    if path.endswith(".zip"):
        return "application/zip"
    if path.endswith(".info") or path.endswith("@latest"):
        return "application/json"
    return "text/plain; charset=utf-8"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "bench-upstream"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_HEAD(self):
        self.handle_get(head=True)

    def do_GET(self):
        self.handle_get(head=False)

    def reply_small(self, status, body, ctype="text/plain; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_get(self, head):
        start = time.perf_counter()
        st = self.server.state
        parsed = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parsed.path)
        if path.startswith("/_bench/"):
            return self.control(path, urllib.parse.parse_qs(parsed.query))
        with st.lock:
            st.counts[path] = st.counts.get(path, 0) + 1
            latency, bandwidth = st.latency, st.bandwidth
        full = os.path.realpath(os.path.join(st.root, path.lstrip("/")))
        if latency > 0:
            time.sleep(latency)
        if not full.startswith(st.root + os.sep) or not os.path.isfile(full):
            return self.reply_small(404, f"not found: {path}\n".encode())
        size = os.path.getsize(full)
        self.send_response(200)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.flush()
        if head:
            return
        sent = 0
        ttfb = None
        with open(full, "rb") as f:
            if bandwidth <= 0:
                # Unthrottled: first a small write to time the first byte, then sendfile.
                first = f.read(min(size, 64 * 1024))
                self.connection.sendall(first)
                ttfb = time.perf_counter() - start
                sent = len(first)
                if sent < size:
                    sent += self.connection.sendfile(f, offset=sent, count=size - sent)
            else:
                t0 = time.perf_counter()
                while sent < size:
                    chunk = f.read(min(CHUNK // 4, size - sent))
                    if not chunk:
                        break
                    self.connection.sendall(chunk)
                    if ttfb is None:
                        ttfb = time.perf_counter() - start
                    sent += len(chunk)
                    due = t0 + sent / bandwidth
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
        if ttfb is None:
            ttfb = time.perf_counter() - start
        st.record(path, ttfb, time.perf_counter() - start, sent)

    def control(self, path, query):
        st = self.server.state
        if path == "/_bench/stats":
            with st.lock:
                body = json.dumps({"counts": st.counts, "timings": st.timings}).encode()
            return self.reply_small(200, body, "application/json")
        if path == "/_bench/reset":
            with st.lock:
                st.counts.clear()
                st.timings.clear()
            return self.reply_small(200, b"ok\n")
        if path == "/_bench/config":
            with st.lock:
                if "latency_ms" in query:
                    st.latency = float(query["latency_ms"][0]) / 1000.0
                if "bandwidth" in query:
                    st.bandwidth = float(query["bandwidth"][0])
                body = json.dumps({"latency_ms": st.latency * 1000, "bandwidth": st.bandwidth})
            return self.reply_small(200, body.encode(), "application/json")
        if path == "/_bench/healthz":
            return self.reply_small(200, b"ok\n")
        return self.reply_small(404, b"no such control endpoint\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--bandwidth", type=float, default=0.0, help="bytes/s per response, 0 = unlimited")
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    server.state = State(args.root, args.latency_ms, args.bandwidth)
    print(f"bench upstream on 127.0.0.1:{args.port} serving {args.root}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
