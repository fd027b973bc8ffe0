/*
 * push_consumer.c: consuming with libmq's push consumer.
 *
 *   push_consumer [-n NAMESRV] [-t TOPIC] [-g GROUP] [-e EXPECT] [-w SECONDS] [-s]
 *
 * NAMESRV comes from -n or the environment variable NAMESRV_ADDR. It
 * subscribes GROUP ("c_example_push") to every tag of TOPIC ("CExample"),
 * from the first message on, and consumes until it has seen EXPECT (1)
 * different messages and got back every message it asked to see again, or
 * fails after SECONDS (60).
 *
 * The push consumer pulls from the brokers on libmq's threads and hands
 * each batch (messages of one queue) to the application, on the
 * application's own thread:
 *   - by default this program polls: mq_push_consumer_poll, then
 *     mq_batch_ack(batch, MQ_CONSUME_SUCCESS or MQ_CONSUME_LATER);
 *   - with -s it lets mq_push_consumer_serve call a handler instead, still
 *     on this thread, and acks the batch with what the handler returns.
 * The first batch it receives it answers with LATER, once: the broker
 * delivers those messages again, with reconsume_times 1, after its retry
 * delay (delay level 3 for a first retry: 10 s with the default
 * messageDelayLevel).
 *
 * Output: one line per message received, "received body=B len=L
 * reconsume_times=R ...", where B is the body with bytes outside printable
 * ASCII (and '\') written as \xNN; "later body=B" for each message asked to
 * come back; then "push_consumer: received N messages, M redelivered". On
 * any failure it prints the status name and libmq's detail to stderr and
 * exits with status 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <mq.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *what, mq_status_t st)
{
    fprintf(stderr, "push_consumer: %s failed: %s\n  detail: %s\n", what,
            mq_status_name(st), mq_last_error());
    exit(1);
}

static void die(const char *what)
{
    fprintf(stderr, "push_consumer: %s\n", what);
    exit(1);
}

#define CHECK(call)                                                          \
    do {                                                                     \
        mq_status_t st_ = (call);                                            \
        if (st_ != MQ_OK)                                                    \
            fail(#call, st_);                                                \
    } while (0)

/* A body as a new C string: printable ASCII as is, anything else (NUL
 * included) as \xNN. The caller frees it. */
static char *escape(const uint8_t *body, size_t len)
{
    char *text = malloc(4 * len + 1), *out = text;
    if (text == NULL)
        die("out of memory");
    for (size_t i = 0; i < len; i++) {
        if (body[i] > ' ' && body[i] < 0x7f && body[i] != '\\')
            *out++ = (char)body[i];
        else
            out += sprintf(out, "\\x%02x", body[i]);
    }
    *out = '\0';
    return text;
}

/* A string for printf: "-" for NULL ("none"). */
static const char *str(const char *s)
{
    return s ? s : "-";
}

/* A set of strings, enough for an example. */
struct set {
    char **items;
    size_t len, cap;
};

static int set_has(const struct set *s, const char *item)
{
    for (size_t i = 0; i < s->len; i++)
        if (strcmp(s->items[i], item) == 0)
            return 1;
    return 0;
}

/* Adds a copy of `item` unless it is there; 1 when added. */
static int set_add(struct set *s, const char *item)
{
    if (set_has(s, item))
        return 0;
    if (s->len == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->items = realloc(s->items, s->cap * sizeof *s->items);
        if (s->items == NULL)
            die("out of memory");
    }
    s->items[s->len] = strdup(item);
    if (s->items[s->len] == NULL)
        die("out of memory");
    s->len++;
    return 1;
}

static void set_free(struct set *s)
{
    for (size_t i = 0; i < s->len; i++)
        free(s->items[i]);
    free(s->items);
}

/* What the handler keeps between batches. */
struct state {
    struct set seen;        /* bodies received */
    struct set later;       /* bodies answered LATER */
    struct set redelivered; /* of those, bodies received again */
    int asked_later;        /* LATER was asked once */
};

/* Consumes one batch: prints every message and says how to settle it.
 * Everything the batch points to belongs to it: valid until it is acked. */
static int32_t handle_batch(const mq_batch_t *batch, struct state *s)
{
    int32_t answer = MQ_CONSUME_SUCCESS;
    if (!s->asked_later) {
        /* Once: ask for this batch again. LATER settles the whole batch;
         * its messages come back through the group's retry topic. */
        answer = MQ_CONSUME_LATER;
        s->asked_later = 1;
    }
    for (size_t i = 0; i < mq_batch_len(batch); i++) {
        const mq_message_t *m = mq_batch_get(batch, i);
        /* Every field in one call; or mq_message_body, _tags, _property... */
        mq_message_view_t v;
        CHECK(mq_message_view(m, &v, sizeof v));
        char *body = escape(v.body, v.body_len);
        /* Keys are space-separated: escaped too, to keep one field. */
        char *keys = v.keys ? escape((const uint8_t *)v.keys, strlen(v.keys)) : NULL;
        const char *color = mq_message_property(m, "color"); /* NULL: unset */
        printf("received body=%s len=%zu reconsume_times=%" PRId32
               " topic=%s tags=%s keys=%s color=%s msg_id=%s queue=%s:%" PRId32
               " offset=%" PRId64 " born=%" PRId64 " stored=%" PRId64
               " born_host=%s\n",
               body, v.body_len, v.reconsume_times, str(v.topic),
               str(v.tags), str(keys), str(color), str(v.msg_id),
               str(v.broker_name), v.queue_id, v.queue_offset,
               v.born_timestamp, v.store_timestamp, str(v.born_host));
        set_add(&s->seen, body);
        if (v.reconsume_times > 0 && set_has(&s->later, body))
            set_add(&s->redelivered, body);
        if (answer == MQ_CONSUME_LATER) {
            set_add(&s->later, body);
            printf("later body=%s\n", body);
        }
        free(keys);
        free(body);
    }
    fflush(stdout);
    return answer;
}

/* The handler mq_push_consumer_serve calls, on the thread that called it. */
static int32_t on_batch(const mq_batch_t *batch, void *opaque)
{
    return handle_batch(batch, opaque);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *namesrv = getenv("NAMESRV_ADDR");
    const char *topic = "CExample";
    const char *group = "c_example_push";
    int expect = 1, wait_s = 60, serve = 0, opt;
    while ((opt = getopt(argc, argv, "n:t:g:e:w:s")) != -1) {
        switch (opt) {
        case 'n': namesrv = optarg; break;
        case 't': topic = optarg; break;
        case 'g': group = optarg; break;
        case 'e': expect = atoi(optarg); break;
        case 'w': wait_s = atoi(optarg); break;
        case 's': serve = 1; break;
        default:
            fprintf(stderr, "usage: %s [-n namesrv] [-t topic] [-g group] [-e expect] [-w seconds] [-s]\n", argv[0]);
            return 2;
        }
    }
    if (namesrv == NULL) {
        fprintf(stderr, "push_consumer: give the NameServer with -n or NAMESRV_ADDR\n");
        return 2;
    }

    /* ---- a push consumer: create, subscribe, start --------------------- */
    mq_config_t *cfg = NULL;
    CHECK(mq_config_new(&cfg));
    CHECK(mq_config_set(cfg, "namesrv_addr", namesrv));
    CHECK(mq_config_set(cfg, "group", group));
    CHECK(mq_config_set(cfg, "consume_from", "first")); /* a new group starts at the oldest */
    mq_push_consumer_t *c = NULL;
    CHECK(mq_push_consumer_new(cfg, &c));
    mq_config_free(cfg);
    CHECK(mq_push_consumer_subscribe(c, topic, "*")); /* or "TagA || TagB" */
    CHECK(mq_push_consumer_start(c));

    /* ---- consume on this thread (call poll or serve from several threads
     * to consume batches in parallel) ---------------------------------- */
    struct state s = {0};
    double deadline = now() + wait_s;
    while (s.seen.len < (size_t)expect || s.redelivered.len < s.later.len ||
           !s.asked_later) {
        if (now() > deadline) {
            fprintf(stderr, "push_consumer: after %d s: %zu of %d messages, %zu of %zu redelivered\n",
                    wait_s, s.seen.len, expect, s.redelivered.len, s.later.len);
            die("timed out");
        }
        if (serve) {
            /* Waits up to 500 ms for a batch, calls on_batch(batch, &s) here,
             * and acks the batch with what it returned. */
            size_t served = 0;
            CHECK(mq_push_consumer_serve(c, 500, on_batch, &s, &served));
        } else {
            mq_batch_t *batch = NULL;
            CHECK(mq_push_consumer_poll(c, 500, &batch));
            if (batch == NULL)
                continue; /* nothing within 500 ms */
            int32_t answer = handle_batch(batch, &s);
            /* Ack once, from any thread; the batch is gone afterwards. */
            CHECK(mq_batch_ack(batch, answer));
        }
    }

    /* ---- shut down: close (commits offsets), then destroy -------------- */
    CHECK(mq_push_consumer_close(c));
    mq_push_consumer_destroy(c);
    printf("push_consumer: received %zu messages, %zu redelivered\n",
           s.seen.len, s.redelivered.len);
    set_free(&s.seen);
    set_free(&s.later);
    set_free(&s.redelivered);
    return 0;
}
