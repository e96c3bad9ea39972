/* callstate: the command line. Loads the configuration, opens and migrates the database, and
 * serves HTTP until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish,
 * stops the timers and closes the database before exiting 0. Under systemd it says READY=1
 * once listening, pings the watchdog while the database answers, and says STOPPING=1. */
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "log.h"
#include "notify.h"
#include "push.h"
#include "server.h"
#include "retention.h"
#include "timers.h"

#ifndef CALLSTATE_VERSION
#define CALLSTATE_VERSION "dev"
#endif

extern char **environ;

enum exit_code { EXIT_OK = 0, EXIT_FAILURE_RUN = 1, EXIT_USAGE = 2 };

static const char usage[] =
	"usage: callstate serve [--config FILE]    migrate if needed, then serve HTTP\n"
	"       callstate migrate [--config FILE]  apply pending database migrations\n"
	"       callstate --version | --help\n"
	"\n"
	"Settings come from built-in defaults, then the --config file (NAME = value lines),\n"
	"then the environment; NAME_FILE=/path and $CREDENTIALS_DIRECTORY/NAME supply secrets.\n"
	"See README.md for every setting.\n";

static int fail_usage(const char *msg)
{
	fprintf(stderr, "callstate: %s\n%s", msg, usage);
	return EXIT_USAGE;
}

static enum err open_database(const struct config *cfg, struct storage **ret_st)
{
	struct storage *st = NULL;
	int applied = 0;
	struct storage_options opts = {.pool_size = cfg->db_pool, .unprepared = !cfg->db_prepared};
	if (!storage_backend_built(cfg->db_url)) {
		fprintf(stderr, "callstate: CALLSTATE_DB: this build has no storage backend for "
				"that URL (see callstate --version)\n");
		return ERR_INVALID;
	}
	enum err e = storage_open(cfg->db_url, &opts, &st);
	if (e == ERR_INVALID) {
		/* Never the URL itself: it may hold a password. */
		fprintf(stderr, "callstate: CALLSTATE_DB: not a URL the backend can parse (a %% in "
				"a password must be written %%25)\n");
		return e;
	}
	if (e != ERR_OK) {
		fprintf(stderr, "callstate: CALLSTATE_DB: cannot open the database (%s)\n",
			err_code(e));
		return e;
	}
	e = storage_migrate(st, &applied);
	if (e != ERR_OK) {
		fprintf(stderr, "callstate: CALLSTATE_DB: migration failed (%s)\n", err_code(e));
		storage_close(st);
		return e;
	}
	int version = 0;
	if (storage_schema_version(st, &version) == ERR_OK)
		log_write(LOG_INFO, "msg=migrated applied=%d schema_version=%d backend=%s", applied,
			  version, storage_backend_name(st));
	*ret_st = st;
	return ERR_OK;
}

static int serve(const struct config *cfg, struct storage *st)
{
	struct app app;
	struct server *srv = NULL;
	struct timers *timers = NULL;
	struct retention *retention = NULL;
	struct push *push = NULL;
	struct notify_watchdog *watchdog = NULL;
	enum err watchdog_e = ERR_OK;
	sigset_t stop_signals;
	int sig = 0;

	/* Block the stop signals before any thread starts so that only sigwait sees them. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	enum err e = app_init(&app, cfg, st);
	if (e != ERR_OK) {
		fprintf(stderr, "callstate: cannot start (%s)\n", err_code(e));
		return EXIT_FAILURE_RUN;
	}
	/* What failed to start, for the message: only the server's failure is about the listener. */
	const char *failed = "the timers";
	e = timers_start(&app.calls, &timers);
	if (e == ERR_OK) {
		failed = "the retention purge";
		e = retention_start(st, &app.calls.clock, cfg->retention_days, &retention);
	}
	if (e == ERR_OK) {
		failed = "the push of events (CALLSTATE_EVENTS_URL)";
		e = push_start(cfg, st, &push);
	}
	if (e == ERR_OK) {
		failed = NULL;
		e = server_start(&app, &srv);
	}
	if (e == ERR_OK) {
		log_write(LOG_INFO,
			  "msg=serving listen=%s:%d threads=%d backend=%s retention_days=%d "
			  "version=%s",
			  cfg->listen_host, cfg->listen_port, cfg->threads,
			  storage_backend_name(st), cfg->retention_days, CALLSTATE_VERSION);
		notify_ready();
		watchdog_e = notify_watchdog_start(st, &watchdog);
		if (watchdog_e == ERR_OK)
			sigwait(&stop_signals, &sig);
		/* The last ping goes out before STOPPING=1, never after it. */
		notify_watchdog_stop(watchdog);
		notify_stopping();
		log_write(LOG_INFO, "msg=stopping signal=%d", sig);
	}
	server_stop(srv);
	retention_stop(retention);
	push_stop(push);
	timers_stop(timers);
	app_finish(&app);
	if (watchdog_e != ERR_OK) {
		fprintf(stderr, "callstate: cannot start the watchdog thread (%s)\n",
			err_code(watchdog_e));
		return EXIT_FAILURE_RUN;
	}
	if (e != ERR_OK && failed) {
		fprintf(stderr, "callstate: cannot start %s (%s)\n", failed, err_code(e));
		return EXIT_FAILURE_RUN;
	}
	if (e != ERR_OK) {
		fprintf(stderr, "callstate: CALLSTATE_LISTEN: cannot listen on %s:%d\n",
			cfg->listen_host, cfg->listen_port);
		return EXIT_FAILURE_RUN;
	}
	log_write(LOG_INFO, "msg=stopped");
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	const char *command = NULL, *config_path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("callstate %s (storage:%s%s)\n", CALLSTATE_VERSION,
			       storage_backend_built("sqlite:") ? " sqlite" : "",
			       storage_backend_built("postgresql://") ? " postgresql" : "");
			return EXIT_OK;
		} else if (strcmp(argv[i], "--config") == 0) {
			if (++i == argc)
				return fail_usage("--config needs a file");
			config_path = argv[i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			config_path = argv[i] + 9;
		} else if (!command && (strcmp(argv[i], "serve") == 0 ||
					strcmp(argv[i], "migrate") == 0)) {
			command = argv[i];
		} else {
			return fail_usage("unknown argument");
		}
	}
	if (!command)
		return fail_usage("a command is required");

	struct config cfg = {0};
	char msg[512];
	if (config_load(&cfg, config_path, environ, msg, sizeof msg) != ERR_OK) {
		fprintf(stderr, "callstate: %s\n", msg);
		config_finish(&cfg);
		return EXIT_USAGE;
	}
	/* CivetWeb's client speaks TLS only once the library is initialized for it (its return
	 * value says nothing of that in 1.15: a failure shows as each push's connect error). */
	struct events_target target;
	bool tls = cfg.events_url && config_events_target(cfg.events_url, &target) && target.tls;
	mg_init_library(tls ? MG_FEATURES_TLS : 0);
	struct storage *st = NULL;
	int rc = EXIT_USAGE;
	if (open_database(&cfg, &st) == ERR_OK)
		rc = strcmp(command, "serve") == 0 ? serve(&cfg, st) : EXIT_OK;
	storage_close(st);
	mg_exit_library();
	config_finish(&cfg);
	return rc;
}
