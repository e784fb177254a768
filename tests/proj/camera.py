"""A camera for ``celeriac events --camera proj.camera.Camera``: writes what it saw."""

import json
import os

from celeriac.events.snapshot import Polaroid


class Camera:
    def __init__(self, state, freq=1.0, maxrate=None):
        self.state = state
        self.freq = freq

    def on_shutter(self, state):
        with open(os.environ["CELERIAC_TEST_CAMERA"], "a") as f:
            states = sorted(t.state for t in state.tasks.values())
            f.write(json.dumps({"workers": sorted(state.workers), "states": states}) + "\n")


class DumpCam(Polaroid):
    """Celery's documented camera: each photograph shows what happened since the last."""

    clear_after = True

    def on_shutter(self, state):
        with open(os.environ["CELERIAC_TEST_CAMERA"] + ".polaroid", "a") as f:
            f.write(json.dumps(sorted(t.state for t in state.tasks.values())) + "\n")
