"""CPU threads and --hidden-size auto: the usable CPUs (affinity, cgroup quotas) from fake /proc and /sys trees,
the load other processes put on them, the choice and its message, explicit settings winning, the Trainer's
watch, and the width rule with its probe (faked where a real one would be slow or depend on the machine)."""

import json

import pytest
import torch

from rnnkit.cli import main
from rnnkit.tasks.base import Prepared
from rnnkit.tasks.textgen import task as textgen_task
from rnnkit.tasks.textgen.task import TextGenerator, choose_width, int_or_auto
from rnnkit.text import Tokenizer
from rnnkit.training import TrainConfig, Trainer
from rnnkit.training import threads


@pytest.fixture(autouse=True)
def keep_torch_threads(monkeypatch):
    """Every test leaves torch's thread count and the module's memory as it found them."""
    before = torch.get_num_threads()
    for name in ("_default", "_ours", "_said"):
        monkeypatch.setattr(threads, name, getattr(threads, name))
    monkeypatch.setattr(threads, "_last", {})
    yield
    torch.set_num_threads(before)


def fake_tree(tmp_path, files: dict) -> str:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path)


def proc_stat(*cpus) -> str:
    """A /proc/stat whose cpuN lines hold (busy, idle) ticks: user=busy, idle=idle, the rest 0."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{n} {busy} 0 0 {idle} 0 0 0 0 0 0" for n, (busy, idle) in enumerate(cpus)]
    return "\n".join(lines + ["intr 1 2 3", "procs_running 3"]) + "\n"


# -- the CPUs this process may use -----------------------------------------------------------------------------

def test_cgroup_v2_quota_from_the_process_group_or_the_mount_top(tmp_path):
    root = fake_tree(tmp_path / "a", {"proc/self/cgroup": "0::/user.slice/job\n",
                                      "sys/fs/cgroup/user.slice/job/cpu.max": "150000 100000\n"})
    assert threads.cgroup_cpu_limit(root) == 1.5
    # In a container the group's path is not mounted: the top of the mount holds the limit.
    root = fake_tree(tmp_path / "b", {"proc/self/cgroup": "0::/docker/abc\n", "sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert threads.cgroup_cpu_limit(root) is None
    root = fake_tree(tmp_path / "c", {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "200000 100000\n"})
    assert threads.cgroup_cpu_limit(root) == 2.0
    assert threads.cgroup_cpu_limit(tmp_path / "nothing") is None


def test_cgroup_v1_quota(tmp_path):
    cgroup = "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n"
    root = fake_tree(tmp_path / "a", {"proc/self/cgroup": cgroup,
                                      "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000\n",
                                      "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert threads.cgroup_cpu_limit(root) == 0.5
    root = fake_tree(tmp_path / "b", {"proc/self/cgroup": cgroup, "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
                                      "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"})
    assert threads.cgroup_cpu_limit(root) is None


def test_usable_cpus_is_the_affinity_capped_by_the_quota_rounded_down(tmp_path, monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    root = fake_tree(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "250000 100000\n"})
    assert threads.usable_cpus(root) == (2, "cgroup CPU quota 2.5")
    (tmp_path / "sys/fs/cgroup/cpu.max").write_text("50000 100000\n")
    assert threads.usable_cpus(root) == (1, "cgroup CPU quota 0.5")         # never 0
    (tmp_path / "sys/fs/cgroup/cpu.max").write_text("max 100000\n")
    assert threads.usable_cpus(root)[0] == 4


# -- how busy other processes keep them -------------------------------------------------------------------------

def test_others_busy_is_the_machines_busy_time_less_our_own(tmp_path, monkeypatch):
    hz = threads.os.sysconf("SC_CLK_TCK")
    root = fake_tree(tmp_path, {"proc/stat": proc_stat((1000, 5000), (2000, 4000), (7, 7))})
    own = iter([10.0, 10.5])
    monkeypatch.setattr(threads.time, "process_time", lambda: next(own))
    start = threads.read_cpu_times([0, 1], root)
    assert start.busy == 3000 / hz and start.total == 12000 / hz          # cpu2 is not ours: not counted
    # One second passes on both CPUs (2 s of CPU time): 1.5 s busy, 0.5 s of it ours -> others kept 1 CPU busy.
    (tmp_path / "proc/stat").write_text(proc_stat((1000 + 0.75 * hz, 5000 + 0.25 * hz),
                                                  (2000 + 0.75 * hz, 4000 + 0.25 * hz), (7, 7)).replace(".0", ""))
    end = threads.read_cpu_times([0, 1], root)
    assert threads.others_busy(start, end, 2) == pytest.approx(1.0)
    assert threads.others_busy(end, end, 2) == 0.0                         # no time passed: nothing known
    assert threads.read_cpu_times([0], tmp_path / "no-proc") is None


@pytest.mark.parametrize("usable, busy, cap, expected", [
    (2, 0.0, None, 2), (2, 0.39, None, 2), (2, 0.4, None, 1), (2, 1.0, None, 1), (2, 2.0, None, 1),
    (4, 1.39, None, 3), (4, 1.4, None, 2), (8, 2.5, None, 5), (8, 0.0, 4, 4), (4, None, None, 4)])
def test_one_thread_per_cpu_that_others_leave_free(usable, busy, cap, expected):
    assert threads.pick_threads(usable, busy, cap) == expected


# -- the choice: explicit settings win ---------------------------------------------------------------------------

@pytest.fixture
def busy_machine(monkeypatch):
    """Two usable CPUs, one of them kept busy by another process; no OMP_NUM_THREADS."""
    monkeypatch.setattr(threads, "usable_cpus", lambda root="/": (2, "all CPUs"))
    monkeypatch.setattr(threads, "measure_others", lambda cpus, root="/": 1.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "_default", 2)
    monkeypatch.setattr(threads, "_ours", None)
    monkeypatch.setattr(threads, "_said", None)


def test_auto_picks_one_thread_beside_a_busy_process_and_says_why(busy_machine, capsys):
    choice = threads.use_threads()
    assert (choice.threads, choice.source, choice.busy) == (1, "auto", 1.0)
    assert torch.get_num_threads() == 1
    assert capsys.readouterr().err == (
        "rnnkit: using 1 CPU thread of 2: other processes keep 1.0 CPUs busy (threads that share a busy CPU "
        "wait for each other); --threads N or OMP_NUM_THREADS=N sets the number\n")
    threads.use_threads()                                   # the CLI, then the Trainer: said once
    assert capsys.readouterr().err == ""


def test_an_explicit_count_omp_num_threads_or_the_programs_own_wins(busy_machine, monkeypatch, capsys):
    assert threads.use_threads(2).threads == 2 and torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose() == threads.Choice(2, "OMP_NUM_THREADS", 2, limit="all CPUs")
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")            # nested levels: the first is the team
    assert threads.choose().threads == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(3)                                # the program set it itself: left alone
    assert threads.use_threads().source == "program" and torch.get_num_threads() == 3
    assert capsys.readouterr().err == ""                    # explicit choices are not announced
    assert threads.Choice(2, "auto", 2, 0.0).message() == ""   # nor all the CPUs


def test_train_config_threads_reaches_torch_through_the_trainer(busy_machine):
    model = torch.nn.Linear(2, 1)
    trainer = Trainer(model, TrainConfig(threads=2, device="cpu"), progress=False)
    assert torch.get_num_threads() == 2 and trainer.threads.choice.source == "--threads"
    Trainer(model, TrainConfig(device="cpu"), progress=False)          # automatic: beside the busy process
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match=r"threads=0: expected an integer >= 1"):
        TrainConfig(threads=0)


def test_the_watch_follows_the_load_while_training(busy_machine, monkeypatch):
    lines = []
    watch = threads.ThreadWatch(threads.use_threads(), write=lines.append)
    assert torch.get_num_threads() == 1
    watch()                                                 # too soon: no new look
    assert lines == []
    monkeypatch.setattr(threads, "CHECK_SECONDS", 0.0)
    monkeypatch.setattr(threads, "measure_others", lambda cpus, root="/": 0.1)   # the other process ended
    watch.next_check = 0.0
    watch()
    assert torch.get_num_threads() == 2
    assert lines == ["rnnkit: now 2 CPU threads of 2: other processes keep 0.1 CPUs busy"]


def test_cli_threads_flag_and_the_automatic_message(busy_machine, tmp_path, capsys):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcd" * 500)
    flags = ["textgen", "train", "--corpus", str(corpus), "--hidden-size", "8", "--num-layers", "1",
             "--embedding-size", "4", "--seq-len", "8", "--batch-size", "4", "--dry-run", "--overwrite",
             "--run-dir", str(tmp_path / "run")]
    assert main(flags + ["--threads", "2"]) == 0
    assert torch.get_num_threads() == 2 and "CPU thread" not in capsys.readouterr().err
    assert main(flags) == 0
    assert torch.get_num_threads() == 1
    assert "rnnkit: using 1 CPU thread of 2: other processes keep 1.0 CPUs busy" in capsys.readouterr().err
    assert main(flags + ["--threads", "0"]) == 2
    assert "rnnkit: error: threads=0: expected an integer >= 1" in capsys.readouterr().err


# -- --hidden-size auto ------------------------------------------------------------------------------------------

def test_width_rule_takes_the_widest_that_gets_enough_steps():
    # 5 minutes: 256 gets 4 x 300 = 1200 steps, 512 gets 300 (< 600): 256.
    width, why = choose_width({128: 10.0, 256: 4.0, 512: 1.0}, 300.0)
    assert width == 256
    assert why == ("256 units get ~1200 steps in 5 minutes; 512 would get ~300, fewer than the 600 a wider model "
                   "needs to pull ahead (steps/s measured: 128: 10.00, 256: 4.00, 512: 1.00)")
    assert choose_width({128: 10.0, 256: 4.0, 512: 1.0}, 900.0)[0] == 512         # 15 minutes: 900 steps
    width, why = choose_width({128: 2.0}, 60.0)                                   # a slow machine
    assert width == 128 and why.startswith("even 128 units get only ~120 steps in 1 minutes")
    assert choose_width({}, None) == (512, "no --max-minutes budget: every width gets the same steps, so "
                                           "the widest")


def test_hidden_size_takes_auto_or_a_number(capsys):
    assert int_or_auto("auto") == "auto" and int_or_auto(" AUTO ") == "auto" and int_or_auto("64") == 64
    assert TextGenerator(hidden_size="64").config.hidden_size == 64            # bench/textgen.py --set hidden_size=64
    with pytest.raises(ValueError, match=r"hidden_size='big': expected an integer >= 1 or 'auto'"):
        TextGenerator(hidden_size="big")
    with pytest.raises(SystemExit) as exit:
        main(["textgen", "train", "--hidden-size", "wide", "--dry-run"])
    assert exit.value.code == 2
    assert "argument --hidden-size: invalid int_or_auto value: 'wide'" in capsys.readouterr().err


SMALL = dict(num_layers=1, embedding_size=4, seq_len=8, batch_size=4, sample_max_tokens=0, warmup_steps=0)


def test_auto_width_is_probed_printed_stored_and_kept_on_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(textgen_task, "AUTO_WIDTHS", (8, 16, 32))
    probed = []

    def fake_rate(self, width, prepared, train):
        probed.append(width)
        return {8: 40.0, 16: 20.0, 32: 5.0}[width]                  # 60 s: 2400, 1200, 300 steps

    monkeypatch.setattr(TextGenerator, "_probe_rate", fake_rate)
    run, corpus = tmp_path / "run", tmp_path / "abcd.txt"
    corpus.write_text("abcd" * 400)
    gen = TextGenerator(corpus=str(corpus), max_minutes=1.0, max_steps=2, **SMALL).fit(run_dir=str(run),
                                                                                       progress=False)
    assert probed == [8, 16, 32] and gen.config.hidden_size == 16
    assert gen.model_.head.in_features == 16
    assert json.loads((run / "config.json").read_text())["config"]["hidden_size"] == 16
    assert ("hidden_size auto: 16 units: 16 units get ~1200 steps in 1 minutes; 32 would get ~300, fewer than the "
            "600 a wider model needs to pull ahead (steps/s measured: 8: 40.00, 16: 20.00, 32: 5.00); "
            "--hidden-size N sets it") in capsys.readouterr().err
    # A resumed run keeps its width, also from a config that still says auto, and does not probe again.
    probed.clear()
    again = TextGenerator(corpus=str(corpus), max_minutes=1.0, max_steps=3, **SMALL).fit(run_dir=str(run),
                                                                                         resume=True, progress=False)
    assert probed == [] and again.config.hidden_size == 16 and again.trainer_.step == 3
    assert main(["textgen", "train", "--run-dir", str(run), "--resume", "--max-steps", "4"]) == 0
    assert probed == [] and "hidden_size auto" not in capsys.readouterr().err
    # An explicit width is used as given.
    gen = TextGenerator(hidden_size=12, max_minutes=1.0, max_steps=1, **SMALL).fit("abcd" * 400, progress=False)
    assert probed == [] and gen.config.hidden_size == 12


@pytest.mark.parametrize("step", [1, 2])
def test_ctrl_c_during_the_width_probe_stops_the_command(tmp_path, capsys, monkeypatch, ctrl_c_at_step, step):
    # Before: the probe's Trainer caught Ctrl-C, said "nothing saved", and training went on to exit 0 (or, after
    # the probe's first step, ended in an IndexError).
    monkeypatch.setattr(textgen_task, "AUTO_WIDTHS", (8, 16))
    ctrl_c_at_step(step)                                        # the first Trainer to run is the probe's
    corpus, run = tmp_path / "abcd.txt", tmp_path / "run"
    corpus.write_text("abcd" * 400)
    flags = ["--num-layers", "1", "--embedding-size", "4", "--seq-len", "8", "--batch-size", "4",
             "--sample-max-tokens", "0"]
    assert main(["textgen", "train", "--corpus", str(corpus), "--max-minutes", "1", *flags,
                 "--run-dir", str(run)]) == 130
    err = capsys.readouterr().err
    assert err.endswith("rnnkit: interrupted\n") and "Traceback" not in err and "hidden_size auto" not in err
    assert not (run / "config.json").exists()                  # nothing was written: a new run starts cleanly


def test_a_real_probe_times_steps_of_the_trainer(monkeypatch):
    import itertools

    from rnnkit.tasks.textgen import task as textgen_task

    # A clock that moves 0.25 s each time a step's end is read: PROBE_STEPS real Trainer steps, the first
    # (warm-up) not timed, give exactly 4 steps per second.
    ticks = itertools.count()
    monkeypatch.setattr(textgen_task.time, "perf_counter", lambda: 0.25 * next(ticks))
    gen = TextGenerator(hidden_size=8, **SMALL)
    gen.tokenizer_ = Tokenizer(char_level=True).fit_on_texts(["abcd"])
    x = torch.randint(1, 5, (4, 8))
    rate = gen._probe_rate(8, Prepared("probe", (), train=[(x, x)]), TrainConfig(lr=1e-2))   # textgen's own loss
    assert rate == pytest.approx(4.0)
    assert next(ticks) == textgen_task.PROBE_STEPS          # one clock reading per step taken


def test_the_load_is_measured_over_the_time_since_the_last_look(tmp_path, monkeypatch):
    hz = threads.os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "proc/stat"
    stat.parent.mkdir(parents=True)
    stat.write_text(proc_stat((100, 100), (100, 100)))
    clock = [1000.0]
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(threads.time, "process_time", lambda: 0.0)            # this process did nothing

    def sleep(seconds):                     # meanwhile other processes keep 1 CPU-second of 4 busy
        clock[0] += seconds
        stat.write_text(proc_stat((100 + hz, 100 + hz), (100, 100 + 2 * hz)))
    monkeypatch.setattr(threads.time, "sleep", sleep)
    assert threads.measure_others([0, 1], tmp_path) == pytest.approx(0.5)      # a first look waits for a window
    assert clock[0] == 1000.0 + threads.WINDOW_MIN
    assert threads.measure_others([0, 1], tmp_path) == pytest.approx(0.5)      # at once again: reused
    clock[0] += 1.0                                                             # a second later: that second
    stat.write_text(proc_stat((100 + 3 * hz, 100 + hz), (100 + 2 * hz, 100 + 2 * hz)))   # both CPUs busy
    assert threads.measure_others([0, 1], tmp_path) == pytest.approx(2.0)
    assert clock[0] == 1001.0 + threads.WINDOW_MIN                              # no wait: the window was there
    assert threads.measure_others([0], tmp_path / "no-proc") is None
