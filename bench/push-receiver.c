/* The C receiver of bench/push.mjs (RECEIVER=c): CivetWeb, keep-alive, answers each push 204
 * (after DELAY_MS) without verifying it, like the Node receiver, but at CivetWeb's cost rather
 * than Node's, so that on two shared cores the receiver takes less of what callstate's
 * senders need. Each arrival goes to stdout as "MONOTONIC_MS WEBHOOK_ID CALL_ID" (CALL_ID "-" for
 * any event but call.ringing), in buffered writes flushed every few milliseconds; bench/push.mjs
 * reads them.
 *
 * Build: cc -O2 -o push-receiver bench/push-receiver.c -lcivetweb -lpthread
 * Run:   push-receiver PORT THREADS DELAY_MS   (127.0.0.1:PORT; stops on SIGTERM) */
#include <civetweb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static int delay_ms;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* CLOCK_MONOTONIC, the clock of Node's process.hrtime(), so that bench/push.mjs can place
 * each arrival on its own performance.now() without the wall clock's steps. */
static double monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The call id of a call.ringing event, else "-": the bench times each call's ringing only. */
static void ringing_call_id(const char *body, char *out, size_t cap)
{
	static const char key[] = "\"call_id\":\"";
	const char *p = strstr(body, "\"call.ringing\"") ? strstr(body, key) : NULL;
	size_t n = 0;
	if (p) {
		p += sizeof key - 1;
		while (p[n] && p[n] != '"' && n + 1 < cap)
			n++;
		memcpy(out, p, n);
	}
	if (!n)
		out[n++] = '-';
	out[n] = '\0';
}

static int on_push(struct mg_connection *conn, void *cbdata)
{
	(void)cbdata;
	static const char answer[] = "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n";
	if (strcmp(mg_get_request_info(conn)->request_method, "POST") != 0) {
		mg_write(conn, answer, sizeof answer - 1); /* bench/push.mjs asking if it is up */
		return 204;
	}
	char body[16384];
	size_t len = 0;
	int n;
	while ((n = mg_read(conn, body + len, sizeof body - 1 - len)) > 0)
		len += (size_t)n;
	body[len] = '\0';
	double at = monotonic_ms();
	const char *id = mg_get_header(conn, "webhook-id");
	char call_id[128];
	ringing_call_id(body, call_id, sizeof call_id);
	pthread_mutex_lock(&out_lock);
	printf("%.3f %s %s\n", at, id ? id : "-", call_id);
	pthread_mutex_unlock(&out_lock);
	if (delay_ms > 0)
		usleep((useconds_t)delay_ms * 1000);
	mg_write(conn, answer, sizeof answer - 1);
	return 204;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: push-receiver PORT THREADS DELAY_MS\n");
		return 2;
	}
	delay_ms = (int)strtol(argv[3], NULL, 10);
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%s", argv[1]);
	const char *options[] = {
		"listening_ports", listen, "num_threads", argv[2], "enable_keep_alive", "yes",
		"keep_alive_timeout_ms", "60000", "request_timeout_ms", "60000", "tcp_nodelay", "1",
		NULL,
	};
	static char out_buf[1 << 16];
	setvbuf(stdout, out_buf, _IOFBF, sizeof out_buf);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	struct mg_callbacks callbacks = {0};
	mg_init_library(0);
	struct mg_context *ctx = mg_start(&callbacks, NULL, options);
	if (!ctx) {
		fprintf(stderr, "push-receiver: cannot listen on %s\n", listen);
		return 1;
	}
	mg_set_request_handler(ctx, "**", on_push, NULL);
	fprintf(stderr, "push-receiver: listening on %s\n", listen);
	while (!stopping) {
		usleep(5000);
		pthread_mutex_lock(&out_lock);
		fflush(stdout);
		pthread_mutex_unlock(&out_lock);
	}
	mg_stop(ctx);
	mg_exit_library();
	fflush(stdout);
	return 0;
}
