#!/usr/bin/env python3
"""Slow and idle clients against the OTLP/HTTP receiver: how much memory they hold and how
soon the collector closes them.

Starts the collector on a config with explicit limits (printed), records its RSS, then opens
N connections of each kind at once and measures the RSS at their peak and the time until the
server closed each one:

- slowloris: sends headers a byte at a time and never finishes them;
- unfinished body: announces a 19 MiB body, sends 1 MiB, stops;
- idle: connects and sends nothing;
- kept-alive: sends one good request, then stays.

Usage: benches/campaigns/slow_clients.py [--wasmcol target/release/wasmcol] [-n 50]
Only loopback addresses are used.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

CONFIG = """
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        read_header_timeout: 5s
        read_timeout: 10s
        idle_timeout: 5s
exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [nop]
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(binary, cfg_path, log_path):
    log = open(log_path, "w")
    p = subprocess.Popen([binary, "--config", cfg_path, "--set",
                          "service.telemetry.metrics.address=127.0.0.1:0"],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        text = open(log_path).read()
        m = re.search(r"Starting HTTP server receiver=otlp endpoint=127\.0\.0\.1:(\d+)", text)
        if m and "Everything is ready" in text:
            return p, int(m.group(1))
        time.sleep(0.05)
    p.kill()
    sys.exit(f"collector did not start; log in {log_path}")


def hold(kind, port, closed_after, idx):
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.time()
    try:
        if kind == "slowloris":
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(0.5)
            while True:
                try:
                    s.sendall(b"X")
                    if s.recv(1) == b"":
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
        else:
            if kind == "unfinished":
                s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                          b"Content-Length: %d\r\n\r\n" % (19 << 20))
                s.sendall(b"\0" * (1 << 20))
            elif kind == "kept":
                s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                          b"Content-Length: 0\r\n\r\n")
            s.settimeout(120)
            while True:
                try:
                    if s.recv(65536) == b"":
                        break
                except OSError:
                    break
    finally:
        closed_after[idx] = time.time() - t0
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wasmcol", default="target/release/wasmcol")
    ap.add_argument("-n", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "c.yaml")
        open(cfg, "w").write(CONFIG)
        p, port = start(args.wasmcol, cfg, os.path.join(d, "log"))
        try:
            print("config:", CONFIG.strip().replace("\n", "\n  "))
            base = rss_kib(p.pid)
            print(f"baseline RSS: {base / 1024:.1f} MiB")
            print(f"{'case':<12} {'conns':>5} {'peak RSS MiB':>13} {'closed by (s) min/max':>22}")
            for kind in ["slowloris", "unfinished", "idle", "kept"]:
                closed = [None] * args.n
                threads = [threading.Thread(target=hold, args=(kind, port, closed, i)) for i in range(args.n)]
                for t in threads:
                    t.start()
                peak = 0
                while any(t.is_alive() for t in threads):
                    peak = max(peak, rss_kib(p.pid))
                    time.sleep(0.05)
                vals = [c for c in closed if c is not None]
                print(f"{kind:<12} {args.n:>5} {peak / 1024:>13.1f} {min(vals):>10.1f} / {max(vals):<10.1f}")
            print(f"RSS after: {rss_kib(p.pid) / 1024:.1f} MiB")
        finally:
            p.terminate()
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
