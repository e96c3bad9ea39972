/* The service's shared state. Built once in main before the HTTP server starts and read-only
 * afterwards (counters are atomic), so every worker thread may use it without locks. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>

#include "calls.h"
#include "config.h"
#include "storage.h"
#include "tokens.h"
#include "webhook.h"

#define AUTH_DIGEST_LEN 32

enum role { ROLE_NONE, ROLE_SERVICE, ROLE_ADMIN };

struct auth_entry {
	unsigned char digest[AUTH_DIGEST_LEN]; /* SHA-256 of the bearer token */
	enum role role;
};

struct auth {
	struct auth_entry entries[2 * CONFIG_MAX_TOKENS];
	size_t n;
};

struct app {
	const struct config *cfg;
	struct storage *st;
	struct token_signer signer;
	struct calls calls;
	struct auth auth;
	struct webhook_keys webhook_keys;
	char *livekit_url_json; /* cfg->livekit_url as a JSON string literal */
};

enum err auth_init(struct auth *a, const struct config *cfg);
/* The role of "Bearer <token>" in header (NULL = no header); ROLE_NONE if unknown. Every
 * configured token is compared, in constant time, whatever matches. */
enum role auth_role(const struct auth *a, const char *header);

/* cfg and st are borrowed and must outlive the app. */
enum err app_init(struct app *app, const struct config *cfg, struct storage *st);
void app_finish(struct app *app);
