package mqcompat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;

import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;

/**
 * Runs one compatibility scenario of the stock RocketMQ Java client against a NameServer
 * (mq's or Apache RocketMQ's) and verifies the results.
 *
 * <pre>
 * java -jar mq-compat.jar --namesrv 127.0.0.1:9876 --scenario NAME [--topic T] [--group G]
 *      [--count N] [--start S] [--extra E] [--committed C] [--timeout SECONDS]
 * </pre>
 *
 * Scenarios: produce, push-pair, push-tags, lite-pull, offsets-phase1, offsets-phase2, push-watch,
 * acl (see {@link AclScenario}; needs {@code --broker HOST:PORT}).
 * Prints progress lines and finally {@code SCENARIO <name> OK <details>} (exit 0) or
 * {@code SCENARIO <name> FAILED: <reason>} (exit 1).
 *
 * <p>The messages: {@code produce --start S --count N} sends messages numbered S..S+N-1.
 * Message i has tag TagA/TagB/TagC for i%3 = 0/1/2, key {@code key-i}, user property
 * {@code idx=i} and body {@code <topic>|<i>|payload}, so every consumer can check every
 * message it receives and knows exactly which ones it must receive. {@code push-pair}
 * sends its own extra messages with tag TagX (and property {@code origin=<group>}); the
 * other scenarios tolerate TagX messages of other groups in the topic.
 *
 * <p>The offsets scenarios read a group's committed offsets with the deprecated
 * DefaultMQPullConsumer: it is the plain client's only public way to ask the broker.
 */
@SuppressWarnings("deprecation")
public final class CompatSuite {
    static final String[] TAGS = {"TagA", "TagB", "TagC"};
    static final String EXTRA_TAG = "TagX";
    static final int BATCH_SIZE = 100;
    static final long FIRST_CONTACT_MS = 30_000;
    static final long SETTLE_MS = 2_000;

    // ---- options -------------------------------------------------------------------

    String namesrv;
    String scenario;
    String topic = "compat_topic";
    String group;
    int count = 10_000;
    int start = 0;
    int extra = 200;
    long committed = -1;
    long timeoutSec = 60;
    /** With --pad N, every fifth body gets N dots, so that bodies over 4 KiB travel compressed. */
    static int pad = 0;
    /** push-watch: the file whose appearance ends the scenario. */
    String stopFile;
    /** push-watch: while this file exists the consumer is suspended (no new pulls). */
    String pauseFile;
    /** push-watch: the client's route refresh interval (pollNameServerInterval), ms. */
    int pollNameServerMs = 30_000;
    /** acl: the broker's address, for the admin calls made to it directly. */
    String broker;

    long deadline;
    final String pid = Long.toString(ProcessHandle.current().pid());
    final AtomicInteger instanceSeq = new AtomicInteger();

    public static void main(String[] args) {
        CompatSuite suite = new CompatSuite();
        try {
            suite.parse(args);
        } catch (IllegalArgumentException e) {
            System.out.println("usage error: " + e.getMessage());
            System.out.println("usage: --namesrv HOST:PORT --scenario NAME [--topic T] [--group G] [--count N]"
                + " [--start S] [--extra E] [--committed C] [--timeout SECONDS]");
            System.exit(2);
        }
        System.exit(suite.runGuarded());
    }

    void parse(String[] args) {
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException("missing value for " + a);
            }
            String v = args[++i];
            switch (a) {
                case "--namesrv": namesrv = v; break;
                case "--scenario": scenario = v; break;
                case "--topic": topic = v; break;
                case "--group": group = v; break;
                case "--count": count = Integer.parseInt(v); break;
                case "--start": start = Integer.parseInt(v); break;
                case "--extra": extra = Integer.parseInt(v); break;
                case "--committed": committed = Long.parseLong(v); break;
                case "--timeout": timeoutSec = Long.parseLong(v); break;
                case "--pad": pad = Integer.parseInt(v); break;
                case "--stop-file": stopFile = v; break;
                case "--pause-file": pauseFile = v; break;
                case "--poll-ns-ms": pollNameServerMs = Integer.parseInt(v); break;
                case "--broker": broker = v; break;
                default: throw new IllegalArgumentException("unknown option " + a);
            }
        }
        if (namesrv == null || scenario == null) {
            throw new IllegalArgumentException("--namesrv and --scenario are required");
        }
        if (group == null) {
            group = "compat_" + scenario.replace('-', '_') + "_" + pid;
        }
    }

    int runGuarded() {
        deadline = System.currentTimeMillis() + timeoutSec * 1000;
        // Last resort if a client call hangs past every bounded wait (or in shutdown).
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(timeoutSec * 1000 + 30_000);
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("SCENARIO " + scenario + " FAILED: watchdog: still running "
                + (timeoutSec + 30) + " s after start");
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }, "compat-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        log("scenario=%s namesrv=%s topic=%s group=%s count=%d start=%d timeout=%ds",
            scenario, namesrv, topic, group, count, start, timeoutSec);
        long t0 = System.currentTimeMillis();
        try {
            String details;
            switch (scenario) {
                case "produce": details = produce(); break;
                case "push-pair": details = pushPair(); break;
                case "push-tags": details = pushTags(); break;
                case "lite-pull": details = litePull(); break;
                case "offsets-phase1": details = offsetsPhase1(); break;
                case "offsets-phase2": details = offsetsPhase2(); break;
                case "push-watch": details = pushWatch(); break;
                case "acl": details = new AclScenario(this, broker).run(); break;
                default: throw new Failure("unknown scenario " + scenario);
            }
            System.out.println("SCENARIO " + scenario + " OK " + details + " elapsed_ms="
                + (System.currentTimeMillis() - t0));
            System.out.flush();
            return 0;
        } catch (Throwable t) {
            String msg = t instanceof Failure ? t.getMessage() : t.toString();
            if (!(t instanceof Failure)) {
                t.printStackTrace(System.out);
            }
            System.out.println("SCENARIO " + scenario + " FAILED: " + msg);
            System.out.flush();
            return 1;
        }
    }

    // ---- scenarios -------------------------------------------------------------------

    /** Sends messages start..start+count-1: a quarter each sync, async, oneway, batch. */
    String produce() throws Exception {
        DefaultMQProducer producer = newProducer(group);
        producer.start();
        try {
            int quarter = count / 4;
            int syncEnd = start + quarter;
            int asyncEnd = syncEnd + quarter;
            int onewayEnd = asyncEnd + quarter;
            int end = start + count;
            Map<String, Integer> perTag = new TreeMap<>();
            for (int i = start; i < end; i++) {
                perTag.merge(TAGS[i % 3], 1, Integer::sum);
            }
            TreeSet<Integer> queuesUsed = new TreeSet<>();

            // Sync. The first send retries until the broker is registered and routable.
            int sync = 0;
            for (int i = start; i < syncEnd; i++) {
                SendResult r = i == start ? firstSend(producer, message(topic, i)) : producer.send(message(topic, i));
                checkResult("sync send of message " + i, r, false);
                queuesUsed.add(r.getMessageQueue().getQueueId());
                sync++;
                checkDeadline("sync sends");
            }
            log("sync: %d sent, all SEND_OK; queues used %s", sync, queuesUsed);

            // Async: every callback must report SEND_OK; at most 128 in flight.
            int asyncCount = asyncEnd - syncEnd;
            CountDownLatch done = new CountDownLatch(asyncCount);
            Semaphore inFlight = new Semaphore(128);
            ConcurrentLinkedQueue<String> asyncErrors = new ConcurrentLinkedQueue<>();
            AtomicInteger asyncOk = new AtomicInteger();
            for (int i = syncEnd; i < asyncEnd; i++) {
                if (!inFlight.tryAcquire(remainingMs(), TimeUnit.MILLISECONDS)) {
                    throw new Failure("timed out waiting for async send callbacks (" + asyncOk.get() + " ok)");
                }
                final int n = i;
                producer.send(message(topic, i), new SendCallback() {
                    @Override
                    public void onSuccess(SendResult r) {
                        try {
                            checkResult("async send of message " + n, r, false);
                            asyncOk.incrementAndGet();
                        } catch (Failure f) {
                            asyncErrors.add(f.getMessage());
                        } finally {
                            inFlight.release();
                            done.countDown();
                        }
                    }

                    @Override
                    public void onException(Throwable e) {
                        asyncErrors.add("async send of message " + n + " failed: " + e);
                        inFlight.release();
                        done.countDown();
                    }
                });
            }
            if (!done.await(remainingMs(), TimeUnit.MILLISECONDS)) {
                throw new Failure("timed out waiting for async send callbacks: " + done.getCount() + " missing");
            }
            if (!asyncErrors.isEmpty()) {
                throw new Failure(asyncErrors.size() + " async sends failed, first: " + asyncErrors.peek());
            }
            log("async: %d sent, %d callbacks SEND_OK", asyncCount, asyncOk.get());

            // Oneway: nothing to check here; the consume scenarios find every one of them.
            int oneway = 0;
            for (int i = asyncEnd; i < onewayEnd; i++) {
                producer.sendOneway(message(topic, i));
                oneway++;
            }
            log("oneway: %d sent (confirmed by the consume scenarios)", oneway);

            // Batch.
            int batches = 0;
            int batched = 0;
            for (int i = onewayEnd; i < end; i += BATCH_SIZE) {
                List<Message> batch = new ArrayList<>();
                for (int j = i; j < Math.min(end, i + BATCH_SIZE); j++) {
                    batch.add(message(topic, j));
                }
                SendResult r = producer.send(batch);
                checkResult("batch send of messages " + i + ".." + (i + batch.size() - 1), r, true);
                int ids = r.getMsgId().split(",").length;
                if (ids != batch.size()) {
                    throw new Failure("batch send returned " + ids + " msgIds for " + batch.size() + " messages");
                }
                batches++;
                batched += batch.size();
                checkDeadline("batch sends");
            }
            log("batch: %d messages in %d batches, all SEND_OK", batched, batches);
            log("EXPECT topic=%s first=%d total=%d %s", topic, start, count, tagLine(perTag));
            return String.format("topic=%s sent=%d sync=%d async=%d oneway=%d batch=%d batches=%d %s",
                topic, count, sync, asyncCount, oneway, batched, batches, tagLine(perTag));
        } finally {
            producer.shutdown();
        }
    }

    /**
     * Two push consumers in one group share the queues and together receive every message;
     * then one leaves and the other must receive new messages from all queues.
     */
    String pushPair() throws Exception {
        DefaultMQProducer producer = newProducer(group + "_producer");
        producer.start();
        DefaultMQPushConsumer c1 = null;
        DefaultMQPushConsumer c2 = null;
        try {
            Collection<MessageQueue> mqs = waitForRoute(producer, topic);
            log("route: %d write queues", mqs.size());
            Tracker all = new Tracker(topic, start, count, group);
            Tracker[] each = {new Tracker(topic, start, count, group), new Tracker(topic, start, count, group)};
            AtomicLong c2Stopped = new AtomicLong(Long.MAX_VALUE);
            AtomicInteger extrasAfterLeaveByC2 = new AtomicInteger();
            DefaultMQPushConsumer[] cs = new DefaultMQPushConsumer[2];
            for (int k = 0; k < 2; k++) {
                final int who = k;
                DefaultMQPushConsumer c = newPushConsumer(group, "*");
                c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                    for (MessageExt m : msgs) {
                        all.record(m);
                        each[who].record(m);
                        if (who == 1 && System.currentTimeMillis() > c2Stopped.get()) {
                            extrasAfterLeaveByC2.incrementAndGet();
                        }
                    }
                    return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
                });
                // Suspended until both are registered, so the first rebalance already sees
                // two consumers and splits the queues (no race with the first one draining
                // everything before the second joins).
                c.suspend();
                cs[k] = c;
            }
            c1 = cs[0];
            c2 = cs[1];
            c1.start();
            c2.start();
            c1.resume();
            c2.resume();
            log("two consumers started in group %s", group);

            all.awaitComplete(this, "push-pair: both consumers");
            all.assertClean("push-pair");
            log("together: %s; consumer1 %d msgs from queues %s, consumer2 %d msgs from queues %s",
                all.summary(), each[0].received.get(), each[0].queues, each[1].received.get(), each[1].queues);
            if (each[0].received.get() == 0 || each[1].received.get() == 0) {
                throw new Failure("queues were not shared: consumer1 got " + each[0].received.get()
                    + ", consumer2 got " + each[1].received.get() + " messages");
            }
            // Both were registered before either rebalanced, so the allocation is a split.
            Set<Integer> overlap = new TreeSet<>(each[0].queues);
            overlap.retainAll(each[1].queues);
            if (!overlap.isEmpty()) {
                throw new Failure("both consumers consumed queues " + overlap + " (consumer1 " + each[0].queues
                    + ", consumer2 " + each[1].queues + "): the group's consumer list was not seen by both");
            }
            long c1Before = each[0].received.get();

            // One leaves; the other must take over its queues.
            long t0 = System.currentTimeMillis();
            c2.shutdown();
            c2Stopped.set(System.currentTimeMillis());
            c2 = null;
            log("consumer2 shut down in %d ms; sending %d extra messages", System.currentTimeMillis() - t0, extra);
            Set<Integer> extraQueues = new TreeSet<>();
            for (int i = 0; i < extra; i++) {
                Message m = message(topic, start + count + i);
                m.setTags(EXTRA_TAG);
                m.putUserProperty("origin", group);
                SendResult r = producer.send(m);
                checkResult("extra send " + i, r, false);
                extraQueues.add(r.getMessageQueue().getQueueId());
            }
            log("extra messages sent to queues %s", extraQueues);
            long t1 = System.currentTimeMillis();
            while (each[0].ownExtras.size() < extra) {
                if (System.currentTimeMillis() > deadline) {
                    throw new Failure("after consumer2 left, consumer1 received only " + each[0].ownExtras.size()
                        + " of " + extra + " new messages (queues of consumer2 were not taken over)");
                }
                Thread.sleep(50);
            }
            each[0].assertClean("push-pair consumer1");
            if (extrasAfterLeaveByC2.get() > 0) {
                throw new Failure("consumer2 received messages after shutdown");
            }
            long takeover = System.currentTimeMillis() - t1;
            log("consumer1 received all %d new messages %d ms after they were sent (from queues %s)",
                extra, takeover, each[0].queues);
            return String.format("deliveries=%d unique=%d duplicates=%d consumer1=%d consumer2=%d "
                    + "after_leave=%d/%d takeover_ms=%d",
                all.received.get(), all.uniqueInRange(), all.duplicates.get(), c1Before, each[1].received.get(),
                each[0].ownExtras.size(), extra, takeover);
        } finally {
            shutdownQuietly(c2);
            shutdownQuietly(c1);
            producer.shutdown();
        }
    }

    /** A consumer subscribed to {@code TagA || TagB} gets exactly those messages. */
    String pushTags() throws Exception {
        waitForRoute(topic);
        Tracker t = new Tracker(topic, start, count, group);
        t.wanted = i -> i % 3 != 2;
        DefaultMQPushConsumer c = newPushConsumer(group, "TagA || TagB");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            msgs.forEach(t::record);
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        try {
            c.start();
            t.awaitComplete(this, "push-tags");
            Thread.sleep(SETTLE_MS); // anything unwanted still in flight shows up now
        } finally {
            c.shutdown();
        }
        Map<String, Integer> tags = t.tagCounts();
        log("received per tag: %s", tags);
        for (String tag : tags.keySet()) {
            if (!tag.equals("TagA") && !tag.equals("TagB")) {
                throw new Failure("subscription 'TagA || TagB' delivered " + tags.get(tag) + " " + tag + " messages");
            }
        }
        t.assertClean("push-tags");
        return String.format("%s %s", t.summary(), tagLine(tags));
    }

    /**
     * A push consumer that prints every message it receives ({@code [compat] GOT <body>}) until
     * {@code --stop-file} exists: the replication tests kill and restart brokers under it and
     * check, from the lines, that it kept consuming. While {@code --pause-file} exists the consumer
     * is suspended (it prints {@code PAUSED}, then {@code RESUMED}), so that a test can make it
     * fall behind. {@code --poll-ns-ms} shortens the client's route refresh (30 s by default) so
     * that it notices a dead master sooner.
     */
    String pushWatch() throws Exception {
        if (stopFile == null) {
            throw new Failure("push-watch needs --stop-file");
        }
        waitForRoute(topic);
        AtomicLong received = new AtomicLong();
        DefaultMQPushConsumer c = newPushConsumer(group, "*");
        c.setPollNameServerInterval(pollNameServerMs);
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                log("GOT %s", new String(m.getBody(), StandardCharsets.UTF_8));
                received.incrementAndGet();
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        try {
            c.start();
            log("STARTED");
            java.nio.file.Path stop = java.nio.file.Paths.get(stopFile);
            java.nio.file.Path pause = pauseFile == null ? null : java.nio.file.Paths.get(pauseFile);
            boolean paused = false;
            while (!java.nio.file.Files.exists(stop)) {
                checkDeadline("push-watch: waiting for " + stopFile);
                boolean wantPause = pause != null && java.nio.file.Files.exists(pause);
                if (wantPause && !paused) {
                    c.suspend();
                    paused = true;
                    log("PAUSED");
                } else if (!wantPause && paused) {
                    c.resume();
                    paused = false;
                    log("RESUMED");
                }
                Thread.sleep(50);
            }
        } finally {
            c.shutdown();
        }
        return "received=" + received.get();
    }

    /** DefaultLitePullConsumer (subscribe mode) polls until it has every message. */
    String litePull() throws Exception {
        waitForRoute(topic);
        Tracker t = new Tracker(topic, start, count, group);
        DefaultLitePullConsumer c = new DefaultLitePullConsumer(group);
        c.setNamesrvAddr(namesrv);
        c.setInstanceName(instanceName("lite"));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, "*");
        int polls = 0;
        int empty = 0;
        try {
            c.start();
            while (!t.complete()) {
                checkDeadline("lite-pull: " + t.progress());
                List<MessageExt> got = c.poll(1000);
                polls++;
                if (got.isEmpty()) {
                    empty++;
                }
                got.forEach(t::record);
            }
        } finally {
            c.shutdown();
        }
        t.assertClean("lite-pull");
        return String.format("%s polls=%d empty_polls=%d", t.summary(), polls, empty);
    }

    /**
     * Consumes everything produced so far (start..start+count-1), shuts down cleanly (which
     * commits the offsets), then checks that the committed offset of every queue equals its
     * max offset. Prints {@code COMMITTED <sum>} for phase 2.
     */
    String offsetsPhase1() throws Exception {
        waitForRoute(topic);
        Tracker t = new Tracker(topic, start, count, group);
        DefaultMQPushConsumer c = newPushConsumer(group, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            msgs.forEach(t::record);
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        try {
            c.start();
            t.awaitComplete(this, "offsets-phase1");
        } finally {
            c.shutdown();
        }
        t.assertClean("offsets-phase1");
        log("consumed %s; consumer shut down", t.summary());

        // The committed offsets must have reached the broker: each equals its queue's max.
        DefaultMQPullConsumer probe = newPullProbe(group);
        Map<Integer, long[]> offsets;
        try {
            probe.start();
            while (true) {
                offsets = committedOffsets(probe);
                boolean caughtUp = offsets.values().stream().allMatch(o -> o[0] == o[1]);
                if (caughtUp) {
                    break;
                }
                if (System.currentTimeMillis() > deadline) {
                    throw new Failure("committed offsets did not reach the max offsets: " + offsetLine(offsets));
                }
                Thread.sleep(200);
            }
        } finally {
            probe.shutdown();
        }
        long sum = offsets.values().stream().mapToLong(o -> o[0]).sum();
        log("committed offsets (committed/max per queue): %s", offsetLine(offsets));
        log("COMMITTED %d", sum);
        return String.format("%s committed_sum=%d offsets=%s", t.summary(), sum, offsetLine(offsets));
    }

    /**
     * After a broker restart and more messages (start..start+count-1): the group's committed
     * offsets must still be there (sum = --committed) and a consumer of the group must
     * receive exactly the new messages, none of those phase 1 consumed.
     */
    String offsetsPhase2() throws Exception {
        waitForRoute(topic);
        DefaultMQPullConsumer probe = newPullProbe(group);
        Map<Integer, long[]> offsets;
        try {
            probe.start();
            offsets = committedOffsets(probe);
        } finally {
            probe.shutdown();
        }
        long sum = offsets.values().stream().mapToLong(o -> Math.max(o[0], 0)).sum();
        log("committed offsets after restart (committed/max per queue): %s", offsetLine(offsets));
        if (committed >= 0 && sum != committed) {
            throw new Failure("committed offsets after the restart sum to " + sum + ", phase 1 committed "
                + committed + ": " + offsetLine(offsets));
        }

        Tracker t = new Tracker(topic, start, count, group);
        AtomicInteger old = new AtomicInteger();
        DefaultMQPushConsumer c = newPushConsumer(group, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                int i = t.record(m);
                if (i >= 0 && i < start) {
                    old.incrementAndGet();
                }
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        try {
            c.start();
            t.awaitComplete(this, "offsets-phase2");
            Thread.sleep(SETTLE_MS);
        } finally {
            c.shutdown();
        }
        if (old.get() > 0) {
            throw new Failure("received " + old.get() + " messages that phase 1 had already consumed and committed"
                + " (the group's offsets were not resumed)");
        }
        t.assertClean("offsets-phase2");
        return String.format("%s committed_after_restart=%d old_redelivered=0", t.summary(), sum);
    }

    // ---- helpers ---------------------------------------------------------------------

    static Message message(String topic, int i) {
        String text = topic + "|" + i + "|payload";
        if (pad > 0 && i % 5 == 0) {
            text = text + ".".repeat(pad);
        }
        byte[] body = text.getBytes(StandardCharsets.UTF_8);
        Message m = new Message(topic, TAGS[i % 3], "key-" + i, body);
        m.putUserProperty("idx", Integer.toString(i));
        return m;
    }

    String instanceName(String role) {
        return scenario + "-" + role + "-" + pid + "-" + instanceSeq.incrementAndGet();
    }

    DefaultMQProducer newProducer(String producerGroup) {
        DefaultMQProducer p = new DefaultMQProducer(producerGroup);
        p.setNamesrvAddr(namesrv);
        p.setInstanceName(instanceName("producer"));
        return p;
    }

    DefaultMQPushConsumer newPushConsumer(String consumerGroup, String subExpression) throws Exception {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(consumerGroup);
        c.setNamesrvAddr(namesrv);
        c.setInstanceName(instanceName("push"));
        c.setMessageModel(MessageModel.CLUSTERING);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, subExpression);
        return c;
    }

    DefaultMQPullConsumer newPullProbe(String consumerGroup) {
        DefaultMQPullConsumer p = new DefaultMQPullConsumer(consumerGroup);
        p.setNamesrvAddr(namesrv);
        p.setInstanceName(instanceName("probe"));
        return p;
    }

    /** queueId -> {committed offset (-1 if none), max offset}. */
    Map<Integer, long[]> committedOffsets(DefaultMQPullConsumer probe) throws Exception {
        Map<Integer, long[]> out = new TreeMap<>();
        for (MessageQueue mq : probe.fetchSubscribeMessageQueues(topic)) {
            out.put(mq.getQueueId(), new long[] {probe.fetchConsumeOffset(mq, true), probe.maxOffset(mq)});
        }
        return out;
    }

    static String offsetLine(Map<Integer, long[]> offsets) {
        StringBuilder sb = new StringBuilder();
        offsets.forEach((q, o) -> sb.append(sb.length() == 0 ? "" : ",").append('q').append(q).append('=')
            .append(o[0]).append('/').append(o[1]));
        return sb.toString();
    }

    static String tagLine(Map<String, Integer> perTag) {
        StringBuilder sb = new StringBuilder();
        perTag.forEach((k, v) -> sb.append(sb.length() == 0 ? "" : " ").append(k).append('=').append(v));
        return sb.toString();
    }

    /** The first send retries for up to 30 s: the broker may not be registered yet. */
    SendResult firstSend(DefaultMQProducer producer, Message m) throws Exception {
        long until = Math.min(deadline, System.currentTimeMillis() + FIRST_CONTACT_MS);
        int attempts = 0;
        while (true) {
            attempts++;
            try {
                SendResult r = producer.send(m);
                if (attempts > 1) {
                    log("first send succeeded after %d attempts", attempts);
                }
                return r;
            } catch (Exception e) {
                if (System.currentTimeMillis() > until) {
                    throw new Failure("first send failed for " + FIRST_CONTACT_MS / 1000 + " s (" + attempts
                        + " attempts): " + e);
                }
                if (attempts == 1) {
                    log("first send failed, retrying: %s", e);
                }
                Thread.sleep(500);
            }
        }
    }

    /** Waits (up to 30 s) until the NameServer has a route for the topic. */
    Collection<MessageQueue> waitForRoute(DefaultMQProducer producer, String t) throws Exception {
        long until = Math.min(deadline, System.currentTimeMillis() + FIRST_CONTACT_MS);
        while (true) {
            try {
                List<MessageQueue> mqs = producer.fetchPublishMessageQueues(t);
                if (!mqs.isEmpty()) {
                    return mqs;
                }
            } catch (Exception e) {
                if (System.currentTimeMillis() > until) {
                    throw new Failure("no route for topic " + t + " after " + FIRST_CONTACT_MS / 1000 + " s: " + e);
                }
            }
            Thread.sleep(500);
        }
    }

    void waitForRoute(String t) throws Exception {
        DefaultMQProducer probe = newProducer(group + "_probe");
        probe.start();
        try {
            Collection<MessageQueue> mqs = waitForRoute(probe, t);
            log("route: topic %s has %d queues", t, mqs.size());
        } finally {
            probe.shutdown();
        }
    }

    static void checkResult(String what, SendResult r, boolean batch) throws Failure {
        if (r == null) {
            throw new Failure(what + ": null SendResult");
        }
        if (r.getSendStatus() != SendStatus.SEND_OK) {
            throw new Failure(what + ": status " + r.getSendStatus());
        }
        if (r.getMsgId() == null || r.getMsgId().isEmpty()) {
            throw new Failure(what + ": empty msgId");
        }
        if (r.getOffsetMsgId() == null || r.getOffsetMsgId().isEmpty()) {
            throw new Failure(what + ": empty offsetMsgId (broker's msgId header)");
        }
        if (r.getMessageQueue() == null || r.getQueueOffset() < 0) {
            throw new Failure(what + ": bad queue/offset " + r.getMessageQueue() + " " + r.getQueueOffset());
        }
    }

    static void shutdownQuietly(DefaultMQPushConsumer c) {
        if (c != null) {
            try {
                c.shutdown();
            } catch (RuntimeException e) {
                log("shutdown failed: %s", e);
            }
        }
    }

    long remainingMs() {
        return Math.max(0, deadline - System.currentTimeMillis());
    }

    void checkDeadline(String what) throws Failure {
        if (System.currentTimeMillis() > deadline) {
            throw new Failure("timed out after " + timeoutSec + " s: " + what);
        }
    }

    static void log(String fmt, Object... args) {
        System.out.println("[compat] " + String.format(fmt, args));
        System.out.flush();
    }

    static final class Failure extends Exception {
        Failure(String msg) {
            super(msg);
        }
    }

    /**
     * What a consumer received. Messages start..start+count-1 (those {@code wanted}) must all
     * arrive; TagX messages sent by another scenario's push-pair are tolerated and counted;
     * anything else, or a message whose key/tag/property/body disagree, is an error.
     */
    static final class Tracker {
        final String topic;
        final int start;
        final int count;
        final String group;
        Predicate<Integer> wanted = i -> true;

        final ConcurrentHashMap<Integer, AtomicInteger> seen = new ConcurrentHashMap<>();
        final ConcurrentHashMap<String, Boolean> msgIds = new ConcurrentHashMap<>();
        final Set<Integer> ownExtras = ConcurrentHashMap.newKeySet();
        final Set<Integer> queues = ConcurrentHashMap.newKeySet();
        final ConcurrentHashMap<String, AtomicInteger> tags = new ConcurrentHashMap<>();
        final AtomicLong received = new AtomicLong();
        final AtomicLong duplicates = new AtomicLong();
        final AtomicLong foreign = new AtomicLong();
        final AtomicLong outside = new AtomicLong();
        final ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
        final AtomicInteger inRange = new AtomicInteger();

        Tracker(String topic, int start, int count, String group) {
            this.topic = topic;
            this.start = start;
            this.count = count;
            this.group = group;
        }

        int expectedCount() {
            int e = 0;
            for (int i = start; i < start + count; i++) {
                if (wanted.test(i)) {
                    e++;
                }
            }
            return e;
        }

        /** Records one message; returns its number, or -1 if it is not one of ours. */
        int record(MessageExt m) {
            try {
                received.incrementAndGet();
                queues.add(m.getQueueId());
                String tag = m.getTags();
                tags.computeIfAbsent(String.valueOf(tag), k -> new AtomicInteger()).incrementAndGet();
                if (msgIds.putIfAbsent(m.getMsgId(), Boolean.TRUE) != null) {
                    duplicates.incrementAndGet();
                }
                if (!topic.equals(m.getTopic())) {
                    error("message " + m.getMsgId() + " has topic " + m.getTopic());
                    return -1;
                }
                String body = new String(m.getBody(), StandardCharsets.UTF_8);
                String[] parts = body.split("\\|");
                if (parts.length != 3 || !parts[0].equals(topic) || !parts[2].matches("payload\\.*")) {
                    error("message " + m.getMsgId() + " has an unexpected body: " + body);
                    return -1;
                }
                int i = Integer.parseInt(parts[1]);
                if (!String.valueOf(i).equals(m.getUserProperty("idx"))) {
                    error("message " + i + " has property idx=" + m.getUserProperty("idx"));
                }
                if (!("key-" + i).equals(m.getKeys())) {
                    error("message " + i + " has keys " + m.getKeys());
                }
                if (EXTRA_TAG.equals(tag)) {
                    if (group.equals(m.getUserProperty("origin"))) {
                        ownExtras.add(i);
                    } else {
                        foreign.incrementAndGet();
                    }
                    return i;
                }
                if (!TAGS[i % 3].equals(tag)) {
                    error("message " + i + " has tag " + tag + ", expected " + TAGS[i % 3]);
                }
                if (i < start || i >= start + count) {
                    outside.incrementAndGet();
                    return i;
                }
                if (seen.computeIfAbsent(i, k -> new AtomicInteger()).incrementAndGet() == 1 && wanted.test(i)) {
                    inRange.incrementAndGet();
                }
                return i;
            } catch (RuntimeException e) {
                error("cannot check message " + m + ": " + e);
                return -1;
            }
        }

        void error(String e) {
            if (errors.size() < 20) {
                errors.add(e);
            }
        }

        boolean complete() {
            return inRange.get() >= expectedCount();
        }

        int uniqueInRange() {
            return inRange.get();
        }

        String progress() {
            return "received " + inRange.get() + " of " + expectedCount() + " expected messages ("
                + received.get() + " deliveries)";
        }

        String summary() {
            return String.format("expected=%d received_unique=%d deliveries=%d duplicates=%d", expectedCount(),
                inRange.get(), received.get(), duplicates.get())
                + (foreign.get() > 0 ? " other_scenarios_extra=" + foreign.get() : "")
                + (outside.get() > 0 ? " outside_range=" + outside.get() : "");
        }

        Map<String, Integer> tagCounts() {
            Map<String, Integer> out = new TreeMap<>();
            tags.forEach((k, v) -> out.put(k, v.get()));
            return out;
        }

        void awaitComplete(CompatSuite s, String what) throws Exception {
            long lastLog = System.currentTimeMillis();
            while (!complete()) {
                if (!errors.isEmpty()) {
                    throw new Failure(what + ": " + errors.peek());
                }
                if (System.currentTimeMillis() > s.deadline) {
                    throw new Failure(what + ": timed out after " + s.timeoutSec + " s: " + progress()
                        + "; missing e.g. " + missing(10));
                }
                if (System.currentTimeMillis() - lastLog > 5000) {
                    log("%s: %s", what, progress());
                    lastLog = System.currentTimeMillis();
                }
                Thread.sleep(50);
            }
            log("%s: all %d expected messages received (%d deliveries, %d duplicates)", what, expectedCount(),
                received.get(), duplicates.get());
        }

        List<Integer> missing(int max) {
            List<Integer> out = new ArrayList<>();
            for (int i = start; i < start + count && out.size() < max; i++) {
                if (wanted.test(i) && !seen.containsKey(i)) {
                    out.add(i);
                }
            }
            return out;
        }

        void assertClean(String what) throws Failure {
            if (!errors.isEmpty()) {
                throw new Failure(what + ": " + errors.size() + " bad messages, first: " + errors.peek());
            }
            if (duplicates.get() > 0) {
                log("%s: note: %d duplicate deliveries (allowed: at-least-once)", what, duplicates.get());
            }
        }
    }
}
