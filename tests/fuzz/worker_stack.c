/* One long-lived thread of WORKER_STACK_BYTES runs every input: creating a thread per input
 * would cost more than most inputs do. */
#include "worker_stack.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "server.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static fuzz_fn job_fn;
static const uint8_t *job_data;
static size_t job_size;
static bool job_ready, job_done;

static void *worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!job_ready)
			pthread_cond_wait(&cond, &mu);
		job_ready = false;
		pthread_mutex_unlock(&mu);
		job_fn(job_data, job_size);
		pthread_mutex_lock(&mu);
		job_done = true;
		pthread_cond_broadcast(&cond);
	}
	return NULL;
}

static void start_worker(void)
{
	pthread_attr_t attr;
	pthread_t t;
	if (pthread_attr_init(&attr) != 0 ||
	    pthread_attr_setstacksize(&attr, WORKER_STACK_BYTES) != 0 ||
	    pthread_create(&t, &attr, worker_main, NULL) != 0)
		abort();
	pthread_attr_destroy(&attr);
}

void fuzz_on_worker_stack(fuzz_fn fn, const uint8_t *data, size_t size)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, start_worker);
	pthread_mutex_lock(&mu);
	job_fn = fn;
	job_data = data;
	job_size = size;
	job_done = false;
	job_ready = true;
	pthread_cond_broadcast(&cond);
	while (!job_done)
		pthread_cond_wait(&cond, &mu);
	pthread_mutex_unlock(&mu);
}
