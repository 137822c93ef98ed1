"""Test-wide set-up: caches (data sets, the compiled C sampling loop) go to a temporary directory,
never to the user's ~/.cache."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture
def ctrl_c_at_step(monkeypatch):
    """Press Ctrl-C once, right after optimizer step ``step`` of the next training (a Trainer callback)."""
    from rnnkit.training import Trainer

    def arm(step):
        fit, fired = Trainer.fit, []

        def fit_with_ctrl_c(self, *args, **kwargs):
            def press(trainer):
                if not fired and trainer.step >= step:
                    fired.append(step)
                    raise KeyboardInterrupt
            self.add_callback("on_step_end", press)
            return fit(self, *args, **kwargs)
        monkeypatch.setattr(Trainer, "fit", fit_with_ctrl_c)
    return arm
