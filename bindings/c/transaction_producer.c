/*
 * transaction_producer.c: transactional messages with libmq.
 *
 *   transaction_producer [-n NAMESRV] [-t TOPIC] [-g GROUP] [-w SECONDS]
 *
 * NAMESRV comes from -n or the environment variable NAMESRV_ADDR. A
 * transactional message is sent in two steps: a "half" message, stored but
 * invisible to consumers, then - once the application's local transaction
 * has an outcome - commit (consumers see it) or rollback (dropped). When
 * the outcome never arrives, the broker asks the producer group: a
 * check-back, which this program takes from mq_txn_producer_poll_check on
 * its own thread and answers from its local records.
 *
 * To TOPIC ("CExampleTxn") it sends three half messages:
 *   order-1  local transaction commits; ended with COMMIT;
 *   order-2  local transaction commits, but the outcome is "lost" (ended
 *            with UNKNOWN, as if the process had died): the broker checks
 *            back, and the answer from the local records is COMMIT;
 *   order-3  local transaction fails; ended with ROLLBACK.
 * Consumers of TOPIC then see txn-order-1 and txn-order-2, never
 * txn-order-3. It waits up to SECONDS (60) for the check-back (the broker's
 * transactionCheckInterval and transactionTimeOut decide when it comes).
 *
 * Output: "half body=B keys=K txn_id=T msg_id=M", "end keys=K state=S",
 * "check keys=K body=B answer=S", then "transaction_producer: committed 2,
 * rolled back 1". On any failure it prints the status name and libmq's
 * detail to stderr and exits with status 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <mq.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *what, mq_status_t st)
{
    fprintf(stderr, "transaction_producer: %s failed: %s\n  detail: %s\n", what,
            mq_status_name(st), mq_last_error());
    exit(1);
}

static void die(const char *what)
{
    fprintf(stderr, "transaction_producer: %s\n", what);
    exit(1);
}

#define CHECK(call)                                                          \
    do {                                                                     \
        mq_status_t st_ = (call);                                            \
        if (st_ != MQ_OK)                                                    \
            fail(#call, st_);                                                \
    } while (0)

static const char *state_name(int32_t state)
{
    switch (state) {
    case MQ_TXN_COMMIT: return "COMMIT";
    case MQ_TXN_ROLLBACK: return "ROLLBACK";
    default: return "UNKNOWN";
    }
}

/* The application's "database": the outcome of each local transaction,
 * by the message keys that name it. */
struct record {
    const char *keys;
    int32_t outcome;
};
static const struct record local_db[] = {
    {"order-1", MQ_TXN_COMMIT},
    {"order-2", MQ_TXN_COMMIT},
    {"order-3", MQ_TXN_ROLLBACK},
};
#define N_ORDERS (sizeof local_db / sizeof local_db[0])

/* What a check-back is answered: the local record's outcome, ROLLBACK for a
 * transaction the records do not know. */
static int32_t look_up(const char *keys)
{
    for (size_t i = 0; i < N_ORDERS; i++)
        if (keys != NULL && strcmp(local_db[i].keys, keys) == 0)
            return local_db[i].outcome;
    return MQ_TXN_ROLLBACK;
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
    const char *topic = "CExampleTxn";
    const char *group = "c_example_txn";
    int wait_s = 60, opt;
    while ((opt = getopt(argc, argv, "n:t:g:w:")) != -1) {
        switch (opt) {
        case 'n': namesrv = optarg; break;
        case 't': topic = optarg; break;
        case 'g': group = optarg; break;
        case 'w': wait_s = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-n namesrv] [-t topic] [-g group] [-w seconds]\n", argv[0]);
            return 2;
        }
    }
    if (namesrv == NULL) {
        fprintf(stderr, "transaction_producer: give the NameServer with -n or NAMESRV_ADDR\n");
        return 2;
    }

    /* ---- a transactional producer ----------------------------------- */
    mq_config_t *cfg = NULL;
    CHECK(mq_config_new(&cfg));
    CHECK(mq_config_set(cfg, "namesrv_addr", namesrv));
    CHECK(mq_config_set(cfg, "group", group));
    /* The broker checks back the producers of the group it has heard from:
     * libmq sends a heartbeat to a broker as soon as a send learns of it,
     * so the check-back for order-2 comes within seconds. */
    /* How long a check-back waits for its answer (else UNKNOWN). */
    CHECK(mq_config_set(cfg, "txn_check_timeout_ms", "5000"));
    mq_txn_producer_t *tp = NULL;
    CHECK(mq_txn_producer_new(cfg, &tp));
    mq_config_free(cfg);

    int committed = 0, rolled_back = 0;
    for (size_t i = 0; i < N_ORDERS; i++) {
        const char *keys = local_db[i].keys;
        char body[32];
        snprintf(body, sizeof body, "txn-%s", keys);

        /* 1. The half message: stored, not yet visible. */
        mq_message_t *m = NULL;
        CHECK(mq_message_new(topic, &m));
        CHECK(mq_message_set_body(m, (const uint8_t *)body, strlen(body)));
        CHECK(mq_message_set_keys(m, keys));
        mq_txn_t *txn = NULL;
        CHECK(mq_txn_producer_send_half(tp, m, -1 /* send_timeout_ms */, &txn));
        mq_message_free(m);
        const mq_send_result_t *r = mq_txn_result(txn); /* borrowed from txn */
        printf("half body=%s keys=%s txn_id=%s msg_id=%s\n", body, keys,
               mq_send_result_transaction_id(r), mq_send_result_msg_id(r));

        /* 2. The local transaction runs here; its outcome is local_db[i].
         *    order-2's outcome is "lost": UNKNOWN leaves it to the
         *    check-back. */
        int32_t state = local_db[i].outcome;
        if (strcmp(keys, "order-2") == 0)
            state = MQ_TXN_UNKNOWN;

        /* 3. End it: commit, rollback or unknown (one-way; it waits at most
         *    send_timeout_ms for the connection). mq_txn_end frees txn. */
        CHECK(mq_txn_end(txn, state, -1));
        printf("end keys=%s state=%s\n", keys, state_name(state));
        committed += state == MQ_TXN_COMMIT;
        rolled_back += state == MQ_TXN_ROLLBACK;
    }
    fflush(stdout);

    /* ---- check-backs: answered on this thread, from the local records --- */
    int checked = 0;
    double deadline = now() + wait_s;
    while (!checked) {
        if (now() > deadline)
            die("no check-back for order-2");
        mq_txn_check_t *check = NULL;
        CHECK(mq_txn_producer_poll_check(tp, 500, &check));
        if (check == NULL)
            continue; /* none within 500 ms */
        /* The half message as sent, borrowed from the check. */
        const mq_message_t *half = mq_txn_check_message(check);
        const char *keys = mq_message_keys(half);
        size_t len = 0;
        const uint8_t *body = mq_message_body(half, &len);
        int32_t answer = look_up(keys);
        printf("check keys=%s body=%.*s answer=%s\n", keys ? keys : "-",
               (int)len, (const char *)body, state_name(answer));
        fflush(stdout);
        if (keys != NULL && strcmp(keys, "order-2") == 0) {
            checked = 1;
            committed += answer == MQ_TXN_COMMIT;
        }
        /* Answer (within txn_check_timeout_ms); this frees the check, and
         * with it `keys` and `body`. */
        CHECK(mq_txn_check_answer(check, answer));
    }

    /* ---- shut down: close, then destroy -------------------------------- */
    CHECK(mq_txn_producer_close(tp));
    mq_txn_producer_destroy(tp);
    printf("transaction_producer: committed %d, rolled back %d\n", committed,
           rolled_back);
    return 0;
}
