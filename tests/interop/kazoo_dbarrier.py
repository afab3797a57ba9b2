"""kazoo_dbarrier.py: a kazoo DoubleBarrier participant for tests/conformance/test_interop.c.

Usage: python3 kazoo_dbarrier.py CONNECT PATH COUNT

Joins kazoo's DoubleBarrier at PATH for COUNT participants (a "<uuid hex>" ephemeral node, "ready"
beside it) and prints one event a line, flushed: "connected", then for each stdin command "enter"
(DoubleBarrier.enter, which waits without a bound: "entered") and "leave" (DoubleBarrier.leave:
"left"); stdin closing ends it ("exit" last). A watchdog ends the process (exit 3, "error
watchdog") after COORD_INTEROP_MAX_MS (default 120000).
"""

import os
import sys
import threading

from kazoo.client import KazooClient


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    if len(sys.argv) != 4:
        say("error usage: kazoo_dbarrier.py CONNECT PATH COUNT")
        os._exit(2)
    hosts, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
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
    barrier = zk.DoubleBarrier(path, count)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "enter":
            barrier.enter()
            say("entered" if barrier.participating else "error enter failed")
        elif cmd == "leave":
            barrier.leave()
            say("left")
        elif cmd:
            say("error unknown command " + cmd)
    zk.stop()
    zk.close()
    say("exit")
    os._exit(0)


if __name__ == "__main__":
    main()
