"""Screenshots of the playground for the README: `rnnkit serve` on real runs, driven by headless chromium.

    python docs/screenshots/make_screenshots.py --textgen runs/shakespeare --classify runs/rt \\
        --forecast runs/jfk --seq2seq runs/numbers --embeddings glove-50d

Each option is a run directory (or, for --embeddings, glove-50d or a GloVe text file); the pages of the
models not given are left out. Writes generate.png, classify.png, forecast.png, translate.png and
embeddings.png beside this script (or into --out). Needs the serve extra, playwright and Debian's chromium.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import expect, sync_playwright

from rnnkit.serve.app import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def serve(app) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--textgen")
    p.add_argument("--classify")
    p.add_argument("--forecast")
    p.add_argument("--seq2seq")
    p.add_argument("--embeddings")
    p.add_argument("--prompt", default="KING HENRY:\n", help="the generation prompt")
    p.add_argument("--texts", default="A moving, beautifully shot film.\nDull, overlong and badly acted.",
                   help="texts to classify, one per line")
    p.add_argument("--sources", default="deux cent quarante et un\nmille neuf cent quatre-vingt-dix-neuf",
                   help="texts to translate, one per line")
    p.add_argument("--word", default="king")
    p.add_argument("--out", default=str(Path(__file__).parent))
    args = p.parse_args()
    out = Path(args.out)
    runs = [r for r in (args.textgen, args.classify, args.forecast, args.seq2seq) if r]
    url = serve(create_app(runs, [args.embeddings] if args.embeddings else []))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        if args.textgen:
            page.goto(f"{url}/#generate")
            page.fill("#gen-prompt", args.prompt)
            page.fill("#gen-max", "240")
            page.fill("#gen-seed", "1")
            page.click("#gen-compare")
            for i in range(3):
                expect(page.locator("#gen-outputs .meta").nth(i)).to_contain_text("tokens", timeout=60_000)
            page.screenshot(path=str(out / "generate.png"), full_page=True)
        if args.classify:
            page.goto(f"{url}/#classify")
            page.fill("#cls-input", args.texts)
            page.click("#cls-go")
            expect(page.locator("#cls-results .meta")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(out / "classify.png"), full_page=True)
        if args.forecast:
            page.goto(f"{url}/#forecast")
            page.fill("#fc-history", "168")
            page.click("#fc-go")
            expect(page.locator("#fc-plot svg")).to_be_visible(timeout=120_000)
            page.screenshot(path=str(out / "forecast.png"), full_page=True)
        if args.seq2seq:
            page.goto(f"{url}/#translate")
            page.fill("#tr-input", args.sources)
            page.click("#tr-go")
            expect(page.locator("#tr-results .meta").last).to_be_visible(timeout=60_000)
            page.screenshot(path=str(out / "translate.png"), full_page=True)
        if args.embeddings:
            page.goto(f"{url}/#embeddings")
            page.fill("#emb-word", args.word)
            page.click("#emb-go")
            expect(page.locator("#emb-results .meta")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(out / "embeddings.png"), full_page=True)
        browser.close()
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
