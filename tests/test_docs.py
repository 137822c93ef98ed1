"""Every command shown in README.md and docs/*.md runs as written, in order, in a fresh folder.

Each page (docs/benchmarks.md aside: its commands are the long benchmarks themselves; a test checks that their
flags exist) is read top to bottom. Its ```python blocks run with ``exec`` and its ```bash blocks command by
command, all in one fresh temporary folder per page, so a page must make what it uses (its example files, the
runs it samples, serves or exports). The ``rnnkit ...`` commands run in this process through
``rnnkit.cli.main`` with their budgets shrunk (``shrink``): a new training run becomes a ``--dry-run`` (one the
page resumes later trains one real step instead), a resumed one trains one step more, generated lengths and
counts get small, model widths at most 64 units, ``forecast compare`` four models. Named datasets come from
tiny stand-ins written into a temporary dataset cache (tests/docs_data.py): nothing is downloaded.
``rnnkit serve`` builds its app without listening, and the page's ``curl`` commands go to that app.

Each command must exit 0 (or the status its line's comment gives: ``# exits 2``), must not use a retired
spelling (those warn "X is renamed Y"), and must make what it says it makes: the run directory and its
config.json (``--run-dir``), the output file (``-o``, ``--attention-png``).

A shell line that is not an rnnkit command says in ``NOT_RUN`` why it does not run here; an HTML comment
``<!-- docs-test: skip REASON -->`` just before a block in the docs skips that block. Both should be rare.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_data  # noqa: E402  (tests/ is not a package)

# The pages whose commands run; benchmarks.md's commands are the benchmarks (minutes to hours each).
PAGES = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")
                               if p.name != "benchmarks.md")

# Shell lines that are not rnnkit commands, and why they do not run here.
NOT_RUN = {
    "pip": "installs packages (the test runs in the installed environment)",
    "python -m pytest": "the test suite itself",
    "python bench/": "a benchmark (minutes to hours); docs/benchmarks.md holds its results",
    "torchrun": "starts several processes (tests/test_distributed.py runs textgen, classify and forecast "
                "under 2 processes)",
}

# The warning an old spelling of a flag, keyword or JSON field gives: the docs use the current ones.
RETIRED = re.compile(r"\bis renamed\b")

SKIP_MARK = re.compile(r"<!--\s*docs-test:\s*skip\s+(?P<why>\S.*?)\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")


@dataclass
class Step:
    kind: str                  # "python" or "shell"
    text: str                  # the code, or one shell command (continuations joined)
    where: str                 # page:line
    skip: str | None = None    # why it does not run, if it does not
    expect: int = 0            # exit status the docs give for it ("# exit 2")


def page_steps(page: str) -> list[Step]:
    """The python blocks and shell commands of a page, in order."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    steps, i, skip = [], 0, None
    while i < len(lines):
        m = SKIP_MARK.search(lines[i])
        if m:
            skip = m.group("why")
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        lang, start = fence.group("lang"), i + 1
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        body = lines[start:i]
        i += 1
        if lang == "python":
            steps.append(Step("python", "\n".join(body), f"{page}:{start + 1}", skip))
        elif lang in ("bash", "sh", "shell"):
            steps += shell_steps(body, page, start + 1, skip)
        skip = None
    return steps


def shell_steps(body: list[str], page: str, first_line: int, skip: str | None) -> list[Step]:
    steps, pending, pending_line = [], "", 0
    for n, line in enumerate(body, start=first_line):
        if not pending:
            pending_line = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if not command or command.startswith("#"):
            continue
        expect = re.search(r"#.*\bexits? (\d+)\b", command)
        for part in command.split(" && "):
            steps.append(Step("shell", part.strip(), f"{page}:{pending_line}", skip,
                              int(expect.group(1)) if expect else 0))
    return steps


def not_run_reason(words: list[str]) -> str | None:
    line = " ".join(words)
    for prefix, why in NOT_RUN.items():
        if line == prefix or line.startswith(prefix + " ") or (prefix.endswith("/") and line.startswith(prefix)):
            return why
    return None


# ------------------------------------------------------------------------------------------ budgets

def verb_parser(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The (sub)parser that handles ``argv`` and the verb words that led there (``["textgen", "train"]``)."""
    words = []
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
        words.append(word)
    return parser, words


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def set_flag(argv: list[str], flag: str, value: str | None, only_if_given: bool = False,
             limit=None) -> list[str]:
    """``argv`` with ``flag`` set to ``value`` (or to ``limit(old)`` when given), added when absent."""
    out, found, i = [], False, 0
    while i < len(argv):
        if argv[i] == flag and i + 1 < len(argv):
            found = True
            new = limit(argv[i + 1]) if limit else value
            out += [flag, new]
            i += 2
            continue
        out.append(argv[i])
        i += 1
    if not found and not only_if_given and value is not None:
        out += [flag, value]
    return out


@dataclass
class PageState:
    resumed: set[str] = field(default_factory=set)            # run dirs that a later command resumes
    resumes: dict[str, int] = field(default_factory=dict)     # run dir -> resumes so far
    namespace: dict = field(default_factory=lambda: {"__name__": "__docs__"})   # the page's python blocks


def at_most(n: int):
    return lambda v: str(min(int(v), n))


def shrink(argv: list[str], parser: argparse.ArgumentParser, state: PageState) -> list[str]:
    """The command with its budgets cut to what a test can afford; what it computes stays the same kind."""
    sub, verb = verb_parser(parser, argv)
    flags = options(sub)
    run_dir = argv[argv.index("--run-dir") + 1] if "--run-dir" in argv else None
    if "--resume" in argv:
        # A resumed run trains a step longer each time (its budget is the whole run's).
        state.resumes[run_dir] = state.resumes.get(run_dir, 0) + 1
        argv = set_flag(argv, "--max-steps", str(state.resumes[run_dir] + 1))
        argv = set_flag(argv, "--max-minutes", "1")
    elif "--dry-run" in flags and run_dir in state.resumed:
        # A run that the page resumes later: one real step (a dry run trains on a sample of the data,
        # which a resume would not find again).
        argv = set_flag(argv, "--max-steps", "1")
        argv = set_flag(argv, "--max-minutes", "0.01")
    elif "--dry-run" in flags:
        # A new training run: one tiny batch, the whole path (data, model, run directory, report).
        argv = argv + ["--dry-run"] if "--dry-run" not in argv else argv
    elif "--max-minutes" in flags:                               # rnnkit demo
        argv = set_flag(argv, "--max-minutes", "0.005")
        argv = set_flag(argv, "--hidden-size", "32")
    if "--max-tokens" in flags and verb[:1] != ["serve"]:                   # serve's is a limit
        argv = set_flag(argv, "--max-tokens", "30", limit=at_most(30))
    if "--num-results" in argv:
        argv = set_flag(argv, "--num-results", None, only_if_given=True, limit=at_most(3))
    if "--hidden-size" in argv and "--resume" not in argv:                 # the model's size, not its kind
        argv = set_flag(argv, "--hidden-size", None, only_if_given=True,
                        limit=lambda v: v if v == "auto" else str(min(int(v), 64)))
    if verb == ["forecast", "compare"] and "--models" not in argv:
        argv = argv + ["--models", "naive", "seasonal_naive", "ridge", "gru"]    # not all eleven
    if verb == ["classify", "multilabel", "train"] and "--series" not in argv:
        argv = set_flag(argv, "--num-stays", "60", limit=at_most(60))
    return argv


def shrink_python(code: str) -> str:
    """A python block with the same budgets cut (time, tokens, model width)."""
    code = re.sub(r"max_minutes=[\d.]+", "max_minutes=0.005", code)
    code = re.sub(r"max_tokens=(\d+)", lambda m: f"max_tokens={min(int(m.group(1)), 30)}", code)
    code = re.sub(r"hidden_size=(\d+)", lambda m: f"hidden_size={min(int(m.group(1)), 64)}", code)
    return code


# ------------------------------------------------------------------------------------------ running

@dataclass
class Served:
    apps: dict[int, object] = field(default_factory=dict)      # port -> the app `rnnkit serve` built
    clients: dict[int, object] = field(default_factory=dict)   # port -> its test client, open for the page

    def client(self, port: int):
        if port not in self.clients:
            from fastapi.testclient import TestClient
            assert port in self.apps, f"curl to port {port}: no `rnnkit serve` on that port earlier on the page"
            self.clients[port] = TestClient(self.apps[port], base_url="http://localhost").__enter__()    # starts the app (its batcher)
        return self.clients[port]

    def close(self) -> None:
        for client in self.clients.values():
            client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    return docs_data.fill_cache(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def parser():
    from rnnkit import cli
    return cli.build_parser()


def run_rnnkit(argv: list[str]) -> tuple[int, str, str]:
    from rnnkit import cli
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit:           # --help, and argparse's own errors
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 2)
    return code, out.getvalue(), err.getvalue()


def made_by(argv: list[str], sub: argparse.ArgumentParser) -> list[Path]:
    """What a command says it makes: its run directory (with its config.json), its output file or folder."""
    made = []
    if "--run-dir" in options(sub):
        run_dir = argv[argv.index("--run-dir") + 1] if "--run-dir" in argv else sub.get_default("run_dir")
        if run_dir and run_dir.lower() != "none":
            # A run (train, demo) has its config.json; a report folder (forecast compare) its files.
            trains = argv[0] == "demo" or ("--resume" in options(sub) and "train" in argv[:3])
            made.append(Path(run_dir) / "config.json" if trains else Path(run_dir))
    for flag in ("-o", "--output", "--attention-png"):
        if flag in argv:
            made.append(Path(argv[argv.index(flag) + 1]))
    return made


def send_curl(words: list[str], served: Served) -> tuple[int, str]:
    """A curl command of the docs, sent to the app that `rnnkit serve` built for its port."""
    url, headers, data, i = None, {}, None, 1
    while i < len(words):
        w = words[i]
        if w == "-H":
            name, _, value = words[i + 1].partition(":")
            headers[name.strip()] = value.strip()
            i += 2
        elif w in ("-d", "--data"):
            data = words[i + 1]
            i += 2
        elif w.startswith("-"):
            i += 1
        else:
            url = w
            i += 1
    m = re.match(r"(?:https?://)?(?:localhost|127\.0\.0\.1):(\d+)(/.*)", url or "")
    assert m, f"curl to {url!r}: expected localhost:PORT/PATH"
    client = served.client(int(m.group(1)))
    if data is None:
        r = client.get(m.group(2), headers=headers)
    else:
        r = client.post(m.group(2), content=data.encode(), headers=headers)
    return r.status_code, r.text


@pytest.fixture
def page_env(tmp_path, monkeypatch, data_cache):
    folder = tmp_path / "page"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("RNNKIT_DATA", str(data_cache))
    monkeypatch.setenv("RNNKIT_MODELS", str(tmp_path / "models"))
    served = Served()
    try:
        import uvicorn
        from rnnkit.serve import cli as serve_cli
    except ImportError:
        pass
    else:
        # `rnnkit serve` builds its app and hands it to uvicorn.run: keep the app instead of listening. A server
        # started any other way fails the test rather than wait for requests.
        monkeypatch.setattr(uvicorn, "run", lambda app, host=None, port=8000, **kw: served.apps.__setitem__(port, app))

        def keep_app(server, *args, **kwargs):       # rnnkit serve's own uvicorn.Server (graceful SIGTERM)
            served.apps[server.config.port] = server.config.app
        monkeypatch.setattr(uvicorn.Server, "run", keep_app)
        if hasattr(serve_cli, "check_port"):
            monkeypatch.setattr(serve_cli, "check_port", lambda host, port: None)
    yield folder, served
    served.close()


def run_step(step: Step, parser, state: PageState, served: Served, monkeypatch) -> str:
    """Run one step; returns a line for the log."""
    if step.kind == "python":
        code = shrink_python(step.text)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, step.where, "exec"), state.namespace)
        return f"python block ok ({len(out.getvalue())} chars of output)"
    words = shlex.split(step.text, comments=True)
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    why = not_run_reason(words)
    if why:
        return f"not run: {why}"
    if words[0] == "curl":
        status, text = send_curl(words, served)
        assert status == 200, f"{step.where}: {step.text}\nanswered {status}: {text[:500]}"
        if not any(re.fullmatch(r"-[a-zA-Z]*N[a-zA-Z]*", w) for w in words):       # -N: a stream of events
            json.loads(text)
        else:
            assert "event:" in text or "data:" in text, f"{step.where}: expected server-sent events, got {text[:300]}"
        return f"curl -> {status}"
    assert words[0] == "rnnkit", (f"{step.where}: `{step.text}` is not a command this test knows: run it "
                                  f"(rnnkit ...), or say in NOT_RUN why it cannot run here")
    argv = shrink(words[1:], parser, state)
    sub, _ = verb_parser(parser, argv)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code, out, err = run_rnnkit(argv)
    finally:
        for name in env:
            monkeypatch.delenv(name, raising=False)
    shown = "rnnkit " + shlex.join(argv)
    retired = [line for line in err.splitlines() if line.startswith("rnnkit: warning:") and RETIRED.search(line)]
    assert not retired, f"{step.where}: `{step.text}` uses a retired spelling: {retired[0]}"
    assert code == step.expect, (f"{step.where}: `{step.text}`\nran as `{shown}`: exit {code}, expected "
                                 f"{step.expect}\n--- stdout\n{out[-2000:]}\n--- stderr\n{err[-3000:]}")
    for path in made_by(argv, sub) if code == 0 else []:
        assert path.exists(), f"{step.where}: `{shown}` exited 0 but did not make {path}\n--- stderr\n{err[-2000:]}"
    return f"exit {code}: {shown}"


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_written(page, page_env, parser, monkeypatch):
    folder, served = page_env
    steps = page_steps(page)
    assert steps, f"{page}: no commands or code found"
    state, log = PageState(), []
    for step in steps:
        words = shlex.split(step.text, comments=True) if step.kind == "shell" else []
        if "--resume" in words and "--run-dir" in words:
            state.resumed.add(words[words.index("--run-dir") + 1])
    for step in steps:
        if step.skip:
            log.append(f"{step.where}: skipped ({step.skip})")
            continue
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            what = run_step(step, parser, state, served, monkeypatch)
        retired = [str(w.message) for w in caught if RETIRED.search(str(w.message))]
        assert not retired, f"{step.where}: `{step.text}` uses a retired spelling: {retired[0]}"
        log.append(f"{step.where}: {time.perf_counter() - start:5.2f} s {what}")
    print("\n".join(log))
    ran = [line for line in log if "not run:" not in line and "skipped (" not in line]
    assert ran, f"{page}: nothing ran:\n" + "\n".join(log)


# ------------------------------------------------------------------------------------------ the pages

def test_readme_keeps_the_ci_markers():
    """.ci/run reads the test command from the line after <!-- test-command --> (inside its fence)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    for marker, expected in (("<!-- demo-command -->", "rnnkit demo"), ("<!-- test-command -->", "python -m pytest")):
        i = lines.index(marker)
        assert lines[i + 1].startswith("```") and expected in lines[i + 2], (marker, lines[i + 1:i + 3])


def anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_pages_resolve():
    """Every relative link names a file that exists, and its #anchor a heading of that file."""
    for page in ["README.md", *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]:
        text = (ROOT / page).read_text(encoding="utf-8")
        for target, fragment in re.findall(r"\]\(([^)#\s]+)(?:#([^)\s]*))?\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path = (ROOT / page).parent / target
            assert path.exists(), f"{page}: link to {target}, which does not exist"
            if fragment:
                headings = [anchor(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines()
                            if line.startswith("#")]
                assert fragment in headings, f"{page}: link to {target}#{fragment}: no such heading there"


def test_the_layouts_name_files_that_exist():
    """The files and folders the architecture sections name (README.md, docs/architecture.md) exist."""
    src = ROOT / "src" / "rnnkit"
    known = {p.name for p in src.rglob("*")} | {p.name + "/" for p in src.rglob("*") if p.is_dir()}
    for page in ("README.md", "docs/architecture.md"):
        text = (ROOT / page).read_text(encoding="utf-8")
        layout = re.search(r"```\n(src/rnnkit/\n.*?)```", text, re.S)
        assert layout, f"{page}: no layout block starting with src/rnnkit/"
        for line in layout.group(1).splitlines()[1:]:
            if line.startswith(("tests/", "bench/", "docs/")):
                break
            # Every file (name.py, name.c) and folder (name/) a line names.
            for name in re.findall(r"(?<![\w./`<-])(\w+(?:\.py|\.c|/))(?=[\s,)]|$)", line):
                assert name in known, f"{page}: the layout names {name}, which is not in src/rnnkit"


def test_every_task_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for p in (ROOT / "docs").glob("*.md"):
        assert f"docs/{p.name}" in readme, f"README.md does not link docs/{p.name}"


def test_the_demo_runs_again(tmp_path, monkeypatch):
    """`rnnkit demo` twice: the second replaces the first's run in runs/demo; a folder holding a run the demo
    did not write is still refused without --overwrite."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "abc.txt").write_text("abcd\n" * 800)
    small = ["--corpus", "abc.txt", "--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4",
             "--seq-len", "8", "--batch-size", "4", "--epochs", "1", "--prompt", "ab", "--max-tokens", "4"]
    assert run_rnnkit(["demo", *small])[0] == 0
    code, out, err = run_rnnkit(["demo", *small])
    assert code == 0 and "replacing the earlier demo run in runs/demo" in out, err
    assert (tmp_path / "runs/demo/config.json").is_file()
    code, _, _ = run_rnnkit(["textgen", "train", "--corpus", "abc.txt", "--hidden-size", "8", "--seq-len", "8",
                             "--batch-size", "4", "--dry-run", "--run-dir", "runs/mine"])
    assert code == 0
    code, _, err = run_rnnkit(["demo", *small, "--run-dir", "runs/mine"])
    assert code == 2 and "holds an earlier textgen run" in err


def test_the_benchmark_commands_use_flags_that_exist(parser):
    """docs/benchmarks.md's commands are too long to run here; their flags must still exist (the current
    spellings: an old one would warn)."""
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    spans = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", text)]
    commands = [re.sub(r"^([A-Z_]+=\S+ )+", "", s) for s in spans]
    bench = [c for c in commands if c.startswith("python bench/")]
    rnnkit = [c for c in commands if c.startswith("rnnkit ")]
    assert bench and rnnkit
    for command in bench:
        script = command.split()[1]
        source = (ROOT / script).read_text(encoding="utf-8")
        if "add_threads_argument(" in source:      # the flag bench/common.py adds for every script
            source += (ROOT / "bench" / "common.py").read_text(encoding="utf-8")
        known = set(re.findall(r"""["'](--[\w-]+)["']""", source))
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", command):
            assert flag in known, f"docs/benchmarks.md: `{command}`: {script} has no {flag}"
    for command in rnnkit:
        argv = shlex.split(command)[1:]
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(io.StringIO()) as err:
            warnings.simplefilter("always")
            try:
                parser.parse_args(argv)
            except SystemExit as exit:
                raise AssertionError(f"docs/benchmarks.md: `{command}` does not parse: {err.getvalue()}") from exit
        retired = [str(w.message) for w in caught if RETIRED.search(str(w.message))]
        assert not retired, f"docs/benchmarks.md: `{command}` uses a retired spelling: {retired[0]}"
