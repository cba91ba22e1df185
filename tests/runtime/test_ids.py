"""Instance ids: the random ids fw makes when a create names none."""

from __future__ import annotations

import os
import uuid

import pytest

from framework.runtime.ids import is_valid_instance_id, new_instance_id


def test_new_ids_are_distinct_version_4_uuids_as_hex() -> None:
    ids = [new_instance_id() for _ in range(2000)]  # several batches of random bytes
    assert len(set(ids)) == len(ids)
    for instance_id in ids:
        parsed = uuid.UUID(instance_id)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, instance_id)
        assert is_valid_instance_id(instance_id)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    new_instance_id()  # the parent holds a batch of random bytes not used yet
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, ",".join(new_instance_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        from_child = pipe.read().split(",")
    os.waitpid(child, 0)
    from_parent = [new_instance_id() for _ in range(10)]
    assert len(from_child) == 10
    assert not set(from_child) & set(from_parent)
