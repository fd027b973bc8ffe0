/*
 * gomq.h: the C side of the Go binding (cgo compiles gomq.c into the
 * package). Each gomq_* function is one cgo crossing that does a whole
 * operation and, on failure, copies this thread's last error before
 * returning, so the detail is read on the thread that failed (a goroutine
 * may move to another OS thread between two cgo calls).
 *
 * Go passes only memory without Go pointers: packed strings, integer
 * arrays, body bytes. Messages are rebuilt in C from them; libmq copies
 * what it keeps. Nothing here keeps a Go pointer after it returns.
 */
#ifndef GOMQ_H
#define GOMQ_H

#include <stddef.h>
#include <stdint.h>
#include "mq.h"

/* The outcome of an operation: its status, and on failure the detail
 * (malloc'd; the Go side frees it) and the broker's code; ptr and val
 * carry what the operation made (a handle, a batch, an offset). */
typedef struct {
    int32_t status;
    int32_t broker_code;
    char *err;
    void *ptr;
    int64_t val;
} gomq_ret;

/* A send result's fields. Its strings (msg_id, offset_msg_id, topic,
 * broker, transaction_id; lens[i] bytes each, -1 for NULL) are packed in
 * the caller's buffer, or in big (malloc'd) when they do not fit. */
typedef struct {
    gomq_ret r;
    int32_t send_status;
    int32_t queue_id;
    int64_t queue_offset;
    uint64_t token;
    int32_t lens[5];
    char *big;
} gomq_send_ret;

/* What a message is encoded as (ints, per message):
 *   [0] topic offset in strs   [1] tags offset or -1   [2] keys offset or -1
 *   [3] delay level            [4] body offset in bodies  [5] body length
 *   [6] property count n       [7] user flag
 *   then n pairs (name offset, value offset)
 */
enum { GOMQ_MSG_FIXED = 8 };

enum { GOMQ_PRODUCER = 0, GOMQ_TXN_PRODUCER = 1, GOMQ_PUSH = 2, GOMQ_PULL = 3 };
enum { GOMQ_SEND_SYNC = 0, GOMQ_SEND_ORDERED = 1, GOMQ_SEND_ONEWAY = 2 };

/* Creates a handle of `kind` from n key/value pairs packed in kv. */
gomq_ret gomq_new(int kind, const char *kv, size_t n);
gomq_ret gomq_close(int kind, void *h);
void gomq_destroy(int kind, void *h);

gomq_send_ret gomq_send(const mq_producer_t *p, int mode, const char *strs, const int64_t *ints,
                        const uint8_t *bodies, int64_t sharding_off, int32_t timeout_ms,
                        char *buf, size_t cap);
gomq_send_ret gomq_send_batch(const mq_producer_t *p, const char *strs, const int64_t *ints,
                              size_t n, const uint8_t *bodies, int32_t timeout_ms, char *buf,
                              size_t cap);
gomq_ret gomq_send_async(const mq_producer_t *p, const char *strs, const int64_t *ints,
                         const uint8_t *bodies, uint64_t token);
/* Reads a report (status, detail, result) and frees it. */
gomq_send_ret gomq_report_take(mq_send_report_t *rep, char *buf, size_t cap);
/* Polls for a report and takes it: token 0 when none came (then r is the
 * poll's own outcome: MQ_OK on a timeout, MQ_ERR_CLOSED once closed). */
gomq_send_ret gomq_producer_poll_take(const mq_producer_t *p, int32_t timeout_ms, char *buf,
                                      size_t cap);

/* Takes up to n reports without waiting, each as gomq_producer_poll_take
 * would, report i's strings in buf + i * cap. Returns how many it took;
 * when fewer than n, *status is the poll's outcome (MQ_OK: none left,
 * MQ_ERR_CLOSED: closed and every report taken). One crossing for a burst
 * of reports. */
size_t gomq_producer_take_reports(const mq_producer_t *p, gomq_send_ret *outs, size_t n, char *buf,
                                  size_t cap, int32_t *status);

/* A built message (C memory) for calls that run on a helper goroutine. */
gomq_ret gomq_message_build(const char *strs, const int64_t *ints, const uint8_t *bodies);
void gomq_message_free(void *m);
gomq_send_ret gomq_send_built(const mq_producer_t *p, int mode, const mq_message_t *m,
                              const char *sharding_key, int32_t timeout_ms, char *buf, size_t cap);

gomq_send_ret gomq_txn_send_half(const mq_txn_producer_t *tp, const mq_message_t *m,
                                 int32_t timeout_ms, char *buf, size_t cap);
gomq_ret gomq_txn_end(void *t, int32_t state, int32_t timeout_ms);
void gomq_txn_free(void *t);
gomq_ret gomq_txn_poll_check(const mq_txn_producer_t *tp, int32_t timeout_ms);
gomq_ret gomq_txn_check_answer(void *c, int32_t state);

/* Received messages: a push or pull batch, or the message of a check. */
enum { GOMQ_SRC_BATCH = 0, GOMQ_SRC_CHECK = 1 };
/* Fills views[0..n) and returns the total property count. */
size_t gomq_read_views(int src, const void *obj, mq_message_view_t *views, size_t n);
/* Fills names/values with every message's properties, in order. */
void gomq_read_props(int src, const void *obj, size_t n, const char **names, const char **values,
                     size_t total);

gomq_ret gomq_push_subscribe(const mq_push_consumer_t *c, const char *topic, const char *expr);
gomq_ret gomq_push_start(const mq_push_consumer_t *c);
gomq_ret gomq_push_poll(const mq_push_consumer_t *c, int32_t timeout_ms);
gomq_ret gomq_batch_ack(void *b, int32_t status);
void gomq_batch_free(void *b);

gomq_ret gomq_pull_subscribe(const mq_pull_consumer_t *c, const char *topic, const char *expr);
/* Assigns n queues: ints holds (topic offset, broker offset, queue id) each. */
gomq_ret gomq_pull_assign(const mq_pull_consumer_t *c, const char *strs, const int64_t *ints,
                          size_t n);
gomq_ret gomq_pull_assignment(const mq_pull_consumer_t *c);
/* The readable queues of topic (an mq_queue_list_t in ptr, its length in
 * val). */
gomq_ret gomq_pull_fetch_queues(const mq_pull_consumer_t *c, const char *topic);
gomq_ret gomq_pull_poll(const mq_pull_consumer_t *c, int32_t timeout_ms);
gomq_ret gomq_pull_seek(const mq_pull_consumer_t *c, const char *topic, const char *broker,
                        int32_t queue_id, int64_t value, int by_timestamp);
gomq_ret gomq_pull_commit(const mq_pull_consumer_t *c);
gomq_ret gomq_pull_committed(const mq_pull_consumer_t *c, const char *topic, const char *broker,
                             int32_t queue_id);
gomq_ret gomq_pull_wakeup(const mq_pull_consumer_t *c);

#endif
