/*
 * fork.c: a process that forks after starting libmq's threads. The child
 * has none of those threads, so libmq must refuse it (MQ_ERR_FORKED) at
 * once, never hang; the parent goes on as before.
 *
 *   fork [-n NAMESRV] [-t TOPIC]
 *
 * The parent starts a producer and sends a message, then forks. The child
 * (under an alarm, so a hang kills it): sending on the inherited producer,
 * polling it, creating a config, a producer or a message all return
 * MQ_ERR_FORKED with a detail that says so; the version, status and
 * last-error functions still work; destroying the inherited producer
 * returns (it only leaks). The parent waits for the child with a deadline
 * (killing it if it hangs), then sends again and shuts down cleanly.
 *
 * Output: "ok <what>" per check ("child: ..." from the child), then
 * "fork: passed"; on a failure "FAIL <what>: ..." and exit status 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <mq.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Under valgrind the child ends differently (child_exit); valgrind.h comes
 * with valgrind, and without it the test runs the same minus that. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND_H 1
#endif
#endif

/* How long the child may take; the parent's wait allows more. */
#define CHILD_LIMIT_S 20

static void fail(const char *what, mq_status_t st)
{
    printf("FAIL %s: %s: %s\n", what, mq_status_name(st), mq_last_error());
    fflush(stdout);
    exit(1);
}

#define CHECK(call)                                                          \
    do {                                                                     \
        mq_status_t st_ = (call);                                            \
        if (st_ != MQ_OK)                                                    \
            fail(#call, st_);                                                \
    } while (0)

/*
 * How the child ends: _exit, because a forked child must not run the
 * parent's atexit handlers or flush its copies of the parent's stdio
 * buffers. (That also skips LeakSanitizer's exit check in the ASan build.)
 *
 * Under valgrind, the leak check at the child's exit would count as lost
 * everything the parent's libmq threads referenced from their stacks: the
 * child has none of those threads (which is why libmq refuses it), and
 * destroy there only leaks, as mq.h says. The child skips that check by
 * exec'ing its verdict instead of exiting, after asking valgrind whether it
 * saw any error (an invalid access, an uninitialised value) in the child.
 */
static void child_exit(int code)
{
    fflush(stdout);
#ifdef HAVE_VALGRIND_H
    if (RUNNING_ON_VALGRIND) {
        unsigned errors = VALGRIND_COUNT_ERRORS;
        if (errors > 0) {
            printf("FAIL child: valgrind found %u errors\n", errors);
            fflush(stdout);
            code = 1;
        }
        execl("/bin/sh", "sh", "-c", code == 0 ? "exit 0" : "exit 1", (char *)NULL);
    }
#endif
    _exit(code);
}

/* In the child: `got` must be MQ_ERR_FORKED, with a detail naming the fork. */
static void child_expect_forked(const char *what, mq_status_t got)
{
    if (got != MQ_ERR_FORKED || strstr(mq_last_error(), "fork") == NULL) {
        printf("FAIL child: %s: %s (%s), not MQ_ERR_FORKED\n", what,
               mq_status_name(got), mq_last_error());
        child_exit(1);
    }
    printf("ok child: %s: %s\n", what, mq_status_name(got));
}

static void send_one(mq_producer_t *p, const char *topic, const char *body)
{
    mq_message_t *m = NULL;
    CHECK(mq_message_new(topic, &m));
    CHECK(mq_message_set_body(m, (const uint8_t *)body, strlen(body)));
    CHECK(mq_producer_send(p, m, -1, NULL));
    mq_message_free(m);
    printf("ok parent: sent %s\n", body);
}

static void child(mq_producer_t *p, const mq_message_t *built, const char *topic)
{
    alarm(CHILD_LIMIT_S); /* a hang ends in SIGALRM, which the parent sees */

    mq_message_t *m = NULL;
    child_expect_forked("mq_message_new", mq_message_new(topic, &m));
    if (m != NULL) {
        printf("FAIL child: mq_message_new set *out\n");
        child_exit(1);
    }
    /* The message the parent built before forking. */
    child_expect_forked("mq_producer_send", mq_producer_send(p, built, 1000, NULL));
    child_expect_forked("mq_producer_send_async", mq_producer_send_async(p, built, 1));
    mq_send_report_t *rep = NULL;
    child_expect_forked("mq_producer_poll", mq_producer_poll(p, 1000, &rep));
    child_expect_forked("mq_producer_flush", mq_producer_flush(p, 1000));
    child_expect_forked("mq_producer_set_report_fd", mq_producer_set_report_fd(p, -1));
    mq_config_t *cfg = NULL;
    child_expect_forked("mq_config_new", mq_config_new(&cfg));
    mq_producer_t *p2 = NULL;
    child_expect_forked("mq_producer_new", mq_producer_new(NULL, &p2));
    child_expect_forked("mq_producer_close", mq_producer_close(p));

    /* What a child may still call: version, status names, last error. */
    if (mq_version() >> 16 != MQ_VERSION_MAJOR ||
        strcmp(mq_status_name(MQ_ERR_FORKED), "MQ_ERR_FORKED") != 0) {
        printf("FAIL child: version or status name\n");
        child_exit(1);
    }
    printf("ok child: version %s, status names, last error \"%s\"\n",
           mq_version_str(), mq_last_error());

    /* Destroy only leaks in a child: it must return. */
    mq_producer_destroy(p);
    printf("ok child: mq_producer_destroy returned\n");
    child_exit(0);
}

int main(int argc, char **argv)
{
    const char *namesrv = getenv("NAMESRV_ADDR");
    const char *topic = "CTestFork";
    int opt;
    while ((opt = getopt(argc, argv, "n:t:")) != -1) {
        switch (opt) {
        case 'n': namesrv = optarg; break;
        case 't': topic = optarg; break;
        default: return 2;
        }
    }
    if (namesrv == NULL) {
        fprintf(stderr, "fork: give the NameServer with -n or NAMESRV_ADDR\n");
        return 2;
    }

    mq_config_t *cfg = NULL;
    CHECK(mq_config_new(&cfg));
    CHECK(mq_config_set(cfg, "namesrv_addr", namesrv));
    CHECK(mq_config_set(cfg, "group", "c_test_fork"));
    mq_producer_t *p = NULL;
    CHECK(mq_producer_new(cfg, &p));
    mq_config_free(cfg);
    send_one(p, topic, "before-fork");
    mq_message_t *built = NULL; /* for the child to try to send */
    CHECK(mq_message_new(topic, &built));
    CHECK(mq_message_set_body(built, (const uint8_t *)"in-child", 8));

    fflush(stdout); /* so the child does not print the parent's buffer again */
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0)
        child(p, built, topic); /* never returns */

    /* The parent: wait for the child, with a deadline. */
    int status = 0;
    struct timespec tick = {0, 50 * 1000 * 1000};
    for (int waited = 0;; waited++) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            break;
        if (done < 0) {
            perror("waitpid");
            return 1;
        }
        if (waited > (CHILD_LIMIT_S + 10) * 20) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            printf("FAIL parent: the child hung\n");
            return 1;
        }
        nanosleep(&tick, NULL);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            printf("FAIL parent: the child died of signal %d%s\n",
                   WTERMSIG(status),
                   WTERMSIG(status) == SIGALRM ? " (it hung)" : "");
        else
            printf("FAIL parent: the child exited with %d\n", WEXITSTATUS(status));
        return 1;
    }
    printf("ok parent: the child exited 0\n");

    /* The parent's producer still works. */
    send_one(p, topic, "after-fork");
    mq_message_free(built);
    CHECK(mq_producer_close(p));
    mq_producer_destroy(p);
    printf("fork: passed\n");
    return 0;
}
