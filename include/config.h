/* Configuration: built-in defaults < the --config file (NAME = value lines) < the environment.
 * A secret may come from NAME_FILE=/path or $CREDENTIALS_DIRECTORY/NAME instead. The loaded
 * struct config is immutable afterwards and owned by the caller (config_finish). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

#define CONFIG_MAX_TOKENS 32
#define CONFIG_MAX_KEYS 16
#define RETENTION_DAYS_MAX 36500 /* a century: past any legal hold, far from overflowing ms */

struct api_key {
	char *key;
	char *secret;
};

#define CONFIG_EVENTS_KEYS 2     /* CALLSTATE_EVENTS_SECRET: two while rotating */
#define CONFIG_EVENTS_KEY_MAX 64

struct events_key {
	unsigned char bytes[CONFIG_EVENTS_KEY_MAX]; /* the base64-decoded whsec_ key */
	size_t len;
};

/* Where CALLSTATE_EVENTS_URL points. */
struct events_target {
	bool tls;
	char host[256];
	int port;
	char path[1024]; /* with the query */
};

struct config {
	char *livekit_url;
	struct api_key api_key;            /* LIVEKIT_API_KEY / LIVEKIT_API_SECRET: signs tokens */
	struct api_key extra_keys[CONFIG_MAX_KEYS]; /* LIVEKIT_KEYS, webhooks only */
	size_t n_extra_keys;
	char *db_url;                      /* CALLSTATE_DB */
	int db_pool;                       /* CALLSTATE_DB_POOL: database connections at most */
	bool db_prepared;                  /* CALLSTATE_DB_PREPARED: PostgreSQL named statements */
	char *listen_host;                 /* CALLSTATE_LISTEN split; IPv6 without brackets */
	int listen_port;
	int threads;
	int idle_timeout_ms;                /* keep-alive connections between requests */
	int request_timeout_ms;             /* a first request's headers; any request's body */
	int long_polls;                     /* GET /v1/events?wait= waiting at once, at most */
	char *service_tokens[CONFIG_MAX_TOKENS];
	size_t n_service_tokens;
	char *admin_tokens[CONFIG_MAX_TOKENS];
	size_t n_admin_tokens;
	int ring_timeout_s;
	int join_timeout_s;
	int token_ttl_s;
	long max_body_bytes;
	int retention_days;                 /* ended calls older than this are purged; 0 keeps all */
	char *events_url;                   /* CALLSTATE_EVENTS_URL: "" = no push */
	struct events_key events_keys[CONFIG_EVENTS_KEYS]; /* CALLSTATE_EVENTS_SECRET */
	size_t n_events_keys;
	char *events_ca_file;               /* CALLSTATE_EVENTS_CA_FILE: vouches for https receivers */
};

/* Split an http:// or https:// URL (CALLSTATE_EVENTS_URL); false when it is not one. */
bool config_events_target(const char *url, struct events_target *ret);

/* Where the settings come from: env is an environ-style NULL-terminated array (tests pass their
 * own), config_path may be NULL. On failure *ret_msg is one line naming the setting, in
 * msgbuf, and ERR_INVALID is returned; the caller prints it and exits 2. */
enum err config_load(struct config *ret_cfg, const char *config_path, char *const *env,
		     char *msgbuf, size_t msgcap);
void config_finish(struct config *cfg);
