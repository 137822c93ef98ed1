"""The C sampling loop (generation/native.py, lstm_sampler.c): same tokens as the Python loop, its build
cache, and the fallback to the TorchScript loop when it cannot be built."""

import os
import shutil
import subprocess

import pytest
import torch

from rnnkit import native as native_build
from rnnkit.generation import native as textgen_native
from rnnkit.generation.native import NativeLSTMSampler, kernel_status
from test_textgen import random_generator

TEXT = "the quick brown fox jumps over the lazy dog.\nTHE END?\n"
HAS_COMPILER = shutil.which(os.environ.get("CC") or "cc") is not None
needs_compiler = pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler on PATH: the C loop cannot be built")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty kernel cache under tmp_path, and no library loaded yet in this process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(native_build, "_loaded", {})
    return tmp_path / "rnnkit" / "kernels"


@pytest.fixture
def calls(monkeypatch):
    """Counts the C loop's runs, to check which loop generate() took."""
    seen = []
    real = NativeLSTMSampler.run

    def spy(self, *args, **kwargs):
        seen.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(NativeLSTMSampler, "run", spy)
    return seen


@pytest.fixture(params=[1, 2, 3], ids=lambda n: f"{n}threads")
def threads(request):
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@needs_compiler
@pytest.mark.parametrize("layers,hidden", [(1, 32), (2, 37), (3, 64)])
@pytest.mark.parametrize("options", [{"temperature": 0.6}, {"temperature": 1.4}, {"greedy": True}])
def test_c_loop_gives_the_same_tokens_as_the_python_loop(layers, hidden, options, threads, calls):
    # hidden 37: units do not split evenly over the threads, and rows are not a multiple of 16 long.
    gen = random_generator(TEXT, layers=layers, hidden=hidden, seed=layers)
    fast = gen.generate("the ", 300, seed=11, **options)
    assert calls == [1]                                               # the C loop ran
    plain = gen.generate("the ", 300, seed=11, fast=False, **options)
    assert fast == plain
    assert len(fast) == 300


@needs_compiler
@pytest.mark.parametrize("threads", [1, 2, 3, 5])
def test_c_loop_splits_units_over_any_number_of_threads(threads):
    # Called directly, so the thread count is not capped at this machine's CPUs: 37 hidden units and
    # a vocabulary of 36 split unevenly over 2, 3 and 5 threads.
    from rnnkit.generation.fast import compiled_sampler, sample
    gen = random_generator(TEXT, layers=2, hidden=37, seed=3)
    scripted, native = compiled_sampler(gen.model_)
    logits, state = gen.model_(torch.tensor([gen.encode_seed("the ")]))
    h, c = (torch.stack([st[k] for st in state]).contiguous() for k in (0, 1))   # (L, 1, H)
    uniforms = torch.rand(400, 1, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = sample(scripted, logits[:, -1], [h, c], uniforms, 0.8, -1, 1.0, False, -1)
        got = native.run(textgen_native.native_kernel(), logits[:, -1], h, c, uniforms, 0.8, False, -1,
                         threads=threads)
    assert torch.equal(got, want)


@needs_compiler
def test_long_generations_run_in_chunks_that_carry_the_state(monkeypatch):
    gen = random_generator(TEXT, layers=2, hidden=37)
    whole = gen.generate("the ", 250, seed=8, temperature=0.9)
    monkeypatch.setattr(textgen_native, "CHUNK", 64)                # 250 = 3 x 64 + 58
    assert gen.generate("the ", 250, seed=8, temperature=0.9) == whole
    assert whole == gen.generate("the ", 250, seed=8, temperature=0.9, fast=False)


@needs_compiler
def test_c_loop_stops_at_the_end_token(calls, monkeypatch):
    gen = random_generator("red\nblue\ngreen\n", hidden=32, end_token="\n")
    lengths = []
    monkeypatch.setattr(textgen_native, "CHUNK", 16)                # also when the end comes in a later call
    for seed in range(6):
        fast = gen.generate("", 200, temperature=1.5, seed=seed)
        assert fast == gen.generate("", 200, temperature=1.5, seed=seed, fast=False)
        assert "\n" not in fast
        lengths.append(len(fast))
    assert len(calls) == 6 and min(lengths) < 200                     # at least one sample ended early
    assert any(16 < n < 200 for n in lengths)                         # ... in a later call than the first


def test_batches_top_k_top_p_and_other_cells_use_the_torchscript_loop(calls):
    gen = random_generator(TEXT, hidden=32)
    gen.generate("the ", 20, num_results=2, seed=1)
    gen.generate("the ", 20, top_k=3, seed=1)
    gen.generate("the ", 20, top_p=0.9, seed=1)
    random_generator(TEXT, cell="gru", hidden=32).generate("the ", 20, seed=1)
    assert calls == []


@needs_compiler
def test_the_library_is_built_once_into_the_cache(fresh_cache, monkeypatch):
    assert kernel_status() == "ready"
    built = list(fresh_cache.glob("lstm_sampler-*.so"))
    assert len(built) == 1
    # no temporary files left; the library's sha256 recorded beside it
    assert sorted(p.name for p in fresh_cache.iterdir()) == [built[0].name, built[0].name + ".sha256"]
    assert (fresh_cache / (built[0].name + ".sha256")).read_text().strip() == native_build._sha256(built[0])
    # A new process (no library loaded) finds the cached file and does not compile again.
    monkeypatch.setattr(native_build, "_loaded", {})
    monkeypatch.setattr(native_build, "_build", lambda *a: pytest.fail("compiled again"))
    assert kernel_status() == "ready"


def test_without_a_compiler_generation_falls_back(fresh_cache, monkeypatch, calls):
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    assert kernel_status() == "no C compiler: 'no-such-compiler-xyz' is not on PATH (set CC to use another)"
    gen = random_generator(TEXT, hidden=32)
    assert gen.generate("the ", 80, seed=2) == gen.generate("the ", 80, seed=2, fast=False)
    assert calls == []


def test_a_failing_build_is_reported_and_falls_back(fresh_cache, monkeypatch, tmp_path, calls):
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'cc: fatal error: broken on purpose' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    status = kernel_status()
    assert status.startswith("building lstm_sampler.c failed: ")
    assert "broken on purpose" in status and "-march=native" in status
    assert not list(fresh_cache.glob("*"))                            # nothing half-written is left
    gen = random_generator(TEXT, hidden=32)
    assert gen.generate("the ", 50, seed=4) == gen.generate("the ", 50, seed=4, fast=False)
    assert calls == []


def test_rnnkit_native_0_turns_the_c_loop_off(monkeypatch, calls):
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    assert kernel_status() == "turned off by RNNKIT_NATIVE=0"
    random_generator(TEXT, hidden=32).generate("the ", 20, seed=1)
    assert calls == []


@needs_compiler
def test_c_loop_follows_new_weights():
    gen = random_generator("abcdefgh ", hidden=32)
    before = gen.generate("a", 30, greedy=True)
    with torch.no_grad():
        gen.model_.head.bias[gen.tokenizer_.word_index["h"]] += 100.0
    assert gen.generate("a", 30, greedy=True) == "h" * 30 != before
    assert kernel_status() == "ready"


@needs_compiler
def test_an_unwritable_cache_is_reported_and_falls_back(tmp_path, monkeypatch, calls):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(native_build, "_loaded", {})
    status = kernel_status()
    assert status.startswith("building lstm_sampler.c failed: ") and str(blocker) in status
    gen = random_generator(TEXT, hidden=32)
    assert gen.generate("the ", 50, seed=4) == gen.generate("the ", 50, seed=4, fast=False)
    assert calls == []


# --- the cache is not trusted blindly (issue 14, part 7) -------------------------------------------------

PLANTED = r"""
#include <stdio.h>
/* Runs as soon as the library is loaded: proof that a planted file was executed. */
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("%s", "w");
    if (f) { fputs("ran", f); fclose(f); }
}
int rnnkit_lstm_sample(void) { return -1; }
"""
NO_SYMBOL = "int some_other_function(void) { return 1; }\n"


def compile_library(tmp_path, source: str, name: str):
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    out = tmp_path / f"{name}.so"
    subprocess.run([os.environ.get("CC") or "cc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


def real_build(tmp_path, monkeypatch):
    """The library rnnkit builds, built into a cache of its own (tmp_path / "first"), and its sha256 record.
    Nothing in the cache of the test (fresh_cache) is loaded yet: a process cannot load two libraries from
    one path, so each test plants into a folder that was never loaded from."""
    fresh = os.environ["XDG_CACHE_HOME"]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "first"))
    assert kernel_status() == "ready"
    monkeypatch.setenv("XDG_CACHE_HOME", fresh)
    monkeypatch.setattr(native_build, "_loaded", {})
    library = next((tmp_path / "first" / "rnnkit" / "kernels").glob("lstm_sampler-*.so"))
    return library, library.with_name(library.name + ".sha256")


def plant(fresh_cache, name, library, record=None):
    fresh_cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copy(library, fresh_cache / name)
    if record is not None:
        (fresh_cache / (name + ".sha256")).write_text(record)
    return fresh_cache / name


@needs_compiler
@pytest.mark.parametrize("digest", ["kept", "removed"])
def test_a_planted_library_is_never_loaded(fresh_cache, monkeypatch, tmp_path, calls, digest):
    real, record = real_build(tmp_path, monkeypatch)
    marker = tmp_path / "planted-code-ran"
    planted = compile_library(tmp_path, PLANTED % marker, "planted")
    target = plant(fresh_cache, real.name, planted, record.read_text() if digest == "kept" else None)
    status = kernel_status()
    why = ("is not the library rnnkit built (its sha256 differs from the one recorded)" if digest == "kept"
           else f"has no sha256 recorded beside it ({target.name}.sha256): rnnkit did not build it")
    assert status == f"ready (rebuilt the cached library: {target.name} {why})"
    assert not marker.exists()
    assert native_build._sha256(target) == (fresh_cache / (target.name + ".sha256")).read_text().strip()
    gen = random_generator(TEXT, hidden=32)
    assert gen.generate("the ", 40, seed=3) == gen.generate("the ", 40, seed=3, fast=False)
    assert calls == [1]                                               # the rebuilt library runs


@needs_compiler
def test_a_folder_others_may_write_to_is_not_used(fresh_cache, monkeypatch, tmp_path, calls):
    real, _ = real_build(tmp_path, monkeypatch)
    marker = tmp_path / "planted-code-ran"
    planted = compile_library(tmp_path, PLANTED % marker, "planted")
    # Whoever may write to the folder may write the record too: a matching sha256 proves nothing there.
    target = plant(fresh_cache, real.name, planted, native_build._sha256(planted) + "\n")
    fresh_cache.chmod(0o777)
    status = kernel_status()
    assert status == (f"ready (other users may write to {fresh_cache} (mode 777; 'chmod go-w {fresh_cache}' makes "
                      f"it private): built in a private temporary folder instead)")
    assert not marker.exists()
    assert native_build._sha256(target) == native_build._sha256(planted)   # left alone, never loaded
    random_generator(TEXT, hidden=32).generate("the ", 20, seed=1)
    assert calls == [1]


@needs_compiler
def test_a_folder_of_another_user_is_not_used(fresh_cache, monkeypatch):
    fresh_cache.mkdir(mode=0o700, parents=True)
    owner = fresh_cache.stat().st_uid
    monkeypatch.setattr(native_build.os, "getuid", lambda: owner + 1)
    assert kernel_status() == (f"ready ({fresh_cache} belongs to user id {owner}, not to you (user id {owner + 1}): "
                               f"built in a private temporary folder instead)")
    assert list(fresh_cache.iterdir()) == []


@needs_compiler
def test_a_cached_library_without_its_function_falls_back(fresh_cache, monkeypatch, tmp_path, calls):
    real, _ = real_build(tmp_path, monkeypatch)
    # As if rnnkit had built it from another C file: the record matches, the function is missing.
    other = compile_library(tmp_path, NO_SYMBOL, "nosymbol")
    target = plant(fresh_cache, real.name, other, native_build._sha256(other) + "\n")
    assert kernel_status() == (f"the cached library {target} has no function rnnkit_lstm_sample: removed it "
                               f"(the next run builds it again)")
    assert list(fresh_cache.iterdir()) == []
    gen = random_generator(TEXT, hidden=32)
    assert gen.generate("the ", 40, seed=3) == gen.generate("the ", 40, seed=3, fast=False)
    assert calls == []
