/*
 * close_during_poll.c: close on one thread while other threads are
 * blocked in polls without a time limit, against a live broker.
 *
 *   close_during_poll [-n NAMESRV] [-t TOPIC]
 *
 * For each kind of handle (producer, transactional producer, push consumer,
 * lite pull consumer) one pthread blocks in its poll with timeout -1; the
 * main thread closes the handle; the poll must return MQ_ERR_CLOSED within
 * a few seconds. Then: a wakeup ends a blocked poll with no batch and
 * MQ_OK; a second close is MQ_OK (idempotent); a poll after close is
 * MQ_ERR_CLOSED at once; destroy comes last. A watchdog (alarm) kills the
 * process if anything hangs.
 *
 * Output: "ok <what>" per check, then "close_during_poll: passed"; on a
 * failure "FAIL <what>: ..." and exit status 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <mq.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long a poll may take to notice close. */
#define CLOSE_LIMIT_S 10.0

static void fail(const char *what, mq_status_t st)
{
    printf("FAIL %s: %s: %s\n", what, mq_status_name(st), mq_last_error());
    exit(1);
}

#define CHECK(call)                                                          \
    do {                                                                     \
        mq_status_t st_ = (call);                                            \
        if (st_ != MQ_OK)                                                    \
            fail(#call, st_);                                                \
    } while (0)

/* A status that must be `want`. */
static void expect(const char *what, mq_status_t got, mq_status_t want)
{
    if (got != want) {
        printf("FAIL %s: %s, not %s (%s)\n", what, mq_status_name(got),
               mq_status_name(want), mq_last_error());
        exit(1);
    }
    printf("ok %s: %s\n", what, mq_status_name(got));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum kind { PRODUCER, TXN_PRODUCER, PUSH, PULL };
static const char *kind_name[] = {"producer", "txn producer", "push consumer",
                                  "pull consumer"};

/* One poller: a handle, and what its blocked poll returned. */
struct poller {
    enum kind kind;
    void *handle;
    mq_status_t status;
    int got_object; /* the poll handed out something (a report, a batch) */
    double took;    /* seconds in the poll */
};

/* The poll of `p`'s kind, blocking for `timeout_ms` (-1: no limit). Frees
 * whatever it hands out. */
static mq_status_t poll_once(struct poller *p, int32_t timeout_ms)
{
    mq_status_t st = MQ_OK;
    p->got_object = 0;
    switch (p->kind) {
    case PRODUCER: {
        mq_send_report_t *rep = NULL;
        st = mq_producer_poll(p->handle, timeout_ms, &rep);
        p->got_object = rep != NULL;
        mq_send_report_free(rep);
        break;
    }
    case TXN_PRODUCER: {
        mq_txn_check_t *check = NULL;
        st = mq_txn_producer_poll_check(p->handle, timeout_ms, &check);
        p->got_object = check != NULL;
        mq_txn_check_free(check);
        break;
    }
    case PUSH: {
        mq_batch_t *b = NULL;
        st = mq_push_consumer_poll(p->handle, timeout_ms, &b);
        p->got_object = b != NULL;
        mq_batch_free(b);
        break;
    }
    case PULL: {
        mq_batch_t *b = NULL;
        st = mq_pull_consumer_poll(p->handle, timeout_ms, &b);
        p->got_object = b != NULL;
        mq_batch_free(b);
        break;
    }
    }
    return st;
}

static mq_status_t close_it(struct poller *p)
{
    switch (p->kind) {
    case PRODUCER: return mq_producer_close(p->handle);
    case TXN_PRODUCER: return mq_txn_producer_close(p->handle);
    case PUSH: return mq_push_consumer_close(p->handle);
    case PULL: return mq_pull_consumer_close(p->handle);
    }
    return MQ_ERR_UNKNOWN;
}

static void destroy_it(struct poller *p)
{
    switch (p->kind) {
    case PRODUCER: mq_producer_destroy(p->handle); break;
    case TXN_PRODUCER: mq_txn_producer_destroy(p->handle); break;
    case PUSH: mq_push_consumer_destroy(p->handle); break;
    case PULL: mq_pull_consumer_destroy(p->handle); break;
    }
}

/* The thread: one poll without a time limit. */
static void *blocked_poll(void *arg)
{
    struct poller *p = arg;
    double start = now();
    p->status = poll_once(p, -1);
    p->took = now() - start;
    return NULL;
}

/* Waits until `p`'s thread is (as good as surely) blocked: it has not
 * returned after 300 ms. The check does not depend on it: a poll that
 * starts after close returns MQ_ERR_CLOSED as well. */
static void let_it_block(void)
{
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void close_during_poll(struct poller *p)
{
    char what[128];
    pthread_t t;
    if (pthread_create(&t, NULL, blocked_poll, p) != 0) {
        printf("FAIL pthread_create\n");
        exit(1);
    }
    let_it_block();
    double start = now();
    snprintf(what, sizeof what, "%s: close while another thread polls", kind_name[p->kind]);
    expect(what, close_it(p), MQ_OK);
    pthread_join(t, NULL);
    snprintf(what, sizeof what, "%s: the blocked poll returns", kind_name[p->kind]);
    expect(what, p->status, MQ_ERR_CLOSED);
    if (p->got_object || p->took > CLOSE_LIMIT_S + 0.3 || now() - start > CLOSE_LIMIT_S) {
        printf("FAIL %s: poll took %.1f s, handed out %d\n", kind_name[p->kind],
               p->took, p->got_object);
        exit(1);
    }
    printf("ok %s: returned %.2f s after close\n", kind_name[p->kind], now() - start);
    snprintf(what, sizeof what, "%s: close again", kind_name[p->kind]);
    expect(what, close_it(p), MQ_OK);
    snprintf(what, sizeof what, "%s: poll after close", kind_name[p->kind]);
    expect(what, poll_once(p, 1000), MQ_ERR_CLOSED);
    destroy_it(p);
}

/* A wakeup ends one blocked consumer poll with MQ_OK and nothing. */
static void wakeup_ends_poll(struct poller *p)
{
    char what[128];
    pthread_t t;
    if (pthread_create(&t, NULL, blocked_poll, p) != 0) {
        printf("FAIL pthread_create\n");
        exit(1);
    }
    let_it_block();
    snprintf(what, sizeof what, "%s: wakeup", kind_name[p->kind]);
    expect(what, p->kind == PUSH ? mq_push_consumer_wakeup(p->handle)
                                 : mq_pull_consumer_wakeup(p->handle),
           MQ_OK);
    pthread_join(t, NULL);
    snprintf(what, sizeof what, "%s: the woken poll returns", kind_name[p->kind]);
    expect(what, p->status, MQ_OK);
    if (p->got_object) {
        printf("FAIL %s: a woken poll handed out a batch\n", kind_name[p->kind]);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *namesrv = getenv("NAMESRV_ADDR");
    const char *topic = "CTestIdle";
    int opt;
    while ((opt = getopt(argc, argv, "n:t:")) != -1) {
        switch (opt) {
        case 'n': namesrv = optarg; break;
        case 't': topic = optarg; break;
        default: return 2;
        }
    }
    if (namesrv == NULL) {
        fprintf(stderr, "close_during_poll: give the NameServer with -n or NAMESRV_ADDR\n");
        return 2;
    }
    /* The watchdog: SIGALRM's default action ends the process (the test
     * then fails on its exit status) if a poll never returns. Valgrind makes
     * everything slower; so the limit is generous. */
    alarm(120);

    mq_config_t *cfg = NULL;
    CHECK(mq_config_new(&cfg));
    CHECK(mq_config_set(cfg, "namesrv_addr", namesrv));
    CHECK(mq_config_set(cfg, "group", "c_test_close"));

    struct poller pollers[4] = {{.kind = PRODUCER}, {.kind = TXN_PRODUCER},
                                {.kind = PUSH}, {.kind = PULL}};
    mq_producer_t *p = NULL;
    CHECK(mq_producer_new(cfg, &p));
    pollers[PRODUCER].handle = p;
    mq_txn_producer_t *tp = NULL;
    CHECK(mq_txn_producer_new(cfg, &tp));
    pollers[TXN_PRODUCER].handle = tp;
    mq_push_consumer_t *push = NULL;
    CHECK(mq_push_consumer_new(cfg, &push));
    CHECK(mq_push_consumer_subscribe(push, topic, NULL));
    CHECK(mq_push_consumer_start(push));
    pollers[PUSH].handle = push;
    mq_pull_consumer_t *pull = NULL;
    CHECK(mq_pull_consumer_new(cfg, &pull));
    CHECK(mq_pull_consumer_subscribe(pull, topic, NULL));
    pollers[PULL].handle = pull;
    mq_config_free(cfg);

    wakeup_ends_poll(&pollers[PUSH]);
    wakeup_ends_poll(&pollers[PULL]);
    for (int k = PRODUCER; k <= PULL; k++)
        close_during_poll(&pollers[k]);
    printf("close_during_poll: passed\n");
    return 0;
}
