#!/usr/bin/env python3
"""A slow network in front of the S3 stand-in (moto) for bench/run: every request waits a fixed
latency before it is forwarded, and every response body is paced to a per-request bandwidth,
like S3's first-byte latency and per-connection throughput.

Requests are forwarded unchanged (Host header included, so signatures still match) to the
target over kept-alive connections, one per proxy thread. Python 3.11 standard library only;
listens on 127.0.0.1 only.

With --cache-gets, a GET of an object is answered from the proxy's own copy once it has read
that object whole from the target (ranges included, with the same latency and pacing): moto
copies the whole object for every ranged GET, a per-request cost that grows with the object
and that S3 does not have. Only GETs are cached; nothing else is changed.

  GET /_bench/config?latency_ms=50&bandwidth=40000000   -> changes the injection at run time
  GET /_bench/stats                                     -> {"requests": N, "bytes": N}
"""

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
PIECE = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.forward()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def target(self, fresh=False):
        local = self.server.local
        conn = getattr(local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", self.server.target_port, timeout=300)
            local.conn = conn
        return conn

    def forward(self):
        srv = self.server
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path.startswith("/_bench/"):
            return self.control(parsed.path, urllib.parse.parse_qs(parsed.query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        with srv.lock:
            latency, bandwidth = srv.latency, srv.bandwidth
            srv.requests += 1
        if latency > 0:
            time.sleep(latency)
        if srv.cache_gets and self.command == "GET":
            cached = self.cached_object(parsed.path, headers)
            if cached is not None:
                return self.serve_cached(cached, bandwidth)
        for attempt in (0, 1):
            try:
                conn = self.target(fresh=attempt == 1)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                break
            except (OSError, http.client.HTTPException):
                if attempt == 1:
                    return self.reply(502, b'{"error":"target unreachable"}')
        out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
        clen = resp.getheader("Content-Length")
        if self.command == "HEAD" or resp.status in (204, 304):
            resp.read()
            self.send_response(resp.status, resp.reason)
            for k, v in out_headers:
                self.send_header(k, v)
            self.end_headers()
            return
        if clen is None:
            data = resp.read()
            out_headers.append(("Content-Length", str(len(data))))
            source = iter([data])
        else:
            left = int(clen)

            def pieces():
                nonlocal left
                while left > 0:
                    b = resp.read(min(PIECE, left))
                    if not b:
                        return
                    left -= len(b)
                    yield b

            source = pieces()
        self.send_response(resp.status, resp.reason)
        for k, v in out_headers:
            self.send_header(k, v)
        self.end_headers()
        t0 = time.perf_counter()
        sent = 0
        for b in source:
            self.wfile.write(b)
            sent += len(b)
            if bandwidth > 0:
                delay = t0 + sent / bandwidth - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        with srv.lock:
            srv.bytes += sent

    def cached_object(self, path, headers):
        """(status, headers, bytes) of the whole object, read from the target once; None if not a 200."""
        srv = self.server
        with srv.lock:
            entry = srv.cache.get(path)
            if entry is None:
                entry = srv.cache[path] = {"lock": threading.Lock(), "value": None}
        with entry["lock"]:
            if entry["value"] is None:
                h = {k: v for k, v in headers.items() if k.lower() != "range"}
                conn = self.target(fresh=True)
                conn.request("GET", path, headers=h)
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    return None
                keep = [(k, v) for k, v in resp.getheaders()
                        if k.lower() not in HOP and k.lower() not in ("content-length", "content-range")]
                entry["value"] = (keep, data)
        keep, data = entry["value"]
        return keep, data

    def serve_cached(self, cached, bandwidth):
        keep, data = cached
        size = len(data)
        first, last, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and "," not in rng:
            a, _, b = rng[6:].partition("-")
            if a == "":
                first, last = max(0, size - int(b)), size - 1
            else:
                first, last = int(a), min(int(b), size - 1) if b else size - 1
            if first > last or first >= size:
                return self.reply(416, b"", "application/xml")
            status = 206
        self.send_response(status)
        for k, v in keep:
            self.send_header(k, v)
        self.send_header("Content-Length", str(last - first + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        view = memoryview(data)[first : last + 1]
        t0 = time.perf_counter()
        sent = 0
        while sent < len(view):
            piece = view[sent : sent + PIECE]
            self.wfile.write(piece)
            sent += len(piece)
            if bandwidth > 0:
                delay = t0 + sent / bandwidth - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
        with self.server.lock:
            self.server.bytes += sent

    def control(self, path, query):
        srv = self.server
        with srv.lock:
            if path == "/_bench/config":
                if "latency_ms" in query:
                    srv.latency = float(query["latency_ms"][0]) / 1000.0
                if "bandwidth" in query:
                    srv.bandwidth = float(query["bandwidth"][0])
            body = {"latency_ms": srv.latency * 1000, "bandwidth": srv.bandwidth, "requests": srv.requests, "bytes": srv.bytes}
        return self.reply(200, json.dumps(body).encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--target-port", type=int, required=True)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--bandwidth", type=float, default=0.0, help="bytes/s per response, 0 = unlimited")
    ap.add_argument("--cache-gets", action="store_true", help="answer GETs from a copy read once from the target")
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    server.cache_gets = args.cache_gets
    server.cache = {}
    server.target_port = args.target_port
    server.latency = args.latency_ms / 1000.0
    server.bandwidth = args.bandwidth
    server.lock = threading.Lock()
    server.local = threading.local()
    server.requests = 0
    server.bytes = 0
    print(f"s3 latency proxy on 127.0.0.1:{args.port} -> 127.0.0.1:{args.target_port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
