"""kazoo_election.py: a kazoo Election candidate for tests/conformance/test_interop.c.

Usage: python3 kazoo_election.py CONNECT PATH ID [--see-latch]

Stands in kazoo's Election at PATH (a "<uuid hex>__lock__<seq>" node with ID as data) and prints
one event a line, flushed: "connected", "leader" once its function runs (it leads), "resigned"
when it gives leadership back, "exit" last. Stdin closing (or the line "resign") makes it resign,
or withdraw while it still waits. --see-latch makes its lock also count Curator LeaderLatch nodes
("-latch-", coord's election layout on ZooKeeper): kazoo's own Election ignores them
(extra_lock_patterns, RECIPES.md 2.6). A watchdog ends the process (exit 3, "error watchdog")
after COORD_INTEROP_MAX_MS (default 120000).
"""

import os
import sys
import threading

from kazoo.client import KazooClient


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    if len(sys.argv) not in (4, 5) or (len(sys.argv) == 5 and sys.argv[4] != "--see-latch"):
        say("error usage: kazoo_election.py CONNECT PATH ID [--see-latch]")
        os._exit(2)
    hosts, path, ident = sys.argv[1:4]
    limit = int(os.environ.get("COORD_INTEROP_MAX_MS") or "120000") / 1000.0

    def watchdog():
        say("error watchdog")
        os._exit(3)

    timer = threading.Timer(limit, watchdog)
    timer.daemon = True
    timer.start()

    zk = KazooClient(hosts=hosts, timeout=6.0, connection_retry={"max_tries": 3, "delay": 0.2})
    zk.start(timeout=10)
    say("connected")
    election = zk.Election(path, ident)
    if len(sys.argv) == 5:
        election.lock = zk.Lock(path, ident, extra_lock_patterns=["-latch-"])

    done = threading.Event()
    leading = threading.Event()

    def stdin_reader():
        for line in sys.stdin:
            if line.strip() == "resign":
                break
        done.set()
        if not leading.is_set():
            election.cancel()

    reader = threading.Thread(target=stdin_reader, daemon=True)
    reader.start()

    def lead():
        leading.set()
        say("leader")
        done.wait()
        say("resigned")

    try:
        election.run(lead)
    except Exception as e:  # CancelledError when withdrawn while waiting
        say("withdrawn " + type(e).__name__)
    zk.stop()
    zk.close()
    say("exit")
    os._exit(0)


if __name__ == "__main__":
    main()
