"""A separate embedded-mode process for the cross-process tests: open the store (its start-up sweep
runs), wait for a common start time, consolidate one user with wait=True, print the job record."""

from __future__ import annotations

import json
import sys
import time

from memscope.api import MemoryScope


def main(config: str, user_id: str, start_at: float) -> None:
    """Consolidate `user_id` at `start_at` (epoch seconds) and print the record as JSON."""
    with MemoryScope(config) as memory:
        time.sleep(max(0.0, start_at - time.time()))
        record = memory.consolidate(user_id, wait=True, timeout=120)
        print(json.dumps(record.to_dict()))  # type: ignore[union-attr]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
