package mqcompat;

import java.util.Arrays;
import java.util.List;

import org.apache.rocketmq.acl.common.AclClientRPCHook;
import org.apache.rocketmq.acl.common.SessionCredentials;
import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.impl.MQClientAPIImpl;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.PlainAccessConfig;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.remoting.RPCHook;

/**
 * The {@code acl} scenario: the stock client signing with {@code AclClientRPCHook}
 * against a broker with {@code aclEnable=true} and this accounts file (the names of
 * the topics come from {@code --topic}: T is the topic, T_sub the one without PUB):
 *
 * <pre>
 * accounts:
 *   - accessKey: RocketMQ        secretKey: 12345678   admin: false
 *     defaultTopicPerm: DENY     defaultGroupPerm: SUB topicPerms: [T=PUB|SUB, T_sub=SUB]
 *   - accessKey: rocketmqAdmin   secretKey: 87654321   admin: true
 * </pre>
 *
 * Checks, in order: the right keys produce and consume; a wrong secret, an unknown
 * key, no signature, a topic without PUB, and a non-admin creating a topic are each
 * refused with response code 1 and 4.9.7's remark; an admin creates a topic; the
 * ACL admin codes (create, version, delete an account; the global whitelist) work
 * from the client's own API; a whitelisted address sends without keys.
 */
final class AclScenario {
    static final String USER = "RocketMQ";
    static final String USER_SECRET = "12345678";
    static final String ADMIN = "rocketmqAdmin";
    static final String ADMIN_SECRET = "87654321";
    static final long TIMEOUT_MS = 5_000;

    private final CompatSuite suite;
    private final String broker;

    AclScenario(CompatSuite suite, String broker) {
        this.suite = suite;
        this.broker = broker;
    }

    static RPCHook hook(String accessKey, String secretKey) {
        return new AclClientRPCHook(new SessionCredentials(accessKey, secretKey));
    }

    DefaultMQProducer producer(String name, RPCHook hook) throws MQClientException {
        DefaultMQProducer p = hook == null ? new DefaultMQProducer(suite.group + "_" + name)
            : new DefaultMQProducer(suite.group + "_" + name, hook);
        p.setNamesrvAddr(suite.namesrv);
        p.setInstanceName(suite.instanceName(name));
        // One attempt: a refusal must come back as it is, not after retries.
        p.setRetryTimesWhenSendFailed(0);
        p.start();
        return p;
    }

    static MQClientAPIImpl api(DefaultMQProducer p) {
        return p.getDefaultMQProducerImpl().getmQClientFactory().getMQClientAPIImpl();
    }

    String run() throws Exception {
        if (broker == null) {
            throw new CompatSuite.Failure("the acl scenario needs --broker HOST:PORT");
        }
        String topic = suite.topic;
        String subOnly = topic + "_sub";
        int n = suite.count;

        // The right keys produce and consume.
        DefaultMQProducer user = producer("user", hook(USER, USER_SECRET));
        DefaultMQProducer admin = producer("admin", hook(ADMIN, ADMIN_SECRET));
        try {
            suite.firstSend(user, new Message(topic, "TagA", "acl-0".getBytes()));
            for (int i = 1; i < n; i++) {
                SendResult r = user.send(new Message(topic, "TagA", ("acl-" + i).getBytes()));
                CompatSuite.checkResult("signed send " + i, r, false);
            }
            CompatSuite.log("signed producer sent %d messages", n);
            int got = consume(topic, n);
            CompatSuite.log("signed lite pull consumer received %d messages", got);

            // Refusals, each with code 1 and 4.9.7's remark.
            expectSendRefused("wrong secret", hook(USER, "wrong-secret"), topic,
                "AclException: Check signature failed for accessKey=" + USER);
            expectSendRefused("unknown key", hook("nobody", USER_SECRET), topic,
                "AclException: No acl config for nobody");
            expectSendRefused("no signature", null, topic, "AclException: No accessKey is configured");
            expectRefused("topic without PUB", () -> user.send(new Message(subOnly, "TagA", "x".getBytes())),
                "AclException: No default permission for topic:" + subOnly);
            String created = topic + "_created";
            expectRefused("non-admin creating a topic",
                () -> api(user).createTopic(broker, "TBW102", new TopicConfig(created, 4, 4, 6), TIMEOUT_MS),
                "AclException: Need admin permission for request code=17, but accessKey=" + USER + " is not");
            api(admin).createTopic(broker, "TBW102", new TopicConfig(created, 4, 4, 6), TIMEOUT_MS);
            CompatSuite.log("admin created topic %s", created);

            // The ACL admin codes, from the client's own API.
            PlainAccessConfig account = new PlainAccessConfig();
            account.setAccessKey("newuser1");
            account.setSecretKey("newsecret1");
            account.setDefaultTopicPerm("PUB");
            account.setDefaultGroupPerm("SUB");
            account.setTopicPerms(Arrays.asList(subOnly + "=DENY"));
            expectRefused("non-admin updating the ACL",
                () -> api(user).createPlainAccessConfig(broker, account, TIMEOUT_MS),
                "AclException: Need admin permission for request code=50, but accessKey=" + USER + " is not");
            api(admin).createPlainAccessConfig(broker, account, TIMEOUT_MS);
            long version = api(admin).getBrokerClusterAclInfo(broker, TIMEOUT_MS)
                .getAclConfigDataVersion().getCounter().get();
            if (version < 1) {
                throw new CompatSuite.Failure("ACL data version did not move: " + version);
            }
            DefaultMQProducer fresh = producer("fresh", hook("newuser1", "newsecret1"));
            try {
                CompatSuite.checkResult("new account's send",
                    fresh.send(new Message(topic, "TagA", "new".getBytes())), false);
            } finally {
                fresh.shutdown();
            }
            api(admin).deleteAccessConfig(broker, "newuser1", TIMEOUT_MS);
            expectSendRefused("deleted account", hook("newuser1", "newsecret1"), topic,
                "AclException: No acl config for newuser1");
            CompatSuite.log("admin codes: created, versioned (%d), used and deleted an account", version);

            // A whitelisted address passes without keys.
            api(admin).updateGlobalWhiteAddrsConfig(broker, "127.0.0.1", null, TIMEOUT_MS);
            DefaultMQProducer anonymous = producer("white", null);
            try {
                CompatSuite.checkResult("whitelisted send without keys",
                    anonymous.send(new Message(topic, "TagA", "white".getBytes())), false);
            } finally {
                anonymous.shutdown();
            }
            api(admin).updateGlobalWhiteAddrsConfig(broker, "", null, TIMEOUT_MS);
            expectSendRefused("no signature after the whitelist is cleared", null, topic,
                "AclException: No accessKey is configured");
            CompatSuite.log("whitelisted address sent without keys");
            return "sent=" + n + " received=" + got + " refusals=8";
        } finally {
            user.shutdown();
            admin.shutdown();
        }
    }

    /** Reads n messages of the topic with a signed lite pull consumer. */
    int consume(String topic, int n) throws Exception {
        DefaultLitePullConsumer c = new DefaultLitePullConsumer(suite.group + "_consumer", hook(USER, USER_SECRET));
        c.setNamesrvAddr(suite.namesrv);
        c.setInstanceName(suite.instanceName("lite"));
        c.setConsumeFromWhere(org.apache.rocketmq.common.consumer.ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, "*");
        c.start();
        try {
            int got = 0;
            while (got < n) {
                suite.checkDeadline("signed consumer received " + got + " of " + n);
                List<MessageExt> batch = c.poll(1000);
                got += batch.size();
            }
            return got;
        } finally {
            c.shutdown();
        }
    }

    interface Call {
        void run() throws Exception;
    }

    void expectSendRefused(String what, RPCHook hook, String topic, String remark) throws Exception {
        DefaultMQProducer p = producer(what.replace(' ', '_'), hook);
        try {
            expectRefused(what, () -> p.send(new Message(topic, "TagA", "refused".getBytes())), remark);
        } finally {
            p.shutdown();
        }
    }

    /** The call must fail with response code 1 and a remark containing {@code remark}. */
    static void expectRefused(String what, Call call, String remark) throws Exception {
        try {
            call.run();
        } catch (Exception e) {
            // The producer wraps the broker's answer (MQClientException around
            // MQBrokerException): look through the chain for it.
            StringBuilder seen = new StringBuilder();
            for (Throwable t = e; t != null; t = t.getCause()) {
                int code;
                String message;
                if (t instanceof MQBrokerException) {
                    code = ((MQBrokerException) t).getResponseCode();
                    message = ((MQBrokerException) t).getErrorMessage();
                } else if (t instanceof MQClientException && ((MQClientException) t).getResponseCode() > 0) {
                    code = ((MQClientException) t).getResponseCode();
                    message = ((MQClientException) t).getErrorMessage();
                } else {
                    continue;
                }
                if (code == 1 && message != null && message.contains(remark)) {
                    CompatSuite.log("refused as expected (%s): code %d remark %s", what, code, message);
                    return;
                }
                seen.append(" [code ").append(code).append(" remark ").append(message).append(']');
            }
            throw new CompatSuite.Failure(what + ": expected code 1 with \"" + remark + "\", got" + seen
                + " from " + e);
        }
        throw new CompatSuite.Failure(what + ": was not refused");
    }
}
