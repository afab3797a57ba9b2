/*
 * CuratorHarness: the real Apache Curator (Debian's libcurator-recipes-java) driven from a test,
 * so coord's lock, election, semaphore, read-write lock, barrier, work queue and key-value space
 * can be checked against it on the same ZooKeeper paths.
 * Compiled by tests/conformance/test_interop.c with javac into the build directory.
 *
 * Usage: java CuratorHarness SUBCOMMAND CONNECT PATH [ARG...]
 *   mutex     CONNECT PATH HOLD_MS  InterProcessMutex: acquire (waits as long as it takes), print
 *                                   "acquired", hold HOLD_MS (< 0: until stdin closes or reads
 *                                   "release"), release, print "released"
 *   trymutex  CONNECT PATH WAIT_MS  acquire(WAIT_MS): "acquired" (then held as HOLD_MS < 0) or
 *                                   "timeout"
 *   latch     CONNECT PATH ID       LeaderLatch with participant id ID: print "candidate NODE"
 *                                   once its node exists, then "leader" / "not leader" on every
 *                                   change; stdin commands "getleader" (prints as below) and
 *                                   "close"; stdin closing closes the latch too
 *   getleader CONNECT PATH          LeaderLatch.getLeader() of PATH: "leader-id ID" when it names
 *                                   a leader, "no leader" otherwise
 *   semaphore CONNECT PATH MAX [WAIT_MS]
 *                                   InterProcessSemaphoreV2 with MAX leases: acquire one (with
 *                                   WAIT_MS: at most that long, else print "timeout"), print
 *                                   "acquired", hold it until stdin closes or reads "release",
 *                                   return it, print "released"
 *   read|write CONNECT PATH [WAIT_MS]
 *                                   InterProcessReadWriteLock's read or write lock, as semaphore
 *   barrier   CONNECT PATH          DistributedBarrier driven by stdin commands: "set" (prints
 *                                   "set"), "remove" ("removed"), "wait MS" (waitOnBarrier, MS < 0
 *                                   without a bound: "passed" or "timeout"); ends at "close" or
 *                                   when stdin closes
 *   queue     CONNECT PATH          SimpleDistributedQueue on PATH driven by stdin commands:
 *                                   "offer HEX" (prints "offered"), "poll" (one try: "item HEX"
 *                                   or "empty"), "take MS" (poll(MS): "item HEX" or "timeout";
 *                                   MS < 0: take(), as long as it takes); ends at "close" or when
 *                                   stdin closes
 *   kv        CONNECT PATH          plain znodes under PATH, driven by stdin commands (KEY is a
 *                                   path below PATH): "create KEY HEX"
 *                                   (create().creatingParentsIfNeeded(): "created"), "set KEY HEX"
 *                                   (setData: "set VERSION", the znode's new data version),
 *                                   "get KEY" (getData: "value HEX", "value null" for null data,
 *                                   "value none" when absent), "delete KEY" ("deleted"); ends as
 *                                   queue
 * HEX is the bytes in lower-case hexadecimal, "-" for none (an empty array).
 *
 * Output is one event a line on stdout, flushed at once: first "connected", then the above, then
 * "exit". Errors: "error TEXT" and exit status 2. Curator's timeouts and retries are short, and a
 * watchdog ends the process (exit 3, "error watchdog") after COORD_INTEROP_MAX_MS (default
 * 120000) whatever happens, so a test never leaves it behind for long.
 */
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessLock;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

public final class CuratorHarness {
    private static final BufferedReader STDIN =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static void fail(String what) {
        say("error " + what);
        System.out.flush();
        Runtime.getRuntime().halt(2);
    }

    /* The next stdin line, or null at end of input. */
    private static String readLine() {
        try {
            return STDIN.readLine();
        } catch (java.io.IOException e) {
            return null;
        }
    }

    /* Until stdin closes or reads `word`. */
    private static void waitFor(String word) {
        String l;
        while ((l = readLine()) != null)
            if (l.trim().equals(word)) return;
    }

    private static void startWatchdog() {
        long max = 120000;
        String env = System.getenv("COORD_INTEROP_MAX_MS");
        if (env != null && !env.isEmpty()) max = Long.parseLong(env);
        final long limit = max;
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(limit);
            } catch (InterruptedException e) {
                return;
            }
            say("error watchdog");
            Runtime.getRuntime().halt(3);
        });
        t.setDaemon(true);
        t.start();
    }

    private static CuratorFramework connect(String hosts) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                                     .connectString(hosts)
                                     .sessionTimeoutMs(6000)
                                     .connectionTimeoutMs(3000)
                                     .retryPolicy(new RetryNTimes(3, 200))
                                     .waitForShutdownTimeoutMs(2000)
                                     .build();
        c.getConnectionStateListenable().addListener((cl, st) -> say("state " + st));
        c.start();
        if (!c.blockUntilConnected(10, TimeUnit.SECONDS)) fail("not connected to " + hosts);
        say("connected");
        return c;
    }

    private static void printLeader(LeaderLatch latch) throws Exception {
        Participant p = latch.getLeader();
        say(p.isLeader() ? "leader-id " + p.getId() : "no leader");
    }

    private static void mutex(CuratorFramework c, String path, long holdMs, boolean tryOnly)
            throws Exception {
        InterProcessMutex m = new InterProcessMutex(c, path);
        if (tryOnly) {
            if (!m.acquire(holdMs, TimeUnit.MILLISECONDS)) {
                say("timeout");
                return;
            }
            holdMs = -1;
        } else {
            m.acquire();
        }
        say("acquired");
        if (holdMs >= 0)
            Thread.sleep(holdMs);
        else
            waitFor("release");
        m.release();
        say("released");
    }

    /* Acquire (waitMs < 0: as long as it takes), hold until "release", release. */
    private static void hold(InterProcessLock lock, long waitMs) throws Exception {
        if (waitMs < 0)
            lock.acquire();
        else if (!lock.acquire(waitMs, TimeUnit.MILLISECONDS)) {
            say("timeout");
            return;
        }
        say("acquired");
        waitFor("release");
        lock.release();
        say("released");
    }

    private static void semaphore(CuratorFramework c, String path, int max, long waitMs)
            throws Exception {
        InterProcessSemaphoreV2 s = new InterProcessSemaphoreV2(c, path, max);
        Lease lease;
        if (waitMs < 0)
            lease = s.acquire();
        else if ((lease = s.acquire(waitMs, TimeUnit.MILLISECONDS)) == null) {
            say("timeout");
            return;
        }
        say("acquired");
        waitFor("release");
        s.returnLease(lease);
        say("released");
    }

    private static void barrier(CuratorFramework c, String path) throws Exception {
        DistributedBarrier b = new DistributedBarrier(c, path);
        String l;
        while ((l = readLine()) != null) {
            l = l.trim();
            if (l.equals("set")) {
                b.setBarrier();
                say("set");
            } else if (l.equals("remove")) {
                b.removeBarrier();
                say("removed");
            } else if (l.startsWith("wait ")) {
                long ms = Long.parseLong(l.substring(5).trim());
                boolean passed = true;
                if (ms < 0)
                    b.waitOnBarrier();
                else
                    passed = b.waitOnBarrier(ms, TimeUnit.MILLISECONDS);
                say(passed ? "passed" : "timeout");
            } else if (l.equals("close"))
                break;
            else if (!l.isEmpty())
                say("error unknown command " + l);
        }
    }

    private static String hex(byte[] b) {
        if (b.length == 0) return "-";
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    private static byte[] unhex(String h) {
        if (h.equals("-")) return new byte[0];
        if (h.length() % 2 != 0) fail("odd hex " + h);
        byte[] b = new byte[h.length() / 2];
        for (int i = 0; i < b.length; i++)
            b[i] = (byte) Integer.parseInt(h.substring(2 * i, 2 * i + 2), 16);
        return b;
    }

    /* The words of a command line: exactly n of them, else fail. */
    private static String[] words(String l, int n) {
        String[] w = l.split("\\s+");
        if (w.length != n) fail("command \"" + l + "\" needs " + n + " words");
        return w;
    }

    private static void queue(CuratorFramework c, String path) throws Exception {
        SimpleDistributedQueue q = new SimpleDistributedQueue(c, path);
        String l;
        while ((l = readLine()) != null) {
            l = l.trim();
            if (l.startsWith("offer ")) {
                q.offer(unhex(words(l, 2)[1]));
                say("offered");
            } else if (l.equals("poll")) {
                byte[] b = q.poll();
                say(b == null ? "empty" : "item " + hex(b));
            } else if (l.startsWith("take ")) {
                long ms = Long.parseLong(words(l, 2)[1]);
                byte[] b = ms < 0 ? q.take() : q.poll(ms, TimeUnit.MILLISECONDS);
                say(b == null ? "timeout" : "item " + hex(b));
            } else if (l.equals("close"))
                break;
            else if (!l.isEmpty())
                say("error unknown command " + l);
        }
    }

    private static void kv(CuratorFramework c, String base) throws Exception {
        String l;
        while ((l = readLine()) != null) {
            l = l.trim();
            if (l.startsWith("create ")) {
                String[] w = words(l, 3);
                c.create().creatingParentsIfNeeded().forPath(base + "/" + w[1], unhex(w[2]));
                say("created");
            } else if (l.startsWith("set ")) {
                String[] w = words(l, 3);
                Stat st = c.setData().forPath(base + "/" + w[1], unhex(w[2]));
                say("set " + st.getVersion());
            } else if (l.startsWith("get ")) {
                String[] w = words(l, 2);
                try {
                    byte[] b = c.getData().forPath(base + "/" + w[1]);
                    say(b == null ? "value null" : "value " + hex(b));
                } catch (KeeperException.NoNodeException e) {
                    say("value none");
                }
            } else if (l.startsWith("delete ")) {
                c.delete().forPath(base + "/" + words(l, 2)[1]);
                say("deleted");
            } else if (l.equals("close"))
                break;
            else if (!l.isEmpty())
                say("error unknown command " + l);
        }
    }

    private static void latch(CuratorFramework c, String path, String id) throws Exception {
        LeaderLatch latch = new LeaderLatch(c, path, id);
        latch.addListener(new LeaderLatchListener() {
            @Override
            public void isLeader() {
                say("leader");
            }

            @Override
            public void notLeader() {
                say("not leader");
            }
        });
        latch.start();
        long end = System.currentTimeMillis() + 10000;
        while (latch.getOurPath() == null && System.currentTimeMillis() < end) Thread.sleep(5);
        if (latch.getOurPath() == null) fail("the latch made no node within 10 s");
        say("candidate " + latch.getOurPath());
        String l;
        while ((l = readLine()) != null) {
            l = l.trim();
            if (l.equals("getleader"))
                printLeader(latch);
            else if (l.equals("close"))
                break;
            else if (!l.isEmpty())
                say("error unknown command " + l);
        }
        latch.close();
        say("closed");
    }

    public static void main(String[] args) {
        startWatchdog();
        if (args.length < 3)
            fail("usage: CuratorHarness mutex|trymutex|latch|getleader|semaphore|read|write|barrier"
                    + "|queue|kv CONNECT PATH [ARG...]");
        String cmd = args[0];
        try (CuratorFramework c = connect(args[1])) {
            switch (cmd) {
            case "mutex":
            case "trymutex":
                if (args.length != 4) fail(cmd + " needs CONNECT PATH MS");
                mutex(c, args[2], Long.parseLong(args[3]), cmd.equals("trymutex"));
                break;
            case "latch":
                if (args.length != 4) fail("latch needs CONNECT PATH ID");
                latch(c, args[2], args[3]);
                break;
            case "getleader":
                printLeader(new LeaderLatch(c, args[2]));
                break;
            case "semaphore":
                if (args.length != 4 && args.length != 5)
                    fail("semaphore needs CONNECT PATH MAX [WAIT_MS]");
                semaphore(c, args[2], Integer.parseInt(args[3]),
                        args.length == 5 ? Long.parseLong(args[4]) : -1);
                break;
            case "read":
            case "write": {
                if (args.length != 3 && args.length != 4) fail(cmd + " needs CONNECT PATH [WAIT_MS]");
                InterProcessReadWriteLock rw = new InterProcessReadWriteLock(c, args[2]);
                hold(cmd.equals("read") ? rw.readLock() : rw.writeLock(),
                        args.length == 4 ? Long.parseLong(args[3]) : -1);
                break;
            }
            case "barrier":
                barrier(c, args[2]);
                break;
            case "queue":
                queue(c, args[2]);
                break;
            case "kv":
                kv(c, args[2]);
                break;
            default:
                fail("unknown subcommand " + cmd);
            }
        } catch (Exception e) {
            fail(e.toString().replace('\n', ' '));
        }
        say("exit");
        Runtime.getRuntime().halt(0);
    }
}
