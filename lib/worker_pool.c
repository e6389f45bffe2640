/*
 * worker_pool - blocking work off the event loop (see worker_pool.h).
 *
 * Jobs wait in a FIFO under one mutex; a thread takes one, runs it, and
 * writes the job's pointer into a pipe that the event loop watches. A
 * pointer is written whole (pipe writes of up to PIPE_BUF bytes are atomic);
 * the threads' end of the pipe blocks, so a loop that falls behind only
 * slows the threads down, while the loop's end never blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "mem.h"
#include "worker_pool.h"

struct worker_job {
    struct worker_job *next;
    worker_fn work;
    worker_fn done;
    void   *arg;
};

struct worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct worker_job *head, *tail;
    int     done_pipe[2];
    struct event *done_ev;
    unsigned pending;
    const char *what;
};

/* worker_thread - take jobs in order, run them, hand them back */
static void *worker_thread(void *arg)
{
    struct worker_pool *pool = arg;

    for (;;) {
        struct worker_job *job;
        ssize_t n;

        pthread_mutex_lock(&pool->lock);
        while (pool->head == NULL)
            pthread_cond_wait(&pool->wake, &pool->lock);
        job = pool->head;
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pthread_mutex_unlock(&pool->lock);

        job->work(job->arg);
        do
            n = write(pool->done_pipe[1], &job, sizeof(job));
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t) sizeof(job))
            msg_fatal("%s: cannot hand a job back to the event loop: %m", pool->what);
    }
    return NULL;
}

/* jobs_finished - in the event loop: each finished job's done() */
static void jobs_finished(evutil_socket_t fd, short what, void *arg)
{
    struct worker_pool *pool = arg;
    struct worker_job *jobs[64];
    ssize_t n;

    (void) what;
    n = read(fd, jobs, sizeof(jobs));
    if (n <= 0)
        return;
    for (size_t i = 0; i < (size_t) n / sizeof(jobs[0]); i++) {
        struct worker_job *job = jobs[i];

        pool->pending--;
        job->done(job->arg);
        free(job);
    }
}

struct worker_pool *worker_pool_new(struct event_base *base, unsigned nthreads, const char *what)
{
    struct worker_pool *pool = xcalloc(1, sizeof(*pool));
    sigset_t all, old;

    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->what = what;
    if (pipe2(pool->done_pipe, O_CLOEXEC) < 0
        || fcntl(pool->done_pipe[0], F_SETFL, fcntl(pool->done_pipe[0], F_GETFL) | O_NONBLOCK) < 0)
        msg_fatal("%s: pipe: %m", what);
    pool->done_ev = event_new(base, pool->done_pipe[0], EV_READ | EV_PERSIST, jobs_finished, pool);
    if (pool->done_ev == NULL || event_add(pool->done_ev, NULL) != 0)
        msg_fatal("%s: cannot watch the worker pipe: out of memory", what);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < (nthreads ? nthreads : 1); i++) {
        pthread_t t;
        int     err = pthread_create(&t, NULL, worker_thread, pool);

        if (err != 0)
            msg_fatal("%s: cannot start a worker thread: %s", what, strerror(err));
        pthread_detach(t);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool;
}

void worker_pool_submit(struct worker_pool *pool, worker_fn work, worker_fn done, void *arg)
{
    struct worker_job *job = xcalloc(1, sizeof(*job));

    job->work = work;
    job->done = done;
    job->arg = arg;
    pool->pending++;
    pthread_mutex_lock(&pool->lock);
    if (pool->tail != NULL)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
}

unsigned worker_pool_pending(const struct worker_pool *pool)
{
    return pool->pending;
}
