/*
 * send_bench.c: synchronous sends through libmq from THREADS pthreads, each
 * sending one message at a time (as `mqctl bench produce --mode sync` does
 * with THREADS tasks), and what they cost this process.
 *
 *   send_bench [-n NAMESRV] [-t TOPIC] [-T THREADS] [-s SIZE] [-d SECONDS]
 *              [-w WARMUP_SECONDS]
 *
 * Each thread builds its message once, then loops: mq_producer_send with a
 * result, reads every field of the result (one mq_send_result_view), frees
 * it. After WARMUP_SECONDS (1) of sends it measures SECONDS (10).
 *
 * Output, one line:
 *   send_bench tps=T msgs=N errors=E cpu_us_per_msg=C csw_per_msg=X
 * where C is this process's user+system CPU time per message and X its
 * context switches (voluntary and not, every thread) per message, both
 * from getrusage over the measured interval. Count futex calls with
 * `perf stat -e syscalls:sys_enter_futex` or `strace -c -f` around it
 * (bench/run.sh does).
 */
#define _POSIX_C_SOURCE 200809L

#include <mq.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *what, mq_status_t st)
{
    fprintf(stderr, "send_bench: %s failed: %s\n  detail: %s\n", what, mq_status_name(st),
            mq_last_error());
    exit(1);
}

#define CHECK(call)                                                          \
    do {                                                                     \
        mq_status_t st_ = (call);                                            \
        if (st_ != MQ_OK)                                                    \
            fail(#call, st_);                                                \
    } while (0)

static mq_producer_t *producer;
static const char *topic = "BenchmarkTest";
static size_t body_size = 1024;
static atomic_int stop;
static atomic_long sent, errors;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *sender(void *arg)
{
    (void)arg;
    uint8_t *body = malloc(body_size);
    if (body == NULL) {
        fprintf(stderr, "send_bench: out of memory\n");
        exit(1);
    }
    memset(body, 'x', body_size);
    mq_message_t *m = NULL;
    CHECK(mq_message_new(topic, &m));
    CHECK(mq_message_set_body(m, body, body_size));
    free(body);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        mq_send_result_t *r = NULL;
        mq_status_t st = mq_producer_send(producer, m, -1, &r);
        if (st != MQ_OK) {
            if (atomic_fetch_add(&errors, 1) == 0)
                fprintf(stderr, "send_bench: first error: %s\n", mq_last_error());
            continue;
        }
        mq_send_result_view_t v;
        CHECK(mq_send_result_view(r, &v, sizeof v));
        if (v.msg_id == NULL || v.queue_offset < 0)
            fprintf(stderr, "send_bench: a result without an id or offset\n");
        mq_send_result_free(r);
        atomic_fetch_add_explicit(&sent, 1, memory_order_relaxed);
    }
    mq_message_free(m);
    return NULL;
}

static double cpu_s(const struct rusage *u)
{
    return (double)u->ru_utime.tv_sec + (double)u->ru_utime.tv_usec / 1e6 +
           (double)u->ru_stime.tv_sec + (double)u->ru_stime.tv_usec / 1e6;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int main(int argc, char **argv)
{
    const char *namesrv = getenv("NAMESRV_ADDR");
    int threads = 16, opt;
    double seconds = 10, warmup = 1;
    while ((opt = getopt(argc, argv, "n:t:T:s:d:w:")) != -1) {
        switch (opt) {
        case 'n': namesrv = optarg; break;
        case 't': topic = optarg; break;
        case 'T': threads = atoi(optarg); break;
        case 's': body_size = (size_t)atol(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-n namesrv] [-t topic] [-T threads] [-s size] "
                            "[-d seconds] [-w warmup]\n", argv[0]);
            return 2;
        }
    }
    if (namesrv == NULL || threads < 1 || body_size < 1 || seconds <= 0) {
        fprintf(stderr, "send_bench: give the NameServer (-n or NAMESRV_ADDR), threads >= 1, "
                        "size >= 1, seconds > 0\n");
        return 2;
    }
    mq_config_t *cfg = NULL;
    CHECK(mq_config_new(&cfg));
    CHECK(mq_config_set(cfg, "namesrv_addr", namesrv));
    CHECK(mq_config_set(cfg, "group", "send_bench_producer"));
    CHECK(mq_producer_new(cfg, &producer));
    mq_config_free(cfg);

    pthread_t *ts = calloc((size_t)threads, sizeof *ts);
    if (ts == NULL)
        return 1;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&ts[i], NULL, sender, NULL) != 0) {
            fprintf(stderr, "send_bench: pthread_create failed\n");
            return 1;
        }
    }
    if (warmup > 0)
        sleep_s(warmup);
    struct rusage u0, u1;
    getrusage(RUSAGE_SELF, &u0);
    long n0 = atomic_load(&sent), e0 = atomic_load(&errors);
    double t0 = now_s();
    sleep_s(seconds);
    long n1 = atomic_load(&sent), e1 = atomic_load(&errors);
    double t1 = now_s();
    getrusage(RUSAGE_SELF, &u1);
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(ts[i], NULL);
    free(ts);

    long n = n1 - n0;
    double per = n > 0 ? 1.0 / (double)n : 0;
    long csw = (u1.ru_nvcsw - u0.ru_nvcsw) + (u1.ru_nivcsw - u0.ru_nivcsw);
    printf("send_bench tps=%.1f msgs=%ld errors=%ld cpu_us_per_msg=%.1f csw_per_msg=%.2f\n",
           (double)n / (t1 - t0), n, e1 - e0, (cpu_s(&u1) - cpu_s(&u0)) * 1e6 * per,
           (double)csw * per);
    CHECK(mq_producer_close(producer));
    mq_producer_destroy(producer);
    return 0;
}
