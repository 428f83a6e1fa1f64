#!/usr/bin/env python3
"""What happens to random / uuid state across os.fork() on this Python ("the first
call to uuid1 sets up a global state, which is then copied to all processes ... all processes
generate the same sequence of uuids").

The parent primes every generator BEFORE forking (random.random(), a random.Random()
instance, uuid.uuid1()), then forks once; parent and child immediately and concurrently draw
from each generator, and the child sends its values back through a pipe.
Compared per generator:
  same_sequence   - parent and child drew identical values (state was copied and not refreshed)
  cross_dupes     - values that both processes produced (over `n` uuid1 draws each)
Generators:
  random_module        random.random()  (CPython >= 3.7 reseeds the module-level RNG in the
                       child via os.register_at_fork)
  random_instance      a random.Random() created before fork (NOT reseeded in the child)
  uuid4                os.urandom based
  uuid1_default        uuid.uuid1(): libuuid generate_time_safe when _uuid is available
  uuid1_py_node        uuid.uuid1(node=...): pure-Python path, random clock_seq per call
  uuid1_py_fixed_seq   uuid.uuid1(node=..., clock_seq=...): pure-Python path; uniqueness rests
                       only on the module global _last_timestamp, which fork copies
usage: fork_uuid.py [n=20000]
prints one JSON line.
"""
import json
import os
import random
import sys
import uuid

NODE = 0x0242AC110002
SEQ = 0x1234


def draw(rng, n):
    return {
        "random_module": [random.random() for _ in range(3)],
        "random_instance": [rng.random() for _ in range(3)],
        "uuid4": [str(uuid.uuid4()) for _ in range(3)],
        "uuid1_default": [str(uuid.uuid1()) for _ in range(n)],
        "uuid1_py_node": [str(uuid.uuid1(node=NODE)) for _ in range(n)],
        "uuid1_py_fixed_seq": [str(uuid.uuid1(node=NODE, clock_seq=SEQ)) for _ in range(n)],
    }


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    # prime everything before fork, like a parent that used them before creating workers
    random.random()
    rng = random.Random()
    first = uuid.uuid1()
    uuid.uuid1(node=NODE)
    uuid.uuid1(node=NODE, clock_seq=SEQ)

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        data = json.dumps(draw(rng, n)).encode()
        with os.fdopen(w, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(w)
    mine = draw(rng, n)
    with os.fdopen(r, "rb") as f:
        theirs = json.loads(f.read())
    _, status = os.waitpid(pid, 0)

    out = {"python": sys.version.split()[0],
           "libuuid_backend": uuid._generate_time_safe is not None,
           "uuid1_is_safe": first.is_safe.name,
           "n_uuid1_each": n,
           "child_exit_ok": os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0}
    for key, a in mine.items():
        b = theirs[key]
        entry = {"same_sequence": a == b, "cross_dupes": len(set(a) & set(b))}
        if key.startswith("random") or key == "uuid4":
            entry["parent"], entry["child"] = a[:2], b[:2]
        else:
            entry["parent_first"], entry["child_first"] = a[0], b[0]
        out[key] = entry
    print(json.dumps(out))


if __name__ == "__main__":
    main()
