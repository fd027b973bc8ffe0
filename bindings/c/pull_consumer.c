/*
 * pull_consumer.c: reading with libmq's lite pull consumer, at your pace.
 *
 *   pull_consumer [-n NAMESRV] [-t TOPIC] [-g GROUP] [-e EXPECT] [-w SECONDS]
 *                 [-a [BROKER:]QUEUE[,QUEUE...] | -a all]
 *
 * NAMESRV comes from -n or the environment variable NAMESRV_ADDR. GROUP
 * ("c_example_pull") subscribes to TOPIC ("CExample"), and the group's
 * rebalance decides which queues this consumer reads; with -a it reads
 * exactly the queues given (assign: no rebalance, e.g. the one queue an
 * ordered producer wrote to, whose messages it then reads in order). It
 * lists the topic's queues (mq_pull_consumer_fetch_queues, printing a
 * "queue ..." line for each) and assigns those with the ids given (of
 * BROKER only, if named), or all of them.
 *
 * It polls until it has seen EXPECT (1) different messages, then
 *   - seeks the queue of the first message back to that message's offset,
 *     and polls until it reads it again;
 *   - seeks the same queue to the first message's store timestamp, and
 *     polls until it reads it again;
 *   - commits its positions and reads back the committed offset;
 * or fails after SECONDS (60) in any of these steps.
 *
 * Output: one line per message polled, "pulled body=B len=L queue=Q:I
 * offset=O ...", where B is the body with bytes outside printable ASCII
 * (and '\') written as \xNN; "seek ...", "again ...", "committed ..." lines
 * for the later steps; then "pull_consumer: pulled N messages". On any
 * failure it prints the status name and libmq's detail to stderr and exits
 * with status 1.
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
    fprintf(stderr, "pull_consumer: %s failed: %s\n  detail: %s\n", what,
            mq_status_name(st), mq_last_error());
    exit(1);
}

static void die(const char *what)
{
    fprintf(stderr, "pull_consumer: %s\n", what);
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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A message's place, copied out of its batch (which owns the original). */
struct place {
    char broker[128];
    int32_t queue_id;
    int64_t offset;
    int64_t stored_ms;
    char *body; /* escaped */
};

/* The consumer's progress. */
struct state {
    char **bodies; /* escaped bodies seen, each once */
    size_t seen, cap;
    size_t pulled; /* messages polled, repeats included */
    struct place first;
};

static int seen_before(struct state *s, const char *body)
{
    for (size_t i = 0; i < s->seen; i++)
        if (strcmp(s->bodies[i], body) == 0)
            return 1;
    if (s->seen == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->bodies = realloc(s->bodies, s->cap * sizeof *s->bodies);
        if (s->bodies == NULL)
            die("out of memory");
    }
    if ((s->bodies[s->seen++] = strdup(body)) == NULL)
        die("out of memory");
    return 0;
}

/*
 * One poll: waits up to 500 ms for messages of one queue, prints each
 * (with `label`), and returns 1 when one of them is at `want` (broker,
 * queue and offset; NULL: any).
 */
static int poll_once(mq_pull_consumer_t *c, struct state *s, const char *label,
                     const struct place *want)
{
    mq_batch_t *batch = NULL;
    CHECK(mq_pull_consumer_poll(c, 500, &batch));
    if (batch == NULL)
        return 0; /* nothing within 500 ms */
    int found = 0;
    for (size_t i = 0; i < mq_batch_len(batch); i++) {
        /* Borrowed from the batch: valid until mq_batch_free below. */
        const mq_message_t *m = mq_batch_get(batch, i);
        size_t len = 0;
        const uint8_t *bytes = mq_message_body(m, &len);
        const char *broker = NULL, *tags = mq_message_tags(m);
        int32_t queue_id = -1;
        int64_t offset = -1, born_ms = 0, stored_ms = 0;
        CHECK(mq_message_queue(m, &broker, &queue_id, &offset));
        CHECK(mq_message_timestamps(m, &born_ms, &stored_ms));
        char *body = escape(bytes, len);
        printf("%s body=%s len=%zu queue=%s:%" PRId32 " offset=%" PRId64
               " stored=%" PRId64 " tags=%s msg_id=%s\n",
               label, body, len, broker, queue_id, offset, stored_ms,
               tags ? tags : "-", mq_message_id(m));
        s->pulled++;
        if (!seen_before(s, body) && s->seen == 1) {
            /* Remember where the first message is, copying: the batch
             * owns `broker`. */
            snprintf(s->first.broker, sizeof s->first.broker, "%s", broker);
            s->first.queue_id = queue_id;
            s->first.offset = offset;
            s->first.stored_ms = stored_ms;
            s->first.body = strdup(body);
            if (s->first.body == NULL)
                die("out of memory");
        }
        if (want != NULL && strcmp(broker, want->broker) == 0 &&
            queue_id == want->queue_id && offset == want->offset)
            found = 1;
        free(body);
    }
    fflush(stdout);
    mq_batch_free(batch); /* a pull batch is freed, never acked */
    return found;
}

int main(int argc, char **argv)
{
    const char *namesrv = getenv("NAMESRV_ADDR");
    const char *topic = "CExample";
    const char *group = "c_example_pull";
    const char *assign = NULL;
    int expect = 1, wait_s = 60, opt;
    while ((opt = getopt(argc, argv, "n:t:g:e:w:a:")) != -1) {
        switch (opt) {
        case 'n': namesrv = optarg; break;
        case 't': topic = optarg; break;
        case 'g': group = optarg; break;
        case 'e': expect = atoi(optarg); break;
        case 'w': wait_s = atoi(optarg); break;
        case 'a': assign = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-n namesrv] [-t topic] [-g group] [-e expect] [-w seconds] [-a [broker:]queue[,queue...]|all]\n", argv[0]);
            return 2;
        }
    }
    if (namesrv == NULL || expect < 1) {
        fprintf(stderr, "pull_consumer: give the NameServer with -n or NAMESRV_ADDR (and expect >= 1)\n");
        return 2;
    }

    /* ---- a lite pull consumer: created started, reads nothing yet ----- */
    mq_config_t *cfg = NULL;
    CHECK(mq_config_new(&cfg));
    CHECK(mq_config_set(cfg, "namesrv_addr", namesrv));
    CHECK(mq_config_set(cfg, "group", group));
    CHECK(mq_config_set(cfg, "consume_from", "first"));
    CHECK(mq_config_set(cfg, "auto_commit", "false")); /* we commit below */
    mq_pull_consumer_t *c = NULL;
    CHECK(mq_pull_consumer_new(cfg, &c));
    mq_config_free(cfg);

    if (assign == NULL) {
        /* subscribe: the group's rebalance shares the topic's queues. */
        CHECK(mq_pull_consumer_subscribe(c, topic, "*"));
    } else {
        /* assign: exactly these of the topic's queues ("broker:1,2,3",
         * "1,2,3" or "all"), from the list the NameServer has. */
        const char *ids = assign, *colon = strchr(assign, ':');
        size_t broker_len = 0;
        if (colon != NULL) {
            broker_len = (size_t)(colon - assign);
            ids = colon + 1;
        }
        int all = strcmp(ids, "all") == 0;
        mq_queue_list_t *topic_queues = NULL, *queues = NULL;
        CHECK(mq_pull_consumer_fetch_queues(c, topic, &topic_queues));
        CHECK(mq_queue_list_new(&queues));
        for (size_t i = 0; i < mq_queue_list_len(topic_queues); i++) {
            const char *t = NULL, *b = NULL;
            int32_t id = -1;
            CHECK(mq_queue_list_get(topic_queues, i, &t, &b, &id));
            printf("queue %s:%" PRId32 " topic=%s\n", b, id, t);
            if (broker_len > 0 && (strlen(b) != broker_len || strncmp(b, assign, broker_len) != 0))
                continue;
            int wanted = all;
            for (const char *q = ids; !wanted && !all && *q != '\0';) {
                char *end = NULL;
                long want = strtol(q, &end, 10);
                if (end == q || (*end != ',' && *end != '\0'))
                    die("-a wants [BROKER:]QUEUE[,QUEUE...] or all");
                wanted = want == id;
                q = *end == ',' ? end + 1 : end;
            }
            if (wanted)
                CHECK(mq_queue_list_add(queues, t, b, id));
        }
        mq_queue_list_free(topic_queues);
        if (mq_queue_list_len(queues) == 0)
            die("-a names none of the topic's queues");
        CHECK(mq_pull_consumer_assign(c, queues));
        mq_queue_list_free(queues); /* copied by assign */
    }

    /* ---- poll until EXPECT different messages came -------------------- */
    struct state s = {0};
    double deadline = now() + wait_s;
    while (s.seen < (size_t)expect) {
        if (now() > deadline) {
            fprintf(stderr, "pull_consumer: %zu of %d messages after %d s\n",
                    s.seen, expect, wait_s);
            die("timed out");
        }
        poll_once(c, &s, "pulled", NULL);
    }

    /* The queues this consumer reads now. */
    mq_queue_list_t *mine = NULL;
    CHECK(mq_pull_consumer_assignment(c, &mine));
    for (size_t i = 0; i < mq_queue_list_len(mine); i++) {
        const char *t = NULL, *b = NULL;
        int32_t id = -1;
        CHECK(mq_queue_list_get(mine, i, &t, &b, &id));
        printf("assigned queue=%s:%" PRId32 " topic=%s\n", b, id, t);
    }
    mq_queue_list_free(mine);

    /* ---- seek: back to the first message's offset --------------------- */
    printf("seek queue=%s:%" PRId32 " offset=%" PRId64 " body=%s\n",
           s.first.broker, s.first.queue_id, s.first.offset, s.first.body);
    CHECK(mq_pull_consumer_seek(c, topic, s.first.broker, s.first.queue_id,
                                s.first.offset));
    deadline = now() + wait_s;
    while (!poll_once(c, &s, "again", &s.first))
        if (now() > deadline)
            die("the message sought was not read again");

    /* ---- seek to a timestamp: the first message stored at or after it -- */
    printf("seek_to_timestamp queue=%s:%" PRId32 " timestamp=%" PRId64
           " body=%s\n",
           s.first.broker, s.first.queue_id, s.first.stored_ms, s.first.body);
    CHECK(mq_pull_consumer_seek_to_timestamp(c, topic, s.first.broker,
                                             s.first.queue_id,
                                             s.first.stored_ms));
    deadline = now() + wait_s;
    while (!poll_once(c, &s, "again", &s.first))
        if (now() > deadline)
            die("the message at the timestamp was not read again");

    /* ---- commit: the position after what polls returned --------------- */
    CHECK(mq_pull_consumer_commit(c));
    int64_t committed = -1; /* -1: nothing committed */
    CHECK(mq_pull_consumer_committed(c, topic, s.first.broker,
                                     s.first.queue_id, &committed));
    printf("committed queue=%s:%" PRId32 " offset=%" PRId64 "\n",
           s.first.broker, s.first.queue_id, committed);
    if (committed <= s.first.offset)
        die("the committed offset is not past the message read");

    /* ---- shut down: close, then destroy -------------------------------- */
    CHECK(mq_pull_consumer_close(c));
    mq_pull_consumer_destroy(c);
    printf("pull_consumer: pulled %zu messages\n", s.pulled);
    for (size_t i = 0; i < s.seen; i++)
        free(s.bodies[i]);
    free(s.bodies);
    free(s.first.body);
    return 0;
}
