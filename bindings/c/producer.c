/*
 * producer.c: sending messages with libmq, every way a producer can.
 *
 *   producer [-n NAMESRV] [-t TOPIC] [-g GROUP] [-c COUNT] [-s]
 *
 * NAMESRV is the NameServer address ("127.0.0.1:9876", several separated by
 * ';'); without -n it comes from the environment variable NAMESRV_ADDR.
 * COUNT (3) is how many messages each kind of send sends. With -s the
 * async-send reports are handled by a callback (mq_producer_serve) instead
 * of a poll loop; with -e they are awaited with poll(2) on an eventfd that
 * libmq signals (mq_producer_set_report_fd), as an event loop would.
 *
 * It sends, to TOPIC ("CExample"):
 *   - COUNT sync sends with a tag, keys and user properties, and one more
 *     whose body holds NUL bytes (bodies are pointer + length everywhere);
 *   - COUNT async sends, whose reports come back from mq_producer_poll;
 *   - one batch of COUNT messages (one request, consecutive offsets);
 *   - COUNT ordered sends with one sharding key (all to one queue, in order);
 *   - one oneway send (no answer awaited);
 * then flushes, closes and destroys the producer.
 *
 * Output: one line per message sent, "sent kind=K body=B len=L ...", where
 * B is the body with bytes outside printable ASCII (and '\') written as
 * \xNN, then "producer: sent N messages". On any failure it prints the
 * status name and libmq's detail to stderr and exits with status 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <mq.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- error handling: the pattern every example uses ------------------- */

/* Every libmq call returns an mq_status_t. On failure, mq_status_name()
 * names it and mq_last_error() holds this thread's detail. */
static void fail(const char *what, mq_status_t st)
{
    fprintf(stderr, "producer: %s failed: %s\n  detail: %s\n", what,
            mq_status_name(st), mq_last_error());
    exit(1);
}

/* A failure that is not a libmq call's. */
static void die(const char *what)
{
    fprintf(stderr, "producer: %s\n", what);
    exit(1);
}

#define CHECK(call)                                                          \
    do {                                                                     \
        mq_status_t st_ = (call);                                            \
        if (st_ != MQ_OK)                                                    \
            fail(#call, st_);                                                \
    } while (0)

/* A body as text: printable ASCII as is, anything else (NUL included) as
 * \xNN, so that one line holds it and a script can compare it. */
static void print_body(const uint8_t *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (body[i] > ' ' && body[i] < 0x7f && body[i] != '\\')
            putchar(body[i]);
        else
            printf("\\x%02x", body[i]);
    }
}

/* A message for `topic` with `len` bytes of `body` (copied by libmq). */
static mq_message_t *new_message(const char *topic, const void *body,
                                 size_t len)
{
    mq_message_t *m = NULL;
    CHECK(mq_message_new(topic, &m));
    CHECK(mq_message_set_body(m, body, len));
    return m;
}

/* How the broker stored a message (the MQ_SEND_* values). */
static const char *send_status(int32_t status)
{
    switch (status) {
    case MQ_SEND_OK: return "SEND_OK";
    case MQ_SEND_FLUSH_DISK_TIMEOUT: return "FLUSH_DISK_TIMEOUT";
    case MQ_SEND_FLUSH_SLAVE_TIMEOUT: return "FLUSH_SLAVE_TIMEOUT";
    case MQ_SEND_SLAVE_NOT_AVAILABLE: return "SLAVE_NOT_AVAILABLE";
    default: return "?";
    }
}

/* Prints where a send result says the message went: every field in one
 * call (the strings borrow from r). */
static void print_result(const mq_send_result_t *r)
{
    mq_send_result_view_t v;
    CHECK(mq_send_result_view(r, &v, sizeof v));
    printf(" status=%s msg_id=%s queue=%s:%" PRId32 " offset=%" PRId64 "\n",
           send_status(v.status), v.msg_id, v.broker_name, v.queue_id, v.queue_offset);
}

static void print_sent(const char *kind, const void *body, size_t len)
{
    printf("sent kind=%s body=", kind);
    print_body(body, len);
    printf(" len=%zu", len);
}

/* One async-send report: its token says which message it is about. The
 * report and what it points to belong to libmq; copy what you keep. */
static int report_failed;
static void on_report(const mq_send_report_t *rep, void *opaque)
{
    char (*bodies)[32] = opaque;
    uint64_t token = mq_send_report_token(rep);
    const char *error = NULL;
    int32_t broker_code = 0;
    mq_status_t st = mq_send_report_status(rep, &error, &broker_code);
    if (st != MQ_OK) {
        fprintf(stderr, "producer: async send %" PRIu64 ": %s: %s (broker code %" PRId32 ")\n",
                token, mq_status_name(st), error, broker_code);
        report_failed = 1;
        return;
    }
    print_sent("async", bodies[token], strlen(bodies[token]));
    printf(" token=%" PRIu64, token);
    print_result(mq_send_report_result(rep));
}

int main(int argc, char **argv)
{
    const char *namesrv = getenv("NAMESRV_ADDR");
    const char *topic = "CExample";
    const char *group = "c_example_producer";
    int count = 3, serve = 0, event_loop = 0, opt;
    while ((opt = getopt(argc, argv, "n:t:g:c:se")) != -1) {
        switch (opt) {
        case 'n': namesrv = optarg; break;
        case 't': topic = optarg; break;
        case 'g': group = optarg; break;
        case 'c': count = atoi(optarg); break;
        case 's': serve = 1; break;
        case 'e': event_loop = 1; break;
        default:
            fprintf(stderr, "usage: %s [-n namesrv] [-t topic] [-g group] [-c count] [-s | -e]\n", argv[0]);
            return 2;
        }
    }
    if (serve && event_loop) {
        fprintf(stderr, "producer: -s and -e are two ways of taking reports: give one\n");
        return 2;
    }
    if (namesrv == NULL || count < 1 || count > 100) {
        fprintf(stderr, "producer: give the NameServer with -n or NAMESRV_ADDR (and 1 <= count <= 100)\n");
        return 2;
    }
    int sent = 0;

    /* ---- a producer: configured by string pairs, started on return ---- */
    mq_config_t *cfg = NULL;
    CHECK(mq_config_new(&cfg));
    CHECK(mq_config_set(cfg, "namesrv_addr", namesrv));
    CHECK(mq_config_set(cfg, "group", group));
    CHECK(mq_config_set(cfg, "send_timeout_ms", "10000"));
    mq_producer_t *p = NULL;
    CHECK(mq_producer_new(cfg, &p));
    mq_config_free(cfg); /* the producer copied what it needs */

    /* ---- sync sends: tag, keys, user properties ---------------------- */
    for (int i = 0; i < count; i++) {
        char body[32], keys[32], index[16];
        snprintf(body, sizeof body, "sync-%d", i);
        snprintf(keys, sizeof keys, "order-%d user-7", i); /* space-separated */
        snprintf(index, sizeof index, "%d", i);
        mq_message_t *m = new_message(topic, body, strlen(body));
        CHECK(mq_message_set_tags(m, "TagA"));
        CHECK(mq_message_set_keys(m, keys));
        CHECK(mq_message_set_property(m, "color", "blue"));
        CHECK(mq_message_set_property(m, "index", index));

        mq_send_result_t *r = NULL; /* pass NULL instead to skip the result */
        CHECK(mq_producer_send(p, m, -1 /* send_timeout_ms */, &r));
        print_sent("sync", body, strlen(body));
        print_result(r);
        mq_send_result_free(r);
        mq_message_free(m); /* the send copied it */
        sent++;
    }

    /* ---- a body with NUL bytes: (pointer, length), never strlen ------- */
    {
        static const uint8_t body[] = {'b', 'i', 'n', 0, 'a', 'r', 'y', 0, 0xff, '\n', 'z'};
        mq_message_t *m = new_message(topic, body, sizeof body);
        CHECK(mq_message_set_tags(m, "TagBin"));
        mq_send_result_t *r = NULL;
        CHECK(mq_producer_send(p, m, -1, &r));
        print_sent("binary", body, sizeof body);
        print_result(r);
        mq_send_result_free(r);
        mq_message_free(m);
        sent++;
    }

    /* ---- async sends: returns at once; a report per send comes back from
     * mq_producer_poll (or mq_producer_serve) on this thread, carrying the
     * token given here. libmq never calls your code on its threads. ------ */
    char (*bodies)[32] = calloc((size_t)count, sizeof *bodies);
    if (bodies == NULL)
        die("out of memory");
    int report_fd = -1;
    if (event_loop) {
        /* libmq writes to this eventfd when reports wait, so a program
         * can wait for them with everything else it watches. */
        report_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (report_fd < 0)
            die("eventfd failed");
        CHECK(mq_producer_set_report_fd(p, report_fd));
    }
    for (int i = 0; i < count; i++) {
        snprintf(bodies[i], sizeof bodies[i], "async-%d", i);
        mq_message_t *m = new_message(topic, bodies[i], strlen(bodies[i]));
        CHECK(mq_producer_send_async(p, m, (uint64_t)i /* token */));
        mq_message_free(m); /* copied: free it right away */
    }
    if (event_loop) {
        /* The event-loop style: take what is queued with a poll of timeout
         * 0; when none is left, wait on the descriptor. */
        int taken = 0;
        while (taken < count) {
            mq_send_report_t *rep = NULL;
            CHECK(mq_producer_poll(p, 0, &rep));
            if (rep == NULL) {
                struct pollfd ready = {.fd = report_fd, .events = POLLIN};
                int n = poll(&ready, 1, 5000);
                if (n == 0)
                    die("no report signalled within 5 s");
                if (n < 0 && errno != EINTR)
                    die("poll failed");
                uint64_t signals;
                if (read(report_fd, &signals, sizeof signals) < 0 && errno != EAGAIN)
                    die("reading the eventfd failed");
                continue;
            }
            on_report(rep, bodies);
            mq_send_report_free(rep);
            taken++;
        }
        /* Once this returns libmq no longer writes to it: close it. */
        CHECK(mq_producer_set_report_fd(p, -1));
        close(report_fd);
    } else {
        /* flush waits until every async send so far has its report queued. */
        CHECK(mq_producer_flush(p, 10000));
    }
    if (serve) {
        /* The callback style: mq_producer_serve calls on_report on this
         * thread for each report queued, and frees each after the call. */
        size_t served = 0, total = 0;
        while (total < (size_t)count) {
            CHECK(mq_producer_serve(p, 5000, on_report, bodies, &served));
            if (served == 0)
                die("mq_producer_serve: no report within 5 s");
            total += served;
        }
    } else if (!event_loop) {
        /* The poll style: take each report, read it, free it. */
        for (int i = 0; i < count; i++) {
            mq_send_report_t *rep = NULL;
            CHECK(mq_producer_poll(p, 5000, &rep));
            if (rep == NULL)
                die("mq_producer_poll: no report within 5 s");
            on_report(rep, bodies);
            mq_send_report_free(rep);
        }
    }
    if (report_failed)
        die("an async send failed");
    sent += count;

    /* ---- a batch: one request, one queue, consecutive offsets --------- */
    {
        mq_message_t **msgs = calloc((size_t)count, sizeof *msgs);
        if (msgs == NULL)
            die("out of memory");
        for (int i = 0; i < count; i++) {
            snprintf(bodies[i], sizeof bodies[i], "batch-%d", i);
            msgs[i] = new_message(topic, bodies[i], strlen(bodies[i]));
            CHECK(mq_message_set_tags(msgs[i], "TagB"));
        }
        mq_send_result_t *r = NULL;
        /* The array of built messages as it is: libmq reads (copies) them
         * and changes neither the array nor the messages. */
        CHECK(mq_producer_send_batch(p, msgs, (size_t)count, -1, &r));
        /* The result names the queue and the first offset; its msg_id holds
         * the batch's ids joined by commas, in order. */
        const char *broker = NULL;
        int32_t queue_id = -1;
        int64_t offset = -1;
        CHECK(mq_send_result_queue(r, NULL, &broker, &queue_id, &offset));
        const char *id = mq_send_result_msg_id(r);
        for (int i = 0; i < count; i++) {
            size_t id_len = strcspn(id, ",");
            print_sent("batch", bodies[i], strlen(bodies[i]));
            printf(" status=%s msg_id=%.*s queue=%s:%" PRId32
                   " offset=%" PRId64 "\n",
                   send_status(mq_send_result_status(r)), (int)id_len, id, broker,
                   queue_id, offset + i);
            id += id_len + (id[id_len] == ',');
            mq_message_free(msgs[i]);
        }
        mq_send_result_free(r);
        free(msgs);
        sent += count;
    }

    /* ---- ordered sends: one sharding key, one queue, stored in order ---- */
    for (int i = 0; i < count; i++) {
        char body[32];
        snprintf(body, sizeof body, "ordered-%d", i);
        mq_message_t *m = new_message(topic, body, strlen(body));
        CHECK(mq_message_set_keys(m, "order-42"));
        mq_send_result_t *r = NULL;
        CHECK(mq_producer_send_ordered(p, m, "order-42" /* sharding key */,
                                       -1, &r));
        print_sent("ordered", body, strlen(body));
        print_result(r);
        mq_send_result_free(r);
        mq_message_free(m);
        sent++;
    }

    /* ---- oneway: no answer awaited, no result, no retry --------------- */
    {
        const char *body = "oneway-0";
        mq_message_t *m = new_message(topic, body, strlen(body));
        CHECK(mq_producer_send_oneway(p, m));
        print_sent("oneway", body, strlen(body));
        printf("\n");
        mq_message_free(m);
        sent++;
    }

    /* ---- shut down: flush what is in flight, close, then destroy ------ */
    CHECK(mq_producer_flush(p, 10000));
    CHECK(mq_producer_close(p)); /* idempotent; wakes pollers on other threads */
    mq_producer_destroy(p);      /* the last call on p */
    free(bodies);
    printf("producer: sent %d messages\n", sent);
    return 0;
}
