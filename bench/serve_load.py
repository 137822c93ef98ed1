"""Load test of `rnnkit serve` on loopback: concurrent clients asking one text model to generate.

The server runs `rnnkit serve` in a subprocess (as a user would start it); the clients run here, each
sending one non-streaming generate request after another for a bounded time. Two servers are measured
in turn: with continuous batching (every active request stepped in one forward pass per token), and one
request at a time (`--no-batching`: the same loop with a batch of 1). Reported per server: requests,
status counts (there must be no 5xx), p50/p99 latency, and the total generated tokens per second; then the
ratio of the two. For reference, the tokens/s of `TextGenerator.generate` itself, one call at a time in
this process (its compiled sampler, no HTTP, no streaming).

The model is a 2-layer LSTM-256 character model (embedding 64, the Shakespeare character set) with random
weights, saved as a run directory: speed does not depend on what the weights learned, and with no end
token every request generates exactly --max-tokens tokens.

    python bench/serve_load.py                                   # 16 clients, 20 s per server
    python bench/serve_load.py --clients 16 --seconds 60 --max-tokens 200 --run runs/shakespeare
    python bench/serve_load.py --secured                         # batched, plain vs API key + access log + /metrics

``--secured`` measures the batched server twice instead: plain (no key, ``--no-access-log``) and as it would
leave localhost (``--api-key``, every request sending it, the access log on and written to a file, and
``/metrics`` scraped once a second). The request counters behind ``/metrics`` are always on.

Threads: each server chooses them as ``rnnkit serve`` does (one per CPU other processes leave free), and so
does the in-process reference, unless ``--threads N`` sets them (the server gets ``OMP_NUM_THREADS=N``). Each
server is shown as it starts (a bar on a terminal, a line in a log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from common import add_threads_argument, progress, start

from rnnkit.tasks.textgen.model import LanguageModel
from rnnkit.tasks.textgen.task import TextGenConfig, TextGenerator
from rnnkit.text import Tokenizer

CHARS = "\n !&',-.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz3$[]|_()\"*"


def make_run(path: Path, hidden: int = 256, layers: int = 2) -> Path:
    """A random-weight character model saved as a run directory."""
    torch.manual_seed(0)
    gen = TextGenerator(TextGenConfig(hidden_size=hidden, num_layers=layers, embedding_size=64, end_token=None))
    gen.tokenizer_ = Tokenizer(char_level=True, lower=False, filters="").fit_on_texts([CHARS])
    gen.end_token_ = None
    gen.model_ = LanguageModel(gen.tokenizer_.vocab_size, 64, hidden, layers).eval()
    gen.save(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KEY = "bench-key"


def start_server(run: Path, port: int, batching: bool, threads: int | None, secured: bool | None = None,
                 log: Path | None = None) -> subprocess.Popen:
    """``secured``: None, the default server; False, no access log; True, an API key and the access log.
    ``threads``: None lets the server choose as `rnnkit serve` does."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads is not None else {})}
    cmd = [sys.executable, "-m", "rnnkit.cli", "serve", str(run), "--port", str(port),
           "--batching" if batching else "--no-batching", "--timeout", "120"]
    cmd += {None: [], False: ["--no-access-log"], True: ["--api-key", KEY]}[secured]
    stderr = open(log, "w") if log else subprocess.PIPE      # noqa: SIM115 (the access log, written until the server ends)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read() if proc.stderr else log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not answer within 120 s")


async def load(port: int, model: str, clients: int, seconds: float, max_tokens: int,
               temperature: float, key: str | None = None) -> dict:
    """``clients`` loops of one request after another until ``seconds`` have passed (a request under way
    then is finished and counted); with ``key``, each sends it and /metrics is scraped once a second."""
    url = f"http://127.0.0.1:{port}/v1/models/{model}/generate"
    latencies, statuses, tokens = [], {}, 0
    began = time.monotonic()
    end = began + seconds

    async def client(i: int, ac: httpx.AsyncClient):
        nonlocal tokens
        n = 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            r = await ac.post(url, json={"prompt": "KING:\n", "max_tokens": max_tokens, "temperature": temperature,
                                         "seed": 1000 * i + n})
            latencies.append(time.monotonic() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                tokens += r.json()["tokens"]
            n += 1

    scrapes = 0

    async def scrape(ac: httpx.AsyncClient):
        nonlocal scrapes
        while time.monotonic() < end:
            assert (await ac.get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
            scrapes += 1
            await asyncio.sleep(1.0)

    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=300, limits=limits, headers=headers) as ac:
        await asyncio.gather(*[client(i, ac) for i in range(clients)], *([scrape(ac)] if key else []))
        details = (await ac.get(f"http://127.0.0.1:{port}/v1/models")).json()["models"][0]["details"]
    elapsed = time.monotonic() - began
    latencies.sort()
    return {"requests": len(latencies), "statuses": statuses, "errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
            "p50_s": statistics.median(latencies), "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed, "mean_batch": details["mean_batch"],
            "metrics_scrapes": scrapes}


def direct_generate(run: Path, max_tokens: int, temperature: float, seconds: float) -> float:
    """Tokens/s of TextGenerator.generate called one request after another, in this process (its threads:
    what ``start`` chose)."""
    gen = TextGenerator.load(str(run))
    gen.generate("KING:\n", max_tokens, temperature=temperature, seed=0)    # compile the sampler once
    n, began = 0, time.monotonic()
    while time.monotonic() - began < seconds:
        gen.generate("KING:\n", max_tokens, temperature=temperature, seed=n)
        n += 1
    return n * max_tokens / (time.monotonic() - began)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a textgen run directory to serve (default: a random-weight 2x256 LSTM)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0, help="load time per server")
    p.add_argument("--max-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8)
    add_threads_argument(p)
    p.add_argument("--secured", action="store_true",
                   help="compare the batched server plain and with an API key, the access log and /metrics")
    p.add_argument("-o", "--output", help="also write the results as JSON to this file")
    args = p.parse_args()
    start(args.threads)
    if args.secured:
        return secured(args)

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else make_run(Path(tmp) / "lstm256")
        results = {}
        for mode, batching in progress((("batched", True), ("one at a time", False)), "servers"):
            port = free_port()
            proc = start_server(run, port, batching, args.threads, log=Path(tmp) / "server.log")
            try:
                model = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["models"][0]["model"]
                results[mode] = asyncio.run(load(port, model, args.clients, args.seconds, args.max_tokens,
                                                 args.temperature))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            r = results[mode]
            print(f"{mode:>14}: {r['requests']} requests {r['statuses']}, p50 {r['p50_s']:.2f} s, p99 {r['p99_s']:.2f} s, "
                  f"{r['tokens_per_s']:.0f} tokens/s, mean batch {r['mean_batch']}", flush=True)
        direct = direct_generate(run, args.max_tokens, args.temperature, min(args.seconds, 10))
    ratio = results["batched"]["tokens_per_s"] / results["one at a time"]["tokens_per_s"]
    print(f"batched / one at a time: {ratio:.1f}x the generated tokens/s "
          f"({'meets' if ratio >= 3 else 'misses'} the 3x bar); 5xx: "
          f"{results['batched']['errors_5xx'] + results['one at a time']['errors_5xx']}")
    print(f"reference: TextGenerator.generate one call at a time, in process (compiled sampler, no HTTP): "
          f"{direct:.0f} tokens/s")
    if args.output:
        Path(args.output).write_text(json.dumps({"args": vars(args), "results": results, "ratio": ratio,
                                                 "direct_generate_tokens_per_s": direct}, indent=2))


def secured(args) -> None:
    """The batched server plain, then with an API key, its access log and /metrics scraped; twice each,
    interleaved (plain, secured, plain, secured), so that a machine whose speed drifts shows it."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else make_run(Path(tmp) / "lstm256")
        results: dict[str, list] = {"plain": [], "secured": []}
        for mode in progress(("plain", "secured", "plain", "secured"), "servers"):
            port, log = free_port(), Path(tmp) / f"{mode}.log"
            proc = start_server(run, port, True, args.threads, secured=mode == "secured", log=log)
            try:
                key = KEY if mode == "secured" else None
                headers = {"authorization": f"Bearer {KEY}"} if key else {}
                model = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=headers).json()["models"][0]["model"]
                r = asyncio.run(load(port, model, args.clients, args.seconds, args.max_tokens, args.temperature, key))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            r["access_lines"] = sum(1 for line in log.read_text().splitlines() if " model=" in line)
            results[mode].append(r)
            print(f"{mode:>8}: {r['requests']} requests {r['statuses']}, p50 {r['p50_s']:.2f} s, p99 {r['p99_s']:.2f} s, "
                  f"{r['tokens_per_s']:.0f} tokens/s, mean batch {r['mean_batch']}, access lines {r['access_lines']}, "
                  f"/metrics scrapes {r['metrics_scrapes']}", flush=True)
    tps = {mode: sum(r["tokens"] for r in rs) / sum(r["seconds"] for r in rs) for mode, rs in results.items()}
    ratio = tps["secured"] / tps["plain"]
    errors = sum(r["errors_5xx"] for rs in results.values() for r in rs)
    print(f"secured / plain: {ratio:.3f} of the generated tokens/s ({tps['secured']:.0f} / {tps['plain']:.0f}; "
          f"{'within' if ratio >= 0.95 else 'outside'} the 5% bar); 5xx: {errors}")
    if args.output:
        Path(args.output).write_text(json.dumps({"args": vars(args), "results": results, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
