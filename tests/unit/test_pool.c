/* The connection pool of db/pool.h: a bounded number open, connections reused, waiters
 * served oldest first and never overtaken by a thread that arrives later. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <time.h>

#include "pool.h"

static int conn_a, conn_b; /* stand-ins: the pool never looks inside a connection */

static int waiting(struct pool *p)
{
	pthread_mutex_lock(&p->mu);
	int n = p->n_waiting;
	pthread_mutex_unlock(&p->mu);
	return n;
}

static void wait_for_waiters(struct pool *p, int n)
{
	for (int i = 0; i < 5000 && waiting(p) < n; i++)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	cr_assert_eq(waiting(p), n, "the takers never queued");
}

Test(pool, opens_up_to_its_bound_then_times_out)
{
	struct pool p;
	cr_assert_eq(pool_init(&p, 2), ERR_OK);
	void *c = &conn_a;
	cr_assert_eq(pool_take(&p, 10, &c), ERR_OK);
	cr_assert_null(c, "room to open one");
	cr_assert_eq(pool_take(&p, 10, &c), ERR_OK);
	cr_assert_null(c);
	cr_assert_eq(pool_take(&p, 20, &c), ERR_UNAVAILABLE, "two open, none free");
	cr_assert_eq(waiting(&p), 0, "a taker that gave up leaves the queue");

	pool_give(&p, NULL); /* one failed to open, or was closed: its place is free again */
	cr_assert_eq(pool_take(&p, 10, &c), ERR_OK);
	cr_assert_null(c);
	pool_give(&p, &conn_a);
	pool_give(&p, &conn_b);
	cr_assert_eq(pool_drain(&p), &conn_b);
	cr_assert_eq(pool_drain(&p), &conn_a);
	cr_assert_null(pool_drain(&p));
	cr_assert_eq(p.open, 0);
	pool_finish(&p);
}

Test(pool, reuses_the_most_recent_connection)
{
	struct pool p;
	cr_assert_eq(pool_init(&p, 2), ERR_OK);
	void *c;
	pool_take(&p, 10, &c);
	pool_take(&p, 10, &c);
	pool_give(&p, &conn_a);
	pool_give(&p, &conn_b);
	cr_assert_eq(pool_take(&p, 10, &c), ERR_OK);
	cr_assert_eq(c, &conn_b, "the warmest first");
	cr_assert_eq(pool_take(&p, 10, &c), ERR_OK);
	cr_assert_eq(c, &conn_a);
	cr_assert_eq(pool_take(&p, 10, &c), ERR_UNAVAILABLE, "no more than two ever open");
	pool_give(&p, &conn_a);
	pool_give(&p, &conn_b);
	while (pool_drain(&p))
		;
	pool_finish(&p);
}

struct taker {
	struct pool *p;
	pthread_mutex_t *order_mu;
	int *order, *n_order, id;
	void *got;
	enum err e;
	pthread_mutex_t *gate; /* held by the test while it looks at the pool */
};

static void *take_and_hold(void *arg)
{
	struct taker *t = arg;
	t->e = pool_take(t->p, 5000, &t->got);
	pthread_mutex_lock(t->order_mu);
	t->order[(*t->n_order)++] = t->id;
	pthread_mutex_unlock(t->order_mu);
	pthread_mutex_lock(t->gate);
	pthread_mutex_unlock(t->gate);
	if (t->e == ERR_OK)
		pool_give(t->p, t->got);
	return NULL;
}

Test(pool, serves_waiters_oldest_first_and_lets_none_barge_in)
{
	struct pool p;
	cr_assert_eq(pool_init(&p, 1), ERR_OK);
	void *held;
	cr_assert_eq(pool_take(&p, 10, &held), ERR_OK);
	held = &conn_a; /* opened */

	pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
	/* The takers give the connection back only once the test has looked at the pool: on a
	 * slow machine all three could otherwise be done before it looks. */
	pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&gate);
	int order[3], n_order = 0;
	struct taker t[3];
	pthread_t th[3];
	for (int i = 0; i < 3; i++) {
		t[i] = (struct taker){&p, &order_mu, order, &n_order, i, NULL, ERR_INTERNAL, &gate};
		pthread_create(&th[i], NULL, take_and_hold, &t[i]);
		wait_for_waiters(&p, i + 1); /* queued in the order 0, 1, 2 */
	}
	/* Handed straight to the oldest waiter, never left free for a taker arriving now. */
	pool_give(&p, held);
	pthread_mutex_lock(&p.mu);
	size_t free_after_give = p.n_free;
	pthread_mutex_unlock(&p.mu);
	pthread_mutex_unlock(&gate);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);

	cr_assert_eq(free_after_give, 0);

	cr_assert_eq(n_order, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(t[i].e, ERR_OK);
		cr_assert_eq(t[i].got, &conn_a, "the connection itself is handed on");
		cr_assert_eq(order[i], i, "served in arrival order");
	}
	cr_assert_eq(pool_drain(&p), &conn_a);
	cr_assert_null(pool_drain(&p));
	pool_finish(&p);
}
