/* gomq.c: the C side of the Go binding; see gomq.h. */
#include <stdlib.h>
#include <string.h>

#include "gomq.h"

/* The outcome of status s, read on this thread: the detail and the broker's
 * code of a failure are copied before anything else can replace them. */
static gomq_ret ret_of(mq_status_t s) {
    gomq_ret r;
    memset(&r, 0, sizeof r);
    r.status = s;
    if (s != MQ_OK) {
        size_t n = mq_last_error_copy(NULL, 0);
        r.err = malloc(n + 1);
        if (r.err != NULL) {
            mq_last_error_copy(r.err, n + 1);
        }
        r.broker_code = mq_last_error_broker_code();
    }
    return r;
}

static const char *str_at(const char *strs, int64_t off) {
    return off < 0 ? NULL : strs + off;
}

/* Builds a message from its encoding at ints (see gomq.h); *used is how
 * many ints the encoding took. */
static mq_status_t build(const char *strs, const int64_t *ints, const uint8_t *bodies,
                         mq_message_t **out, size_t *used) {
    mq_message_t *m = NULL;
    int64_t nprops = ints[6];
    *used = GOMQ_MSG_FIXED + 2 * (size_t)nprops;
    *out = NULL;
    mq_status_t s = mq_message_new(strs + ints[0], &m);
    if (s == MQ_OK) {
        s = mq_message_set_body(m, bodies == NULL ? NULL : bodies + ints[4], (size_t)ints[5]);
    }
    if (s == MQ_OK && ints[1] >= 0) {
        s = mq_message_set_tags(m, strs + ints[1]);
    }
    if (s == MQ_OK && ints[2] >= 0) {
        s = mq_message_set_keys(m, strs + ints[2]);
    }
    for (int64_t i = 0; s == MQ_OK && i < nprops; i++) {
        const int64_t *pair = ints + GOMQ_MSG_FIXED + 2 * i;
        s = mq_message_set_property(m, strs + pair[0], strs + pair[1]);
    }
    if (s == MQ_OK && ints[3] != 0) {
        s = mq_message_set_delay_level(m, (int32_t)ints[3]);
    }
    if (s == MQ_OK && ints[7] != 0) {
        s = mq_message_set_flag(m, (int32_t)ints[7]);
    }
    if (s != MQ_OK) {
        mq_message_free(m);
        return s;
    }
    *out = m;
    return MQ_OK;
}

gomq_ret gomq_new(int kind, const char *kv, size_t n) {
    mq_config_t *cfg = NULL;
    mq_status_t s = mq_config_new(&cfg);
    for (size_t i = 0; s == MQ_OK && i < n; i++) {
        const char *k = kv;
        const char *v = k + strlen(k) + 1;
        kv = v + strlen(v) + 1;
        s = mq_config_set(cfg, k, v);
    }
    void *h = NULL;
    if (s == MQ_OK) {
        switch (kind) {
        case GOMQ_PRODUCER:
            s = mq_producer_new(cfg, (mq_producer_t **)&h);
            break;
        case GOMQ_TXN_PRODUCER:
            s = mq_txn_producer_new(cfg, (mq_txn_producer_t **)&h);
            break;
        case GOMQ_PUSH:
            s = mq_push_consumer_new(cfg, (mq_push_consumer_t **)&h);
            break;
        default:
            s = mq_pull_consumer_new(cfg, (mq_pull_consumer_t **)&h);
            break;
        }
    }
    gomq_ret r = ret_of(s);
    mq_config_free(cfg);
    r.ptr = h;
    return r;
}

gomq_ret gomq_close(int kind, void *h) {
    switch (kind) {
    case GOMQ_PRODUCER:
        return ret_of(mq_producer_close(h));
    case GOMQ_TXN_PRODUCER:
        return ret_of(mq_txn_producer_close(h));
    case GOMQ_PUSH:
        return ret_of(mq_push_consumer_close(h));
    default:
        return ret_of(mq_pull_consumer_close(h));
    }
}

void gomq_destroy(int kind, void *h) {
    switch (kind) {
    case GOMQ_PRODUCER:
        mq_producer_destroy(h);
        break;
    case GOMQ_TXN_PRODUCER:
        mq_txn_producer_destroy(h);
        break;
    case GOMQ_PUSH:
        mq_push_consumer_destroy(h);
        break;
    default:
        mq_pull_consumer_destroy(h);
        break;
    }
}

/* Copies a send result's fields into *out (one libmq call reads them all):
 * strings into buf, or big. */
static void read_result(const mq_send_result_t *res, gomq_send_ret *out, char *buf, size_t cap) {
    mq_send_result_view_t v;
    memset(&v, 0, sizeof v);
    if (mq_send_result_view(res, &v, sizeof v) != MQ_OK) {
        return;
    }
    const char *strs[5] = {v.msg_id, v.offset_msg_id, v.topic, v.broker_name, v.transaction_id};
    out->send_status = v.status;
    out->queue_id = v.queue_id;
    out->queue_offset = v.queue_offset;
    size_t total = 0;
    for (int i = 0; i < 5; i++) {
        size_t n = strs[i] == NULL ? 0 : strlen(strs[i]);
        out->lens[i] = strs[i] == NULL ? -1 : (int32_t)n;
        total += n;
    }
    char *dst = buf;
    if (total > cap) {
        out->big = malloc(total == 0 ? 1 : total);
        dst = out->big;
        if (dst == NULL) {
            for (int i = 0; i < 5; i++) {
                out->lens[i] = -1;
            }
            return;
        }
    }
    for (int i = 0; i < 5; i++) {
        if (out->lens[i] > 0) {
            memcpy(dst, strs[i], (size_t)out->lens[i]);
            dst += out->lens[i];
        }
    }
}

static gomq_send_ret send_ret(mq_status_t s) {
    gomq_send_ret out;
    memset(&out, 0, sizeof out);
    out.r = ret_of(s);
    for (int i = 0; i < 5; i++) {
        out.lens[i] = -1;
    }
    return out;
}

gomq_send_ret gomq_send_built(const mq_producer_t *p, int mode, const mq_message_t *m,
                              const char *sharding_key, int32_t timeout_ms, char *buf,
                              size_t cap) {
    mq_send_result_t *res = NULL;
    mq_status_t s;
    switch (mode) {
    case GOMQ_SEND_ONEWAY:
        s = mq_producer_send_oneway(p, m);
        break;
    case GOMQ_SEND_ORDERED:
        s = mq_producer_send_ordered(p, m, sharding_key, timeout_ms, &res);
        break;
    default:
        s = mq_producer_send(p, m, timeout_ms, &res);
        break;
    }
    gomq_send_ret out = send_ret(s);
    if (res != NULL) {
        read_result(res, &out, buf, cap);
        mq_send_result_free(res);
    }
    return out;
}

gomq_send_ret gomq_send(const mq_producer_t *p, int mode, const char *strs, const int64_t *ints,
                        const uint8_t *bodies, int64_t sharding_off, int32_t timeout_ms,
                        char *buf, size_t cap) {
    mq_message_t *m = NULL;
    size_t used;
    mq_status_t s = build(strs, ints, bodies, &m, &used);
    if (s != MQ_OK) {
        return send_ret(s);
    }
    gomq_send_ret out =
        gomq_send_built(p, mode, m, str_at(strs, sharding_off), timeout_ms, buf, cap);
    mq_message_free(m);
    return out;
}

gomq_send_ret gomq_send_batch(const mq_producer_t *p, const char *strs, const int64_t *ints,
                              size_t n, const uint8_t *bodies, int32_t timeout_ms, char *buf,
                              size_t cap) {
    mq_message_t **msgs = calloc(n == 0 ? 1 : n, sizeof *msgs);
    if (msgs == NULL) {
        gomq_send_ret out = send_ret(MQ_ERR_IO);
        return out;
    }
    mq_status_t s = MQ_OK;
    size_t built = 0;
    for (; built < n; built++) {
        size_t used;
        s = build(strs, ints, bodies, &msgs[built], &used);
        if (s != MQ_OK) {
            break;
        }
        ints += used;
    }
    gomq_send_ret out;
    if (s != MQ_OK) {
        out = send_ret(s);
    } else {
        mq_send_result_t *res = NULL;
        out = send_ret(mq_producer_send_batch(p, msgs, n, timeout_ms, &res));
        if (res != NULL) {
            read_result(res, &out, buf, cap);
            mq_send_result_free(res);
        }
    }
    for (size_t i = 0; i < built; i++) {
        mq_message_free(msgs[i]);
    }
    free(msgs);
    return out;
}

gomq_ret gomq_send_async(const mq_producer_t *p, const char *strs, const int64_t *ints,
                         const uint8_t *bodies, uint64_t token) {
    mq_message_t *m = NULL;
    size_t used;
    mq_status_t s = build(strs, ints, bodies, &m, &used);
    if (s == MQ_OK) {
        s = mq_producer_send_async(p, m, token);
    }
    gomq_ret r = ret_of(s);
    mq_message_free(m);
    return r;
}

gomq_send_ret gomq_report_take(mq_send_report_t *rep, char *buf, size_t cap) {
    const char *detail = NULL;
    int32_t code = 0;
    mq_status_t s = mq_send_report_status(rep, &detail, &code);
    gomq_send_ret out;
    memset(&out, 0, sizeof out);
    for (int i = 0; i < 5; i++) {
        out.lens[i] = -1;
    }
    out.r.status = s;
    out.r.broker_code = code;
    out.token = mq_send_report_token(rep);
    if (s != MQ_OK && detail != NULL) {
        out.r.err = strdup(detail);
    }
    const mq_send_result_t *res = mq_send_report_result(rep);
    if (res != NULL) {
        read_result(res, &out, buf, cap);
    }
    mq_send_report_free(rep);
    return out;
}

gomq_send_ret gomq_producer_poll_take(const mq_producer_t *p, int32_t timeout_ms, char *buf,
                                      size_t cap) {
    mq_send_report_t *rep = NULL;
    mq_status_t s = mq_producer_poll(p, timeout_ms, &rep);
    if (rep == NULL) {
        return send_ret(s);
    }
    return gomq_report_take(rep, buf, cap);
}

size_t gomq_producer_take_reports(const mq_producer_t *p, gomq_send_ret *outs, size_t n, char *buf,
                                  size_t cap, int32_t *status) {
    *status = MQ_OK;
    for (size_t i = 0; i < n; i++) {
        mq_send_report_t *rep = NULL;
        mq_status_t s = mq_producer_poll(p, 0, &rep);
        if (rep == NULL) {
            *status = s;
            return i;
        }
        outs[i] = gomq_report_take(rep, buf + i * cap, cap);
    }
    return n;
}

gomq_ret gomq_message_build(const char *strs, const int64_t *ints, const uint8_t *bodies) {
    mq_message_t *m = NULL;
    size_t used;
    gomq_ret r = ret_of(build(strs, ints, bodies, &m, &used));
    r.ptr = m;
    return r;
}

void gomq_message_free(void *m) {
    mq_message_free(m);
}

gomq_send_ret gomq_txn_send_half(const mq_txn_producer_t *tp, const mq_message_t *m,
                                 int32_t timeout_ms, char *buf, size_t cap) {
    mq_txn_t *t = NULL;
    gomq_send_ret out = send_ret(mq_txn_producer_send_half(tp, m, timeout_ms, &t));
    if (t != NULL) {
        read_result(mq_txn_result(t), &out, buf, cap);
        out.r.ptr = t;
    }
    return out;
}

gomq_ret gomq_txn_end(void *t, int32_t state, int32_t timeout_ms) {
    return ret_of(mq_txn_end(t, state, timeout_ms));
}

void gomq_txn_free(void *t) {
    mq_txn_free(t);
}

gomq_ret gomq_txn_poll_check(const mq_txn_producer_t *tp, int32_t timeout_ms) {
    mq_txn_check_t *c = NULL;
    gomq_ret r = ret_of(mq_txn_producer_poll_check(tp, timeout_ms, &c));
    r.ptr = c;
    return r;
}

gomq_ret gomq_txn_check_answer(void *c, int32_t state) {
    return ret_of(mq_txn_check_answer(c, state));
}

static const mq_message_t *msg_at(int src, const void *obj, size_t i) {
    if (src == GOMQ_SRC_CHECK) {
        return i == 0 ? mq_txn_check_message(obj) : NULL;
    }
    return mq_batch_get(obj, i);
}

size_t gomq_read_views(int src, const void *obj, mq_message_view_t *views, size_t n) {
    size_t props = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&views[i], 0, sizeof views[i]);
        if (mq_message_view(msg_at(src, obj, i), &views[i], sizeof views[i]) == MQ_OK) {
            props += views[i].property_count;
        }
    }
    return props;
}

void gomq_read_props(int src, const void *obj, size_t n, const char **names, const char **values,
                     size_t total) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const mq_message_t *m = msg_at(src, obj, i);
        size_t count = mq_message_property_count(m);
        for (size_t j = 0; j < count && k < total; j++, k++) {
            names[k] = NULL;
            values[k] = NULL;
            mq_message_property_at(m, j, &names[k], &values[k]);
        }
    }
}

gomq_ret gomq_push_subscribe(const mq_push_consumer_t *c, const char *topic, const char *expr) {
    return ret_of(mq_push_consumer_subscribe(c, topic, expr));
}

gomq_ret gomq_push_start(const mq_push_consumer_t *c) {
    return ret_of(mq_push_consumer_start(c));
}

gomq_ret gomq_push_poll(const mq_push_consumer_t *c, int32_t timeout_ms) {
    mq_batch_t *b = NULL;
    gomq_ret r = ret_of(mq_push_consumer_poll(c, timeout_ms, &b));
    r.ptr = b;
    r.val = (int64_t)mq_batch_len(b); /* 0 for NULL */
    return r;
}

gomq_ret gomq_batch_ack(void *b, int32_t status) {
    return ret_of(mq_batch_ack(b, status));
}

void gomq_batch_free(void *b) {
    mq_batch_free(b);
}

gomq_ret gomq_pull_subscribe(const mq_pull_consumer_t *c, const char *topic, const char *expr) {
    return ret_of(mq_pull_consumer_subscribe(c, topic, expr));
}

gomq_ret gomq_pull_assign(const mq_pull_consumer_t *c, const char *strs, const int64_t *ints,
                          size_t n) {
    mq_queue_list_t *l = NULL;
    mq_status_t s = mq_queue_list_new(&l);
    for (size_t i = 0; s == MQ_OK && i < n; i++) {
        const int64_t *q = ints + 3 * i;
        s = mq_queue_list_add(l, strs + q[0], strs + q[1], (int32_t)q[2]);
    }
    if (s == MQ_OK) {
        s = mq_pull_consumer_assign(c, l);
    }
    gomq_ret r = ret_of(s);
    mq_queue_list_free(l);
    return r;
}

gomq_ret gomq_pull_assignment(const mq_pull_consumer_t *c) {
    mq_queue_list_t *l = NULL;
    gomq_ret r = ret_of(mq_pull_consumer_assignment(c, &l));
    r.ptr = l;
    r.val = (int64_t)mq_queue_list_len(l); /* 0 for NULL */
    return r;
}

gomq_ret gomq_pull_fetch_queues(const mq_pull_consumer_t *c, const char *topic) {
    mq_queue_list_t *l = NULL;
    gomq_ret r = ret_of(mq_pull_consumer_fetch_queues(c, topic, &l));
    r.ptr = l;
    r.val = (int64_t)mq_queue_list_len(l); /* 0 for NULL */
    return r;
}

gomq_ret gomq_pull_poll(const mq_pull_consumer_t *c, int32_t timeout_ms) {
    mq_batch_t *b = NULL;
    gomq_ret r = ret_of(mq_pull_consumer_poll(c, timeout_ms, &b));
    r.ptr = b;
    r.val = (int64_t)mq_batch_len(b); /* 0 for NULL */
    return r;
}

gomq_ret gomq_pull_seek(const mq_pull_consumer_t *c, const char *topic, const char *broker,
                        int32_t queue_id, int64_t value, int by_timestamp) {
    if (by_timestamp) {
        return ret_of(mq_pull_consumer_seek_to_timestamp(c, topic, broker, queue_id, value));
    }
    return ret_of(mq_pull_consumer_seek(c, topic, broker, queue_id, value));
}

gomq_ret gomq_pull_commit(const mq_pull_consumer_t *c) {
    return ret_of(mq_pull_consumer_commit(c));
}

gomq_ret gomq_pull_committed(const mq_pull_consumer_t *c, const char *topic, const char *broker,
                             int32_t queue_id) {
    int64_t off = -1;
    gomq_ret r = ret_of(mq_pull_consumer_committed(c, topic, broker, queue_id, &off));
    r.val = off;
    return r;
}

gomq_ret gomq_pull_wakeup(const mq_pull_consumer_t *c) {
    return ret_of(mq_pull_consumer_wakeup(c));
}
