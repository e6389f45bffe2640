/*
 * worker_pool - a few threads that run blocking work (fsync, password
 * hashing, ...) for an event-driven daemon, so that one job never stalls
 * the event loop and every other client with it.
 *
 * A job is two functions: work(arg) runs in a pool thread and must touch
 * only what arg owns (and thread-safe library calls); done(arg) then runs in
 * the event loop, where everything else happens. Jobs start in the order
 * they were submitted; they finish in any order. Threads start with every
 * signal blocked: signals stay the event loop's business.
 */
#ifndef POSTERN_WORKER_POOL_H
#define POSTERN_WORKER_POOL_H

struct event_base;
struct worker_pool;

typedef void (*worker_fn)(void *arg);

/* worker_pool_new - nthreads threads handing finished jobs back to base; fatal on failure */
struct worker_pool *worker_pool_new(struct event_base *base, unsigned nthreads, const char *what);
/* worker_pool_submit - run work(arg) in a thread, then done(arg) in the loop */
void worker_pool_submit(struct worker_pool *pool, worker_fn work, worker_fn done, void *arg);
/* worker_pool_pending - jobs submitted whose done() has not run yet */
unsigned worker_pool_pending(const struct worker_pool *pool);

#endif
